"""fmnist-lab: a Fashion-MNIST teaching lab around one small CNN."""

from .data import CLASS_NAMES, Batches, DataError, FashionMNIST, load_fashion_mnist, pixel_stats, train_val_split
from .model import Net, count_parameters

__version__ = "0.1.0"
__all__ = [
    "CLASS_NAMES", "Batches", "DataError", "FashionMNIST", "Net", "count_parameters",
    "load_fashion_mnist", "pixel_stats", "train_val_split",
]
