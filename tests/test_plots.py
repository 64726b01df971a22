import matplotlib.pyplot as plt
import torch

from fmnist_lab.plots import plot_confusion_matrix, plot_gallery


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
