"""Looking inside the network: feature maps, first-layer filters, attributions, feature embeddings.

The computations only: their figures are in plots.py, the feature-map widget in explorer.py.

Forward hooks record what a layer computes without changing the model, and every function
here removes its hooks before it returns, even when the forward pass fails. The functions
run the model in eval mode (dropout off, BatchNorm's running statistics) and then restore
the mode it was in. Saliency and occlusion come from Captum, PyTorch's interpretability library;
Grad-CAM is computed here, on the activated maps (see ``grad_cam``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .model import NEGATIVE_SLOPE, evaluating, model_device

BLOCKS = ("block 1", "block 2", "block 3")  # conv -> BatchNorm -> LeakyReLU -> max-pool -> Dropout2d
UPPER_BODY = (0, 2, 4, 6)  # T-shirt/top, Pullover, Coat, Shirt: the classes the network confuses most


@contextlib.contextmanager
def recording(module: nn.Module, inputs: bool = False) -> Iterator[list[Tensor]]:
    """Collect ``module``'s output (or its first input) on every call until the ``with`` block ends."""
    records: list[Tensor] = []

    def hook(_module: nn.Module, args: tuple, output: Tensor) -> None:
        records.append((args[0] if inputs else output).detach())

    handle = module.register_forward_hook(hook)
    try:
        yield records
    finally:
        handle.remove()


@torch.no_grad()
def block_outputs(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """What each of the three conv blocks hands on: ``{"block 1": (N, 32, 14, 14), ...}``.

    The network applies one ``Dropout2d`` module at the end of every block (in eval mode it
    passes its input through), so a hook on it sees the three block outputs in order.
    """
    with evaluating(model), recording(model.drop_2d) as outputs:
        model(x.to(model_device(model)))
    return {name: out.cpu() for name, out in zip(BLOCKS, outputs, strict=True)}


@torch.no_grad()
def first_layer_responses(model: nn.Module, x: Tensor) -> Tensor:
    """Each ``c1`` filter's response at every pixel, after BatchNorm: (N, 32, 28, 28)."""
    with evaluating(model), recording(model.b1) as outputs:
        model(x.to(model_device(model)))
    return outputs[0].cpu()


@torch.no_grad()
def classifier_features(model: nn.Module, x: Tensor, batch_size: int = 500) -> Tensor:
    """The 512 features the last layer reads (``fc_1`` after LeakyReLU): (N, 512)."""
    with evaluating(model), recording(model.fc_2, inputs=True) as inputs:
        for start in range(0, len(x), batch_size):
            model(x[start : start + batch_size].to(model_device(model)))
    return torch.cat([f.cpu() for f in inputs])


@dataclass
class TopActivations:
    """For each filter (row), the ``k`` images it responds to most, and where in them."""

    images: Tensor  # (filters, k) indices into the images searched
    rows: Tensor  # (filters, k) pixel of the strongest response
    cols: Tensor
    values: Tensor  # (filters, k) the response there


def top_activating(model: nn.Module, x: Tensor, k: int = 6, batch_size: int = 500) -> TopActivations:
    """The images each ``c1`` filter responds to most strongly (its maximum over the image)."""
    if not 1 <= k <= len(x):
        raise ValueError(f"k must be between 1 and the number of images ({len(x)}), got {k}")
    peaks, places = [], []
    for start in range(0, len(x), batch_size):
        responses = first_layer_responses(model, x[start : start + batch_size])
        peak, place = responses.flatten(2).max(2)  # (batch, filters)
        peaks.append(peak)
        places.append(place)
    peak, place = torch.cat(peaks), torch.cat(places)  # (N, filters)
    values, images = peak.topk(k, dim=0)  # (k, filters)
    where = place.gather(0, images)
    width = x.shape[-1]
    return TopActivations(
        images.T.contiguous(), (where // width).T.contiguous(), (where % width).T.contiguous(), values.T.contiguous()
    )


def _prepare(model: nn.Module, x: Tensor, target: Tensor | int) -> tuple[Tensor, Tensor]:
    """The images on the model's device, and one target class per image."""
    x = x.to(model_device(model))
    return x, torch.as_tensor(target, device=x.device).expand(len(x))


def saliency(model: nn.Module, x: Tensor, target: Tensor | int) -> Tensor:
    """|d log p(target) / d pixel|: how much each pixel sways the class's log-probability: (N, 28, 28)."""
    from captum.attr import Saliency

    with evaluating(model):
        x, target = _prepare(model, x, target)
        maps = Saliency(model).attribute(x.clone().requires_grad_(True), target=target, abs=True)
    return maps.detach().squeeze(1).cpu()


def grad_cam(model: nn.Module, x: Tensor, target: Tensor | int) -> Tensor:
    """Grad-CAM on the last conv block's activated maps, LeakyReLU(``b3``), 7x7, upsampled to the image: (N, 28, 28).

    Each of the 128 maps is weighted by the mean gradient of the target's log-probability
    over it; the weighted sum, clipped at zero, marks regions that raise that class.
    ``Net`` applies LeakyReLU as a function, so no module outputs the activated maps: we record
    ``b3``'s output z and the gradient g there, and take a = leaky_relu(z) with its gradient
    g / leaky_relu'(z) (the chain rule backwards: the derivative is 1 where z > 0, else the slope).
    """
    with evaluating(model):
        x, target = _prepare(model, x, target)
        outputs: list[Tensor] = []  # b3's output, kept in the graph (recording() detaches)
        handle = model.b3.register_forward_hook(lambda _module, _args, output: outputs.append(output))
        try:
            log_probabilities = model(x)
        finally:
            handle.remove()
        (z,) = outputs
        (gradient_z,) = torch.autograd.grad(log_probabilities.gather(1, target[:, None]).sum(), z)
        activated = F.leaky_relu(z, NEGATIVE_SLOPE)
        gradient = gradient_z / torch.where(z > 0, 1.0, NEGATIVE_SLOPE)
        maps = (gradient.mean(dim=(2, 3), keepdim=True) * activated).sum(1, keepdim=True).clamp(min=0)
        maps = F.interpolate(maps, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
    return maps.detach().squeeze(1).cpu()


def occlusion(
    model: nn.Module, x: Tensor, target: Tensor | int, background: float, window: int = 4, stride: int = 2
) -> Tensor:
    """How much the target's log-probability drops when a ``window`` x ``window`` patch is painted
    ``background`` (the normalised value of a black pixel), averaged over the patches covering each pixel.

    Positive where the pixels support the class: (N, 28, 28).
    """
    from captum.attr import Occlusion

    if not 1 <= stride <= window <= min(x.shape[-2:]):
        raise ValueError(
            f"stride must be between 1 and the window ({window}), and the window at most the image "
            f"size {tuple(x.shape[-2:])}; got window {window}, stride {stride}"
        )
    with evaluating(model), torch.no_grad():
        x, target = _prepare(model, x, target)
        maps = Occlusion(model).attribute(
            x,
            target=target,
            sliding_window_shapes=(1, window, window),
            strides=(1, stride, stride),
            baselines=background,
        )
    return maps.squeeze(1).cpu()


def share_on_garment(maps: Tensor, images: Tensor) -> Tensor:
    """The share of each map's positive attribution that lies on the garment (non-black pixels): (N,).

    A map that ignored the image would score about the garment's share of the area. A map with no
    positive attribution at all has no share: NaN (average with ``nanmean``), not 0, which would pull a
    mean down for maps that say nothing.
    """
    positive = maps.clamp(min=0).flatten(1)
    on_garment = (positive * (images.flatten(1) > 0)).sum(1)
    total = positive.sum(1)
    return torch.where(total > 0, on_garment / total.clamp(min=torch.finfo(positive.dtype).tiny), torch.nan)


def _ranks(values: Tensor) -> Tensor:
    """Rank of each value in its row, tied values sharing their average rank."""
    ordered = values.sort(1).values.contiguous()
    below = torch.searchsorted(ordered, values.contiguous(), side="left")
    up_to = torch.searchsorted(ordered, values.contiguous(), side="right")
    return (below + up_to - 1).double() / 2


def rank_correlation(a: Tensor, b: Tensor) -> Tensor:
    """Spearman's rank correlation between each pair of maps (N, H, W): (N,).

    1: the pixels are in the same order of importance; 0: unrelated orders; NaN for a constant map.
    """
    ranks_a, ranks_b = _ranks(a.flatten(1)), _ranks(b.flatten(1))
    ranks_a -= ranks_a.mean(1, keepdim=True)
    ranks_b -= ranks_b.mean(1, keepdim=True)
    return (ranks_a * ranks_b).sum(1) / (ranks_a.norm(dim=1) * ranks_b.norm(dim=1))


def pca(features: Tensor, dims: int = 2) -> Tensor:
    """Project onto the ``dims`` directions of largest variance: (N, dims)."""
    if not 1 <= dims <= min(features.shape):
        raise ValueError(
            f"dims must be between 1 and {min(features.shape)} for features of shape "
            f"{tuple(features.shape)}, got {dims}"
        )
    centred = features.double() - features.double().mean(0)
    _, _, directions = torch.linalg.svd(centred, full_matrices=False)
    return (centred @ directions[:dims].T).float()


def tsne(features: Tensor, seed: int = 0, perplexity: float = 30.0) -> Tensor:
    """A 2-D t-SNE map (scikit-learn) of the features, after PCA to 50 dimensions: (N, 2).

    t-SNE keeps neighbours together; distances between far-apart groups mean little.
    """
    from sklearn.manifold import TSNE

    if len(features) < 5:
        raise ValueError(f"t-SNE needs at least 5 points, got {len(features)}")
    reduced = pca(features, min(50, *features.shape))
    perplexity = min(perplexity, (len(features) - 1) / 3)  # scikit-learn needs perplexity < N
    embedding = TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(reduced.numpy())
    return torch.from_numpy(embedding).float()


def _require_neighbours(features: Tensor, k: int) -> None:
    """``k`` neighbours must exist among the other points."""
    if not 1 <= k < len(features):
        raise ValueError(f"k must be between 1 and {len(features) - 1} (the other points), got {k}")


def nearest_neighbours(features: Tensor, query: int, k: int = 8) -> Tensor:
    """Indices of the ``k`` points closest to point ``query`` (Euclidean), nearest first, itself excluded."""
    _require_neighbours(features, k)
    distances = (features - features[query]).norm(dim=1)
    distances[query] = float("inf")
    return distances.topk(k, largest=False).indices


def knn_accuracy(features: Tensor, labels: Tensor, k: int = 5) -> float:
    """Leave-one-out accuracy of a ``k``-nearest-neighbour vote: how well the features group the classes."""
    _require_neighbours(features, k)
    distances = torch.cdist(features.float(), features.float())
    distances.fill_diagonal_(float("inf"))
    neighbours = distances.topk(k, largest=False).indices
    votes = torch.zeros(len(labels), int(labels.max()) + 1).scatter_add_(
        1, labels[neighbours], torch.ones(neighbours.shape)
    )
    return float((votes.argmax(1) == labels).float().mean())
