"""Exercises of notebook 08: one rank's shard of an epoch, by DistributedSampler's rule."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

from .. import distributed
from ..data import Batches
from . import Exercise, Wrong, call, describe, missing_exercise, refuse_notebook_values


def _shard_cases(generator: torch.Generator | None) -> dict[str, tuple[Tensor, int, int]]:
    """case -> (order, rank, world_size)."""
    shuffled = torch.tensor([7, 2, 9, 0, 4, 1, 8])
    cases = {
        "order 0..9, rank 0 of 2": (torch.arange(10), 0, 2),
        "order 0..9, rank 1 of 2": (torch.arange(10), 1, 2),
        "order [7, 2, 9, 0, 4, 1, 8], rank 1 of 3 (padding 2)": (shuffled, 1, 3),
        "order [7, 2, 9, 0, 4, 1, 8], rank 2 of 3 (padding 2)": (shuffled, 2, 3),
        "order [7, 2, 9, 0, 4, 1, 8], rank 3 of 4 (padding 1)": (shuffled, 3, 4),
        "order [5], rank 2 of 3 (padding 2, more than the order holds)": (torch.tensor([5]), 2, 3),
        "order [5], rank 3 of 4 (padding 3, three times the order)": (torch.tensor([5]), 3, 4),
        "order 0..3, rank 0 of 1 (one process)": (torch.arange(4), 0, 1),
    }
    if generator is not None:
        for n in range(4):
            length = int(torch.randint(1, 40, (1,), generator=generator))
            world_size = int(torch.randint(1, 9, (1,), generator=generator))
            rank = int(torch.randint(0, world_size, (1,), generator=generator))
            order = torch.randperm(length, generator=generator)
            cases[f"hidden case {n + 1}: a shuffled order of {length}, rank {rank} of {world_size}"] = (
                order,
                rank,
                world_size,
            )
    return cases


def _as_indices(value: object, case: str) -> tuple[list[int], bool]:
    """The answer's indices, and whether they came as floats (whole numbers all, or it is refused here)."""
    if isinstance(value, Iterator):  # a generator of indices, as notebook 07's checks take it (helper 102)
        value = list(value)
    try:
        indices = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError, OverflowError):
        indices = None
    whole = (
        indices is not None
        and (not indices.is_floating_point() or bool((indices == indices.round()).all()))
        and not indices.is_complex()
        and indices.dtype != torch.bool
    )
    if indices is None or indices.dim() != 1 or not whole:
        raise Wrong(
            f"`shard_of_epoch` should return a 1-D tensor (or list) of whole-number indices, but on {case} it "
            f"returned {describe(value)}"
        )
    return indices.long().tolist(), indices.is_floating_point()


def _diagnose(got: list[int], order: Tensor, rank: int, world_size: int, case: str) -> str:
    """Why ``got`` is not rank ``rank``'s shard: the usual mistakes named, else the two lists."""
    expected = distributed.shard(order, rank, world_size).tolist()
    length = len(expected)
    padding = length * world_size - len(order)
    for copies in range(2, world_size + 1):  # order[:padding] once, or a fixed number of repeats, falls short
        short = order.repeat(copies)
        if len(short) < length * world_size and got == short[rank::world_size].tolist():
            return (
                f"on {case}, the padding needs {padding} indices but the order holds only {len(order)}: your "
                f"padded order falls short of {length * world_size}; repeat the order as often as it takes, "
                f"however short it is"
            )
    padded = distributed.pad_to_multiple(order, world_size).tolist()
    if got == padded[rank - 1 :: world_size] and rank != 1:  # rank 1 that way is rank 0's shard, told below
        return (
            f"on {case}, ranks count from 0: rank r starts at position r of the padded order (rank 0 at position "
            f"0), not at r - 1; expected {expected}"
        )
    other = next((r for r in range(world_size) if r != rank and got == padded[r::world_size]), None)
    if other is not None:  # (helper 102)
        return (
            f"on {case}, you returned rank {other}'s shard, not rank {rank}'s: rank r starts at position r of the "
            f"padded order (ranks count from 0); expected {expected}"
        )
    if len(got) != length:
        return (
            f"on {case}, every rank should get ceil({len(order)} / {world_size}) = {length} "
            f"{'index' if length == 1 else 'indices'} (the order is padded so that all ranks take the same number "
            f"of steps), but yours has {len(got)}"
        )
    if got == padded[rank * length : (rank + 1) * length]:
        return (
            f"on {case}, you returned a contiguous block of the order; DistributedSampler deals the order out "
            f"like cards: rank r takes positions r, r + N, r + 2N, ..."
        )
    positions = [i % len(order) for i in range(rank, length * world_size, world_size)]
    if got == positions:
        return (
            f"on {case}, you returned positions in the order ({got}); return what the order holds there "
            f"(order[position]): expected {expected}"
        )
    if got[: len(order[rank::world_size])] == order[rank::world_size].tolist():
        return (
            f"on {case}, the first indices are right but the padding is not: the order is padded by repeating "
            f"its start (order[0], order[1], ...), before the rank takes its positions; expected {expected}, "
            f"got {got}"
        )
    return f"on {case}, expected {expected}, but got {got}"


def _check_shard(shard_of_epoch, generator: torch.Generator | None = None) -> str:
    # the notebook's `order` (torch.arange(10)) read in place of the argument passed two cases by luck (helper 115)
    refuse_notebook_values(shard_of_epoch, Tensor, "shard_of_epoch", "deal out the `order` it is given (its argument)")
    floats = None
    for case, (order, rank, world_size) in _shard_cases(generator).items():
        returned = call(
            shard_of_epoch,
            order.clone(),
            rank,
            world_size,
            case=case,
            keep_input="leave `order` as it is: every rank shares it",
        )
        got, in_floats = _as_indices(returned, case)
        if got != distributed.shard(order, rank, world_size).tolist():
            raise Wrong(_diagnose(got, order, rank, world_size, case))
        if in_floats and floats is None:  # told once every case is right: what is wrong comes first
            floats = f"on {case}, your indices are right but come as floats ({describe(returned)})"
    if floats is not None:
        raise Wrong(
            f"{floats}: indices are whole numbers, in an integer dtype (pad with the order itself, which is one)"
        )
    return (
        "your shards are DistributedSampler's: equal lengths, padded from the start of the order, rank r taking "
        "every N-th index from position r."
    )


q1 = Exercise(
    "nb08.q1",
    _check_shard,
    hint_text="First make the order's length divisible by world_size by repeating it from its start, as "
    "DistributedSampler does; then rank r takes every world_size-th index, starting at index r.",
    lab_functions=(distributed.shard, distributed.pad_to_multiple, DistributedSampler, Batches),
)

__getattr__ = missing_exercise(__name__, globals())
