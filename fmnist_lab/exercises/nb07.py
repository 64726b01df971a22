"""Exercises of notebook 07: a saliency map by hand, and nearest neighbours in feature space."""

from __future__ import annotations

import copy
import numbers
from typing import Any

import numpy as np
import torch
from scipy.spatial import KDTree, cKDTree
from torch import Tensor, nn

from ..dataset import CLASS_NAMES
from ..devices import pick_device
from ..interpretability import nearest_neighbours, saliency
from ..model import Net
from . import (
    Exercise,
    Misused,
    Wrong,
    all_close,
    as_indices,
    as_tensor,
    call,
    describe,
    expect_data,
    in_words,
    missing_exercise,
    own_random_state,
    refuse_notebook_values,
    timed,
)


def _index(value: object, what: str, count: int) -> int:
    """The notebook's index handed to check() (an int, or a one-element integer tensor) below ``count``."""
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < count:
        raise Misused(f"check() expects {what}, but it got {describe(value)}")
    return int(value)


# q2: a saliency map by hand


def _saliency_cases(generator: torch.Generator | None) -> dict[str, tuple[Net, Tensor, int]]:
    cases = {}
    seeds = [(0, 3), (1, 9)]
    if generator is not None:
        seeds.append(
            (
                int(torch.randint(2, 10_000, (1,), generator=generator)),
                int(torch.randint(0, 10, (1,), generator=generator)),
            )
        )
    device = pick_device()  # the notebook's: an answer that moves the image `.to(device)` must not mix devices
    for n, (seed, target) in enumerate(seeds):
        torch.manual_seed(seed)
        model = Net().to(device)  # left in training mode: the answer has to switch to eval mode itself
        image = torch.randn(1, 28, 28, generator=torch.Generator().manual_seed(seed)).to(device)
        name = "hidden case: a random network" if n == 2 else f"a random network (seed {seed})"
        cases[f"{name} and a random image, class {target}"] = (model, image, target)
    return cases


def _map(
    model: nn.Module, image: Tensor, target: int, of: str = "log-probability", batchnorm_training: bool = False
) -> Tensor:
    """d log p(target) / d pixel in eval mode, signed, on the CPU; or that of the probability p or of the score
    (``fc_2``'s output, before log-softmax), or with BatchNorm in training mode (dropout still off): the variants
    the check compares with."""
    model = copy.deepcopy(model).eval()
    if batchnorm_training:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.train()
    scores = []
    hook = model.fc_2.register_forward_hook(lambda module, inputs, output: scores.append(output))
    x = image[None].clone().requires_grad_(True)
    out = model(x)[0, target]
    hook.remove()
    {"log-probability": out, "probability": out.exp(), "score": scores[0][0, target]}[of].backward()
    return x.grad[0, 0].cpu()


# likely causes of errors raised in an answer (a fragment of PyTorch's message -> what to do)
_SALIENCY_ADVICE = {
    "'NoneType' object": "a .grad is None when the tensor did not record its gradient: make the image you give the "
    "model record it (requires_grad_(True)) before the forward pass, and read .grad from that same tensor",
    "got 3D input": "the model takes a batch: give it the image with a batch dimension, (1, 1, 28, 28)",
    # a forward pass under torch.no_grad(), as for evaluation since notebook 06 (helper 102)
    "does not require grad": "the forward pass recorded no graph to backpropagate through: run it without "
    "torch.no_grad() or torch.inference_mode(), on an image that records its gradient (requires_grad_(True))",
    "Inference tensors cannot be saved for backward": "the forward pass recorded no graph to backpropagate through: "
    "run it without torch.inference_mode(), on an image that records its gradient (requires_grad_(True))",
}


def _call_saliency(
    my_saliency, model: nn.Module, image: Tensor, target: int, *, case: str, copy_args: bool = True, **options: Any
) -> Tensor:
    """The answer's map for one case; an error with one likely cause here gets the fix added, and an image changed
    in place is named (it was told only "your map differs", helper 115)."""
    if copy_args:  # copied here rather than by `call`, to compare the image afterwards (the model is not compared)
        model, image = copy.deepcopy(model), image.detach().clone()
    before = image.detach().clone()
    returned = call(my_saliency, model, image, target, case=case, advice=_SALIENCY_ADVICE, copy_args=False, **options)
    if not torch.equal(image.detach(), before):
        raise Wrong(
            f"on {case}, `my_saliency` changed the image it was given: give the model a copy that records its "
            f"gradient (image.clone().requires_grad_(True)) and change nothing in the image itself"
        )
    return as_tensor(returned, "my_saliency", case, (28, 28))


def _check_saliency(
    my_saliency, model: Net | None = None, image: Tensor | None = None, target: int | None = None, generator=None
) -> str:
    if model is not None:
        expect_data(model, nn.Module, "the trained network (model)")
        expect_data(image, Tensor, "one normalised image (1, 28, 28) after the model")
        if tuple(image.shape) != (1, 28, 28) or not image.is_floating_point():
            raise Misused(
                f"check() expects one normalised image of shape (1, 28, 28) after the model, in floats and "
                f"without a batch dimension (boot[0], say), but it got {describe(image)}"
            )
        target = _index(target, "the target class (an int from 0 to 9) after the image", 10)
    # the notebook's boot read in place of `image` was told only "your map differs" (helper 102)
    refuse_notebook_values(
        my_saliency,
        (nn.Module, Tensor),
        "my_saliency",
        "compute the map of the `model`, `image` and `target` it is given (its arguments)",
    )
    with own_random_state():  # the cases' seeds and the answer's dropout leave the notebook's random state alone
        cases = _saliency_cases(generator)
        for case, (net, x, t) in cases.items():
            maps, seconds = timed(saliency, net, x[None], t)
            right = maps[0].cpu()
            got = _call_saliency(my_saliency, net, x, t, case=case, reference_s=seconds)
            if all_close(got, right, 1e-3):
                continue
            again = _call_saliency(my_saliency, net, x, t, case=case, reference_s=seconds)
            if not all_close(got, again, 1e-3):
                raise Wrong(
                    f"on {case}, your map changes from call to call: call model.eval() first, or dropout "
                    f"drops different units every time; if you did, the randomness is your own (noise added to "
                    f"the image?): the map is the gradient of one pass over the image as it is"
                )
            _diagnose_saliency(my_saliency, case, got, right, net, x, t, seconds)
        _check_twice_on_one_image(my_saliency, *next(iter(cases.items())))
    praise = (
        f"your saliency map equals the lab's (Captum's) on {in_words(len(cases))} random networks, from training mode"
    )
    if model is not None:
        case = f"the {CLASS_NAMES[target].lower()}"
        mine = _call_saliency(my_saliency, model, image, target, case=case)
        if not all_close(mine, saliency(model, image[None], target)[0].cpu(), 1e-3):
            raise Wrong(f"on {case} your map differs from the lab's")
        praise += f"; on {case} too"
    return praise + "."


def _check_twice_on_one_image(my_saliency, case: str, arguments: tuple[Net, Tensor, int]) -> None:
    """The check's calls get fresh copies; in the notebook a student calls the answer on one image again and again."""
    net, image, target = copy.deepcopy(arguments[0]), arguments[1].clone(), arguments[2]
    first, second = (
        _call_saliency(my_saliency, net, image, target, case=f"{case}, called twice", copy_args=False) for _ in range(2)
    )
    if not all_close(second, first, 1e-3):
        raise Wrong(
            f"on {case}, called a second time on the same image your map changed (twice as large when the gradient "
            f"adds up): backward() adds to a tensor's .grad, so the image kept the first call's gradient; give the "
            f"model a copy of the image that records its own (image.clone()), or clear .grad first"
        )


def _diagnose_saliency(
    my_saliency, case: str, got: Tensor, right: Tensor, net: nn.Module, x: Tensor, t: int, reference_s: float
) -> None:
    """Why the answer's map ``got`` differs from the ``right`` one (the lab's) on ``case``: the usual slips named."""
    # dropout or BatchNorm left in training mode without randomness from call to call (dropout alone switched
    # off, a seed set): the answer's map is right once the network comes in eval mode (helper 102)
    from_eval = _call_saliency(my_saliency, copy.deepcopy(net).eval(), x, t, case=case, reference_s=reference_s)
    if all_close(from_eval, right, 1e-3):
        raise Wrong(
            f"on {case}, your map is right when the network comes in eval mode, but not from training mode, as "
            f"the check hands it over (and as a network is right after training): call model.eval() in your "
            f"function before the forward pass; it switches both BatchNorm and dropout"
        )
    if all_close(got, _map(net, x, t, batchnorm_training=True).abs(), 1e-3):  # model.train() in the answer (helper 115)
        raise Wrong(
            f"on {case}, your map is that of a network whose BatchNorm is in training mode, normalising the one "
            f"image with its own statistics: call model.eval() before the forward pass (not model.train())"
        )
    if all_close(got.abs(), right, 1e-3):  # the signed gradient, of log p or of the loss -log p (helper 115)
        raise Wrong(f"on {case}, your map has negative values: take the absolute value of the gradient")
    if all_close(got.abs(), _map(net, x, t, of="probability").abs(), 1e-3):
        raise Wrong(
            f"on {case}, you took the gradient of the probability (the exp() of the output); take it of "
            f"the log-probability, the model's output itself"
        )
    if all_close(got.abs(), _map(net, x, t, of="score").abs(), 1e-3):
        raise Wrong(
            f"on {case}, you took the gradient of the score, fc_2's output before log-softmax (the map of the "
            f"papers, section 3 says); this exercise asks for that of the log-probability, the model's output itself"
        )
    other = next((k for k in range(10) if k != t and all_close(got.abs(), _map(net, x, k).abs(), 1e-3)), None)
    if other is not None:
        raise Wrong(
            f"on {case}, your map is the one of class {other}, not of the target class {t}: take the output "
            f"at [0, target]"
        )
    raise Wrong(
        f"on {case}, your map differs from |d log p(class {t}) / d pixel| (largest difference "
        f"{float((got - right.double()).abs().max()):.3g})"
    )


q2 = Exercise(
    "nb07.q2",
    _check_saliency,
    hint_text="A saliency map is the gradient of the target class's log-probability with respect to the input's "
    "pixels. In evaluation mode, give the model a copy of the image (with a batch dimension) that records"
    " its gradient, backpropagate from the target's output, and return the absolute value of each "
    "pixel's gradient, as one map of the image's height × width.",
    lab_functions=(saliency, "captum.attr", "captum._utils"),
)


# q3: nearest neighbours in feature space


def _neighbour_cases(generator: torch.Generator | None) -> dict[str, tuple[Tensor, int, int]]:
    line = torch.tensor([[0.0], [1.0], [3.0], [7.0], [10.0]])
    # point 1 sits exactly on the query, point 3, and comes before it: sorting by distance puts the twin first,
    # so an answer that drops the first of the sorted points (assuming that is the query) keeps the query
    twins = torch.tensor([[5.0, 5.0], [0.0, 0.0], [0.0, 2.5], [0.0, 0.0], [1.0, 0.0]])
    g = torch.Generator().manual_seed(5)
    cases = {
        "five points on a line (0, 1, 3, 7, 10), the point at 3, k=3": (line, 2, 3),
        "2-D points where an earlier point sits exactly on the query (point 3), k=2": (twins, 3, 2),
        # two points at distance 1 and two at distance 2: either of a tied pair may come first
        "five points on a line (0, 1, -1, 2, -2), the point at 0, k=3 (ties)": (
            torch.tensor([[0.0], [1.0], [-1.0], [2.0], [-2.0]]),
            0,
            3,
        ),
        "200 random points in 16 dimensions, k=8": (torch.randn(200, 16, generator=g), 17, 8),
    }
    if generator is not None:
        count, dims = (
            int(torch.randint(10, 300, (1,), generator=generator)),
            int(torch.randint(1, 40, (1,), generator=generator)),
        )
        query, k = (
            int(torch.randint(0, count, (1,), generator=generator)),
            int(torch.randint(1, 9, (1,), generator=generator)),
        )
        cases[f"hidden case: {count} random points in {dims} dimensions, k={k}"] = (
            torch.randn(count, dims, generator=generator),
            query,
            k,
        )
    return cases


def _distances(points: Tensor, query: int, p: float = 2.0) -> Tensor:
    """Each point's distance to point ``query`` (Euclidean, or another p-norm)."""
    return (points - points[query]).norm(p=p, dim=1)


def _order(points: Tensor, query: int, p: float = 2.0) -> list[int]:
    return [int(i) for i in torch.argsort(_distances(points, query, p), stable=True)]


def _nearest_first(points: Tensor, query: int, got: list[int], right: list[int]) -> bool:
    """Whether ``got`` lists k other points, nearest first, as near as ``right``: points at the same distance
    (duplicate images) may come in any order, and either one of them may make the cut."""
    if len(set(got)) != len(got) or query in got or not all(0 <= i < len(points) for i in got):
        return False
    distances = _distances(points, query)
    return torch.allclose(distances[got], distances[right])


def _in_floats(answer: object) -> bool:
    """Whether the answer's indices are floats (a float tensor or array, or a list holding a float or a float
    tensor)."""
    if isinstance(answer, Tensor):
        return answer.is_floating_point()
    if isinstance(answer, np.ndarray):
        return bool(np.issubdtype(answer.dtype, np.floating))
    return isinstance(answer, (list, tuple)) and any(
        isinstance(v, (float, np.floating)) or (isinstance(v, Tensor) and v.is_floating_point()) for v in answer
    )


def _neighbour_indices(answer: object, points: Tensor, query: int, k: int, case: str) -> list[int]:
    """The answer's k indices; the k smallest distances returned instead of their indices are Wrong (unless they
    are also a right answer: on points of whole-number distances a list can be both)."""
    if (
        isinstance(answer, tuple)
        and len(answer) == 2
        and all(isinstance(part, Tensor) and tuple(part.shape) == (k,) for part in answer)
    ):  # sort's and topk's (values, indices) returned whole (helper 102)
        raise Wrong(
            f"on {case}, you returned a pair of {k}-element tensors, as sort and topk give (values, indices): return "
            f"only the indices, their .indices"
        )
    values = as_tensor(answer, "my_nearest", case, (k,))
    smallest = _distances(points, query).sort().values.double()
    whole = bool((values == values.round()).all())
    right = whole and _nearest_first(
        points, query, [int(v) for v in values], nearest_neighbours(points, query, k).tolist()
    )
    # the query's own 0 left out, or kept (for k = 1 a lone 0 reads as the query's index, told elsewhere)
    starts = (1, 0) if k > 1 else (1,)
    if not right and any(all_close(values, smallest[start : start + k]) for start in starts):
        raise Wrong(
            f"on {case}, you returned the {k} smallest distances, not the indices of their points: sort and topk "
            f"give both, take their .indices"
        )
    return as_indices(values, "my_nearest", case, (k,), ": the positions of the points in `points`")


def _check_nearest(my_nearest, features: Tensor | None = None, query: int | None = None, generator=None) -> str:
    if features is not None:
        expect_data(features, Tensor, "the features (a tensor, one row per image)")
        if features.dim() != 2:
            raise Misused(f"check() expects the features, one row per image, but it got {describe(features)}")
        query = _index(
            query, f"the query's index (an int from 0 to {len(features) - 1}) after the features", len(features)
        )
    refuse_notebook_values(
        my_nearest, Tensor, "my_nearest", "rank the `features` it is given around its `query` (its arguments)"
    )
    floats = None  # the first case whose right indices came as floats: told once every case is right, as nb08.q1
    for case, (points, q, k) in _neighbour_cases(generator).items():
        returned = call(
            my_nearest,
            points,
            q,
            k,
            case=case,
            keep_input="compute the distances into a new tensor and leave `features` as it is (in the notebook "
            "the later cells use it)",
        )
        got = _neighbour_indices(returned, points, q, k, case)
        right = nearest_neighbours(points, q, k).tolist()
        if _nearest_first(points, q, got, right):
            if floats is None and _in_floats(returned):
                floats = f"on {case}, your neighbours are right but come as floats ({describe(returned)})"
            continue
        order = _order(points, q)
        if got == order[1 : k + 1]:
            raise Wrong(
                f"on {case}, you dropped the first of the sorted points, but that is not always the query: "
                f"here another point sits at distance 0 too. Leave out the index `query` itself"
            )
        farthest = [i for i in order[::-1] if i != q]
        # the second: the query's distance set to infinity (for k = 1 that is the query alone, told below)
        if got == farthest[:k] or (k > 1 and got == [q, *farthest[: k - 1]]):
            raise Wrong(f"on {case}, you returned the farthest points: take the smallest distances")
        # the query alone for one neighbour is told below: it leaves the query in, more likely than a shift
        if got != [q] and _nearest_first(points, q, [i + (i >= q) for i in got], right):
            raise Wrong(
                f"on {case}, the indices after the query's ({q}) are one too small: with the query's row taken "
                f"out before ranking, every later row moved up by one. Return indices into `features` itself "
                f"(or give the query an infinite distance instead of taking it out)"
            )
        if _nearest_first(points, q, [i - 1 for i in got], right):
            raise Wrong(f"on {case}, every index is one too large: rows count from 0, as `features[i]` does")
        if _nearest_first(points, q, [i - 1 if i <= q else i for i in got], right):  # (helper 102)
            raise Wrong(
                f"on {case}, the indices before the query's ({q}) are one too large: with the query's row taken "
                f"out before ranking, only the rows after it moved up by one. Return indices into `features` "
                f"itself (or give the query an infinite distance instead of taking it out)"
            )
        if q in got:
            raise Wrong(f"on {case}, your list holds the query itself (index {q}): leave it out, its distance is 0")
        if sorted(got) == sorted(right):
            raise Wrong(
                f"on {case}, you found the right neighbours {sorted(right)} but in the wrong order: nearest first"
            )
        if got == [i for i in _order(points, q, p=1) if i != q][:k]:
            raise Wrong(
                f"on {case}, you ranked the points by the sum of absolute differences (L1); rank them by the "
                f"Euclidean distance, .norm(dim=1)"
            )
        raise Wrong(
            f"on {case}, the {k} nearest points are {right} (nearest first, by Euclidean distance), "
            f"but you returned {got}"
        )
    if floats is not None:  # the notebook indexes with them (val_labels[neighbours]): a float index fails there
        raise Wrong(f"{floats}: indices are whole numbers in an integer dtype, as argsort and topk give them")
    praise = "your my_nearest finds the nearest points, nearest first, itself left out, on every case, ties included"
    if features is not None:
        case = "the validation features"
        mine = _neighbour_indices(call(my_nearest, features, query, 8, case=case), features, query, 8, case)
        if not _nearest_first(features, query, mine, nearest_neighbours(features, query, 8).tolist()):
            raise Wrong("on the validation features your eight neighbours differ from the lab's nearest_neighbours")
        praise += "; on the fc_1 features of the validation images it gives the neighbours shown above"
    return praise + "."


q3 = Exercise(
    "nb07.q3",
    _check_nearest,
    hint_text="Measure the distance from the query's feature vector to every image's. The query itself must never "
    "be picked; then take the k nearest, the nearest first.",
    lab_functions=(nearest_neighbours, "sklearn.neighbors", KDTree, cKDTree),
)

__getattr__ = missing_exercise(__name__, globals())
