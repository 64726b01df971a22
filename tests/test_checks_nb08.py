"""Notebook 08's check (one rank's shard of an epoch): right answers of every kind pass, each wrong one gets its
sentence."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DistributedSampler

from fmnist_lab import distributed
from fmnist_lab.data import Batches
from fmnist_lab.exercises import nb08
from tests.checks_support import SEEDS, assert_right, assert_wrong


def shard_sliced(order, rank, world_size):
    total = -(-len(order) // world_size) * world_size
    return order.repeat(total // len(order) + 1)[:total][rank::world_size]


def shard_by_modulo(order, rank, world_size):
    total = -(-len(order) // world_size) * world_size
    return [int(order[i % len(order)]) for i in range(rank, total, world_size)]


def shard_with_a_loop(order, rank, world_size):
    padded = list(order.tolist())
    while len(padded) % world_size:
        padded.append(padded[len(padded) - len(order)])
    return torch.tensor(padded[rank::world_size])


def shard_with_numpy(order, rank, world_size):
    import numpy as np

    values = order.numpy()
    padding = -len(values) % world_size
    return np.resize(values, len(values) + padding)[rank::world_size]  # np.resize repeats from the start


def shard_with_itertools(order, rank, world_size):
    from itertools import cycle, islice

    total = len(order) + (-len(order) % world_size)
    return list(islice(cycle(order.tolist()), total))[rank::world_size]


def shard_unpadded(order, rank, world_size):
    return order[rank::world_size]


def shard_contiguous(order, rank, world_size):
    size = -(-len(order) // world_size)
    padded = torch.cat([order, order[: size * world_size - len(order)]])
    return padded[rank * size : (rank + 1) * size]


def shard_padded_from_the_end(order, rank, world_size):
    padding = -len(order) % world_size
    return torch.cat([order, order[len(order) - padding :]])[rank::world_size] if padding else order[rank::world_size]


def shard_padding_once(order, rank, world_size):  # wrong only where the padding is longer than the order
    return torch.cat([order, order[: -len(order) % world_size]])[rank::world_size]


def shard_padding_twice(order, rank, world_size):  # right until the padding is twice the order or more
    padded = torch.cat([order, order, order[: -len(order) % world_size]])
    return padded[: -(-len(order) // world_size) * world_size][rank::world_size]


def shard_from_three_copies(order, rank, world_size):  # the same: three copies are not always enough
    return order.repeat(3)[: -(-len(order) // world_size) * world_size][rank::world_size]


def shard_ignoring_the_order(order, rank, world_size):
    total = -(-len(order) // world_size) * world_size
    return torch.arange(total)[rank::world_size] % len(order)


def shard_from_rank_minus_one(order, rank, world_size):  # ranks counted from 1: rank 0 gets the last index alone
    total = -(-len(order) // world_size) * world_size
    return order.repeat(total // len(order) + 1)[:total][rank - 1 :: world_size]


def shard_in_place(order, rank, world_size):
    order[:] = order.sort().values  # spoils the order that every rank shares
    return shard_sliced(order, rank, world_size)


def shard_by_the_lab(order, rank, world_size):
    return distributed.shard(order, rank, world_size)


def shard_by_distributed_sampler(order, rank, world_size):  # PyTorch's sampler, the rule the exercise asks for
    return order[list(DistributedSampler(range(len(order)), num_replicas=world_size, rank=rank, shuffle=False))]


notebook_order = torch.arange(10)


def shard_by_the_labs_batches(order, rank, world_size):  # notebook 08 shows Batches' rank and world_size
    per_rank = -(-len(order) // world_size)
    return next(iter(Batches(order, order, per_rank, rank=rank, world_size=world_size)))[1]


RIGHT = {
    "slicing a repeated order": shard_sliced,
    "positions modulo the length": shard_by_modulo,
    "a loop that pads": shard_with_a_loop,
    "NumPy's resize": shard_with_numpy,
    "itertools.cycle": shard_with_itertools,
    # refused as "not a 1-D tensor" while notebook 07's checks took a generator (helper 102)
    "a generator": lambda order, rank, world_size: (int(i) for i in shard_sliced(order, rank, world_size)),
}

WRONG = {
    "no padding": (shard_unpadded, "every rank should get ceil(7 / 3) = 3 indices"),
    # the two below were told a length, or the two lists alone (helper 102)
    "ranks counted from 1": (
        shard_from_rank_minus_one,
        "on order 0..9, rank 0 of 2, ranks count from 0: rank r starts at position r of the padded order",
    ),
    "the next rank's shard": (
        lambda order, rank, world_size: shard_sliced(order, (rank + 1) % world_size, world_size),
        "on order 0..9, rank 0 of 2, you returned rank 1's shard, not rank 0's",
    ),
    "contiguous blocks": (shard_contiguous, "contiguous block of the order; DistributedSampler deals the order out"),
    "padded from the end": (
        shard_padded_from_the_end,
        "the padding is not: the order is padded by repeating its start",
    ),
    "padding longer than the order": (
        shard_padding_once,
        "order [5], rank 2 of 3 (padding 2, more than the order holds), the padding needs 2 indices but the order "
        "holds only 1: your padded order falls short of 3",
    ),
    # a student's read found these two passing: no case had a padding twice the order's length
    "padding with the order twice": (
        shard_padding_twice,
        "order [5], rank 3 of 4 (padding 3, three times the order), the padding needs 3 indices but the order "
        "holds only 1: your padded order falls short of 4; repeat the order as often as it takes",
    ),
    "three copies of the order": (
        shard_from_three_copies,
        "order [5], rank 3 of 4 (padding 3, three times the order), the padding needs 3 indices but the order "
        "holds only 1: your padded order falls short of 4",
    ),
    # the padding's mistake named before its dtype: once told only "whole-number indices"
    "padded with zeros, in floats": (
        lambda order, rank, world_size: torch.cat([order, torch.zeros(-len(order) % world_size)])[rank::world_size],
        "the first indices are right but the padding is not",
    ),
    "right indices in floats": (
        lambda order, rank, world_size: shard_sliced(order, rank, world_size).float(),
        "your indices are right but come as floats",
    ),
    "positions, not the order's indices": (
        shard_ignoring_the_order,
        "you returned positions in the order ([1, 4, 0]); return what the order holds",
    ),
    "changes the shared order": (shard_in_place, "leave `order` as it is"),
    # notebook 08 defines order = torch.arange(10): read in place of the argument it passed two cases (helper 115)
    "the notebook's order": (
        lambda order, rank, world_size: shard_sliced(notebook_order, rank, world_size),
        "`shard_of_epoch` uses the notebook's `notebook_order`: deal out the `order` it is given (its argument)",
    ),
    "the lab's shard": (shard_by_the_lab, "distributed.shard"),
    "PyTorch's DistributedSampler": (shard_by_distributed_sampler, "calls PyTorch's ready-made `DistributedSampler`"),
    "the lab's Batches": (shard_by_the_labs_batches, "calls the lab's own `Batches`"),
}


@pytest.mark.parametrize("answer", RIGHT.values(), ids=RIGHT)
def test_right_answers_pass_on_every_case_hidden_ones_included(answer):
    assert_right(nb08.q1, answer)
    for seed in SEEDS:
        assert_right(nb08.q1, answer, seed=seed)


@pytest.mark.parametrize("answer, sentence", WRONG.values(), ids=WRONG)
def test_each_typical_mistake_gets_its_sentence(answer, sentence):
    assert_wrong(nb08.q1, answer, sentence)
