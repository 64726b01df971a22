"""Notebook 03's training loop and notebook 05's early-stopping rule: right answers of every kind pass, each
wrong one gets its sentence (issue #24)."""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from fmnist_lab import make_config
from fmnist_lab.config import TrainConfig
from fmnist_lab.exercises import WRONG, nb03, nb05
from fmnist_lab.model import Net
from fmnist_lab.train import History, best_epoch, out_of_patience, train_epoch, train_step
from tests.checks_support import assert_right, assert_wrong


def epoch_loop(
    zero_grad=True,
    train_mode=True,
    weighted=True,
    step=True,
    eval_after=False,
    loss_fn=F.nll_loss,
    zero_after_step=False,
    as_tensor=False,
):
    """train_one_epoch, right or with one of the usual slips switched on."""

    def train_one_epoch(model, batches, optimizer):
        if train_mode:
            model.train()
        total, seen, losses = 0, 0, []  # total becomes a tensor on the batches' device
        for x, y in batches:
            if zero_grad and not zero_after_step:
                optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            if step:
                optimizer.step()
            if zero_grad and zero_after_step:
                optimizer.zero_grad(set_to_none=False)
            total = total + loss.detach() * len(y)
            seen += len(y)
            losses.append(loss.item())
        if eval_after:
            model.eval()
        if not weighted:
            return sum(losses) / len(losses)
        return total / seen if as_tensor else (total / seen).item()

    return train_one_epoch


def after_the_step(model, batches, optimizer):
    model.train()
    total, seen = 0.0, 0
    for x, y in batches:
        optimizer.zero_grad()
        F.nll_loss(model(x), y).backward()
        optimizer.step()
        with torch.no_grad():
            total += F.nll_loss(model(x), y).item() * len(y)
        seen += len(y)
    return total / seen


def step_after_zero_grad(model, batches, optimizer):
    model.train()
    total, seen = 0.0, 0
    for x, y in batches:
        loss = F.nll_loss(model(x), y)
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()
        total, seen = total + loss.item() * len(y), seen + len(y)
    return total / seen


def drawing_random_numbers(model, batches, optimizer):
    # a right loop that draws random numbers of its own: a seed, a random number, a training-mode forward
    # pass to look at the loss before the epoch (it changes BatchNorm's running statistics, not the weights).
    # It used to be refused: the check replayed dropout's masks.
    torch.manual_seed(0)
    _ = torch.rand(1)
    _ = model.train()(batches[0][0])
    return epoch_loop()(model, batches, optimizer)


def by_the_images_count(model, batches, optimizer):
    # as section 3's train() counts them: a DataLoader's dataset, or the lab's Batches' dataset_size
    n_images = len(batches.dataset) if hasattr(batches, "dataset") else batches.dataset_size
    model.train()
    total = 0.0
    for x, y in batches:
        optimizer.zero_grad()
        loss = F.nll_loss(model(x), y)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(y)
    return total / n_images


EPOCH_RIGHT = {
    # the loop the check compares with, shared: the wrong answers below are written independently of it
    "the check's reference loop": lambda model, batches, optimizer: nb03.reference_epoch(model, batches, optimizer)[0],
    "the loop of section 3": epoch_loop(),
    "a 0-d tensor": epoch_loop(as_tensor=True),
    "zero_grad after the step": epoch_loop(zero_after_step=True),
    "cross_entropy on log-probabilities": epoch_loop(loss_fn=F.cross_entropy),
    "drawing random numbers of its own": drawing_random_numbers,
    "a NumPy number": lambda model, batches, optimizer: np.float64(epoch_loop()(model, batches, optimizer)),
    # section 3's count of the images: refused once, the check's batches being a plain list
    "divided by the batches' number of images": by_the_images_count,
    "divided by the length of the batches' dataset, as a DataLoader has it": lambda model, batches, optimizer: (
        epoch_loop()(model, batches, optimizer) * sum(len(y) for _, y in batches) / len(batches.dataset)
    ),
    # the lab's Batches has .labels: it raised AttributeError on the check's batches (helper-84)
    "divided by the number of the batches' labels, as Batches has them": lambda model, batches, optimizer: (
        epoch_loop()(model, batches, optimizer) * sum(len(y) for _, y in batches) / len(batches.labels)
    ),
}


def weighted_by_the_batch_size(model, batches, optimizer):
    model.train()
    total, seen = 0.0, 0
    for x, y in batches:
        optimizer.zero_grad()
        loss = F.nll_loss(model(x), y)
        loss.backward()
        optimizer.step()
        total += loss.item() * batches.batch_size
        seen += batches.batch_size
    return total / seen


def slip(kind):
    """The loop of section 3 with one of the slips helper 96 and 99 made: each was accepted or told an error alone."""

    def train_one_epoch(model, batches, optimizer):
        model.train()
        total, seen = 0.0, 0
        with torch.no_grad() if kind == "no_grad" else contextlib.nullcontext():
            for x, y in batches:
                if kind != "step first":  # with zero_grad() first, the step finds no gradient: a sentence of its own
                    optimizer.zero_grad()
                loss = F.nll_loss(model(x), y, reduction="none" if kind == "one loss per image" else "mean")
                if kind == "item first":
                    loss = loss.item()
                if kind == "step first":
                    optimizer.step()
                loss.backward()
                if kind == "zeroed between":
                    optimizer.zero_grad(set_to_none=False)
                if kind != "step first":
                    optimizer.step()
                if kind == "graph kept":
                    total = total + loss * len(y)
                else:
                    total += loss.item * len(y) if kind == "no parentheses" else loss.item() * len(y)
                seen += len(y)
        return total / seen

    return train_one_epoch


EPOCH_WRONG = {
    "the loss tensors added up": (
        slip("graph kept"),
        "you returned a tensor that still records its gradient graph: a running total of loss tensors chains every "
        "batch's loss into one graph. Add each batch's loss.item() (a Python float) to the total instead",
    ),
    # the next three were told PyTorch's error alone, or to use the given model (helper 108)
    "step() before backward()": (slip("step first"), "call backward() first, then step()"),
    "zero_grad(set_to_none=False) between backward and step": (
        slip("zeroed between"),
        "optimizer.step() ran on gradients of zero, as after a zero_grad(set_to_none=False) between backward() and",
    ),
    "reduction='none'": (slip("one loss per image"), "backward() needs the loss as one number"),
    ".item() before backward()": (slip("item first"), "call backward() on the loss tensor, and take .item() only"),
    "under torch.no_grad()": (slip("no_grad"), "training needs the gradients, so leave torch.no_grad() to evaluation"),
    "loss.item without parentheses": (
        slip("no parentheses"),
        "(loss.item instead of loss.item()?): add the parentheses",
    ),
    "no zero_grad": (epoch_loop(zero_grad=False), "the weights end up as without optimizer.zero_grad()"),
    "no model.train()": (
        epoch_loop(train_mode=False),
        (
            "the network trained in eval mode (BatchNorm normalised with its running statistics, not the "
            "batch's; in the notebook, dropout would be off too): call model.train() before the loop"
        ),
    ),
    # a trailing eval() used to be told "call model.train() before the loop"
    "model.eval() at the end": (
        epoch_loop(eval_after=True),
        "the weights are right but the model is left in eval mode",
    ),
    "mean over batches": (epoch_loop(weighted=False), "you returned the mean of the batch losses"),
    # the student weighted, by the nominal batch size: told only "the mean of the batch losses" (helper-90)
    "weighted by the batch size": (
        weighted_by_the_batch_size,
        "weight each batch by its own number of images, len(labels), so that smaller batches count less (one weight "
        "for every batch, such as the batch size, gives this mean again",
    ),
    # the notebook's optimizer used to be told "call loss.backward() and optimizer.step()"
    "no step": (epoch_loop(step=False), "the optimizer it was given never took a step"),
    # both calls made, in an order that leaves step() no gradient: once told only to make them
    "zero_grad between backward and step": (
        lambda model, batches, optimizer: step_after_zero_grad(model, batches, optimizer),
        "a step before backward(), or after zero_grad() cleared the gradients, finds none to apply",
    ),
    # an optimizer of its own, or a copy of the model trained: both were told something else (helper-84)
    "an optimizer of its own": (
        lambda model, batches, optimizer: epoch_loop()(model, batches, torch.optim.SGD(model.parameters(), lr=0.155)),
        "the weights changed but the optimizer it was given never took a step: step with the `optimizer` it is given",
    ),
    "a copy of the model trained": (
        lambda model, batches, optimizer: epoch_loop()(copy.deepcopy(model), batches, optimizer),
        "on the `model` it is given, not a copy",
    ),
    # both once told only the generic sentence (helper 99)
    "a summed loss": (
        epoch_loop(loss_fn=lambda output, labels: F.nll_loss(output, labels, reduction="sum")),
        "the weights end up as with a summed loss (reduction='sum')",
    ),
    "the loss measured after the step": (
        after_the_step,
        "you returned the losses measured again after each step, on the weights that step had just changed",
    ),
    "last batch's loss": (
        lambda model, batches, optimizer: epoch_loop()(model, batches[-1:], optimizer),
        "the weights end up different from one SGD step per batch",
    ),
}


@pytest.mark.parametrize("answer", EPOCH_RIGHT.values(), ids=EPOCH_RIGHT)
def test_train_one_epoch_right_answers_pass(answer):
    assert_right(nb03.q2, answer)


@pytest.mark.parametrize("answer, sentence", EPOCH_WRONG.values(), ids=EPOCH_WRONG)
def test_train_one_epoch_wrong_answers_get_their_sentence(answer, sentence):
    assert_wrong(nb03.q2, answer, sentence)


NOTEBOOK_CODE = """
import torch
import torch.nn.functional as F

def with_the_notebooks_optimizer(model, batches, optimizer):
    model.train()
    for x, y in batches:
        opt.zero_grad()
        F.nll_loss(model(x), y).backward()
        opt.step()
    return 1.0

def over_the_notebooks_batches(model, batches, optimizer):
    model.train()
    total = 0.0
    for x, y in train_batches:
        optimizer.zero_grad()
        loss = F.nll_loss(model(x), y)
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total

def on_the_notebooks_model(net, loader, opt):
    return sum(F.nll_loss(model(x), y).item() for x, y in loader) / len(loader)
"""


@pytest.mark.parametrize(
    "name, sentence",
    [
        (
            "with_the_notebooks_optimizer",
            (
                "`train_one_epoch` uses the notebook's `opt`: train the `model` on the "
                "`batches` with the `optimizer` it is given"
            ),
        ),
        ("over_the_notebooks_batches", "`train_one_epoch` uses the notebook's `train_batches`"),
        # the notebook's network: its parameters used to be tested for truth, a RuntimeError out of check()
        ("on_the_notebooks_model", "`train_one_epoch` uses the notebook's `model`"),
    ],
)
def test_train_one_epoch_names_the_notebooks_objects_it_uses_without_running_them(name, sentence):
    notebook_model = Net()
    namespace = {
        "model": notebook_model,
        "opt": torch.optim.SGD(notebook_model.parameters(), lr=0.1),
        "train_batches": torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))), batch_size=8
        ),
    }
    exec(NOTEBOOK_CODE, namespace)  # noqa: S102 -- a notebook's globals, written in this test
    before = [p.clone() for p in notebook_model.parameters()]
    assert_wrong(nb03.q2, namespace[name], sentence)
    assert all(torch.equal(a, b) for a, b in zip(before, notebook_model.parameters()))


def test_checking_the_loop_leaves_the_notebooks_random_numbers_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    assert_right(nb03.q2, EPOCH_RIGHT["the loop of section 3"])
    assert torch.equal(torch.rand(3), expected)


# notebook 05: should_stop


def should_stop(val_accuracies, patience):
    if not val_accuracies:
        return False
    best_index = val_accuracies.index(max(val_accuracies))
    return len(val_accuracies) - 1 - best_index >= patience


def stop_by_loop(val_accuracies, patience):
    best, since = None, 0
    for accuracy in val_accuracies:
        if best is None or accuracy > best:
            best, since = accuracy, 0
        else:
            since += 1
    return since >= patience


STOP_RIGHT = {
    ".index of the max": should_stop,
    "NumPy's argmax (a numpy.bool_)": lambda acc, patience: (
        len(acc) > 0 and (len(acc) - 1 - np.argmax(acc) >= patience)
    ),
    "a bool tensor": lambda acc, patience: (
        torch.tensor(len(acc) > 0)
        & (len(acc) - 1 - torch.tensor(acc + [0.0]).argmax() >= patience if acc else torch.tensor(False))
    ),
    "counting epochs since the best": stop_by_loop,
    "best before the last patience epochs": lambda acc, patience: (
        len(acc) > patience and max(acc[:-patience]) >= max(acc[-patience:])
    ),
    # a one-element bool array was refused where a one-element bool tensor passed (helper 101)
    "a one-element NumPy bool array": lambda acc, patience: np.array([should_stop(acc, patience)]),
}

notebook_config = TrainConfig(patience=2)  # stands in for the notebook's `constant`, read as a global

STOP_WRONG = {
    # told only a case's verdict (helper 101)
    "the notebook's patience": (
        lambda acc, patience: should_stop(acc, notebook_config.patience),
        "`should_stop` uses the notebook's `notebook_config`: decide on the `val_accuracies` and `patience`",
    ),
    "a tie counts as improvement": (
        lambda acc, patience: (
            bool(acc) and len(acc) - 1 - max(i for i, a in enumerate(acc) if a == max(acc)) >= patience
        ),
        (
            "on [0.80, 0.85, 0.85, 0.85], patience 2 (a tie is no improvement), training should stop, but you returned "
            "False"
        ),
    ),
    "off by one": (
        lambda acc, patience: bool(acc) and len(acc) - 1 - acc.index(max(acc)) > patience,
        "on [0.80, 0.85, 0.84, 0.83], patience 2, training should stop, but you returned False",
    ),
    "only the last two epochs": (
        lambda acc, patience: len(acc) >= 2 and acc[-1] <= acc[-2],
        ("on [0.80, 0.85, 0.84, 0.83], patience 3, training should go on, but you returned True"),
    ),
    "an int": (
        lambda acc, patience: int(should_stop(acc, patience)),
        "`should_stop` should return True or False, but on no epochs yet, patience 2 it returned int 0",
    ),
    "never": (lambda acc, patience: False, "training should stop, but you returned False"),
    # better inside the window, then worse: only the last epoch against the best before it (helper-85)
    "the last epoch against the best before the window": (
        lambda acc, patience: len(acc) > patience and acc[-1] <= max(acc[:-patience]),
        "on [0.85, 0.90, 0.80], patience 2 (better, then worse), training should go on, but you returned True",
    ),
    # the hidden cases' accuracies lie on a 0.01 grid: a minimum improvement of 0.001 passed them all (helper-85)
    "a minimum improvement of 0.001": (
        lambda acc, patience: len(acc) > patience and all(a <= max(acc[:-patience]) + 1e-3 for a in acc[-patience:]),
        "on [0.8, 0.8005, 0.79], patience 2 (a small gain), training should go on, but you returned True",
    ),
    "the last epochs against the one before them, not against the best": (
        lambda acc, patience: len(acc) > patience and all(a <= acc[-patience - 1] for a in acc[-patience:]),
        "on [0.90, 0.70, 0.75, 0.80], patience 2 (the best was 3 epochs ago), training should stop, but you "
        "returned False",
    ),
}


@pytest.mark.parametrize("answer", STOP_RIGHT.values(), ids=STOP_RIGHT)
def test_should_stop_right_answers_pass(answer):
    assert_right(nb05.q1, answer)


@pytest.mark.parametrize("answer, sentence", STOP_WRONG.values(), ids=STOP_WRONG)
def test_should_stop_wrong_answers_get_their_sentence(answer, sentence):
    assert_wrong(nb05.q1, answer, sentence)


def test_should_stop_replays_the_notebooks_run():
    praise = assert_right(nb05.q1, should_stop, [0.80, 0.85, 0.84, 0.83], 2)
    assert "it stops after the same epoch as fit did" in praise
    assert "on the constant-LR run" not in assert_right(nb05.q1, should_stop, [0.80, 0.85, 0.86], 2)  # not stopped
    cases = {(tuple(a), p) for a, p in nb05._stop_cases(None).values()}

    def tuned(val_accuracies, patience):  # right on the check's cases, never stops on another run
        return (tuple(val_accuracies), patience) in cases and should_stop(val_accuracies, patience)

    run = [0.80, 0.85, 0.84, 0.83, 0.83]
    assert_right(nb05.q1, tuned)
    assert_wrong(nb05.q1, tuned, "on the run above, your rule never stops, but fit stopped after epoch 5", run, 3)


@pytest.mark.parametrize(
    "run, patience, sentence",
    [
        ([0.80, 0.85, 0.84, 0.83, 0.82], 2, "with patience 2 fit would have stopped after epoch 4 of the 5 it got"),
        ([1.2, 0.8, 0.7, 0.65], 1, "with patience 1 fit would have stopped after epoch 2 of the 4 it got"),  # losses
    ],
    ids=["another patience", "losses"],
)
def test_should_stop_handed_a_run_fit_would_have_stopped_earlier_names_the_data(run, patience, sentence):
    # the reference's own rule used to be told "your rule stops after epoch 4, but fit ran 5 epochs"
    message = assert_wrong(nb05.q1, should_stop, sentence, run, patience)
    assert message.startswith("Not yet: check() expects the validation accuracies of a run") and "hint" not in message


def test_should_stop_handed_the_history_names_the_list_it_expects():
    history = History(val_accuracy=[0.8, 0.85])
    message = nb05.q1.verdict(should_stop, history, 2).message
    assert message == (
        "Not yet: check() expects the run's list of validation accuracies (its .val_accuracy) after "
        "your function, then the patience, but it got a History object."
    )


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_train_one_epoch_on_hidden_cases(seed):
    assert_right(nb03.q2, EPOCH_RIGHT["the loop of section 3"], seed=seed)
    assert_wrong(nb03.q2, EPOCH_WRONG["mean over batches"][0], "", seed=seed)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_should_stop_on_hidden_cases(seed):
    for answer in STOP_RIGHT.values():
        assert_right(nb05.q1, answer, seed=seed)
    for answer, _ in STOP_WRONG.values():
        assert_wrong(nb05.q1, answer, "", seed=seed)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([0.8, 0.81, 0.82, 0.83]), max_size=12), st.integers(1, 5))
def test_fits_rule_which_the_check_holds_answers_to_an_independent_statement_of_it(accuracies, patience):
    """fit's early stopping (the check's expected answer), against another statement: no new best in the last
    `patience` epochs."""
    expected = len(accuracies) > patience and max(accuracies[:-patience]) >= max(accuracies[-patience:])
    assert out_of_patience(accuracies, patience) == expected
    assert nb05.out_of_patience is out_of_patience  # the check compares answers with fit's own rule


@pytest.mark.parametrize(
    "answer",
    [
        lambda model, batches, optimizer: train_epoch(model, batches, optimizer, 1, make_config("report")),
        lambda model, batches, optimizer: (
            sum(train_step(model, x, y, optimizer, make_config("report")) for x, y in batches) / len(batches)
        ),
    ],
    ids=["train_epoch", "train_step"],
)
def test_train_one_epoch_refuses_the_packages_own_loop(answer):
    result = nb03.q2.verdict(answer)
    assert result.status == WRONG and "calls the lab's own `train_" in result.message, result.message


@pytest.mark.parametrize(
    "answer, name",
    [
        (lambda acc, patience: out_of_patience(acc, patience), "out_of_patience"),
        (lambda acc, patience: bool(acc) and len(acc) - best_epoch(acc) >= patience, "best_epoch"),
        (lambda acc, patience: bool(acc) and len(acc) - History(val_accuracy=acc).best_epoch >= patience, "History"),
    ],
    ids=["out_of_patience", "best_epoch", "History.best_epoch"],
)
def test_should_stop_refuses_fits_own_rule(answer, name):
    """Notebook 05 prints `fit`, which calls the rule by name: calling it is not writing it."""
    result = nb05.q1.verdict(answer)
    assert result.status == WRONG and f"calls the lab's own `{name}`" in result.message, result.message
