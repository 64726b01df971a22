"""Exercises of notebook 06: a confusion matrix by hand, the most-confused pair, precision per class."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..dataset import CLASS_NAMES
from ..metrics import confusion_matrix, most_confused_pairs, per_class_accuracy
from ..train import EvalResult
from . import (
    Exercise,
    Misused,
    Wrong,
    all_close,
    as_indices,
    as_number,
    as_tensor,
    call,
    close,
    describe,
    expect_classes,
    expect_data,
    missing_exercise,
    refuse_notebook_values,
)


def _prediction_cases(generator: torch.Generator | None) -> dict[str, tuple[Tensor, Tensor, int]]:
    g = torch.Generator().manual_seed(4)
    targets = torch.randint(0, 10, (300,), generator=g)
    predictions = torch.where(torch.rand(300, generator=g) < 0.7, targets, torch.randint(0, 10, (300,), generator=g))
    cases = {
        "targets [0, 0, 1, 2, 2, 2] and predictions [0, 1, 1, 2, 0, 0] with 3 classes": (
            torch.tensor([0, 0, 1, 2, 2, 2]),
            torch.tensor([0, 1, 1, 2, 0, 0]),
            3,
        ),
        "targets [0, 1, 2, 2] and predictions [0, 2, 2, 1] with 4 classes (class 3 never appears)": (
            torch.tensor([0, 1, 2, 2]),
            torch.tensor([0, 2, 2, 1]),
            4,
        ),
        "300 random predictions of 10 classes": (targets, predictions, 10),
        # float16 counts exactly to 2,048, uint8 to 255: both fall short here (helper 101)
        "2,200 predictions of 2 classes, 2,100 of class 0 right (a count above 2,048)": (
            torch.tensor([0] * 2100 + [1] * 100),
            torch.tensor([0] * 2100 + [1] * 60 + [0] * 40),
            2,
        ),
    }
    if generator is not None:
        n = int(torch.randint(2, 12, (1,), generator=generator))
        count = int(torch.randint(1, 200, (1,), generator=generator))
        cases[f"hidden case: {count} random predictions of {n} classes"] = (
            torch.randint(0, n, (count,), generator=generator),
            torch.randint(0, n, (count,), generator=generator),
            n,
        )
    return cases


def _largest_count(dtype: object) -> float:
    """The largest count a ``dtype`` (PyTorch's or NumPy's) holds exactly: an integer type's maximum, a float
    type's 2 / eps (float16 counts to 2,048, bfloat16 to 256: one more is rounded away); infinity for any other."""
    if dtype is None:
        return math.inf
    for info in (torch.iinfo, torch.finfo) if isinstance(dtype, torch.dtype) else (np.iinfo, np.finfo):
        try:
            limits = info(dtype)
        except (TypeError, ValueError):
            continue
        return limits.max if info in (torch.iinfo, np.iinfo) else round(2 / limits.eps)
    return math.inf


def _expect_labels(targets: object, predictions: object) -> None:
    for value, name in ((targets, "targets"), (predictions, "predictions")):
        what = f"the {name} (a 1-D tensor of class indices, e.g. val.{name})"
        expect_data(value, Tensor, what)
        if value.dim() != 1 or value.is_floating_point() or value.dtype == torch.bool:  # probabilities, say
            raise Misused(f"check() expects {what} after your function, but it got {describe(value)}")
        if len(value) and not 0 <= int(value.min()) <= int(value.max()) < len(CLASS_NAMES):
            raise Misused(
                f"check() expects {what}, each from 0 to {len(CLASS_NAMES) - 1}, but its values run from "
                f"{int(value.min())} to {int(value.max())}"
            )
    if len(targets) != len(predictions):
        raise Misused(
            f"check() expects one prediction per target, but it got {len(targets):,} targets and "
            f"{len(predictions):,} predictions"
        )


def _expect_matrix(cm: object, classes: object) -> None:
    """Misused unless ``cm`` is a square matrix of counts and ``classes`` names its classes."""
    what = "the confusion matrix (cm, a square tensor of counts)"
    expect_data(cm, Tensor, what)
    square = cm.dim() == 2 and cm.shape[0] == cm.shape[1] and cm.dtype != torch.bool
    if not square or (cm < 0).any() or not (cm == cm.round()).all():  # not fractions of each row
        raise Misused(f"check() expects {what} after your function, but it got {describe(cm)}")
    expect_classes(classes, len(cm), "the matrix")


# q1: the confusion matrix from predictions


def _counts_but(my_confusion_matrix, got: Tensor, t: Tensor, p: Tensor, n: int, part: slice, case: str) -> bool:
    """Whether the answer counts only ``part`` of the images: on the case, and again on it reversed (a matrix
    that counts a repeated pair once can look the same on one case)."""
    if not torch.equal(got, confusion_matrix(t[part], p[part], n).double()):
        return False
    t, p = t.flip(0), p.flip(0)
    again = as_tensor(call(my_confusion_matrix, t, p, n, case=case), "my_confusion_matrix", case, (n, n))
    return torch.equal(again, confusion_matrix(t[part], p[part], n).double())


def _check_confusion(
    my_confusion_matrix, targets: Tensor | None = None, predictions: Tensor | None = None, generator=None
) -> str:
    if targets is not None or predictions is not None:
        _expect_labels(targets, predictions)
    refuse_notebook_values(
        my_confusion_matrix,
        (EvalResult, Tensor),
        "my_confusion_matrix",
        "count the `targets` and `predictions` it is given (its arguments)",
    )
    for case, (t, p, n) in _prediction_cases(generator).items():
        got = call(my_confusion_matrix, t, p, n, case=case)
        right = confusion_matrix(t, p, n).double()
        largest = _largest_count(getattr(got, "dtype", None))
        try:
            got = as_tensor(got, "my_confusion_matrix", case, (n, n))
        except Wrong:
            shape = getattr(got, "shape", None)
            if shape is not None and tuple(shape) == (10, 10):
                raise Wrong(
                    f"on {case}, your matrix is 10x10, Fashion-MNIST's number of classes; size it by the "
                    f"`num_classes` argument ({n}x{n} here)"
                ) from None
            if getattr(got, "dtype", None) in (torch.bool, np.bool_):
                raise Wrong(
                    f"on {case}, your matrix is of bools, which hold only True and False: count in integers "
                    f"(torch.zeros(n, n, dtype=torch.long))"
                ) from None
            if shape is not None and len(shape) == 2 and tuple(shape) != (n, n):
                raise Wrong(
                    f"on {case}, your matrix has shape {tuple(shape)}: it must be num_classes x num_classes "
                    f"({n}x{n}) even when a class never appears"
                ) from None
            raise
        if torch.equal(got, right):
            continue
        if torch.equal(got, right.T):
            raise Wrong(
                f"on {case}, your matrix is transposed: row i must be the true class, column j the predicted one"
            )
        if all_close(got, right / right.sum(1, keepdim=True).clamp(min=1)):
            raise Wrong(f"on {case}, you returned fractions of each row: return the counts")
        if right.max() > largest:
            raise Wrong(
                f"on {case}, a count of {int(right.max())} does not fit your matrix's dtype, which holds whole "
                f"numbers only up to {largest:,}: count in torch.long"
            )
        for left_out, part in (("last", slice(None, -1)), ("first", slice(1, None))):
            if _counts_but(my_confusion_matrix, got, t, p, n, part, case):
                raise Wrong(
                    f"on {case}, your matrix counts every image but the {left_out}: count all {len(t)} of them "
                    f"(a loop over range(len(targets)))"
                )
        if right.max() > 1 and torch.equal(got, (right > 0).double()):
            raise Wrong(
                f"on {case}, a (true, predicted) pair that occurs several times counts once in yours: "
                f"`cm[targets, predictions] += 1` writes each position once, however often it repeats; count "
                f"every image, repeats included: each image adds one to its cell, whatever pairs came before"
            )
        shown = got.long() if torch.equal(got, got.round()) else got
        raise Wrong(f"on {case}, the matrix should be\n{right.long()}\nbut yours is\n{shown}")
    praise = (
        "your matrix is right on a 3-class case, with a class that never appears, on 300 random predictions and "
        "with a count above 2,048"
    )
    if targets is not None:
        case = "the validation split"
        mine = as_tensor(
            call(my_confusion_matrix, targets, predictions, 10, case=case), "my_confusion_matrix", case, (10, 10)
        )
        if not torch.equal(mine, confusion_matrix(targets, predictions).double()):
            raise Wrong("on the validation split your matrix differs from fmnist_lab.metrics.confusion_matrix")
        praise += (
            f"; on the validation split it holds {int(mine.diag().sum()):,} right answers of {len(targets):,} "
            f"on its diagonal"
        )
    return praise + "."


q1 = Exercise(
    "nb06.q1",
    _check_confusion,
    hint_text="Start from a num_classes × num_classes matrix of zeros, in an integer dtype, and count: each image "
    "adds one at the row of its true class and the column of its prediction.",
    lab_functions=(confusion_matrix, "sklearn.metrics"),
)


# q2: the most-confused pair


def _matrix_cases(generator: torch.Generator | None = None) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(5)
    random = torch.randint(0, 40, (10, 10), generator=g) + torch.diag(torch.full((10,), 400))
    random[6, 0] = 97  # a unique largest off-diagonal count, with a smaller one the other way
    cases = {
        "a 3x3 matrix where class 2 is taken for class 0 seven times and class 0 for class 2 three times": torch.tensor(
            [[50, 1, 3], [2, 60, 0], [7, 4, 40]]
        ),
        "a 10x10 matrix with large counts on the diagonal": random,
        # the largest count (30 of 930 images of class 0) is not the largest rate (5 of 17 images of class 1)
        "a 3x3 matrix where a common class has the largest count and a rare one the largest rate": torch.tensor(
            [[900, 30, 0], [2, 10, 5], [1, 3, 80]]
        ),
        # the largest count (40, in the much-predicted column 0) is not the largest share of a column (30 of 111)
        "a 3x3 matrix where the largest count lies in a column of many predictions": torch.tensor(
            [[900, 2, 30], [40, 10, 1], [1, 3, 80]]
        ),
        # the row (0: 26) and the column (3: 27) with the most mistakes spread them thin: the largest count is elsewhere
        "a 4x4 matrix where the most mistakes of a row and of a column are spread thin": torch.tensor(
            [[100, 9, 9, 8], [0, 100, 0, 10], [0, 15, 100, 9], [0, 0, 0, 100]]
        ),
    }
    if generator is not None:
        n = int(torch.randint(3, 11, (1,), generator=generator))
        matrix = torch.randint(0, 50, (n, n), generator=generator) + torch.diag(torch.full((n,), 300))
        i, j = (int(v) for v in torch.randperm(n, generator=generator)[:2])
        matrix[i, j] = 60  # a unique largest count off the diagonal
        cases[f"hidden case: a random {n}x{n} matrix"] = matrix
    return cases


def _largest_off_diagonal(cm: Tensor) -> tuple[int, int]:
    true_class, predicted_class, _ = most_confused_pairs(cm, 1)[0]
    return true_class, predicted_class


def _mistakes(cm: Tensor, dim: int) -> Tensor:
    """Each row's (dim 1) or column's (dim 0) count of mistakes: its sum without the diagonal."""
    return cm.clone().fill_diagonal_(0).sum(dim)


_WHOLE_ROW = ": a row found by `/` keeps a fraction; `//` divides to a whole number"


def _pair(got: Any, case: str) -> tuple[int, int]:
    """The answer as (true class, predicted class); class names and a single (flat) index get their own sentence."""
    if isinstance(got, (list, tuple)) and any(isinstance(value, str) for value in got):
        raise Wrong(
            f"on {case}, you returned {tuple(got)!r}: return the two classes as indices, (true class, predicted "
            f"class), such as (6, 0); the names are checkpoint.classes[i]"
        )
    try:
        i, j = as_indices(got, "most_confused_pair", case, (2,), _WHOLE_ROW, "two class indices (true, predicted)")
    except Wrong as not_a_pair:
        try:
            flat = as_number(got, "most_confused_pair", case)
        except Wrong:
            raise not_a_pair from None
        raise Wrong(
            f"on {case}, you returned one number, {flat:g}: an index into the flattened matrix? Return the cell "
            f"as (row, column): index i of an n × n matrix is row i // n, column i % n"
        ) from None
    return i, j


_COUNTED_FROM_ONE = (
    "on {case}, you returned {pair}, the right cell counted from 1: rows and columns count from 0, as cm[i, j] "
    "indexes them"
)


def _from_one(pair: tuple[int, int], matrix: Tensor) -> bool:
    """Whether ``pair`` is the largest off-diagonal cell with its row and column counted from 1."""
    return (pair[0] - 1, pair[1] - 1) == _largest_off_diagonal(matrix)


_OWN_MATRIX = "work on the matrix `cm` it is given (its argument), whose size may differ from the notebook's"


def _cell(index: tuple[int, int]) -> str:
    return f"cm[{index[0]}, {index[1]}]"


def _check_most_confused_pair(most_confused_pair, cm: Tensor | None = None, classes=CLASS_NAMES, generator=None) -> str:
    if cm is not None:
        _expect_matrix(cm, classes)
    refuse_notebook_values(most_confused_pair, Tensor, "most_confused_pair", _OWN_MATRIX)
    cases = _matrix_cases(generator)
    answers = {}  # all of them first: a mistake is named only when it explains the answer on every case
    for case, matrix in cases.items():
        got = call(
            most_confused_pair,
            matrix,
            case=case,
            keep_input="work on a copy (off = cm.clone()), so the matrix itself keeps its diagonal",
        )
        answers[case] = _pair(got, case)
        if not all(0 <= index < len(matrix) for index in answers[case]):  # once told only the right cell (helper 101)
            if _from_one(answers[case], matrix):  # told "size len(cm)" when it had used len(cm) (helper 114)
                raise Wrong(_COUNTED_FROM_ONE.format(case=case, pair=answers[case]))
            raise Wrong(
                f"on {case}, you returned {answers[case]}, outside this {len(matrix)}x{len(matrix)} matrix: take "
                f"the row and the column from the matrix it is given, whose size is len(cm), not always 10"
            )
    for case, matrix in cases.items():
        i, j = answers[case]
        right = _largest_off_diagonal(matrix)
        if (i, j) == right:
            continue
        if all(_from_one(answers[c], m) for c, m in cases.items()):
            raise Wrong(_COUNTED_FROM_ONE.format(case=case, pair=(i, j)))
        if i == j:
            raise Wrong(
                f"on {case}, you returned ({i}, {j}), a cell of the diagonal: those are the right answers. "
                f"Leave the diagonal out"
            )
        if all(answers[c] == _largest_off_diagonal(m.T) for c, m in cases.items()):
            raise Wrong(
                f"on {case}, you returned ({i}, {j}): the pair is right but in the wrong order; return (true "
                f"class, predicted class), the row first"
            )
        for half, side, other in ((torch.triu, "above", "below"), (torch.tril, "below", "above")):
            if all(answers[c] == _largest_off_diagonal(half(m)) for c, m in cases.items()):
                raise Wrong(
                    f"on {case}, you returned ({i}, {j}), the largest count {side} the diagonal; the largest is "
                    f"{_cell(right)} = {int(matrix[right])}, {other} it: look at every cell off the diagonal"
                )
        if all(set(answers[c]) == set(_largest_off_diagonal(m + m.T)) for c, m in cases.items()):
            raise Wrong(
                f"on {case}, you added the two directions of each pair (cm + cm.T); the question asks for one "
                f"direction, true class i taken for class j: {_cell(right)} = {int(matrix[right])}"
            )
        for dim, rate in (
            (1, "the largest rate (each row divided by its sum)"),
            (0, "the largest share of a column (each column divided by its sum)"),
        ):
            if all(
                answers[c] == _largest_off_diagonal(m.double() / m.sum(dim, keepdim=True)) for c, m in cases.items()
            ):
                raise Wrong(
                    f"on {case}, you returned {rate}, cm[{i}, {j}] = {int(matrix[i, j])}; the question asks for the "
                    f"largest count, {_cell(right)} = {int(matrix[right])}"
                )
        for dim, line in ((1, "row"), (0, "column")):
            if all(answers[c][1 - dim] == int(_mistakes(m, dim).argmax()) for c, m in cases.items()):
                mistakes = _mistakes(matrix, dim)
                raise Wrong(
                    f"on {case}, you returned ({i}, {j}), in the {line} with the most mistakes "
                    f"({int(mistakes.max())}); the question asks for the largest single count, "
                    f"{_cell(right)} = {int(matrix[right])}"
                )
        raise Wrong(
            f"on {case}, the largest count off the diagonal is {_cell(right)} = {int(matrix[right])}, but you "
            f"returned ({i}, {j})"
        )
    praise = "your most_confused_pair finds the largest count off the diagonal, row first, on every case"
    if cm is not None:
        case = "the validation split's matrix"
        i, j = _pair(call(most_confused_pair, cm, case=case), case)
        right = _largest_off_diagonal(cm)
        if int(cm[i, j]) != int(cm[right]):  # a tie for the largest count is right too
            raise Wrong(
                f"on {case}, the largest count off the diagonal is {_cell(right)} = {int(cm[right])} "
                f"({classes[right[0]]} taken for {classes[right[1]]}), but you returned ({i}, {j}), "
                f"{int(cm[i, j])} times"
            )
        praise += f"; on the validation split: {classes[i]} taken for {classes[j]}, {int(cm[i, j])} times"
    return praise + "."


q2 = Exercise(
    "nb06.q2",
    _check_most_confused_pair,
    hint_text="The diagonal holds the right answers: leave it out without changing the matrix you were given (work "
    "on a copy), find the largest count left, and turn its position into (row, column).",
    lab_functions=(most_confused_pairs,),
)


# q3: precision per class


def _whole_numbers_only(dtype: object) -> bool:
    """Whether ``dtype`` (PyTorch's or NumPy's) is an integer type, which cuts a fraction stored in it."""
    if isinstance(dtype, torch.dtype):
        return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)
    return isinstance(dtype, np.dtype) and np.issubdtype(dtype, np.integer)


def _precision(cm: Tensor) -> Tensor:
    return cm.diag().double() / cm.sum(0).clamp(min=1).double()


def _check_precision(precision_per_class, cm: Tensor | None = None, classes=CLASS_NAMES, generator=None) -> str:
    if cm is not None:
        _expect_matrix(cm, classes)
    refuse_notebook_values(precision_per_class, Tensor, "precision_per_class", _OWN_MATRIX)
    never_predicted = torch.tensor([[5, 0, 1], [3, 0, 2], [0, 0, 4]])
    cases = {**_matrix_cases(generator), "a 3x3 matrix where class 1 is never predicted": never_predicted}
    for case, matrix in cases.items():
        returned = call(
            precision_per_class,
            matrix,
            case=case,
            keep_input="work on a copy (cm.clone()) or compute new tensors, so the matrix itself stays as it is",
        )
        got = as_tensor(returned, "precision_per_class", case, (len(matrix),), finite=False)
        right = _precision(matrix)
        if all_close(got, right):
            continue
        if got.isnan().any():
            raise Wrong(f"on {case}, you returned NaN for a class the model never predicts (0 / 0): give it 0")
        if all_close(got, per_class_accuracy(matrix)):  # recall
            raise Wrong(
                f"on {case}, you divided by the row sums: that is recall (per_class_accuracy). Precision "
                f"divides by the column sums, the images predicted as each class"
            )
        if all_close(got, 100 * right):
            raise Wrong(f"on {case}, you returned percentages: return fractions between 0 and 1")
        if all_close(got, matrix.diag().double() / matrix.sum()):
            raise Wrong(
                f"on {case}, you divided by the number of all images; precision divides each class's right "
                f"answers by the images predicted as that class, the column sum"
            )
        # each once told "integer division", whatever had cut the fractions (helper 101)
        dtype = getattr(returned, "dtype", None)
        if _whole_numbers_only(dtype):
            raise Wrong(
                f"on {case}, you returned {describe(returned)}, of whole numbers only: each precision came out as "
                f"0 (or 1 where a class is always right), cut by integer division (//), int(), or storing it in "
                f"an integer tensor or array. Divide in floats and return floats (a tensor to fill made with a "
                f"float dtype)"
            )
        if all_close(got, matrix.diag() // matrix.sum(0).clamp(min=1)) or not got.any():
            raise Wrong(
                f"on {case}, your precisions are whole numbers, {'all 0' if not got.any() else '0 or 1'}: a fraction "
                f"cut by integer division (//) or int() is 0 (1 where a class is always right), as is a value "
                f"that never reached the tensor you return; divide in floats and return the fractions"
            )
        predicted = matrix.sum(0)
        unpredicted = [int(k) for k in (predicted == 0).nonzero().flatten()]
        off = [k for k in range(len(matrix)) if not close(float(got[k]), float(right[k]), scale=1)]
        if unpredicted and set(off) <= set(unpredicted):
            raise Wrong(
                f"on {case}, class {unpredicted[0]} is never predicted (its column sums to 0), and you gave it "
                f"{float(got[unpredicted[0]]):g}; a class the model never names has no precision to measure: give it 0"
            )
        as_tensor(got, "precision_per_class", case, (len(matrix),))  # infinity gets its own sentence
        if dtype in (torch.float16, torch.bfloat16, np.float16) and all_close(got, right, 1e-2):
            raise Wrong(
                f"on {case}, your precisions agree to about 3 digits only: {dtype} keeps about 3 significant "
                f"digits (bfloat16 2); compute and return them in float32 or float64"
            )
        raise Wrong(
            f"on {case}, the precision should be {[round(v, 4) for v in right.tolist()]}, but yours is "
            f"{[round(v, 4) for v in got.tolist()]}"
        )
    praise = "your precision_per_class is right, also for a class that is never predicted"
    if cm is not None:
        case = "the validation split's matrix"
        mine = as_tensor(call(precision_per_class, cm, case=case), "precision_per_class", case, (len(cm),))
        if not all_close(mine, _precision(cm)):
            raise Wrong(
                f"on {case}, the precision should be {[round(v, 4) for v in _precision(cm).tolist()]}, but yours "
                f"is {[round(v, 4) for v in mine.tolist()]}"
            )
        named = cm.sum(0) > 0  # a class the model never predicts has no precision to be least of (helper 101)
        worst = int(mine.masked_fill(~named.to(mine.device), math.inf).argmin())
        praise += (
            f"; on the validation split the least precise class is {classes[worst]}: when the model says "
            f"{classes[worst]} it is right {100 * float(mine[worst]):.1f}% of the time"
        )
        never = [classes[k] for k in range(len(cm)) if not named[k]]
        if never:
            praise += f" ({', '.join(never)} never predicted)"
    return praise + "."


q3 = Exercise(
    "nb06.q3",
    _check_precision,
    hint_text="Precision of class j: the images predicted as j that truly are j, out of all the images predicted as"
    " j (which part of the matrix holds those?). A class never predicted has nothing to divide by: give "
    "it 0.",
    lab_functions=(per_class_accuracy,),
)

__getattr__ = missing_exercise(__name__, globals())
