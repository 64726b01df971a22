"""Notebook 06's checks (confusion matrix, most-confused pair, precision): right answers of every kind pass, each
wrong one gets its sentence (issue #24)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix

from fmnist_lab.dataset import CLASS_NAMES
from fmnist_lab.exercises import nb06
from tests.checks_support import assert_right, assert_wrong

# q1: the confusion matrix


def by_loop(targets, predictions, num_classes):
    cm = torch.zeros(num_classes, num_classes, dtype=torch.long)
    for t, p in zip(targets.tolist(), predictions.tolist()):
        cm[t, p] += 1
    return cm


def by_loop_in(targets, predictions, num_classes, dtype):
    cm = torch.zeros(num_classes, num_classes, dtype=dtype)
    for t, p in zip(targets.tolist(), predictions.tolist()):
        cm[t, p] += 1
    return cm


def by_numpy(targets, predictions, num_classes):
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (targets.numpy(), predictions.numpy()), 1)
    return cm


def index_add_once(targets, predictions, num_classes):
    cm = torch.zeros(num_classes, num_classes, dtype=torch.long)
    cm[targets, predictions] += 1  # the classic slip: a repeated (target, prediction) pair is written once
    return cm


CONFUSION_RIGHT = {
    "a loop": by_loop,
    "bincount": lambda t, p, n: torch.bincount(t * n + p, minlength=n * n).view(n, n),
    "index_put_ with accumulate": lambda t, p, n: torch.zeros(n, n).index_put_(
        (t, p), torch.ones(len(t)), accumulate=True
    ),
    "NumPy's add.at": by_numpy,
    "lists of lists": lambda t, p, n: by_loop(t, p, n).tolist(),
}

CONFUSION_WRONG = {
    "transposed": (lambda t, p, n: by_loop(t, p, n).T, "your matrix is transposed: row i must be the true class"),
    "fractions of each row": (
        lambda t, p, n: by_loop(t, p, n) / by_loop(t, p, n).sum(1, keepdim=True).clamp(min=1),
        "you returned fractions of each row: return the counts",
    ),
    "only the classes that appear": (
        lambda t, p, n: by_loop(t, p, int(max(t.max(), p.max())) + 1),
        ("your matrix has shape (3, 3): it must be num_classes x num_classes (4x4) even when a class never appears"),
    ),
    # an 8-bit count wraps past 255: once right on every case, the hidden ones included
    "counted in uint8": (
        lambda t, p, n: torch.tensor(by_loop(t, p, n).tolist()).to(torch.uint8),
        "a count of 2100 does not fit your matrix's dtype, which holds whole numbers only up to 255: count in "
        "torch.long",
    ),
    "counted in NumPy's int8": (
        lambda t, p, n: by_numpy(t, p, n).astype(np.int8),
        "a count of 2100 does not fit your matrix's dtype, which holds whole numbers only up to 127",
    ),
    # a DataFrame (pandas.crosstab) of the right shape: once told its shape was wrong
    "an array of Python objects": (
        lambda t, p, n: np.array(by_loop(t, p, n).tolist(), dtype=object),
        "`my_confusion_matrix` should return a tensor of shape (3, 3)",
    ),
    "indexing with +=, each repeated pair counted once": (
        index_add_once,
        "a (true, predicted) pair that occurs several times counts once in yours",
    ),
    "indexing with +=, the message names the idea to fix it": (
        index_add_once,
        "count every image, repeats included",
    ),
    # a student's read: told "even when a class never appears" where the size was fixed at 10
    "ten classes, whatever num_classes says": (
        lambda t, p, n: by_loop(t, p, 10),
        "your matrix is 10x10, Fashion-MNIST's number of classes; size it by the `num_classes` argument (3x3 here)",
    ),
    "one too many everywhere": (
        lambda t, p, n: by_loop(t, p, n) + 1,
        "the matrix should be\ntensor([[1, 1, 0],\n        [0, 1, 0],\n        [2, 0, 1]])\n"
        "but yours is\ntensor([[2, 2, 1],",
    ),
    # a student's read (helper-85): all three were told something else
    "the last image left out": (
        lambda t, p, n: by_loop(t[:-1], p[:-1], n),
        "your matrix counts every image but the last: count all 6 of them",
    ),
    "the first image left out": (
        lambda t, p, n: by_loop(t[1:], p[1:], n),
        "your matrix counts every image but the first: count all 6 of them",
    ),
    "a matrix of bools": (
        lambda t, p, n: by_loop(t, p, n) > 0,
        "your matrix is of bools, which hold only True and False: count in integers",
    ),
    # float16 stops counting at 2,048 as bfloat16 at 256: it used to pass (helper 101)
    "counted in float16": (
        lambda t, p, n: by_loop_in(t, p, n, torch.float16),
        "a count of 2100 does not fit your matrix's dtype, which holds whole numbers only up to 2,048",
    ),
    "the notebook's predictions": (
        lambda t, p, n: by_loop(nb06_notebook_cm.diag(), nb06_notebook_cm.diag(), n),
        "`my_confusion_matrix` uses the notebook's `nb06_notebook_cm`",
    ),
    # adding 1 to 256 in bfloat16 gives 256 again: the count stops there
    "counted in bfloat16": (
        lambda t, p, n: by_loop_in(t, p, n, torch.bfloat16),
        "a count of 2100 does not fit your matrix's dtype, which holds whole numbers only up to 256",
    ),
    "the lab's confusion_matrix": (
        lambda t, p, n: nb06.confusion_matrix(t, p, n),
        "calls the lab's own `confusion_matrix` (fmnist_lab.metrics.confusion_matrix)",
    ),
    "scikit-learn's confusion_matrix": (  # "by hand", as nb07.q3 refuses sklearn.neighbors
        lambda t, p, n: sklearn_confusion_matrix(t.numpy(), p.numpy(), labels=list(range(n))),
        "calls scikit-learn's ready-made `confusion_matrix`",
    ),
}


@pytest.mark.parametrize("answer", CONFUSION_RIGHT.values(), ids=CONFUSION_RIGHT)
def test_confusion_matrix_right_answers_pass(answer):
    assert_right(nb06.q1, answer)


@pytest.mark.parametrize("answer, sentence", CONFUSION_WRONG.values(), ids=CONFUSION_WRONG)
def test_confusion_matrix_wrong_answers_get_their_sentence(answer, sentence):
    assert_wrong(nb06.q1, answer, sentence)


def test_confusion_matrix_on_the_notebooks_predictions_and_a_misused_call():
    targets, predictions = torch.randint(0, 10, (50,)), torch.randint(0, 10, (50,))
    assert "on the validation split it holds" in assert_right(nb06.q1, by_loop, targets, predictions)
    message = nb06.q1.verdict(by_loop, targets.tolist(), predictions).message
    assert message.startswith(
        "Not yet: check() expects the targets (a 1-D tensor of class indices, e.g. val.targets) "
        "after your function, but it got a list of 50 items"
    )
    # the probabilities handed in for the predictions used to be blamed on the student's function
    message = nb06.q1.verdict(by_loop, targets, torch.rand(50, 10).softmax(1)).message
    assert message == (
        "Not yet: check() expects the predictions (a 1-D tensor of class indices, e.g. val.predictions) "
        "after your function, but it got a torch.float32 tensor of shape (50, 10)."
    )
    for bad, sentence in (
        (predictions > 4, "it got a torch.bool tensor of shape (50,)"),
        (torch.arange(50) % 10 - 1, "each from 0 to 9, but its values run from -1 to 8"),
    ):
        assert nb06.q1.verdict(by_loop, targets, bad).message.startswith("Not yet: check() expects the predictions")
        assert sentence in nb06.q1.verdict(by_loop, targets, bad).message
    message = nb06.q1.verdict(by_loop, targets, predictions[:40]).message
    assert message == "Not yet: check() expects one prediction per target, but it got 50 targets and 40 predictions."


def test_a_library_imported_in_the_answer_is_refused_on_its_first_check():
    # in a fresh kernel sklearn.metrics is loaded only when the answer runs: its first check found nothing under
    # the import and said Correct, its second refused it (helper 114)
    script = textwrap.dedent(
        """
        import sys
        from fmnist_lab.exercises import nb06
        assert "sklearn.metrics" not in sys.modules
        def my_confusion_matrix(targets, predictions, num_classes):
            from sklearn.metrics import confusion_matrix
            return confusion_matrix(targets, predictions, labels=list(range(num_classes)))
        print(nb06.q1.verdict(my_confusion_matrix).message)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.startswith(
        "Not yet: `my_confusion_matrix` calls scikit-learn's ready-made `confusion_matrix`"
    ), result.stdout


# q2: the most-confused pair


def most_confused_pair(cm):
    off = cm.clone()
    off.fill_diagonal_(-1)
    return divmod(int(off.argmax()), len(cm))


def in_place(cm):
    cm.fill_diagonal_(-1)  # the hint warns against this: it changes the notebook's matrix
    return divmod(int(cm.argmax()), len(cm))


def by_rate(cm):
    rates = cm.double() / cm.sum(1, keepdim=True)
    return most_confused_pair(rates)


def in_the_row_of_most_mistakes(cm):
    off = cm.clone().fill_diagonal_(0)
    row = int(off.sum(1).argmax())
    return row, int(off[row].argmax())


def in_the_column_of_most_mistakes(cm):
    off = cm.clone().fill_diagonal_(0)
    column = int(off.sum(0).argmax())
    return int(off[:, column].argmax()), column


PAIR_RIGHT = {
    "clone and fill_diagonal_": most_confused_pair,
    "a mask": lambda cm: divmod(int(cm.masked_fill(torch.eye(len(cm), dtype=torch.bool), -1).argmax()), len(cm)),
    "NumPy": lambda cm: np.unravel_index(np.argmax(cm.numpy() - np.diag(np.diag(cm.numpy())) * 2), cm.shape),
    "loops": lambda cm: max(
        ((i, j) for i in range(len(cm)) for j in range(len(cm)) if i != j), key=lambda ij: int(cm[ij])
    ),
    "diagonal subtracted, a tensor": lambda cm: torch.tensor(
        divmod(int((cm - torch.diag(cm.diag())).argmax()), len(cm))
    ),
}


def second_largest(cm):
    off = cm.clone()
    off.fill_diagonal_(-1)
    return divmod(int(off.flatten().topk(2).indices[1]), len(cm))


PAIR_WRONG = {
    # told "whose size is len(cm), not always 10" when it had used len(cm) (helper 114)
    "counted from 1": (
        lambda cm: tuple(index + 1 for index in most_confused_pair(cm)),
        "the right cell counted from 1: rows and columns count from 0",
    ),
    # both told only "should return a tensor of shape (2,)" (helper-93)
    "class names": (
        lambda cm: tuple(CLASS_NAMES[i] for i in most_confused_pair(cm)),
        "you returned ('Pullover', 'T-shirt/top'): return the two classes as indices, (true class, predicted class)",
    ),
    "a flat index": (
        lambda cm: int(cm.clone().fill_diagonal_(0).argmax()),
        "you returned one number, 6: an index into the flattened matrix? Return the cell as (row, column)",
    ),
    # told only the right cell (helper 101)
    "row and column by Fashion-MNIST's 10": (
        lambda cm: divmod(int(cm.clone().fill_diagonal_(0).argmax()), 10),
        "you returned (0, 6), outside this 3x3 matrix: take the row and the column from the matrix it is given",
    ),
    "diagonal kept": (
        lambda cm: divmod(int(cm.argmax()), len(cm)),
        ("a cell of the diagonal: those are the right answers. Leave the diagonal out"),
    ),
    "column first": (lambda cm: most_confused_pair(cm)[::-1], "the pair is right but in the wrong order"),
    # both used to be told "the pair is right but in the wrong order"
    "above the diagonal only": (
        lambda cm: most_confused_pair(cm.triu()),
        "on a 3x3 matrix where class 2 is taken for class 0 seven times and class 0 for class 2 three times, you "
        "returned (0, 2), the largest count above the diagonal; the largest is cm[2, 0] = 7, below it",
    ),
    "both directions added": (
        lambda cm: most_confused_pair(cm + cm.T),
        "you added the two directions of each pair (cm + cm.T)",
    ),
    # a rate where a count is asked used to pass: no case told the two apart
    "largest rate": (
        by_rate,
        (
            "you returned the largest rate (each row divided by its sum), cm[1, 2] = 5; the "
            "question asks for the largest count, cm[0, 1] = 30"
        ),
    ),
    # a share of each column where a count is asked used to pass: no case told the two apart
    "largest share of a column": (
        lambda cm: most_confused_pair(cm.double() / cm.sum(0, keepdim=True)),
        (
            "on a 3x3 matrix where the largest count lies in a column of many predictions, you returned the "
            "largest share of a column (each column divided by its sum), cm[0, 2] = 30; the question asks for "
            "the largest count, cm[1, 0] = 40"
        ),
    ),
    # the largest count in the row, or the column, of the most mistakes used to pass the visible cases
    "in the row of the most mistakes": (
        in_the_row_of_most_mistakes,
        "you returned (0, 1), in the row with the most mistakes (26); the question asks for the largest single count, "
        "cm[2, 1] = 15",
    ),
    "in the column of the most mistakes": (
        in_the_column_of_most_mistakes,
        "you returned (1, 3), in the column with the most mistakes (27)",
    ),
    # changing the matrix in place, which the hint warns against, used to pass
    "changes the matrix in place": (in_place, "changed the input it was given: work on a copy (off = cm.clone())"),
    # the mirror of the upper triangle: once told "in the column with the most mistakes"
    "the lower triangle only": (
        lambda cm: divmod(int(cm.tril(-1).argmax()), len(cm)),
        "you returned (2, 1), the largest count below the diagonal; the largest is cm[0, 1] = 30, above it",
    ),
    # the second largest lies in the row with the most mistakes on one case only: it was told so
    "the second largest count": (
        second_largest,
        "the largest count off the diagonal is cm[2, 0] = 7, but you returned (2, 1)",
    ),
    # `/` where `//` finds the row: its fraction was cut off, and the answer praised (helper-85)
    "the row found by /": (
        lambda cm: (lambda k: (k / len(cm), k % len(cm)))(int(cm.clone().fill_diagonal_(-1).argmax())),
        "`most_confused_pair` should return whole-number indices, but on a 3x3 matrix",
    ),
    # an answer that changed the matrix's dtype in place raised RuntimeError out of check()
    "the matrix's dtype changed in place": (
        lambda cm: (setattr(cm, "data", cm.data.double()), most_confused_pair(cm))[1],
        "changed the input it was given",
    ),
    "smallest count": (
        lambda cm: divmod(int(cm.masked_fill(torch.eye(len(cm), dtype=torch.bool), 10**6).argmin()), len(cm)),
        "the largest count off the diagonal is cm[2, 0] = 7, but you returned (1, 2)",
    ),
}


@pytest.mark.parametrize("answer", PAIR_RIGHT.values(), ids=PAIR_RIGHT)
def test_most_confused_pair_right_answers_pass(answer):
    assert_right(nb06.q2, answer)


@pytest.mark.parametrize("answer, sentence", PAIR_WRONG.values(), ids=PAIR_WRONG)
def test_most_confused_pair_wrong_answers_get_their_sentence(answer, sentence):
    assert_wrong(nb06.q2, answer, sentence)


def test_most_confused_pair_is_checked_on_the_validation_matrix_too():
    # an answer tuned to the fixed cases, wrong on the notebook's own matrix, used to be praised there
    cases = {tuple(map(tuple, m.tolist())): most_confused_pair(m) for m in nb06._matrix_cases().values()}

    def tuned(cm):
        return cases.get(tuple(map(tuple, cm.tolist())), (0, 1))

    validation, classes = torch.tensor([[50, 1, 3], [2, 60, 9], [7, 4, 40]]), ["a", "b", "c"]
    assert_right(nb06.q2, tuned)
    sentence = "on the validation split's matrix, the largest count off the diagonal is cm[1, 2] = 9 (b taken for c)"
    assert_wrong(nb06.q2, tuned, sentence, validation, classes)
    assert "b taken for c, 9 times" in assert_right(nb06.q2, most_confused_pair, validation, classes)


def test_most_confused_pair_never_changes_the_notebooks_matrix():
    cm = torch.tensor([[50, 1, 3], [2, 60, 0], [7, 4, 40]])
    kept = cm.clone()
    nb06.q2.verdict(in_place, cm, ["a", "b", "c"])
    assert torch.equal(cm, kept)


# q3: precision per class

PRECISION_RIGHT = {
    "float64": lambda cm: cm.diag().double() / cm.sum(0).clamp(min=1).double(),
    # float32 used to be refused: compared at atol=1e-9
    "float32, diagonal over clamped column sums": lambda cm: cm.diag() / cm.sum(0).clamp(min=1),
    "NumPy": lambda cm: np.diag(cm.numpy()) / np.maximum(cm.numpy().sum(0), 1),
    "a list": lambda cm: [float(cm[j, j]) / max(int(cm[:, j].sum()), 1) for j in range(len(cm))],
    "where": lambda cm: torch.where(cm.sum(0) > 0, cm.diag() / cm.sum(0), torch.zeros(len(cm))),
    "nan_to_num": lambda cm: torch.nan_to_num(cm.diag().double() / cm.sum(0).double()),
}


def precision_never_predicted_one(cm):
    predicted = cm.sum(0)
    return torch.where(predicted == 0, 1.0, cm.diag().double() / predicted.clamp(min=1).double())


def precision_stored_in_integers(cm):
    precision = torch.zeros_like(cm.diag())  # the matrix's dtype, int64: each fraction is cut as it is stored
    for j in range(len(cm)):
        column = cm[:, j].sum()
        precision[j] = cm[j, j] / column if column > 0 else 0
    return precision


def precision_diagonal_spoiled(cm):
    right = cm.diag().double() / cm.sum(0).clamp(min=1).double()
    cm.fill_diagonal_(0)
    return right


nb06_notebook_cm = torch.eye(10, dtype=torch.long)  # stands in for the notebook's `cm`, read as a global


PRECISION_WRONG = {
    # both told the numbers only (helper-93)
    "integer division": (
        lambda cm: cm.diag() // cm.sum(0).clamp(min=1),
        "of whole numbers only: each precision came out as 0 (or 1 where a class is always right), cut by integer "
        "division (//)",
    ),
    # the four below were each told "integer division" (helper 101)
    "stored in an int64 tensor": (precision_stored_in_integers, "you returned a torch.int64 tensor of shape (3,)"),
    "stored in a NumPy int array": (
        lambda cm: np.array(precision_stored_in_integers(cm).tolist(), dtype=int),
        "storing it in an integer tensor or array",
    ),
    "nothing stored": (
        lambda cm: torch.zeros(len(cm)),
        "your precisions are whole numbers, all 0: a fraction cut by integer division (//) or int() is 0 (1 where "
        "a class is always right), as is a value that never reached the tensor you return",
    ),
    "floored, in floats": (
        lambda cm: (cm.diag() // cm.sum(0).clamp(min=1)).double(),
        "your precisions are whole numbers, all 0: a fraction cut by integer division (//) or int() is 0",
    ),
    "the matrix's diagonal zeroed in place": (
        precision_diagonal_spoiled,
        "changed the input it was given: work on a copy (cm.clone())",
    ),
    "in float16": (
        lambda cm: (cm.diag().double() / cm.sum(0).clamp(min=1)).half(),
        "your precisions agree to about 3 digits only: torch.float16 keeps about 3 significant digits",
    ),
    "the notebook's matrix": (
        lambda cm: nb06_notebook_cm.diag() / nb06_notebook_cm.sum(0).clamp(min=1),
        "`precision_per_class` uses the notebook's `nb06_notebook_cm`: work on the matrix `cm` it is given",
    ),
    "1 for a class never predicted": (
        precision_never_predicted_one,
        "class 1 is never predicted (its column sums to 0), and you gave it 1; a class the model never names has "
        "no precision to measure: give it 0",
    ),
    "recall": (
        lambda cm: cm.diag().double() / cm.sum(1).clamp(min=1).double(),
        "you divided by the row sums: that is recall (per_class_accuracy)",
    ),
    "percentages": (
        lambda cm: 100 * cm.diag().double() / cm.sum(0).clamp(min=1).double(),
        "you returned percentages: return fractions between 0 and 1",
    ),
    "0 / 0": (
        lambda cm: cm.diag().double() / cm.sum(0).double(),
        (
            "on a 3x3 matrix where class 1 is never predicted, you returned NaN for a class the model never "
            "predicts (0 / 0): give it 0"
        ),
    ),
    "over all images": (lambda cm: cm.diag().double() / cm.sum(), "you divided by the number of all images"),
    "infinity": (
        lambda cm: cm.diag().double() / (cm.sum(0) - cm.sum(0)).double(),
        "`precision_per_class` returned infinity",
    ),
    "one class short": (
        lambda cm: (cm.diag().double() / cm.sum(0).clamp(min=1))[1:],
        "`precision_per_class` should return shape (3,)",
    ),
    # the lab's recall of the transposed matrix is precision: it used to pass
    "the lab's per_class_accuracy of the transpose": (
        lambda cm: nb06.per_class_accuracy(cm.T),
        "calls the lab's own `per_class_accuracy`",
    ),
}


@pytest.mark.parametrize("answer", PRECISION_RIGHT.values(), ids=PRECISION_RIGHT)
def test_precision_right_answers_pass(answer):
    assert_right(nb06.q3, answer)


@pytest.mark.parametrize("answer, sentence", PRECISION_WRONG.values(), ids=PRECISION_WRONG)
def test_precision_wrong_answers_get_their_sentence(answer, sentence):
    assert_wrong(nb06.q3, answer, sentence)


def test_precision_is_checked_on_the_validation_matrix_too():
    # an answer tuned to the fixed cases, wrong on the notebook's own matrix, used to be praised there
    right = PRECISION_RIGHT["float64"]
    cases = {tuple(map(tuple, m.tolist())): right(m) for m in nb06._matrix_cases().values()}

    def tuned(cm):
        return cases.get(tuple(map(tuple, cm.tolist())), right(cm) if len(cm) == 3 else torch.full((len(cm),), 0.5))

    validation, classes = torch.tensor([[50, 1, 3, 0], [2, 60, 9, 0], [7, 4, 40, 0], [0, 0, 0, 5]]), list("abcd")
    assert_right(nb06.q3, tuned)
    sentence = (
        "on the validation split's matrix, the precision should be [0.8475, 0.9231, 0.7692, 1.0], "
        "but yours is [0.5, 0.5, 0.5, 0.5]."
    )
    assert_wrong(nb06.q3, tuned, sentence, validation, classes)
    assert "the least precise class is c" in assert_right(nb06.q3, right, validation, classes)
    # a class never predicted (column 3) has no precision to be the least of: once named with 0.0% (helper 101)
    never = torch.tensor([[50, 1, 3, 0], [2, 60, 9, 0], [7, 4, 40, 0], [0, 3, 1, 0]])
    praise = assert_right(nb06.q3, right, never, classes)
    assert "the least precise class is c" in praise and "(d never predicted)" in praise, praise


@pytest.mark.parametrize(
    "cm, classes, sentence",
    [
        (
            torch.randint(0, 9, (50,)),
            list("abcdefghij"),
            "(cm, a square tensor of counts) after your function, but it got",
        ),
        (torch.eye(4)[:3], list("abcd"), "but it got a torch.float32 tensor of shape (3, 4)"),
        (torch.eye(3) * 0.5, list("abc"), "but it got a torch.float32 tensor of shape (3, 3)"),  # fractions
        (torch.eye(3, dtype=torch.long), 10, "the names of the 3 classes after the matrix (a list of strings"),
        (torch.eye(3, dtype=torch.long), ["a", "b"], "but it got a list of 2 items ['a', 'b']"),
    ],
    ids=["targets", "not square", "fractions", "a number for the names", "too few names"],
)
def test_the_matrix_checks_handed_other_data_name_what_they_expect(cm, classes, sentence):
    # each used to be blamed on the student's function, or to raise out of check() once the cases passed
    for exercise, answer in ((nb06.q2, most_confused_pair), (nb06.q3, PRECISION_RIGHT["float64"])):
        message = assert_wrong(exercise, answer, sentence, cm, classes)
        assert message.startswith("Not yet: check() expects") and "hint()" not in message


# the grader's hidden cases


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_on_hidden_cases_right_answers_still_pass_and_wrong_ones_still_fail(seed):
    for exercise, right, wrong in (
        (nb06.q1, CONFUSION_RIGHT, CONFUSION_WRONG),
        (nb06.q2, PAIR_RIGHT, PAIR_WRONG),
        (nb06.q3, PRECISION_RIGHT, PRECISION_WRONG),
    ):
        for answer in right.values():
            assert_right(exercise, answer, seed=seed)
        for answer, _ in wrong.values():
            assert_wrong(exercise, answer, "", seed=seed)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=60))
def test_the_checks_precision_is_right_answers_over_predictions(pairs):
    """Independently stated: for each class, right answers / times predicted (0 if never predicted)."""
    cm = by_loop(torch.tensor([t for t, _ in pairs]), torch.tensor([p for _, p in pairs]), 5)
    expected = [sum(1 for t, p in pairs if t == p == j) / max(1, sum(1 for _, p in pairs if p == j)) for j in range(5)]
    assert nb06.all_close(nb06._precision(cm), torch.tensor(expected, dtype=torch.float64), 1e-12)
