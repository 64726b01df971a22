"""Two tricks applied after training, on one run's checkpoint: test-time shifts and precise BatchNorm statistics.

    fmnist-lab train --recipe fast --optimizer adamw --lr 0.01 --weight-decay 0.05 --seed 0 --out runs/adamw0
    python benchmarks/after_training.py runs/adamw0/best.pt

Routes to the speedrun's accuracy that cost no training epoch (README, "Time to accuracy"):

- **Test-time shifts:** each image's class probabilities averaged over the image and its four
  one-pixel shifts (left, right, up, down; the empty edge filled with the background). The
  mirror image is not among them: the shoes all point one way, and flips cost points (README).
- **Precise BatchNorm:** the running means and variances recomputed as exact averages over the
  training split, dropout off, in place of the moving averages collected while the weights moved.

Each of the four combinations is scored on the run's validation split (which would pick the
trick) and on the test set.
"""

from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fmnist_lab import Batches, evaluate, load_checkpoint, load_fashion_mnist, normalize, train_val_split
from fmnist_lab.model import Net

SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))  # (right, down) in pixels


def shifted(images: Tensor, right: int, down: int, background: float) -> Tensor:
    """Images (N, 1, 28, 28) moved by up to one pixel, the edge they leave filled with ``background``."""
    padded = F.pad(images, (1, 1, 1, 1), value=background)
    return padded[..., 1 - down : 29 - down, 1 - right : 29 - right]


def probabilities(model: Net, images: Tensor, labels: Tensor, shifts, background: float) -> Tensor:
    views = [evaluate(model, Batches(shifted(images, *s, background), labels, 1000), images.device) for s in shifts]
    return sum(view.probabilities for view in views) / len(views)


@torch.no_grad()
def precise_batchnorm(model: Net, train_images: Tensor, batch_size: int = 256) -> Net:
    """A copy whose BatchNorm statistics are exact averages over ``train_images`` (training mode, dropout off)."""
    model = copy.deepcopy(model).train()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # None: a cumulative average over the batches, not a moving one
        if isinstance(module, (nn.Dropout, nn.Dropout2d)):
            module.eval()
    for start in range(0, len(train_images), batch_size):
        model(train_images[start : start + batch_size])
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a run's best.pt")
    args = parser.parse_args()

    checkpoint = load_checkpoint(args.checkpoint)
    settings = checkpoint.config
    data = load_fashion_mnist(verbose=False)
    train_idx, val_idx = train_val_split(len(data.train_labels), settings["val_size"], settings["seed"])
    limit = settings.get("limit_train")
    train_idx = train_idx[:limit] if limit else train_idx

    def prepare(images: Tensor) -> Tensor:
        return normalize(images, checkpoint.mean, checkpoint.std)

    sets = {
        "validation": (prepare(data.train_images[val_idx]), data.train_labels[val_idx]),
        "test": (prepare(data.test_images), data.test_labels),
    }
    background = -checkpoint.mean / checkpoint.std  # a black pixel, normalised
    models = {
        "as trained": checkpoint.model,
        "precise BatchNorm": precise_batchnorm(checkpoint.model, prepare(data.train_images[train_idx])),
    }
    print(f"{args.checkpoint}: {settings['optimizer']}, {settings['epochs']} epochs, seed {settings['seed']}")
    print(f"{'statistics':<20}{'views':<26}{'validation':>11}{'test':>9}")
    for model_name, model in models.items():
        for views_name, shifts in (("the image", SHIFTS[:1]), ("+ 4 one-pixel shifts", SHIFTS)):
            scores = []
            for images, labels in sets.values():
                predicted = probabilities(model, images, labels, shifts, background).argmax(1)
                scores.append(100 * (predicted == labels).float().mean().item())
            print(f"{model_name:<20}{views_name:<26}{scores[0]:>10.2f}%{scores[1]:>8.2f}%")


if __name__ == "__main__":
    main()
