"""The exercise checks: a right answer passes, each typical wrong answer gets its sentence, a stub is "not done yet".

Every model solution the package prints with ``solution()`` is run through its own check, so the
printed solutions cannot drift from what the checks accept.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import nbformat
import pytest
import torch
from torch import nn

import fmnist_lab.exercises as exercises
from fmnist_lab.exercises import CORRECT, NOT_DONE, WRONG, Exercise, Wrong, call, nb01

MODULES = [importlib.import_module(f"fmnist_lab.exercises.{m.name}") for m in pkgutil.iter_modules(exercises.__path__)]
ALL = [(module.__name__.rsplit(".", 1)[1], name, value) for module in MODULES
       for name, value in vars(module).items() if isinstance(value, Exercise)]


def stub(*args):
    # YOUR CODE HERE
    raise NotImplementedError()


def verdict(exercise: Exercise, answer, *data):
    result = exercise.verdict(answer, *data)
    assert result.message.startswith({CORRECT: "Correct: ", WRONG: "Not yet: ", NOT_DONE: "Not done yet: "}[result.status])
    return result


# the framework

def test_check_prints_one_sentence_and_never_raises(capsys):
    def broken(images):
        return images.nonexistent_method()

    nb01.q1.check(broken)
    out = capsys.readouterr().out
    assert out.startswith("Not yet: `broken` raised AttributeError") and out.count("\n") == 1
    assert "Stuck? Run nb01.q1.hint()." in out


def test_a_value_instead_of_a_function_is_explained():
    result = verdict(nb01.q1, 0.353)
    assert result.status == WRONG and "pass your function itself" in result.message


def test_a_forgotten_return_is_named():
    result = verdict(nb01.q1, lambda images: None)
    assert result.status == WRONG and "did you forget the `return`" in result.message


def test_call_passes_copies_so_an_answer_cannot_spoil_the_cases():
    x = torch.zeros(3)
    call(lambda t: t.add_(1), x, case="a case")
    assert torch.equal(x, torch.zeros(3))


def test_call_turns_a_stub_into_not_done_and_a_bug_into_wrong():
    from fmnist_lab.exercises import NotDone
    with pytest.raises(NotDone, match="`stub` still raises NotImplementedError"):
        call(stub, 1, case="a case")
    with pytest.raises(Wrong, match=r"`<lambda>` raised ZeroDivisionError \(division by zero\) when called on a case"):
        call(lambda v: v / 0, 1, case="a case")


def wrong(exercise: Exercise, answer, *data) -> str:
    result = verdict(exercise, answer, *data)
    assert result.status == WRONG, result.message
    return result.message


# notebook 01

def test_pixel_std_wrong_answers():
    from fmnist_lab.exercises.nb01 import q1
    per_image = lambda images: (images.double() / 255).flatten(1).std(dim=1).mean().item()  # noqa: E731
    assert "mean of the per-image standard deviations" in wrong(q1, per_image)
    assert "255 times too large" in wrong(q1, lambda images: images.double().std().item())
    assert "the variance: take its square root" in wrong(q1, lambda images: (images.double() / 255).var().item())
    assert "raised RuntimeError" in wrong(q1, lambda images: images.std().item())  # std of uint8
    assert "only the first image" not in wrong(q1, lambda images: (images[0].double() / 255).std().item())
    hard_coded = wrong(q1, lambda images: 0.3530)  # the notebook's number is not enough
    assert "the pixel std is 0.5000, but you returned 0.3530" in hard_coded


def test_pixel_std_accepts_either_correction_and_reports_on_the_data():
    from fmnist_lab.exercises.nb01 import q1
    images = torch.randint(0, 256, (2, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    for correction in (0, 1):
        result = verdict(q1, lambda im: (im.double() / 255).std(correction=correction).item(), images)
        assert result.status == CORRECT and "On the 2 training images it gives 0." in result.message


def test_within_and_between_wrong_answers():
    from fmnist_lab.exercises.nb01 import q3 as q2

    def parts(images, correction=0, swap=False, root=False, scale=255):
        x = images.double().flatten(1) / scale
        within, between = x.var(dim=1, correction=correction).mean().item(), x.mean(dim=1).var(correction=correction).item()
        if root:
            within, between = within**0.5, between**0.5
        return (between, within) if swap else (within, between)

    assert "swapped" in wrong(q2, lambda im: parts(im, swap=True))
    assert "correction=0" in wrong(q2, lambda im: parts(im, correction=1))
    assert "standard deviations" in wrong(q2, lambda im: parts(im, root=True))
    assert "divide the bytes by 255" in wrong(q2, lambda im: parts(im, scale=1))
    assert "should return two numbers" in wrong(q2, lambda im: 0.1246)
    images = torch.randint(0, 256, (5, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    message = verdict(q2, parts, images).message
    assert "On the training images: within 0." in message and "the pixel variance" in message


def test_closest_pair_wrong_answers():
    from fmnist_lab.exercises.nb01 import q5 as q3
    assert "distance 0 from itself" in wrong(q3, lambda means: (0, 0))
    assert "farthest apart" in wrong(q3, lambda means: (0, 2) if len(means) == 4 else (0, 1))
    assert "the closest pair is (1, 3)" in wrong(q3, lambda means: (1, 2))
    assert "two class indices" in wrong(q3, lambda means: "Pullover and Coat")
    means = torch.zeros(10, 28, 28, dtype=torch.float64)
    means[2], means[4] = 1.0, 1.1  # the "Pullover" and "Coat" images
    means[[0, 1, 3, 5, 6, 7, 8, 9]] = torch.arange(8, dtype=torch.float64).view(8, 1, 1) * 10 + 50
    result = verdict(q3, lambda m: tuple(reversed(solution_function(q3)(m))), means)  # either order is a pair
    assert result.status == CORRECT and "are Pullover and Coat" in result.message


# notebook 04

def test_smooth_losses_wrong_answers():
    from fmnist_lab.exercises.nb04 import q1

    def ema(losses, beta, new_weight=None, correct=True, offset=0):
        new_weight = 1 - beta if new_weight is None else new_weight
        avg, out = 0.0, []
        for t, loss in enumerate(losses, start=1):
            avg = (1 - new_weight) * avg + new_weight * loss
            out.append(avg / (1 - beta ** (t + offset)) if correct else avg)
        return out

    assert "bias correction" in wrong(q1, lambda losses, beta: ema(losses, beta, correct=False))
    assert "not the other way round" in wrong(q1, lambda losses, beta: ema(losses, beta, new_weight=beta))
    assert "off by one" in wrong(q1, lambda losses, beta: ema(losses, beta, offset=1))
    assert "raised ZeroDivisionError" in wrong(q1, lambda losses, beta: ema(losses, beta, offset=-1))
    assert "should return shape (5,)" in wrong(q1, lambda losses, beta: ema(losses, beta)[1:])
    assert "value 0 should be 1.000000" in wrong(q1, lambda losses, beta: [2.0] * len(losses) if losses[0] != 2 else losses)


def test_smooth_losses_compares_with_the_lab_sweep():
    from fmnist_lab.exercises.nb04 import q1
    from fmnist_lab.lr_finder import LRFinderResult, smooth
    losses = [2.3, 2.0, 1.5, 1.2, 1.0, 0.9, 1.4, 3.0]
    sweep = LRFinderResult(lrs=[10.0 ** -k for k in range(8, 0, -1)], losses=losses, smoothed=smooth(losses, 0.9),
                           stop_reason="test")
    result = verdict(q1, solution_function(q1), sweep)
    assert result.status == CORRECT and "lowest at step 6 (LR 0.001)" in result.message


def test_lag_factor_wrong_answers():
    from fmnist_lab.exercises.nb04 import q2

    def lag(start, end, n, beta, between=None, steps=None, out="factor"):
        decades = __import__("math").log10(end / start) * (beta / (1 - beta) if steps is None else steps) / (between or n - 1)
        return {"factor": 10**decades, "decades": decades}[out]

    assert "99 steps between them" in wrong(q2, lambda s, e, n, b: lag(s, e, n, b, between=n))
    assert "not 1 / (1 - beta)" in wrong(q2, lambda s, e, n, b: lag(s, e, n, b, steps=1 / (1 - b)))
    assert "lag in decades" in wrong(q2, lambda s, e, n, b: lag(s, e, n, b, out="decades"))
    assert "lag in steps" in wrong(q2, lambda s, e, n, b: b / (1 - b))
    assert "the lag is a factor of 932.6 in LR, but you returned 1000" in wrong(q2, lambda s, e, n, b: 1000)
    assert "a factor of 933 in LR" in verdict(q2, lag).message


def test_full_reset_wrong_answers():
    from fmnist_lab.exercises.nb04 import q4 as q3

    def report_reset(model):  # the report's: convolutions and linear layers only
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.reset_parameters()

    def stats_only(model):
        report_reset(model)
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()

    def affine_only(model):
        report_reset(model)
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    assert "the report's defect" in wrong(q3, report_reset)
    assert "weight and bias (gamma and beta)" in wrong(q3, stats_only)
    assert "running mean and variance" in wrong(q3, affine_only)
    assert "returning a new model" in wrong(q3, lambda model: type(model)())
    assert "layer c1 (Conv2d) still holds" in wrong(q3, lambda model: [m.reset_parameters() for m in model.modules()
                                                                       if isinstance(m, nn.BatchNorm2d)])
    # the lab's Net.reset_parameters() only exists on Net: the Sequential case says what went wrong
    assert "raised AttributeError" in wrong(q3, lambda model: model.reset_parameters())


# notebook 06

def test_confusion_matrix_wrong_answers():
    from fmnist_lab.exercises.nb06 import q1
    from fmnist_lab.metrics import confusion_matrix
    assert "transposed" in wrong(q1, lambda t, p, n: confusion_matrix(t, p, n).T)
    assert "even when a class never appears" in wrong(q1, lambda t, p, n: confusion_matrix(t, p, int(max(t.max(), p.max())) + 1))
    assert "fractions of each row" in wrong(q1, lambda t, p, n: confusion_matrix(t, p, n) / confusion_matrix(t, p, n).sum(1, keepdim=True))
    targets, predictions = torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 2, 1])
    assert "3 right answers of 4 on its diagonal" in verdict(q1, confusion_matrix, targets, predictions).message


def test_most_confused_pair_wrong_answers():
    from fmnist_lab.exercises.nb06 import q2

    def argmax_pair(cm):
        return divmod(int(cm.argmax()), len(cm))

    def transposed(cm):
        off = cm.clone().fill_diagonal_(-1)
        return divmod(int(off.T.argmax()), len(cm))

    def either_way(cm):  # the largest cm[i, j] + cm[j, i]: not what was asked
        off = (cm + cm.T).fill_diagonal_(-1)
        return divmod(int(off.argmax()), len(cm))

    assert "a cell of the diagonal" in wrong(q2, argmax_pair)
    assert "wrong order" in wrong(q2, transposed)
    assert "wrong order" in wrong(q2, either_way) or "largest count off the diagonal" in wrong(q2, either_way)
    cm = torch.eye(10, dtype=torch.long) * 400
    cm[6, 0] = 30
    assert "Shirt taken for T-shirt/top, 30 times" in verdict(q2, solution_function(q2), cm).message


def test_precision_wrong_answers():
    from fmnist_lab.exercises.nb06 import q3
    assert "that is recall" in wrong(q3, lambda cm: cm.diag().double() / cm.sum(1).clamp(min=1))
    assert "NaN" in wrong(q3, lambda cm: cm.diag().double() / cm.sum(0))
    assert "percentages" in wrong(q3, lambda cm: 100 * cm.diag().double() / cm.sum(0).clamp(min=1))
    cm = torch.eye(10, dtype=torch.long) * 90
    cm[0, 6] = 30  # 30 T-shirts called Shirt: Shirt's precision is 90 / 120
    assert "least precise class is Shirt" in verdict(q3, solution_function(q3), cm).message
    assert "75.0%" in verdict(q3, solution_function(q3), cm).message


# the notebooks (the instructor's edition)

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "instructor").glob("*.ipynb"))
CHECK_CALL = re.compile(r"\b(nb\d\d)\.(q\d+)\.check\((\w+)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebook_solutions_pass_their_checks_and_every_exercise_is_used(path):
    """Independent of the notebook's data: each solution written in the notebook passes its check's own cases."""
    code = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    namespace = {"torch": torch, "nn": nn, "F": torch.nn.functional}
    for source in code:
        if "### BEGIN SOLUTION" in source:
            exec(source, namespace)
    calls = CHECK_CALL.findall("\n".join(code))
    module = f"nb{path.name[:2]}"
    if not calls and not (Path(exercises.__file__).parent / f"{module}.py").exists():
        pytest.skip(f"{path.name} has no exercises yet (tests/test_student_edition.py requires them)")
    exercise_module = importlib.import_module(f"fmnist_lab.exercises.{module}")
    defined = {name for name, value in vars(exercise_module).items() if isinstance(value, Exercise)}
    assert {q for nb, q, _ in calls if nb == module} == defined, f"{path.name} should check every exercise of {module}"
    for nb, q, function in calls:
        result = getattr(importlib.import_module(f"fmnist_lab.exercises.{nb}"), q).verdict(namespace[function])
        assert result.passed, f"{path.name}: the solution of {nb}.{q} fails its check: {result.message}"


# notebook 03

def epoch_loop(zero_grad=True, train_mode=True, weighted=True):
    """train_one_epoch with one of the usual slips switched on."""
    import torch.nn.functional as F

    def train_one_epoch(model, batches, optimizer):
        if train_mode:
            model.train()
        losses, sizes = [], []
        for x, y in batches:
            if zero_grad:
                optimizer.zero_grad()
            loss = F.nll_loss(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            sizes.append(len(y))
        if weighted:
            return sum(l * n for l, n in zip(losses, sizes)) / sum(sizes)
        return sum(losses) / len(losses)
    return train_one_epoch


def test_train_one_epoch_wrong_answers():
    from fmnist_lab.exercises.nb03 import q2 as q1
    assert verdict(q1, epoch_loop()).status == CORRECT
    assert "is optimizer.zero_grad() called before every backward()" in wrong(q1, epoch_loop(zero_grad=False))
    assert "still in eval mode" in wrong(q1, epoch_loop(train_mode=False))
    assert "weight each batch by its size" in wrong(q1, epoch_loop(weighted=False))
    assert "the weights did not change" in wrong(q1, lambda model, batches, optimizer: 2.3)


def test_should_stop_wrong_answers_and_the_run_it_replays():
    from fmnist_lab.exercises.nb05 import q1 as q2
    right = lambda acc, p: bool(acc) and len(acc) - 1 - acc.index(max(acc)) >= p  # noqa: E731
    assert verdict(q2, right).status == CORRECT
    last_best = lambda acc, p: bool(acc) and len(acc) - 1 - (len(acc) - 1 - acc[::-1].index(max(acc))) >= p  # noqa: E731
    assert "a tie is no improvement" in wrong(q2, last_best)
    assert "should return True or False" in wrong(q2, lambda acc, p: 1 if acc else 0)
    off_by_one = lambda acc, p: bool(acc) and len(acc) - acc.index(max(acc)) >= p  # noqa: E731
    assert "training should go on" in wrong(q2, off_by_one)
    stopped_early = [0.5, 0.6, 0.58, 0.59]  # fit with patience 2 stops after epoch 4
    assert "stops after the same epoch as fit" in verdict(q2, right, stopped_early, 2).message
    assert "stops after epoch 4, but fit ran 5 epochs" in wrong(q2, right, stopped_early + [0.55], 2)  # fit would have stopped earlier


# notebook 07

def test_saliency_wrong_answers():
    from fmnist_lab.exercises.nb07 import q2 as q1

    def saliency(mode="eval", absolute=True, of_probability=False):
        def my_saliency(model, image, target):
            model.train(mode == "train")
            x = image[None].clone().requires_grad_(True)
            out = model(x)[0, target]
            (out.exp() if of_probability else out).backward()
            return x.grad[0, 0].abs() if absolute else x.grad[0, 0]
        return my_saliency

    assert verdict(q1, saliency()).status == CORRECT
    assert "take the absolute value" in wrong(q1, saliency(absolute=False))
    assert "not of its exp(), the probability" in wrong(q1, saliency(of_probability=True))
    assert "did you call model.eval() first" in wrong(q1, saliency(mode="train"))
    assert "should return shape (28, 28)" in wrong(q1, lambda model, image, target: torch.zeros(1, 28, 28))


def test_nearest_wrong_answers():
    from fmnist_lab.exercises.nb07 import q3 as q2

    def distances(features, query):
        return (features - features[query]).norm(dim=1)

    assert verdict(q2, lambda f, q, k: distances(f, q).argsort(stable=True)[1:k + 1]).status == CORRECT  # self sorts first
    assert "holds the query itself" in wrong(q2, lambda f, q, k: distances(f, q).argsort()[:k])
    farthest_last = lambda f, q, k: distances(f, q).where(torch.arange(len(f)) != q, torch.tensor(float("inf"))).argsort()[:k].flip(0)  # noqa: E731
    assert "in the wrong order: nearest first" in wrong(q2, farthest_last)
    cosine = lambda f, q, k: (-torch.nn.functional.cosine_similarity(f, f[q][None])).index_fill(0, torch.tensor([q]), 9).argsort()[:k]  # noqa: E731
    assert "by Euclidean distance" in wrong(q2, cosine)
