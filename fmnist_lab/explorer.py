"""An ipywidgets explorer to step through images (validation or test) and the model's probabilities.

Where ipywidgets is not installed (or no widget front end runs), ``explore`` falls back
to plain output: a static figure of the first matching images.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import Tensor

from .data import CLASS_NAMES
from .plots import plot_image, plot_probabilities

ALL_CLASSES = "all classes"


def matching_indices(targets: Tensor, predictions: Tensor, class_filter: str, mistakes_only: bool,
                     classes: Sequence[str] = CLASS_NAMES) -> Tensor:
    """Indices of the images that pass the filters (true class, wrong predictions only)."""
    keep = torch.ones(len(targets), dtype=torch.bool)
    if class_filter != ALL_CLASSES:
        keep &= targets == classes.index(class_filter)
    if mistakes_only:
        keep &= predictions != targets
    return keep.nonzero().flatten()


def show_prediction(image: Tensor, probabilities: Tensor, target: int, classes: Sequence[str] = CLASS_NAMES,
                    title: str = "") -> Figure:
    """The image beside a bar chart of the class probabilities."""
    fig, (image_ax, bar_ax) = plt.subplots(1, 2, figsize=(8, 3.2), gridspec_kw={"width_ratios": [1, 1.6]})
    predicted = int(probabilities.argmax())
    verdict = "right" if predicted == target else "wrong"
    plot_image(image, image_ax, f"{title}true: {classes[target]}\npredicted: {classes[predicted]} ({verdict})")
    plot_probabilities(probabilities, target, classes, bar_ax)
    fig.tight_layout()
    return fig


def explore(images: Tensor, targets: Tensor, probabilities: Tensor, classes: Sequence[str] = CLASS_NAMES,
            split: str = "test"):
    """A slider over the images of one split, a class filter and a mistakes-only switch.

    Returns the widget (display it, or let it be the cell's last value); without
    ipywidgets, shows the first six images statically and returns None.
    """
    predictions = probabilities.argmax(1)
    try:
        import ipywidgets as widgets
    except ImportError:
        print("ipywidgets is not installed, so here is a static view instead of the explorer "
              "(pip install ipywidgets for the interactive one).")
        for i in range(6):
            _show(show_prediction(images[i], probabilities[i], int(targets[i]), classes, f"#{i}  "))
        return None

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
            _show(show_prediction(images[i], probabilities[i], int(targets[i]), classes))

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


def _show(fig: Figure) -> None:
    """Display a figure once (in a notebook or widget output) and release it."""
    try:
        from IPython.display import display
    except ImportError:
        return
    display(fig)
    plt.close(fig)
