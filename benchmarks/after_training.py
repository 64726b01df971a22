"""Two tricks applied after training, on one run's checkpoint: test-time shifts and precise BatchNorm statistics.

    fmnist-lab train --recipe fast --optimizer adamw --lr 0.01 --weight-decay 0.05 --seed 0 --out runs/adamw0
    python benchmarks/after_training.py runs/adamw0/best.pt

Routes to the speedrun's accuracy that cost no training epoch (docs/speedrun.md, section 4):

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

from fmnist_lab import EVAL_BATCH_SIZE, Batches, TrainConfig, evaluate, load_checkpoint, load_fashion_mnist, make_splits
from fmnist_lab.model import Net

SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))  # (right, down) in pixels


def shifted(images: Tensor, right: int, down: int, background: float) -> Tensor:
    """Images (N, 1, 28, 28) moved by up to one pixel, the edge they leave filled with ``background``."""
    padded = F.pad(images, (1, 1, 1, 1), value=background)
    return padded[..., 1 - down : 29 - down, 1 - right : 29 - right]


def probabilities(model: Net, images: Tensor, labels: Tensor, shifts, background: float) -> Tensor:
    views = [
        evaluate(model, Batches(shifted(images, *s, background), labels, EVAL_BATCH_SIZE), images.device)
        for s in shifts
    ]
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
    config = TrainConfig.from_dict({**checkpoint.config, "device": "cpu"})  # the checkpoint loads on the CPU
    splits = make_splits(load_fashion_mnist(verbose=False), config)  # the run's own splits and statistics
    sets = {"validation": (splits.val_x, splits.val_y), "test": (splits.test_x, splits.test_y)}
    background = -splits.mean / splits.std  # a black pixel, normalised
    models = {
        "as trained": checkpoint.model,
        "precise BatchNorm": precise_batchnorm(checkpoint.model, splits.train_x),
    }
    print(f"{args.checkpoint}: {config.optimizer}, {config.epochs} epochs, seed {config.seed}")
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
