"""Exercises of notebook 07: a saliency map by hand, and nearest neighbours in feature space."""

from __future__ import annotations

import torch
from torch import Tensor

from ..interpretability import nearest_neighbours, saliency
from ..model import Net
from . import Exercise, Wrong, as_tensor, call


def _saliency_cases() -> dict[str, tuple[Net, Tensor, int]]:
    cases = {}
    for seed, target in ((0, 3), (1, 9)):
        torch.manual_seed(seed)
        model = Net()  # left in training mode: the answer has to switch to eval mode itself
        image = torch.randn(1, 28, 28, generator=torch.Generator().manual_seed(seed))
        cases[f"a random network (seed {seed}) and a random image, class {target}"] = (model, image, target)
    return cases


def _check_saliency(my_saliency, model: Net | None = None, image: Tensor | None = None, target: int | None = None, generator=None) -> str:
    for case, (net, x, t) in _saliency_cases().items():
        got = as_tensor(call(my_saliency, net, x, t, case=case, copy_args=False), "my_saliency", case, (28, 28)).float()
        right = saliency(net, x[None], t)[0]
        if torch.allclose(got, right, rtol=1e-3, atol=1e-6):
            continue
        if torch.allclose(got.abs(), right, rtol=1e-3, atol=1e-6):
            raise Wrong(f"on {case}, your map has negative values: take the absolute value of the gradient")
        ratio = got.abs().sum() / right.sum().clamp(min=1e-12)
        if torch.allclose(got.abs(), ratio * right, rtol=1e-2, atol=1e-6) and not torch.isclose(ratio, torch.tensor(1.0)):
            raise Wrong(f"on {case}, your map is the right one times {float(ratio):.3g}: take the gradient of the "
                        f"log-probability, the model's output itself (not of its exp(), the probability)")
        raise Wrong(f"on {case}, your map differs from the lab's (largest difference "
                    f"{float((got - right).abs().max()):.3g}); did you call model.eval() first? In training mode "
                    f"dropout makes every map different")
    praise = "your saliency map equals the lab's (Captum's) on two random networks, from training mode"
    if model is not None and image is not None and target is not None:
        mine = as_tensor(call(my_saliency, model, image, target, case="the ankle boot", copy_args=False),
                         "my_saliency", "the ankle boot", (28, 28)).float()
        if not torch.allclose(mine, saliency(model, image[None], target)[0], rtol=1e-3, atol=1e-6):
            raise Wrong("on the ankle boot your map differs from the lab's")
        praise += "; on the ankle boot too"
    return praise + "."


q2 = Exercise(
    "nb07.q2", _check_saliency,
    hint_text="model.eval(); x = image[None].clone().requires_grad_(True); log_probs = model(x); "
              "log_probs[0, target].backward(); the map is x.grad[0, 0].abs().",
)


def _neighbour_cases() -> dict[str, tuple[Tensor, int, int]]:
    line = torch.tensor([[0.0], [1.0], [3.0], [7.0], [10.0]])
    twins = torch.tensor([[0.0, 0.0], [5.0, 5.0], [0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    g = torch.Generator().manual_seed(5)
    return {
        "five points on a line (0, 1, 3, 7, 10), the point at 3, k=3": (line, 2, 3),
        "2-D points where another point sits exactly on the query, k=2": (twins, 0, 2),
        "200 random points in 16 dimensions, k=8": (torch.randn(200, 16, generator=g), 17, 8),
    }


def _check_nearest(my_nearest, features: Tensor | None = None, query: int | None = None, generator=None) -> str:
    for case, (points, q, k) in _neighbour_cases().items():
        got = call(my_nearest, points, q, k, case=case)
        got = [int(i) for i in as_tensor(got, "my_nearest", case, (k,))]
        right = nearest_neighbours(points, q, k).tolist()
        if got == right:
            continue
        if q in got:
            raise Wrong(f"on {case}, your list holds the query itself (index {q}): leave it out, its distance is 0")
        if sorted(got) == sorted(right):
            raise Wrong(f"on {case}, you found the right neighbours {sorted(right)} but in the wrong order: nearest first")
        raise Wrong(f"on {case}, the {k} nearest points are {right} (nearest first, by Euclidean distance), "
                    f"but you returned {got}")
    praise = "your my_nearest finds the nearest points, nearest first, itself left out, on all three cases"
    if features is not None and query is not None:
        mine = [int(i) for i in call(my_nearest, features, query, 8, case="the validation features")]
        if mine != nearest_neighbours(features, query, 8).tolist():
            raise Wrong("on the validation features your eight neighbours differ from the lab's nearest_neighbours")
        praise += "; on the fc_1 features of the validation images it gives the neighbours shown above"
    return praise + "."


q3 = Exercise(
    "nb07.q3", _check_nearest,
    hint_text="distances = (features - features[query]).norm(dim=1) gives every point's distance to the query. "
              "Set distances[query] to float('inf') so it is never chosen, then take the k smallest with "
              "distances.topk(k, largest=False).indices (or argsort()[:k]).",
)
