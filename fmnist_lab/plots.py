"""Every figure of the lab, for the notebooks, the widgets (explorer.py) and the command line.

Each ``plot_*`` function returns its figure (``plot_image`` draws into the axes it is given); those that
fit in one axes take an optional ``ax``. ``show`` displays a figure once and releases it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from .dataset import CLASS_NAMES
from .interpretability import TopActivations
from .lr_finder import LRFinderResult
from .train import History, TrainingState

SUGGESTION_MARKERS = {"steepest": "v", "valley": "o", "minimum/10": "s"}


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def plot_lr_finder(
    result: LRFinderResult, ax: Axes | None = None, label: str | None = None, rule: Literal["lab", "report"] = "lab"
) -> Figure:
    """Raw and smoothed loss against a log LR axis, with what a rule reads off the sweep marked.

    ``rule="lab"``: the lab's suggestions and the one-cycle peak. ``rule="report"``: the report's rule
    (as we read it) alone, the lowest logged (raw) loss and its LR divided by 4, so that a replay of the report's sweep
    is not shown with choices the report never made.
    """
    if rule not in ("lab", "report"):
        raise ValueError(f'rule must be "lab" or "report", got {rule!r}')
    fig, ax = _axes(ax, (7, 4.5))
    earlier = ax.get_ylim() if ax.lines else None  # another sweep drawn here: keep its range in view too
    label = label or f"{result.mode} sweep"
    (raw,) = ax.plot(result.lrs, result.losses, alpha=0.3, lw=1, label=f"{label}: raw loss")
    color = raw.get_color()
    ax.plot(result.lrs, result.smoothed, lw=2, color=color, label=f"{label}: smoothed loss")
    if rule == "report":
        ax.plot(
            result.lowest_raw_loss_lr,
            result.losses[result.lowest_raw_loss_step],
            "o",
            ms=9,
            mfc="none",
            mew=2,
            color=color,
            label=f"{label}: lowest logged loss, LR {result.lowest_raw_loss_lr:.3g}",
        )
        ax.axvline(result.report_lr, ls="--", lw=1, color=color, label=f"{label}: that LR / 4 = {result.report_lr:.3g}")
    else:
        for name, lr in result.suggestions.items():
            i = min(range(len(result.lrs)), key=lambda j: abs(result.lrs[j] - lr))
            ax.plot(
                lr,
                result.smoothed[i],
                SUGGESTION_MARKERS[name],
                ms=9,
                mfc="none",
                mew=2,
                color=color,
                label=f"{label}: {name} = {lr:.3g}",
            )
        if result.one_cycle_lr is not None:
            ax.axvline(
                result.one_cycle_lr,
                ls="--",
                lw=1,
                color=color,
                label=f"{label}: one-cycle peak = {result.one_cycle_lr:.3g}",
            )
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    top = max(result.smoothed[: max(1, len(result.smoothed) // 10)] + [min(result.smoothed) * 1.5])
    low, high = min(result.losses) * 0.9, max(top, ax.get_ylim()[0] + 1e-3) * 1.15
    if earlier is not None:
        low, high = min(low, earlier[0]), max(high, earlier[1])
    ax.set_ylim(low, high)
    ax.set_title("LR range test")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # beside the curves
    ax.grid(True, which="both", alpha=0.3)
    return fig


def plot_history(history: History, fig: Figure | None = None) -> Figure:
    """Loss and accuracy per epoch, train against validation, side by side."""
    if fig is None:
        fig = plt.figure(figsize=(10, 3.8))
    fig.clear()
    loss_ax, acc_ax = fig.subplots(1, 2)
    epochs = range(1, len(history) + 1)
    loss_ax.plot(epochs, history.train_loss, "o-", label="train")
    loss_ax.plot(epochs, history.val_loss, "o-", label="validation")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="Loss")
    acc_ax.plot(epochs, [100 * a for a in history.val_accuracy], "o-", color="C1", label="validation")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="Validation accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


class LiveHistoryPlot:
    """Training curves that redraw in place after every epoch (one figure, not one per epoch).

    Pass ``live.update`` as ``on_epoch_end`` to ``run`` or ``fit``. Outside IPython (a script) it draws nothing.
    """

    def __init__(self) -> None:
        self.fig = plt.figure(figsize=(10, 3.8))
        plt.close(self.fig)  # shown through the display handle only
        self.handle = None

    def update(self, state: TrainingState) -> None:
        """Redraw the curves with the history so far."""
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is None:  # a script: display() would print the figure's repr after every epoch
            return
        plot_history(state.history, self.fig)
        if self.handle is None:
            self.handle = display(self.fig, display_id=True)
        else:
            self.handle.update(self.fig)


def plot_image(image: Tensor, ax: Axes, title: str = "") -> None:
    """One image as the data holds it: a light garment on a black background (low values dark).

    uint8 images are drawn on their full 0-255 scale, so a dim image looks dim; float images
    (normalised, or averages) are stretched from their darkest to their brightest pixel.
    """
    ax.imshow(image.squeeze().cpu().numpy(), cmap="gray", **_gray_limits(image))
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def _gray_limits(images: Tensor) -> dict[str, float]:
    """uint8 images on their full 0-255 scale; float ones (no limits) stretched from darkest to brightest."""
    return {"vmin": 0, "vmax": 255} if images.dtype == torch.uint8 else {}


def plot_samples(images: Tensor, labels: Tensor, per_class: int = 6, classes: Sequence[str] = CLASS_NAMES) -> Figure:
    """A grid with one row per class and the first ``per_class`` images of each (white where a class has fewer).

    Drawn as ``plot_image`` draws (a float row stretched as a whole); each row is one image (``tile_maps``).
    """
    fig, axes = plt.subplots(len(classes), 1, figsize=(per_class * 1.1, len(classes) * 1.2), squeeze=False)
    for c, ax in enumerate(axes[:, 0]):
        picks = (labels == c).nonzero().flatten()[:per_class]
        _draw_tiles(ax, tile_maps(images[picks], per_class, gap=5), "gray", **_gray_limits(images))
        ax.set_title(classes[c], fontsize=8, loc="left")
    fig.tight_layout()
    return fig


def plot_gallery(images: Tensor, titles: Sequence[str], columns: int = 6) -> Figure:
    """Images in a grid, each with its title."""
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.6, rows * 1.9), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images, titles):
        plot_image(image, ax, title)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(
    cm: Tensor, classes: Sequence[str] = CLASS_NAMES, ax: Axes | None = None, split: str = "test"
) -> Figure:
    """Counts with the true class on the rows; the diagonal is what was right. ``split`` names the images counted."""
    fig, ax = _axes(ax, (7.5, 6.5))
    im = ax.imshow(cm.numpy(), cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted class", ylabel="true class", title=f"Confusion matrix ({split} set)")
    threshold = cm.max().item() / 2
    for i in range(len(classes)):
        for j in range(len(classes)):
            value = int(cm[i, j])
            ax.text(j, i, value, ha="center", va="center", fontsize=7, color="white" if value > threshold else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def plot_probabilities(
    probabilities: Tensor, true_label: int | None = None, classes: Sequence[str] = CLASS_NAMES, ax: Axes | None = None
) -> Figure:
    """A horizontal bar per class; the predicted bar is orange, the true class is labelled."""
    fig, ax = _axes(ax, (5, 3.5))
    predicted = int(probabilities.argmax())
    colors = ["C1" if c == predicted else "C0" for c in range(len(classes))]
    ax.barh(range(len(classes)), probabilities.cpu().numpy(), color=colors)
    names = [f"{name} (true)" if c == true_label else name for c, name in enumerate(classes)]
    ax.set_yticks(range(len(classes)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    return fig


def plot_prediction(
    image: Tensor, probabilities: Tensor, target: int, classes: Sequence[str] = CLASS_NAMES, title: str = ""
) -> Figure:
    """The image beside a bar chart of the class probabilities."""
    fig, (image_ax, bar_ax) = plt.subplots(1, 2, figsize=(8, 3.2), gridspec_kw={"width_ratios": [1, 1.6]})
    predicted = int(probabilities.argmax())
    verdict = "right" if predicted == target else "wrong"
    plot_image(image, image_ax, f"{title}true: {classes[target]}\npredicted: {classes[predicted]} ({verdict})")
    plot_probabilities(probabilities, target, classes, bar_ax)
    fig.tight_layout()
    return fig


# ---- inside the network: the figures of what interpretability.py computes (uint8 images, as stored) -------------


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
            plot_image(images[i], ax)
            ax.add_patch(Rectangle((c - 1.5, r - 1.5), 3, 3, fill=False, edgecolor="red", lw=1.2))
    fig.tight_layout()
    return fig


def tile_maps(maps: Tensor, columns: int, gap: int = 1) -> Tensor:
    """Maps or images (N, H, W) as one float image, ``columns`` to a row, NaN between them and in empty places.

    Small maps are enlarged (each value repeated) to at least 14 pixels, so that the gaps (``gap`` pixels of
    the enlarged tiles) stay thin. NaN values in the maps would look like gaps.
    """
    maps = maps.detach().cpu().float()
    count, height, width = maps.shape
    scale = -(-14 // min(height, width))
    tiles = maps.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
    tile_height, tile_width = height * scale + gap, width * scale + gap
    rows = max(1, -(-count // columns))  # no maps: one empty row
    grid = torch.full((rows * tile_height - gap, columns * tile_width - gap), float("nan"))
    for i, tile in enumerate(tiles):
        top, left = (i // columns) * tile_height, (i % columns) * tile_width
        grid[top : top + height * scale, left : left + width * scale] = tile
    return grid


def _draw_tiles(ax: Axes, grid: Tensor, cmap: str, **limits: float) -> None:
    """A ``tile_maps`` grid, its gaps (NaN) white like the page, each value a sharp square."""
    ax.imshow(grid.numpy(), cmap=plt.get_cmap(cmap).with_extremes(bad="white"), interpolation="nearest", **limits)
    ax.axis("off")


def plot_feature_maps(maps: Tensor, title: str = "", fig: Figure | None = None, columns: int = 16) -> Figure:
    """All channels of one image's maps (C, H, W) in a grid, on one colour scale, so that quiet channels look dark.

    The grid is one image (``tile_maps``), not one axes per map: drawing 128 axes takes seconds, which the
    feature-map explorer would spend on every move of its slider.
    """
    maps = maps.detach().cpu()
    columns = min(columns, len(maps))
    rows = -(-len(maps) // columns)
    if fig is None:
        fig = plt.figure(figsize=(8, 8 * rows / columns + 0.6))
    # one scale for all channels; the top 1% of values saturate, so that a few strong ones do not darken the rest
    low, high = float(maps.min()), float(maps.flatten().quantile(0.99))
    _draw_tiles(fig.subplots(), tile_maps(maps, columns), "viridis", vmin=low, vmax=high)
    fig.suptitle(title, fontsize=10)
    return fig


def plot_image_and_feature_maps(image: Tensor, maps: Tensor, title: str = "") -> Figure:
    """The input image beside the grid of its feature maps."""
    channels, height, width = maps.shape
    columns = 8 if channels <= 32 else 16
    rows = -(-channels // columns)
    grid_width = 5.0 if columns == 8 else 8.0
    fig = plt.figure(figsize=(2.8 + grid_width, max(2.8, grid_width * rows / columns + 0.5)))
    image_fig, maps_fig = fig.subfigures(1, 2, width_ratios=[2.8, grid_width])
    plot_image(image, image_fig.subplots(), title)
    plot_feature_maps(maps, f"{channels} maps of {height}x{width}", maps_fig, columns)
    return fig


def plot_attributions(images: Tensor, maps: dict[str, Tensor], titles: Sequence[str]) -> Figure:
    """One row per image: the image, then each map over it (bright = a large positive value; negatives not shown)."""
    fig, axes = plt.subplots(
        len(images), len(maps) + 1, figsize=(2.0 * (len(maps) + 1), 2.1 * len(images)), squeeze=False
    )
    for i, row in enumerate(axes):
        plot_image(images[i], row[0], titles[i])
        for ax, (name, attribution) in zip(row[1:], maps.items()):
            plot_image(images[i], ax, name)
            ax.imshow(attribution[i].clamp(min=0).numpy(), cmap="inferno", alpha=0.6)
    fig.tight_layout()
    return fig


def plot_embedding(
    points: Tensor,
    labels: Tensor,
    classes: Sequence[str] = CLASS_NAMES,
    ax: Axes | None = None,
    title: str = "",
    focus: Sequence[int] | None = None,
) -> Figure:
    """A 2-D scatter coloured by class; with ``focus``, the other classes are drawn grey."""
    fig, ax = _axes(ax, (6.5, 5.5))
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
    return fig


def plot_neighbours(
    images: Tensor, labels: Tensor, query: int, neighbours: Tensor, predicted: int, classes: Sequence[str] = CLASS_NAMES
) -> Figure:
    """The query image, then its nearest neighbours in feature space with their true classes."""
    fig, axes = plt.subplots(1, len(neighbours) + 1, figsize=(1.45 * (len(neighbours) + 1), 2.0))
    plot_image(images[query], axes[0], f"true: {classes[int(labels[query])]}\nsaid: {classes[predicted]}")
    axes[0].title.set_color("red")
    for rank, (ax, i) in enumerate(zip(axes[1:], neighbours.tolist()), 1):
        plot_image(images[i], ax, f"#{rank}: {classes[int(labels[i])]}")
    fig.tight_layout()
    return fig


def show(fig: Figure) -> None:
    """Display a figure once (in a notebook or widget output) and release it."""
    from IPython.display import display

    display(fig)
    plt.close(fig)
