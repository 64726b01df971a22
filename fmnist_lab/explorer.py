"""The lab's ipywidgets widgets: ``explore`` steps through images (validation or test) and the model's
probabilities; ``feature_map_explorer`` shows any image's feature maps after each conv block.
The figures come from plots.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from .data import normalize
from .dataset import CLASS_NAMES
from .interpretability import BLOCKS, block_outputs
from .plots import plot_image_and_feature_maps, plot_prediction, show

if TYPE_CHECKING:
    import ipywidgets

ALL_CLASSES = "all classes"


def matching_indices(
    targets: Tensor, predictions: Tensor, class_filter: str, mistakes_only: bool, classes: Sequence[str] = CLASS_NAMES
) -> Tensor:
    """Indices of the images that pass the filters (true class, wrong predictions only)."""
    keep = torch.ones(len(targets), dtype=torch.bool)
    if class_filter != ALL_CLASSES:
        keep &= targets == classes.index(class_filter)
    if mistakes_only:
        keep &= predictions != targets
    return keep.nonzero().flatten()


def explore(
    images: Tensor, targets: Tensor, probabilities: Tensor, classes: Sequence[str] = CLASS_NAMES, split: str = "test"
) -> ipywidgets.VBox:
    """A slider over the images of one split, a class filter and a mistakes-only switch.

    (Longer than the lab's 45 lines: the callbacks close over the widget's controls, so they stay together.)

    Returns the widget: display it, or let it be the cell's last value.
    """
    import ipywidgets as widgets  # here, not at the top: importing the lab does not load the widget library

    predictions = probabilities.argmax(1)

    class_filter = widgets.Dropdown(options=[ALL_CLASSES, *classes], value=ALL_CLASSES, description="class")
    mistakes = widgets.Checkbox(value=False, description="mistakes only")
    slider = widgets.IntSlider(value=0, min=0, max=len(targets) - 1, description="image", continuous_update=False)
    status = widgets.HTML()
    output = widgets.Output()

    def selection() -> Tensor:
        return matching_indices(targets, predictions, class_filter.value, mistakes.value, classes)

    def redraw(*_) -> None:
        chosen = selection()
        output.clear_output(wait=True)
        with output:
            if len(chosen) == 0:
                status.value = "no image matches these filters"
                return
            i = int(chosen[min(slider.value, len(chosen) - 1)])
            status.value = f"{split} image #{i} ({slider.value + 1} of {len(chosen)} shown by these filters)"
            show(plot_prediction(images[i], probabilities[i], int(targets[i]), classes))

    def refilter(*_) -> None:
        count = len(selection())
        slider.max = max(count - 1, 0)
        if slider.value == 0:
            redraw()
        else:
            slider.value = 0  # the slider's observer redraws

    slider.observe(redraw, names="value")
    class_filter.observe(refilter, names="value")
    mistakes.observe(refilter, names="value")
    refilter()
    return widgets.VBox([widgets.HBox([class_filter, mistakes]), slider, status, output])


def feature_map_explorer(
    model: nn.Module, images: Tensor, labels: Tensor, mean: float, std: float, classes: Sequence[str] = CLASS_NAMES
) -> ipywidgets.VBox:
    """A widget to pick a uint8 image (slider) and a block (menu) and see that block's feature maps.

    ``mean`` and ``std`` are the statistics the model was trained with (a checkpoint's).
    """
    import ipywidgets as widgets

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
            show(plot_image_and_feature_maps(images[i], maps, f"#{i} {classes[int(labels[i])]}"))

    slider.observe(redraw, names="value")
    block.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([slider, block]), status, output])
