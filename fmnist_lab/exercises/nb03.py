"""Exercises of notebook 03: the training loop written by you."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..model import Net
from . import Exercise, Wrong, as_number, call


def _reference_epoch(model: nn.Module, batches: list, optimizer: torch.optim.Optimizer) -> tuple[float, float]:
    """The right answer: the mean loss over images; and the mean over batches (a common slip)."""
    model.train()
    losses, sizes = [], []
    for x, y in batches:
        optimizer.zero_grad()
        loss = F.nll_loss(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        sizes.append(len(y))
    return sum(l * n for l, n in zip(losses, sizes)) / sum(sizes), sum(losses) / len(losses)


def _setup(seed: int, batch_sizes: tuple[int, ...], train_mode: bool):
    """A fresh network and optimizer with momentum (so a forgotten zero_grad shows), and a few batches."""
    torch.manual_seed(seed)
    model = Net()
    if not train_mode:
        model.eval()  # the student's function must switch it back to training mode itself
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    batches = [(torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)) for n in batch_sizes]
    return model, optimizer, batches


def _run(train_one_epoch, seed, batch_sizes, train_mode, case):
    model, optimizer, batches = _setup(seed, batch_sizes, train_mode)
    torch.manual_seed(seed)  # the same dropout masks for the student's run and the reference
    loss = as_number(call(train_one_epoch, model, batches, optimizer, case=case, copy_args=False),
                     "train_one_epoch", case)
    return loss, model


def _check_train_one_epoch(train_one_epoch, generator=None) -> str:
    cases = {"3 batches of 8 random images, starting in eval mode": (0, (8, 8, 8), False),
             "batches of 16, 4 and 12 images (an uneven last batch)": (1, (16, 4, 12), True)}
    for case, (seed, sizes, train_mode) in cases.items():
        loss, model = _run(train_one_epoch, seed, sizes, train_mode, case)
        reference, optimizer, batches = _setup(seed, sizes, train_mode)
        torch.manual_seed(seed)
        expected, batch_mean = _reference_epoch(reference, batches, optimizer)
        fresh = _setup(seed, sizes, train_mode)[0]
        if all(torch.equal(a, b) for a, b in zip(model.parameters(), fresh.parameters())):
            raise Wrong(f"on {case}, the weights did not change: call loss.backward() and optimizer.step() for "
                        f"every batch")
        if not model.training:
            raise Wrong(f"on {case}, the model is still in eval mode afterwards: call model.train() before the loop, "
                        f"or dropout and BatchNorm behave as in testing")
        if not all(torch.allclose(a, b, atol=1e-5) for a, b in zip(model.parameters(), reference.parameters())):
            raise Wrong(f"on {case}, the weights end up different from one SGD step per batch: is "
                        f"optimizer.zero_grad() called before every backward()? (gradients add up otherwise)")
        if abs(loss - expected) > 1e-4 * max(1.0, abs(expected)):
            if abs(loss - batch_mean) < 1e-4 * max(1.0, abs(batch_mean)):
                raise Wrong(f"on {case}, you returned the mean of the batch losses ({loss:.4f}); weight each batch "
                            f"by its size so the last, smaller batch counts less (expected {expected:.4f})")
            raise Wrong(f"on {case}, the mean training loss should be {expected:.4f}, but you returned {loss:.4f}")
    return ("your loop trains exactly like the loop of section 3: same weights after the epoch, the right mean loss, the model "
            "in training mode.")


q2 = Exercise(
    "nb03.q2", _check_train_one_epoch,
    hint_text="It is the loop of section 3 without the printing: model.train(); then for x, y in batches: "
              "zero_grad, forward, F.nll_loss, backward, step. Add loss.item() * len(y) to a total and divide by "
              "the number of images at the end.",
)
