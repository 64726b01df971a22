"""Exercises of notebook 03: the training loop written by you."""

from __future__ import annotations

import copy
import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from ..data import Batches
from ..devices import pick_device
from ..model import Net
from ..train import train_epoch, train_step
from . import Exercise, Wrong, as_number, call, close, missing_exercise, own_random_state, refuse_notebook_values, timed


def reference_epoch(
    model: nn.Module,
    batches: list,
    optimizer: torch.optim.Optimizer,
    train_mode: bool = True,
    zero_grad: bool = True,
    reduction: str = "mean",
    loss_after_step: bool = False,
) -> tuple[float, float]:
    """Notebook 03's loop, the reference that the check and the tests share: (mean loss over images, over batches).

    ``train_mode`` or ``zero_grad`` False, ``reduction="sum"`` or ``loss_after_step``: the loop with that slip, to
    recognise it in an answer (the last records each batch's loss on the weights its step has just changed).
    """
    if train_mode:
        model.train()
    losses, sizes = [], []
    for x, y in batches:
        if zero_grad:
            optimizer.zero_grad()
        loss = F.nll_loss(model(x), y, reduction=reduction)
        loss.backward()
        optimizer.step()
        if loss_after_step:
            with torch.no_grad():
                loss = F.nll_loss(model(x), y)
        losses.append(loss.item())
        sizes.append(len(y))
    return sum(loss * n for loss, n in zip(losses, sizes)) / sum(sizes), sum(losses) / len(losses)


class _BatchList(list):
    """The check's batches: (images, labels) pairs that know their images as the lab's Batches (``dataset_size``,
    ``images``, ``labels``, ``batch_size``) and a DataLoader (``len(dataset)``) do, so that a loop written for the
    notebook's batches works on them."""

    @property
    def dataset_size(self) -> int:
        return sum(len(labels) for _, labels in self)

    @property
    def images(self) -> Tensor:
        return torch.cat([images for images, _ in self])

    @property
    def labels(self) -> Tensor:
        return torch.cat([labels for _, labels in self])

    @property
    def batch_size(self) -> int:
        """The largest batch's size, as a Batches' last batch is the one that may be smaller."""
        return max(len(labels) for _, labels in self)

    @property
    def dataset(self) -> TensorDataset:
        return TensorDataset(self.images, self.labels)


def _setup(seed: int, batch_sizes: tuple[int, ...], train_mode: bool):
    """A fresh network and optimizer with momentum (so a forgotten zero_grad shows), and a few batches.

    On the lab's device, where the notebook's data and network are: an answer that moves each batch
    `.to(device)` with the notebook's `device`, as section 3's loop does, must not mix devices.
    Its dropout is off: with it on, the weights after the epoch would depend on the random numbers drawn
    before each forward pass, and a right loop that draws some of its own (a seed, a shuffle, an extra
    forward pass) would be refused. BatchNorm still shows a loop that trains in eval mode.
    """
    device = pick_device()
    torch.manual_seed(seed)
    model = Net().to(device)
    for module in model.modules():
        if isinstance(module, (nn.Dropout, nn.Dropout2d)):
            module.p = 0.0
    if not train_mode:
        model.eval()  # the student's function must switch it back to training mode itself
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    batches = _BatchList(
        (torch.randn(n, 1, 28, 28, generator=g).to(device), torch.randint(0, 10, (n,), generator=g).to(device))
        for n in batch_sizes
    )
    return model, optimizer, batches


def _variant(seed: int, sizes: tuple[int, ...], starts_training: bool, **slip) -> tuple[nn.Module, float, float, float]:
    """The network after one epoch of ``reference_epoch`` (right, or with the ``slip`` its keywords name), its two mean
    losses and its time."""
    model, optimizer, batches = _setup(seed, sizes, starts_training)
    (by_image, by_batch), seconds = timed(functools.partial(reference_epoch, **slip), model, batches, optimizer)
    return model, by_image, by_batch, seconds


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    """Compared on the CPU: an answer may have moved its network to another device."""
    return all(
        torch.allclose(p.detach().cpu(), q.detach().cpu(), rtol=1e-4, atol=1e-5)
        for p, q in zip(a.parameters(), b.parameters())
    )


def _cases(generator: torch.Generator | None) -> dict[str, tuple[int, tuple[int, ...], bool]]:
    cases = {
        "3 batches of 8 random images, starting in eval mode": (0, (8, 8, 8), False),
        "batches of 16, 4 and 12 images (uneven sizes)": (1, (16, 4, 12), True),
    }
    if generator is not None:
        seed = int(torch.randint(2, 10_000, (1,), generator=generator))
        sizes = tuple(int(n) for n in torch.randint(2, 20, (3,), generator=generator))
        cases[f"hidden case: batches of {', '.join(map(str, sizes))} random images"] = (seed, sizes, False)
    return cases


def _check_train_one_epoch(train_one_epoch, generator=None) -> str:
    refuse_notebook_values(
        train_one_epoch,
        (torch.optim.Optimizer, Batches, torch.utils.data.DataLoader, nn.Module),
        "train_one_epoch",
        "train the `model` on the `batches` with the `optimizer` it is given (its arguments), not the notebook's own",
    )
    with own_random_state():  # the cases' seeds leave the notebook's random numbers as they were
        for case, (seed, sizes, train_mode) in _cases(generator).items():
            _check_case(train_one_epoch, case, seed, sizes, train_mode)
    return (
        "your loop trains exactly like the loop of section 3: same weights after the epoch, the right mean "
        "loss, the model in training mode."
    )


# likely causes of errors raised in an answer (a fragment of PyTorch's or Python's message -> what to do)
_ADVICE = {
    "'float' object has no attribute 'backward'": "loss.item() is a plain number, without a gradient: call "
    "backward() on the loss tensor, and take .item() only for the running total",
    "does not require grad": "nothing recorded a gradient, as under torch.no_grad(): training needs the gradients, "
    "so leave torch.no_grad() to evaluation",
    "'builtin_function_or_method'": "a method used without calling it (loss.item instead of loss.item()?): add "
    "the parentheses",
    "modified by an inplace operation": "optimizer.step() changed the weights in place before loss.backward() had "
    "used them: call backward() first, then step()",
    "only for scalar outputs": "backward() needs the loss as one number: take the batch's mean loss, F.nll_loss's "
    "default (reduction='none' gives one loss per image)",
}


def _check_case(train_one_epoch, case: str, seed: int, sizes: tuple[int, ...], train_mode: bool) -> None:
    reference, expected, batch_mean, seconds = _variant(seed, sizes, train_mode)
    model, optimizer, batches = _setup(seed, sizes, train_mode)
    before = copy.deepcopy(model)
    returned = call(
        train_one_epoch, model, batches, optimizer, case=case, copy_args=False, reference_s=seconds, advice=_ADVICE
    )
    if isinstance(returned, torch.Tensor) and returned.requires_grad:  # accepted, it kept every batch's graph
        raise Wrong(
            f"on {case}, you returned a tensor that still records its gradient graph: a running total of loss "
            f"tensors chains every batch's loss into one graph. Add each batch's loss.item() (a Python float) to "
            f"the total instead, and return a number"
        )
    loss = as_number(returned, "train_one_epoch", case)
    if _same_weights(model, before):
        if not optimizer.state:
            raise Wrong(
                f"on {case}, the weights did not change and the optimizer it was given never took a step: "
                f"call loss.backward() and then optimizer.step() for every batch, on the `model` it is given, not "
                f"a copy (a step before backward(), or after zero_grad() cleared the gradients, finds none to apply)"
            )
        raise Wrong(  # the optimizer stepped, so the weights had gradients: all zero
            f"on {case}, the weights did not change: optimizer.step() ran on gradients of zero, as after a "
            f"zero_grad(set_to_none=False) between backward() and step(): clear the gradients before backward(), "
            f"and compute the loss from the output of the `model` it is given"
        )
    if not _same_weights(model, reference):
        if not optimizer.state and not _same_weights(model, before):  # trained, but not by the given optimizer
            raise Wrong(
                f"on {case}, the weights changed but the optimizer it was given never took a step: step with the "
                f"`optimizer` it is given (its LR and momentum), not one of your own"
            )
        if _same_weights(model, _variant(seed, sizes, train_mode, zero_grad=False)[0]):
            raise Wrong(
                f"on {case}, the weights end up as without optimizer.zero_grad(): call it before every "
                f"backward(), or the gradients of all batches so far add up"
            )
        if _same_weights(model, _variant(seed, sizes, train_mode, reduction="sum")[0]):
            raise Wrong(
                f"on {case}, the weights end up as with a summed loss (reduction='sum'): each step is then as "
                f"many times larger as the batch has images. Step on the batch's mean loss, F.nll_loss's default, "
                f"and multiply by len(labels) only in the running total"
            )
        if not train_mode and _same_weights(model, _variant(seed, sizes, False, train_mode=False)[0]):
            raise Wrong(
                f"on {case}, the network trained in eval mode (BatchNorm normalised with its running statistics, "
                f"not the batch's; in the notebook, dropout would be off too): "
                f"call model.train() before the loop"
            )
        raise Wrong(
            f"on {case}, the weights end up different from one SGD step per batch, in the order given (loss = "
            f"F.nll_loss of the model's output, then backward() and step())"
        )
    if not model.training:
        raise Wrong(
            f"on {case}, the weights are right but the model is left in eval mode: leave it in training "
            f"mode (no model.eval() at the end; evaluation switches modes itself)"
        )
    if not close(loss, expected):
        if close(loss, batch_mean):
            raise Wrong(
                f"on {case}, you returned the mean of the batch losses ({loss:.4f}); weight each batch by "
                f"its own number of images, len(labels), so that smaller batches count less (one weight for "
                f"every batch, such as the batch size, gives this mean again; expected {expected:.4f})"
            )
        if close(loss, _variant(seed, sizes, train_mode, loss_after_step=True)[1]):
            raise Wrong(
                f"on {case}, you returned the losses measured again after each step, on the weights that step had "
                f"just changed ({loss:.4f}): add up the loss the step was computed from, the one you called "
                f"backward() on (expected {expected:.4f})"
            )
        raise Wrong(f"on {case}, the mean training loss should be {expected:.4f}, but you returned {loss:.4f}")


q2 = Exercise(
    "nb03.q2",
    _check_train_one_epoch,
    hint_text="It is the loop of section 3 without the printing, in training mode. For the mean loss per image, "
    "weight each batch's mean loss by its number of images before you divide by the total.",
    lab_functions=(train_epoch, train_step),
)

__getattr__ = missing_exercise(__name__, globals())
