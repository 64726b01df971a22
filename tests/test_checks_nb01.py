"""Notebook 01's checks: right answers of every kind pass, each wrong one gets its sentence (issue #24)."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fmnist_lab.dataset import FashionMNIST
from fmnist_lab.exercises import WRONG, nb01
from tests.checks_support import assert_right, assert_wrong


def pixels(images):
    return images.double().flatten(1) / 255


# stand for the notebook's own tensors, which an answer read in place of its argument (helper 110)
notebook_pixels = torch.rand(6, 784, dtype=torch.float64)
class_means = torch.rand(10, 28, 28, dtype=torch.float64)


# q1: the std of all pixels

SCALE = torch.tensor(255.0)  # a constant of one number: refused as "the notebook's" once (helper 112)

PIXEL_STD_RIGHT = {
    "float64, sample std": lambda images: (images.double() / 255).std().item(),
    "float32 tensor, population std": lambda images: (images.float() / 255).std(correction=0),
    "NumPy float64": lambda images: np.std(images.numpy() / 255),
    "0-d NumPy array": lambda images: np.array(np.std(images.numpy() / 255.0, ddof=1)),
    "uint8 / 255 (float32), unscaled tensor": lambda images: (images / 255).std(),
    "by its formula": lambda images: (((pixels(images) - pixels(images).mean()) ** 2).mean()).sqrt(),
    "Python's statistics": lambda images: statistics.pstdev((images.flatten().double() / 255).tolist()),
    "a constant tensor of the notebook's": lambda images: (images.double() / SCALE).std().item(),
}

PIXEL_STD_WRONG = {
    "per-image std": (
        lambda images: pixels(images).std(dim=1).mean().item(),
        "the mean of the per-image standard deviations (in our reading the report's mistake: its 0.3202 is this "
        "mean with correction=0)",
    ),
    "per-image std, correction=0 (the report's number, in our reading)": (
        lambda images: pixels(images).std(dim=1, correction=0).mean().item(),
        "the mean of the per-image standard deviations, with correction=0 (in our reading, the report's 0.3202), "
        "not the std",
    ),
    "bytes not scaled": (
        lambda images: images.double().std().item(),
        "255 times too large: scale the bytes to [0, 1] (divide by 255) first",
    ),
    "variance": (lambda images: (images.double() / 255).var().item(), "the variance: take its square root"),
    "std of the mean brightness": (
        lambda images: pixels(images).mean(1).std().item(),
        "the std of the images' mean brightness, not of all pixels",
    ),
    "NaN": (
        lambda images: float("nan"),
        "`pixel_std` returned NaN (not a number) on 4 random images of different brightness",
    ),
    "mean and std": (
        lambda images: ((images.double() / 255).mean().item(), (images.double() / 255).std().item()),
        (
            "`pixel_std` should return one number, but on 4 random images of different brightness it returned "
            "a tuple of 2 items"
        ),
    ),
    # praised: the check works on copies, but the same function run on data.train_images would change it
    "clamps its input in place": (
        lambda images: (images.clamp_(max=128).double() / 255).std().item(),
        "changed the input it was given: leave the images as they are; compute on a converted copy",
    ),
    # told with numbers only (carried over from helper-88's read)
    "float16": (
        lambda images: (images.half() / 255).std().item(),
        "off, close but not within the check's 0.01%. Arithmetic in float16 or bfloat16 lands about this far off",
    ),
    # in float64, a near miss was blamed on half precision alone (helper 96): the size of the miss is said, and
    # both causes
    "a scale 0.2% off": (
        lambda images: 1.002 * (images.double() / 255).std(correction=0).item(),
        "0.2% off, close but not within the check's 0.01%. Arithmetic in float16 or bfloat16 lands about this "
        "far off (compute in float32 or float64), and so do a result rounded to a few decimals (return it "
        "unrounded) and a number slightly off in your formula",
    ),
    # named with correction=1 only, and told with numbers alone with the notebook's correction=0 (helper 96)
    "bytes not scaled, correction=0": (
        lambda images: images.double().std(correction=0).item(),
        "255 times too large: scale the bytes to [0, 1] (divide by 255) first",
    ),
    "variance, correction=0": (
        lambda images: (images.double() / 255).var(correction=0).item(),
        "the variance: take its square root",
    ),
    "std of the mean brightness, correction=0": (
        lambda images: pixels(images).mean(1).std(correction=0).item(),
        "the std of the images' mean brightness, not of all pixels",
    ),
    "divided by 256": (
        lambda images: (images.double() / 256).std(correction=0).item(),
        "255/256 of the std: the bytes run from 0 to 255, so divide by 255 (not 256)",
    ),
    "a 5% error is no near miss": (
        lambda images: 1.05 * (images.double() / 255).std().item(),
        "the pixel std is 0.238722, but you returned 0.250698. Stuck?",
    ),
    # the next five were told numbers only, or PyTorch's error alone (helper 110)
    "the notebook's pixels": (
        lambda images: notebook_pixels.std().item(),
        "`pixel_std` uses the notebook's `notebook_pixels`: compute from the `images` it is given (its argument)",
    ),
    "the bytes' std": (lambda images: images.std().item(), "the images are bytes (uint8): convert them first"),
    "NumPy's std of the tensor": (lambda images: np.std(images) / 255, "NumPy's functions want a NumPy array"),
    "the std of each pixel position, averaged": (
        lambda images: pixels(images).std(dim=0).mean().item(),
        "the std of each pixel position across the images, averaged, not the std of all pixels",
    ),
    "rounded to 4 decimals": (
        lambda images: round((images.double() / 255).std().item(), 4),
        "and so do a result rounded to a few decimals (return it unrounded)",
    ),
    # 0 (the per-image std of the black and white batch) used to be taken for the per-image mistake, whatever it
    # returned elsewhere
    "zero": (
        lambda images: 0.0,
        "on 4 random images of different brightness, the pixel std is 0.238722, but you returned 0.000000",
    ),
}


@pytest.mark.parametrize("answer", PIXEL_STD_RIGHT.values(), ids=PIXEL_STD_RIGHT)
def test_pixel_std_right_answers_pass(answer):
    assert_right(nb01.q1, answer)


@pytest.mark.parametrize("answer, sentence", PIXEL_STD_WRONG.values(), ids=PIXEL_STD_WRONG)
def test_pixel_std_wrong_answers_get_their_sentence(answer, sentence):
    assert_wrong(nb01.q1, answer, sentence)


def test_pixel_std_describes_the_images_it_was_given_by_their_count():
    test_images = torch.randint(0, 256, (10_000, 2, 2), dtype=torch.uint8)
    assert "On the 10,000 test images it gives" in assert_right(
        nb01.q1, PIXEL_STD_RIGHT["float64, sample std"], test_images
    )
    train_images = torch.randint(0, 256, (60_000, 2, 2), dtype=torch.uint8)
    assert "On the 60,000 training images it gives" in assert_right(
        nb01.q1, PIXEL_STD_RIGHT["NumPy float64"], train_images
    )


def test_pixel_std_handed_the_dataset_instead_of_its_images_names_what_it_expects():
    data = FashionMNIST(*(torch.zeros(2, 28, 28, dtype=torch.uint8), torch.zeros(2, dtype=torch.long)) * 2, "tiny")
    message = nb01.q1.verdict(PIXEL_STD_RIGHT["float64, sample std"], data).message
    assert message == (
        "Not yet: check() expects a batch of images such as data.train_images (a uint8 tensor, not the dataset or "
        "a NumPy array) after your function, but it got a FashionMNIST object."
    )
    # a NumPy array was called "the dataset object" (helper-88)
    message = nb01.q1.verdict(PIXEL_STD_RIGHT["float64, sample std"], data.train_images.numpy()).message
    assert "(a uint8 tensor, not the dataset or a NumPy array)" in message and "NumPy uint8 array" in message


@pytest.mark.parametrize("exercise", [nb01.q1, nb01.q3], ids=["q1", "q3"])
def test_images_converted_before_the_check_are_refused_with_the_fix(exercise):
    images = torch.zeros(3, 28, 28)
    message = exercise.verdict(lambda x: 0.0, images).message
    assert message.startswith(
        "Not yet: check() expects the images as loaded, bytes from 0 to 255 (uint8) such as data.train_images, "
        "after your function, but it got torch.float32 values: pass them without converting them"
    ), message


# q3: within + between


def split(images):
    x = pixels(images)
    return x.var(dim=1, correction=0).mean(), x.mean(dim=1).var(correction=0)


def split_half(images):
    x = images.flatten(1).half() / 255
    return x.var(dim=1, correction=0).mean(), x.mean(dim=1).var(correction=0)


WITHIN_BETWEEN_RIGHT = {
    "floats": lambda images: tuple(v.item() for v in split(images)),
    "stacked": lambda images: torch.stack(split(images)),
    "float32 list": lambda images: [v.float() for v in split(images)],
    "NumPy array": lambda images: np.array([v.item() for v in split(images)]),
    "by the law of total variance": lambda images: (
        pixels(images).var(correction=0) - split(images)[1],
        split(images)[1],
    ),
    "generator": lambda images: (v for v in split(images)),
    # a (1,) tensor beside a 0-d one could not be stacked, and was refused (helper 110)
    "a (1,) tensor beside a 0-d one": lambda images: (split(images)[0].view(1), split(images)[1]),
}

WITHIN_BETWEEN_WRONG = {
    # PyTorch's error alone (helper 110)
    "784 pixels assumed": (
        lambda images: split(images.view(len(images), 784)),
        "your function assumes 784 pixels (28 × 28) an image; the check's cases have other sizes",
    ),
    "swapped": (lambda images: split(images)[::-1], "your two numbers are swapped: return (within, between)"),
    "sample variance": (
        lambda images: (pixels(images).var(dim=1).mean(), pixels(images).mean(dim=1).var()),
        "you used the sample variance (correction=1)",
    ),
    # correction=0 in one part only: told the numbers alone (helper-88)
    "sample variance between images only": (
        lambda images: (pixels(images).var(dim=1, correction=0).mean(), pixels(images).mean(dim=1).var()),
        "your between-image part uses the sample variance (correction=1, var()'s default)",
    ),
    "sample variance within images only": (
        lambda images: (pixels(images).var(dim=1).mean(), pixels(images).mean(dim=1).var(correction=0)),
        "your within-image part uses the sample variance (correction=1, var()'s default)",
    ),
    "standard deviations": (
        lambda images: (pixels(images).std(dim=1, correction=0).mean(), pixels(images).mean(dim=1).std(correction=0)),
        "you returned standard deviations: return variances, which add up",
    ),
    "bytes": (
        lambda images: tuple(255**2 * v for v in split(images)),
        "your numbers are far too large: divide the bytes by 255 first",
    ),
    # both told with numbers alone (helper 96)
    "the mean per-image std, squared, as within": (
        lambda images: (pixels(images).std(dim=1, correction=0).mean() ** 2, split(images)[1]),
        "your within-image part is the square of the mean per-image std",
    ),
    "the total variance as within": (
        lambda images: (pixels(images).var(correction=0), split(images)[1]),
        "your within-image part is the variance of all pixels, the total",
    ),
    "one number": (
        lambda images: split(images)[0],
        "should return the pair (within, between), shape (2,) on 4 random images of different brightness, but "
        "returned shape ()",
    ),
    # "should return a tensor of shape (2,)", where the notebook asks for both, in that order (helper 96)
    "a dict": (
        lambda images: dict(zip(("within", "between"), split(images))),
        "`within_and_between` should return the pair (within, between) (a tuple, a list or a tensor of shape (2,)), "
        "but on 4 random images of different brightness it returned a dict of 2 entries ('within', 'between')",
    ),
    "zeroes an image in place": (
        lambda images: split(images.index_fill_(0, torch.tensor([0]), 0)),
        "changed the input it was given: leave the images as they are; compute on a converted copy",
    ),
    "float16": (
        lambda images: split_half(images),
        "but you returned 0.03114 and 0.02585: 0.032% off, close but not within the check's 0.01%. Arithmetic in "
        "float16",
    ),
    "total and zero": (
        lambda images: (pixels(images).var(correction=0), 0.0),
        (
            "on 4 random images of different brightness, the within-image variance is 0.03115 and the "
            "between-image variance 0.02584, but you returned 0.05699 and 0.00000"
        ),
    ),
}


@pytest.mark.parametrize("answer", WITHIN_BETWEEN_RIGHT.values(), ids=WITHIN_BETWEEN_RIGHT)
def test_within_and_between_right_answers_pass(answer):
    assert_right(nb01.q3, answer)


@pytest.mark.parametrize("answer, sentence", WITHIN_BETWEEN_WRONG.values(), ids=WITHIN_BETWEEN_WRONG)
def test_within_and_between_wrong_answers_get_their_sentence(answer, sentence):
    assert_wrong(nb01.q3, answer, sentence)


def test_within_and_between_is_checked_on_the_notebooks_images_too():
    # an answer right on the small cases, wrong on the notebook's images (here: a part of them), was praised there
    images = torch.randint(0, 256, (200, 6, 6), dtype=torch.uint8)

    def first_hundred(batch):
        return WITHIN_BETWEEN_RIGHT["floats"](batch[:100])

    assert_right(nb01.q3, first_hundred)
    assert_wrong(nb01.q3, first_hundred, "on 200 images, the within-image variance is", images)
    assert "On 200 images: within" in assert_right(nb01.q3, WITHIN_BETWEEN_RIGHT["floats"], images)


@pytest.mark.parametrize("exercise", [nb01.q1, nb01.q3], ids=["q1", "q3"])
def test_one_number_handed_in_for_the_batch_is_named(exercise):  # len() of a 0-d tensor raised (helper 112)
    message = exercise.verdict(lambda images: 0.0, torch.tensor(3, dtype=torch.uint8)).message
    assert message.startswith("Not yet: check() expects a batch of images (images, height, width)"), message


@pytest.mark.parametrize("exercise", [nb01.q1, nb01.q3], ids=["q1", "q3"])
def test_an_empty_batch_is_named_as_the_data_not_the_answer(exercise):  # the answer was blamed for a NaN (helper 110)
    message = exercise.verdict(lambda images: 0.0, torch.zeros(0, 28, 28, dtype=torch.uint8)).message
    assert message.startswith(
        "Not yet: check() expects a batch of images such as data.train_images after your "
        "function, but it got an empty batch"
    ), message


@pytest.mark.parametrize("exercise", [nb01.q1, nb01.q3], ids=["q1", "q3"])
def test_one_image_handed_in_for_the_batch_is_named(exercise):
    # one 28x28 image used to be praised as "28 images"
    message = exercise.verdict(lambda x: 0.0, torch.zeros(28, 28, dtype=torch.uint8)).message
    assert message == (
        "Not yet: check() expects a batch of images (images, height, width) such as data.train_images after your "
        "function, but it got a torch.uint8 tensor of shape (28, 28): one image is not a batch."
    )


# q5: the closest pair of average images


def closest(means, p=2.0):
    flat = means.double().flatten(1)
    distances = torch.cdist(flat, flat, p=p).fill_diagonal_(float("inf"))
    return divmod(int(distances.argmin()), len(means))


def closest_by_loops(means):
    flat = means.double().flatten(1).numpy()
    pairs = [(i, j) for i in range(len(flat)) for j in range(i + 1, len(flat))]
    return min(pairs, key=lambda p: ((flat[p[0]] - flat[p[1]]) ** 2).sum())  # squared distance: same order


CLOSEST_RIGHT = {
    "divmod": closest,
    "reversed order": lambda means: closest(means)[::-1],
    "tensor": lambda means: torch.tensor(closest(means)),
    "NumPy norms": lambda means: np.unravel_index(
        np.argmin(
            np.linalg.norm(means.numpy().reshape(len(means), 1, -1) - means.numpy().reshape(1, len(means), -1), axis=2)
            + np.diag(np.full(len(means), np.inf))
        ),
        (len(means), len(means)),
    ),
    "loops over pairs": closest_by_loops,
    "a (1,) index beside a 0-d one": lambda means: (torch.tensor([closest(means)[0]]), torch.tensor(closest(means)[1])),
    "NumPy ints in a list": lambda means: [np.int64(v) for v in closest(means)],
}


def farthest(means):
    flat = means.double().flatten(1)
    return divmod(int(torch.cdist(flat, flat).argmax()), len(means))


CLOSEST_WRONG = {
    # told "not class indices ... count from 0", or PyTorch's error alone (helper 110)
    "the notebook's class means": (
        lambda means: closest(class_means),
        "`closest_pair` uses the notebook's `class_means`: compute from the `class_means` it is given",
    ),
    "10 classes assumed": (
        lambda means: min(
            ((i, j) for i in range(10) for j in range(i + 1, 10)),
            key=lambda p: float((means[p[0]] - means[p[1]]).norm()),
        ),
        "your function assumes the notebook's 10 classes; the check's cases have other numbers",
    ),
    "farthest": (farthest, "is the pair farthest apart; look for the smallest distance"),
    "diagonal kept": (
        lambda means: divmod(int(torch.cdist(means.flatten(1), means.flatten(1)).argmin()), len(means)),
        "you returned (0, 0), a class and itself: compare only different classes",
    ),
    # infinity on the diagonal, as told, then argmax: once told it returned "distance 0"
    "infinity on the diagonal, then argmax": (
        lambda means: divmod(
            int(torch.cdist(means.flatten(1), means.flatten(1)).fill_diagonal_(float("inf")).argmax()), len(means)
        ),
        "take the smallest distance (infinity on the diagonal, then argmin; an argmax picks that infinity)",
    ),
    "counted from 1": (
        lambda means: tuple(v + 1 for v in closest(means)),
        "(2, 4) are not class indices between 0 and 3: the check's cases have other numbers of classes than the "
        "notebook's 10, so take the count from the tensor you are given, and count from 0",
    ),
    # told the range alone (helper 96)
    "the notebook's 10 classes assumed": (
        lambda means: divmod(
            int(torch.cdist(means.flatten(1), means.flatten(1)).fill_diagonal_(float("inf")).argmin()), 10
        ),
        "take the count from the tensor you are given",
    ),
    "a set": (lambda means: set(closest(means)), "`closest_pair` should return two class indices (i, j) (a tuple"),
    "a row found by / (a fraction)": (
        lambda means: (closest(means)[0] + 0.5, closest(means)[1]),
        "`closest_pair` should return whole-number indices, but on 4 average images",
    ),
    # told "should return a tensor of shape (2,)" (helper-88)
    "class names": (lambda means: ("T-shirt/top", "Shirt"), "it returned the names ('T-shirt/top', 'Shirt')"),
    "second closest": (lambda means: (0, 1), "the closest pair is (1, 3) at distance 3.000, but you returned (0, 1)"),
    # other distances used to pass the visible cases: they pick the same pair there
    "sum of absolute differences": (
        lambda means: closest(means, p=1.0),
        "(2, 3) is the closest pair by the sum of absolute differences; the exercise asks for the Euclidean distance",
    ),
    "largest pixel difference": (
        lambda means: closest(means, p=float("inf")),
        "(0, 1) is the closest pair by the largest pixel difference",
    ),
}


@pytest.mark.parametrize("answer", CLOSEST_RIGHT.values(), ids=CLOSEST_RIGHT)
def test_closest_pair_right_answers_pass(answer):
    assert_right(nb01.q5, answer)


@pytest.mark.parametrize("answer, sentence", CLOSEST_WRONG.values(), ids=CLOSEST_WRONG)
def test_closest_pair_wrong_answers_get_their_sentence(answer, sentence):
    assert_wrong(nb01.q5, answer, sentence)


def test_closest_pair_handed_the_images_names_the_average_images_it_expects():
    # the training images used to be told about the names "of the 60000 classes"
    message = nb01.q5.verdict(closest, torch.zeros(60, 28, 28, dtype=torch.uint8)).message
    assert message == (
        "Not yet: check() expects the average image of each class (class_means, a float tensor: classes, height, "
        "width) after your function, but it got a torch.uint8 tensor of shape (60, 28, 28)."
    )
    assert "closest average images are" in assert_right(nb01.q5, closest, torch.rand(5, 28, 28))  # 5 of the 10


# the grader's hidden cases


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_on_hidden_cases_right_answers_still_pass_and_wrong_ones_still_fail(seed):
    for exercise, right, wrong in (
        (nb01.q1, PIXEL_STD_RIGHT, PIXEL_STD_WRONG),
        (nb01.q3, WITHIN_BETWEEN_RIGHT, WITHIN_BETWEEN_WRONG),
        (nb01.q5, CLOSEST_RIGHT, CLOSEST_WRONG),
    ):
        for answer in list(right.values())[:3]:
            assert_right(exercise, answer, seed=seed)
        for answer, _ in list(wrong.values())[:4]:
            assert_wrong(exercise, answer, "", seed=seed)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(0, 255), min_size=4, max_size=60), st.integers(1, 4))
def test_pixel_std_checks_any_batch_against_the_std_of_all_pixels(values, count):
    images = torch.tensor(values[: len(values) // count * count], dtype=torch.uint8).view(count, -1, 1)
    assert_right(nb01.q1, PIXEL_STD_RIGHT["float32 tensor, population std"], images)
    if pixels(images).std() > 0:
        assert_wrong(nb01.q1, PIXEL_STD_WRONG["variance"][0], "", images)


def closest_by_the_first_row_only(means):
    rows = means[:, 0]
    distances = torch.cdist(rows, rows)
    distances.fill_diagonal_(float("inf"))
    return divmod(int(distances.argmin()), len(means))


def test_a_distance_is_named_only_when_it_explains_the_answer_on_every_case():
    """Comparing the first rows only once agreed with the sum of absolute differences on every visible case, and
    was told so; a case where the first row and column alone pick another pair tells them apart."""
    for seed in (None, 3):  # the visible cases (the student's check) and the hidden ones
        result = nb01.q5.verdict(closest_by_the_first_row_only, seed=seed)
        assert result.status == WRONG and "the closest pair is" in result.message, result.message
        assert "absolute differences" not in result.message and "largest pixel difference" not in result.message


@pytest.mark.parametrize("seed", range(5))
def test_closest_pairs_hidden_cases_hold_as_many_classes_as_the_notebook(seed):
    """An answer that searched the first 6 classes only passed the strict check too (helper 110)."""
    cases = nb01._mean_image_cases(torch.Generator().manual_seed(seed))
    assert any(len(means) == 10 for case, means in cases.items() if case.startswith("hidden case"))
