"""Looking inside the network: feature maps, first-layer filters, attributions, feature embeddings.

Forward hooks record what a layer computes without changing the model, and every function
here removes its hooks before it returns, even when the forward pass fails. The functions
run the model in eval mode (dropout off, BatchNorm's running statistics) and then restore
the mode it was in. Saliency and occlusion come from Captum, PyTorch's interpretability library;
Grad-CAM is computed here, on the activated maps (see ``grad_cam``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor, nn
from torch.nn import functional as F

from .data import CLASS_NAMES, normalize

if TYPE_CHECKING:
    import ipywidgets

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


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode inside the ``with`` block; the model's previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def block_outputs(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """What each of the three conv blocks hands on: ``{"block 1": (N, 32, 14, 14), ...}``.

    The network applies one ``Dropout2d`` module at the end of every block (in eval mode it
    passes its input through), so a hook on it sees the three block outputs in order.
    """
    with evaluating(model), recording(model.drop_2d) as outputs:
        model(x.to(_device(model)))
    return {name: out.cpu() for name, out in zip(BLOCKS, outputs, strict=True)}


@torch.no_grad()
def first_layer_responses(model: nn.Module, x: Tensor) -> Tensor:
    """Each ``c1`` filter's response at every pixel, after BatchNorm: (N, 32, 28, 28)."""
    with evaluating(model), recording(model.b1) as outputs:
        model(x.to(_device(model)))
    return outputs[0].cpu()


@torch.no_grad()
def classifier_features(model: nn.Module, x: Tensor, batch_size: int = 500) -> Tensor:
    """The 512 features the last layer reads (``fc_1`` after LeakyReLU): (N, 512)."""
    with evaluating(model), recording(model.fc_2, inputs=True) as inputs:
        for start in range(0, len(x), batch_size):
            model(x[start : start + batch_size].to(_device(model)))
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
    return TopActivations(images.T.contiguous(), (where // width).T.contiguous(), (where % width).T.contiguous(),
                          values.T.contiguous())


def _prepare(model: nn.Module, x: Tensor, target: Tensor | int) -> tuple[Tensor, Tensor]:
    """The images on the model's device, and one target class per image."""
    x = x.to(_device(model))
    return x, torch.as_tensor(target, device=x.device).expand(len(x))


def saliency(model: nn.Module, x: Tensor, target: Tensor | int) -> Tensor:
    """|d log p(target) / d pixel|: how much each pixel sways the class's log-probability: (N, 28, 28)."""
    from captum.attr import Saliency

    with evaluating(model):
        x, target = _prepare(model, x, target)
        maps = Saliency(model).attribute(x.clone().requires_grad_(True), target=target, abs=True)
    return maps.detach().squeeze(1).cpu()


def grad_cam(model: nn.Module, x: Tensor, target: Tensor | int, negative_slope: float = 0.01) -> Tensor:
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
        activated = F.leaky_relu(z, negative_slope)
        gradient = gradient_z / torch.where(z > 0, 1.0, negative_slope)
        maps = (gradient.mean(dim=(2, 3), keepdim=True) * activated).sum(1, keepdim=True).clamp(min=0)
        maps = F.interpolate(maps, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
    return maps.detach().squeeze(1).cpu()


def occlusion(model: nn.Module, x: Tensor, target: Tensor | int, background: float, window: int = 4,
              stride: int = 2) -> Tensor:
    """How much the target's log-probability drops when a ``window`` x ``window`` patch is painted
    ``background`` (the normalised value of a black pixel), averaged over the patches covering each pixel.

    Positive where the pixels support the class: (N, 28, 28).
    """
    from captum.attr import Occlusion

    if not 1 <= stride <= window <= min(x.shape[-2:]):
        raise ValueError(f"stride must be between 1 and the window ({window}), and the window at most the image "
                         f"size {tuple(x.shape[-2:])}; got window {window}, stride {stride}")
    with evaluating(model), torch.no_grad():
        x, target = _prepare(model, x, target)
        maps = Occlusion(model).attribute(x, target=target, sliding_window_shapes=(1, window, window),
                                          strides=(1, stride, stride), baselines=background)
    return maps.squeeze(1).cpu()


def share_on_garment(maps: Tensor, images: Tensor) -> Tensor:
    """The share of each map's positive attribution that lies on the garment (non-black pixels): (N,).

    A map that ignored the image would score about the garment's share of the area.
    """
    positive = maps.clamp(min=0).flatten(1)
    on_garment = (positive * (images.flatten(1) > 0)).sum(1)
    return on_garment / positive.sum(1).clamp(min=torch.finfo(positive.dtype).tiny)


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
        raise ValueError(f"dims must be between 1 and {min(features.shape)} for features of shape "
                         f"{tuple(features.shape)}, got {dims}")
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


def nearest_neighbours(features: Tensor, query: int, k: int = 8) -> Tensor:
    """Indices of the ``k`` points closest to point ``query`` (Euclidean), nearest first, itself excluded."""
    if not 1 <= k < len(features):
        raise ValueError(f"k must be between 1 and {len(features) - 1} (the other points), got {k}")
    distances = (features - features[query]).norm(dim=1)
    distances[query] = float("inf")
    return distances.topk(k, largest=False).indices


def knn_accuracy(features: Tensor, labels: Tensor, k: int = 5) -> float:
    """Leave-one-out accuracy of a ``k``-nearest-neighbour vote: how well the features group the classes."""
    distances = torch.cdist(features.float(), features.float())
    distances.fill_diagonal_(float("inf"))
    neighbours = distances.topk(k, largest=False).indices
    votes = torch.zeros(len(labels), int(labels.max()) + 1).scatter_add_(
        1, labels[neighbours], torch.ones(neighbours.shape))
    return float((votes.argmax(1) == labels).float().mean())


# ---- plots -------------------------------------------------------------------------------------


def _draw(ax: Axes, image: Tensor, title: str = "") -> None:
    """A uint8 image as stored: light garment on black."""
    ax.imshow(image.squeeze().cpu().numpy(), cmap="gray", vmin=0, vmax=255)
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def plot_filters(weights: Tensor, title: str = "c1 filters") -> Figure:
    """The 3x3 weights of each first-layer filter on one colour scale: red adds, blue subtracts."""
    weights = weights.detach().cpu().squeeze(1)  # (32, 3, 3)
    limit = float(weights.abs().max())
    columns = 8
    rows = -(-len(weights) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.0, rows * 1.1 + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(weights):
            image = ax.imshow(weights[i].numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(str(i), fontsize=8)
    fig.suptitle(title)
    fig.colorbar(image, ax=axes, shrink=0.8, label="weight")
    return fig


def plot_top_activating(images: Tensor, weights: Tensor, top: TopActivations, filters: Sequence[int]) -> Figure:
    """One row per filter: its weights, then the images it responds to most, the 3x3 patch boxed."""
    weights = weights.detach().cpu().squeeze(1)
    limit = float(weights.abs().max())
    k = top.images.shape[1]
    fig, axes = plt.subplots(len(filters), k + 1, figsize=((k + 1) * 1.1, len(filters) * 1.15), squeeze=False)
    for row, f in zip(axes, filters):
        row[0].imshow(weights[f].numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
        row[0].set_title(f"filter {f}", fontsize=8)
        row[0].axis("off")
        for ax, i, r, c in zip(row[1:], top.images[f].tolist(), top.rows[f].tolist(), top.cols[f].tolist()):
            _draw(ax, images[i])
            ax.add_patch(Rectangle((c - 1.5, r - 1.5), 3, 3, fill=False, edgecolor="red", lw=1.2))
    fig.tight_layout()
    return fig


def plot_feature_maps(maps: Tensor, title: str = "", fig: Figure | None = None, columns: int = 16) -> Figure:
    """All channels of one image's maps (C, H, W) in a grid, on one colour scale, so that quiet channels look dark."""
    maps = maps.detach().cpu()
    columns = min(columns, len(maps))
    rows = -(-len(maps) // columns)
    if fig is None:
        fig = plt.figure(figsize=(8, 8 * rows / columns + 0.6))
    axes = fig.subplots(rows, columns, squeeze=False, gridspec_kw={"wspace": 0.06, "hspace": 0.06})
    # one scale for all channels; the top 1% of values saturate, so that a few strong ones do not darken the rest
    low, high = float(maps.min()), float(maps.flatten().quantile(0.99))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(maps):
            ax.imshow(maps[i].numpy(), cmap="viridis", vmin=low, vmax=high)
    fig.suptitle(title, fontsize=10)
    return fig


def show_feature_maps(image: Tensor, maps: Tensor, title: str = "") -> Figure:
    """The input image beside the grid of its feature maps."""
    channels, height, width = maps.shape
    columns = 8 if channels <= 32 else 16
    rows = -(-channels // columns)
    grid_width = 5.0 if columns == 8 else 8.0
    fig = plt.figure(figsize=(2.8 + grid_width, max(2.8, grid_width * rows / columns + 0.5)))
    image_fig, maps_fig = fig.subfigures(1, 2, width_ratios=[2.8, grid_width])
    _draw(image_fig.subplots(), image, title)
    plot_feature_maps(maps, f"{channels} maps of {height}x{width}", maps_fig, columns)
    return fig


def plot_attributions(images: Tensor, maps: dict[str, Tensor], titles: Sequence[str]) -> Figure:
    """One row per image: the image, then each map over it (bright = supports the class; negatives not shown)."""
    fig, axes = plt.subplots(len(images), len(maps) + 1, figsize=(2.0 * (len(maps) + 1), 2.1 * len(images)),
                             squeeze=False)
    for i, row in enumerate(axes):
        _draw(row[0], images[i], titles[i])
        for ax, (name, attribution) in zip(row[1:], maps.items()):
            ax.imshow(images[i].cpu().numpy(), cmap="gray", vmin=0, vmax=255)
            ax.imshow(attribution[i].clamp(min=0).numpy(), cmap="inferno", alpha=0.6)
            ax.set_title(name, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    return fig


def plot_embedding(points: Tensor, labels: Tensor, classes: Sequence[str] = CLASS_NAMES, ax: Axes | None = None,
                   title: str = "", focus: Sequence[int] | None = None) -> Figure:
    """A 2-D scatter coloured by class; with ``focus``, the other classes are drawn grey."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 5.5))
    for c, name in enumerate(classes):
        chosen = labels == c
        if focus is not None and c not in focus:
            ax.scatter(*points[chosen].T.numpy(), s=4, color="lightgrey")
        else:
            ax.scatter(*points[chosen].T.numpy(), s=4, color=plt.cm.tab10(c), label=name)
    ax.legend(fontsize=7, markerscale=3, loc="best")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax.figure


def plot_neighbours(images: Tensor, labels: Tensor, query: int, neighbours: Tensor, predicted: int,
                    classes: Sequence[str] = CLASS_NAMES) -> Figure:
    """The query image, then its nearest neighbours in feature space with their true classes."""
    fig, axes = plt.subplots(1, len(neighbours) + 1, figsize=(1.45 * (len(neighbours) + 1), 2.0))
    _draw(axes[0], images[query], f"true: {classes[int(labels[query])]}\nsaid: {classes[predicted]}")
    axes[0].title.set_color("red")
    for rank, (ax, i) in enumerate(zip(axes[1:], neighbours.tolist()), 1):
        _draw(ax, images[i], f"#{rank}: {classes[int(labels[i])]}")
    fig.tight_layout()
    return fig


def feature_map_explorer(model: nn.Module, images: Tensor, labels: Tensor, mean: float, std: float,
                         classes: Sequence[str] = CLASS_NAMES) -> ipywidgets.VBox:
    """A widget to pick a uint8 image (slider) and a block (menu) and see that block's feature maps.

    ``mean`` and ``std`` are the statistics the model was trained with (a checkpoint's).
    """
    import ipywidgets as widgets

    from .explorer import _show

    slider = widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="image", continuous_update=False)
    block = widgets.Dropdown(options=BLOCKS, value=BLOCKS[0], description="block")
    status = widgets.HTML()
    output = widgets.Output()

    def redraw(*_) -> None:
        i = slider.value
        maps = block_outputs(model, normalize(images[i : i + 1], mean, std))[block.value][0]
        channels, height, width = maps.shape
        status.value = f"image #{i} ({classes[int(labels[i])]}), {block.value}: {channels} maps of {height}x{width}"
        output.clear_output(wait=True)
        with output:
            _show(show_feature_maps(images[i], maps, f"#{i} {classes[int(labels[i])]}"))

    slider.observe(redraw, names="value")
    block.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([slider, block]), status, output])
