import matplotlib.pyplot as plt
import torch

from fmnist_lab.explorer import ALL_CLASSES, explore, matching_indices
from fmnist_lab.plots import plot_prediction


def fake_results():
    targets = torch.tensor([0, 1, 1, 9, 9, 9])
    probabilities = torch.full((6, 10), 0.01)
    predictions = [0, 2, 1, 9, 8, 9]
    probabilities[range(6), predictions] = 0.91
    return torch.zeros(6, 28, 28, dtype=torch.uint8), targets, probabilities


def test_filters():
    _, targets, probabilities = fake_results()
    predictions = probabilities.argmax(1)
    assert matching_indices(targets, predictions, ALL_CLASSES, False).tolist() == [0, 1, 2, 3, 4, 5]
    assert matching_indices(targets, predictions, "Ankle boot", False).tolist() == [3, 4, 5]
    assert matching_indices(targets, predictions, ALL_CLASSES, True).tolist() == [1, 4]
    assert matching_indices(targets, predictions, "Trouser", True).tolist() == [1]


def test_explorer_widget_reacts_to_its_controls():
    images, targets, probabilities = fake_results()
    box = explore(images, targets, probabilities)
    (class_filter, mistakes), slider, status, _ = box.children[0].children, *box.children[1:]
    assert "#0 " in status.value and "of 6" in status.value
    slider.value = 2
    assert "#2 " in status.value
    mistakes.value = True
    assert slider.max == 1 and "#1 " in status.value and "of 2" in status.value
    class_filter.value = "T-shirt/top"
    assert status.value == "no image matches these filters"
    plt.close("all")


def test_plot_prediction_titles_the_verdict():
    images, targets, probabilities = fake_results()
    fig = plot_prediction(images[1], probabilities[1], int(targets[1]))
    assert "true: Trouser" in fig.axes[0].get_title() and "Pullover (wrong)" in fig.axes[0].get_title()
    plt.close(fig)


def test_explorer_names_the_split_it_shows():
    images, targets, probabilities = fake_results()
    box = explore(images, targets, probabilities, split="validation")
    assert box.children[2].value.startswith("validation image #0 ")
    plt.close("all")
