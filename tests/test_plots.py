from types import SimpleNamespace

import matplotlib.pyplot as plt
import torch

from fmnist_lab.plots import LiveHistoryPlot, plot_confusion_matrix, plot_gallery, plot_samples, tile_maps
from fmnist_lab.train import History


def test_images_are_drawn_as_the_data_holds_them_light_on_black():
    """uint8 and float images share one convention: low values dark ("gray"), as in Fashion-MNIST."""
    garment = torch.zeros(28, 28, dtype=torch.uint8)
    garment[8:20, 8:20] = 200
    fig = plot_gallery([garment, garment.float() / 255], ["uint8", "float"], columns=2)
    uint8_image, float_image = (ax.images[0] for ax in fig.axes[:2])
    assert uint8_image.get_cmap().name == float_image.get_cmap().name == "gray"
    assert uint8_image.get_clim() == (0, 255)  # a dim image stays dim
    background = [image.to_rgba(image.get_array())[0, 0, :3] for image in (uint8_image, float_image)]
    assert all(rgb.max() == 0 for rgb in background)  # the background is black in both
    plt.close(fig)


def test_confusion_matrix_names_its_split():
    cm = torch.tensor([[3, 1], [0, 4]])
    fig = plot_confusion_matrix(cm, ["a", "b"], split="validation")
    assert fig.axes[0].get_title() == "Confusion matrix (validation set)"
    plt.close(fig)


def test_samples_show_the_first_images_of_each_class_in_its_row_on_the_uint8_scale():
    labels = torch.tensor([1, 0, 1, 1, 0, 1])
    images = torch.arange(6, dtype=torch.uint8)[:, None, None].expand(6, 28, 28) * 40  # image i: all pixels 40 i
    fig = plot_samples(images, labels, per_class=2, classes=["a", "b", "none"])
    rows = [ax.images[0] for ax in fig.axes]
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["a", "b", "none"]
    for row, firsts in zip(rows, ([1, 4], [0, 2], [])):
        drawn = torch.from_numpy(row.get_array().filled(float("nan")))
        assert torch.allclose(drawn, tile_maps(images[firsts], 2, gap=5), equal_nan=True)
        assert row.get_clim() == (0, 255)
    assert drawn.isnan().all()  # a class without images: an empty (white) row
    plt.close(fig)
    fig = plot_samples(images.float(), labels, per_class=2, classes=["a"])  # one class; floats stretched
    assert len(fig.axes) == 1 and fig.axes[0].images[0].get_clim() == (40.0, 160.0)
    plt.close(fig)


def test_tiles_are_placed_with_the_gap_between_them_and_small_maps_enlarged():
    images = torch.ones(3, 28, 28)
    grid = tile_maps(images, columns=2, gap=5)
    assert grid.shape == (28 + 5 + 28, 28 + 5 + 28)
    assert grid[:28, :28].eq(1).all() and grid[:28, 33:].eq(1).all() and grid[33:, :28].eq(1).all()
    assert grid[28:33].isnan().all() and grid[:, 28:33].isnan().all() and grid[33:, 33:].isnan().all()

    maps = torch.arange(5 * 2 * 3, dtype=torch.float32).reshape(5, 2, 3)  # five 2x3 maps, three to a row
    grid = tile_maps(maps, columns=3)
    assert grid.shape == (2 * 14 + 1, 3 * 21 + 2)  # 2 pixels enlarged to 14: each value a 7x7 square
    for i, tile in enumerate(maps):
        top, left = (i // 3) * 15, (i % 3) * 22
        assert torch.equal(grid[top : top + 14, left : left + 21], tile.repeat_interleave(7, 0).repeat_interleave(7, 1))
    assert grid[14].isnan().all() and grid[:, 21].isnan().all()  # the gaps
    assert grid[15:, 44:].isnan().all()  # the sixth place, empty


def test_live_curves_draw_nothing_outside_ipython(capsys):
    """In a script, display() would print the figure's repr after every epoch."""
    live = LiveHistoryPlot()
    history = History()
    history.append(train_loss=0.5, val_loss=0.4, val_accuracy=0.9, lr=0.1, seconds=1.0)
    live.update(SimpleNamespace(history=history))
    assert capsys.readouterr().out == "" and live.handle is None
