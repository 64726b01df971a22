"""Exercises of notebook 01: pixel statistics, the report's 0.3202, and which classes look alike."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..data import pixel_stats
from ..dataset import CLASS_NAMES, FashionMNIST
from . import (
    Exercise,
    Misused,
    Wrong,
    as_indices,
    as_number,
    as_tensor,
    call,
    close,
    describe,
    describe_images,
    expect_classes,
    expect_data,
    in_words,
    missing_exercise,
    refuse_notebook_values,
    timed,
)


def _cases(generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """uint8 image batches the checks use besides the notebook's, each named for the messages; with a
    generator, also random batches drawn from it (the grader's hidden cases)."""
    g = torch.Generator().manual_seed(1)
    black, white = torch.zeros(28, 28, dtype=torch.uint8), torch.full((28, 28), 255, dtype=torch.uint8)
    brightness = torch.tensor([20, 90, 160, 250]).view(4, 1, 1)  # images that differ in overall brightness
    cases = {
        # first, so that a message names its numbers: exercise 2 asks students to predict the black and white batch's
        "4 random images of different brightness": (torch.rand(4, 28, 28, generator=g) * brightness).to(torch.uint8),
        "a batch of one black and one white 28x28 image": torch.stack([black, white]),
        "3 random images of 5x7 pixels": torch.randint(0, 256, (3, 5, 7), generator=g, dtype=torch.uint8),
    }
    if generator is not None:
        for n in range(3):
            count, height, width = (int(v) for v in torch.randint(2, 12, (3,), generator=generator))
            top = torch.randint(1, 256, (count, 1, 1), generator=generator)  # a brightness of its own per image
            images = (torch.rand(count, height, width, generator=generator) * top).to(torch.uint8)
            cases[f"hidden case {n + 1}: {count} random images of {height}x{width} pixels"] = images
    return cases


def _pixels(images: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    # one row of [0, 1] pixels per image (divided in place on its one copy; the images stay as they were)
    return images.to(dtype, copy=True).flatten(1).div_(255)


def _expect_images(images: object) -> None:
    expect_data(
        images, Tensor, "a batch of images such as data.train_images (a uint8 tensor, not the dataset or a NumPy array)"
    )
    if images.dim() < 3:
        raise Misused(
            f"check() expects a batch of images (images, height, width) such as data.train_images after your "
            f"function, but it got {describe(images)}: one image is not a batch"
        )
    if len(images) == 0:
        raise Misused(
            "check() expects a batch of images such as data.train_images after your function, but it got an empty "
            f"batch, {describe(images)}: pass the images themselves, not a slice of none"
        )
    if images.dtype != torch.uint8:  # the bytes as loaded: the answers and the reference scale them by 255 themselves
        raise Misused(
            f"check() expects the images as loaded, bytes from 0 to 255 (uint8) such as data.train_images, after "
            f"your function, but it got {images.dtype} values: pass them without converting them"
        )


Mistake = Callable[[Tensor], tuple[float, ...]]


def _diagnose(
    answers: dict[str, tuple[float, ...]],
    mistakes: dict[str, Mistake | tuple[Mistake, ...]],
    cases: dict[str, Tensor],
) -> str | None:
    """The first mistake whose computed result matches the answer on every case, or None: a mistake is
    named only when it explains all of the answer, not one number that happens to agree. A mistake given
    as several ways to make it (with either correction, say) is named when one of them explains it all."""
    for message, ways in mistakes.items():
        for wrong in ways if isinstance(ways, tuple) else (ways,):
            if all(all(close(g, w, scale=1e-3) for g, w in zip(answers[case], wrong(cases[case]))) for case in answers):
                return message
    return None


def _near_miss(got: tuple[float, ...], right: tuple[float, ...]) -> str:
    """What to say of an answer within 1% of the right one but outside the checks' 0.01%: how far off it is,
    and its two likely causes, half-precision arithmetic (float16 keeps about 3 significant digits) and a
    number slightly off in the formula (the check cannot tell which); else nothing."""
    if all(close(g, float(r), tolerance=1e-2) for g, r in zip(got, right)):
        off = max(abs(g - float(r)) / max(abs(float(r)), 1e-12) for g, r in zip(got, right))
        return (
            f": {100 * off:.2g}% off, close but not within the check's 0.01%. Arithmetic in float16 or bfloat16 "
            f"lands about this far off (compute in float32 or float64), and so do a result rounded to a few "
            f"decimals (return it unrounded) and a number slightly off in your formula"
        )
    return ""


# said of an answer that changed the images it was given: on the notebook's data that would change the dataset
_KEEP_IMAGES = "leave the images as they are; compute on a converted copy, such as images.double() / 255"

# errors with one likely cause in these exercises (a fragment of the message -> what to do; helper 110)
_IMAGE_ADVICE = {
    "only support floating point": "the images are bytes (uint8): convert them first, images.double() / 255",
    "received an invalid combination of arguments": "NumPy's functions want a NumPy array: pass images.numpy(), or "
    "use the tensor's own methods",
    "is invalid for input of size": "your function assumes 784 pixels (28 × 28) an image; the check's cases have "
    "other sizes, so take them from the tensor (images.flatten(1))",
}


def _refuse_the_notebooks_data(answer: Callable[..., object], name: str, argument: str) -> None:
    """Wrong if the answer reads the notebook's tensors or dataset (`data`, `class_means`, `black_and_white`) in
    place of its argument: on the check's cases it returned the notebook's numbers (helper 110)."""
    refuse_notebook_values(
        answer, (Tensor, FashionMNIST), name, f"compute from the `{argument}` it is given (its argument)"
    )


# q1: the std of all pixels

PER_IMAGE_STD = "the mean of the per-image standard deviations"
ONE_STD = "not the std of all pixels: take one std over every pixel of every image at once"


def _check_pixel_std(pixel_std, train_images: Tensor | None = None, generator=None) -> str:
    if train_images is not None:
        _expect_images(train_images)
    _refuse_the_notebooks_data(pixel_std, "pixel_std", "images")
    cases = _cases(generator)
    answers, first_wrong = {}, None
    for case, images in cases.items():
        returned = call(pixel_std, images, case=case, keep_input=_KEEP_IMAGES, advice=_IMAGE_ADVICE)
        got = as_number(returned, "pixel_std", case)
        answers[case] = (got,)
        x = _pixels(images)
        if first_wrong is None and not any(close(got, r, scale=1e-3) for r in (x.std(correction=0), x.std())):
            first_wrong = case  # either correction is fine
    if first_wrong is not None:
        mistake = _diagnose(
            answers,
            {
                f"{PER_IMAGE_STD} (in our reading the report's mistake: its 0.3202 is this mean with "
                f"correction=0), {ONE_STD}": (lambda x: (x.std(dim=1).mean(),)),
                f"{PER_IMAGE_STD}, with correction=0 (in our reading, the report's 0.3202), {ONE_STD}": (
                    lambda x: (x.std(dim=1, correction=0).mean(),)
                ),
                # the notebook computes with correction=0, the methods' default is 1: each mistake with either
                "255 times too large: scale the bytes to [0, 1] (divide by 255) first": (
                    lambda x: (255 * x.std(),),
                    lambda x: (255 * x.std(correction=0),),
                ),
                "255/256 of the std: the bytes run from 0 to 255, so divide by 255 (not 256) to scale them to [0, 1]": (
                    lambda x: (x.std() * 255 / 256,),
                    lambda x: (x.std(correction=0) * 255 / 256,),
                ),
                "the variance: take its square root": (lambda x: (x.var(),), lambda x: (x.var(correction=0),)),
                "the std of each pixel position across the images, averaged, not the std of all pixels: take one "
                "std over every pixel of every image at once": (
                    lambda x: (x.std(dim=0).mean(),),
                    lambda x: (x.std(dim=0, correction=0).mean(),),
                ),
                "the std of the images' mean brightness, not of all pixels": (
                    lambda x: (x.mean(dim=1).std(),),
                    lambda x: (x.mean(dim=1).std(correction=0),),
                ),
            },
            {case: _pixels(images) for case, images in cases.items()},
        )
        got, right = answers[first_wrong][0], float(_pixels(cases[first_wrong]).std(correction=0))  # as printed
        if mistake is not None:
            raise Wrong(f"on {first_wrong}, you returned {got:.4f}, {mistake}")
        raise Wrong(
            f"on {first_wrong}, the pixel std is {right:.6f}, but you returned {got:.6f}{_near_miss((got,), (right,))}"
        )
    praise = "your pixel_std is right on a black and a white image, on images of different brightness and on 5x7 images"
    if train_images is not None:
        what = describe_images(train_images)
        # the lab's pixel_stats counts the 256 byte values instead of copying the pixels (correction=1)
        (_, sample_std), seconds = timed(pixel_stats, train_images)
        n = train_images.numel()
        population_std = sample_std * math.sqrt((n - 1) / n) if n > 1 else 0.0
        value = as_number(call(pixel_std, train_images, case=what, reference_s=seconds), "pixel_std", what)
        if not any(close(value, right, scale=1e-3) for right in (population_std, sample_std)):
            raise Wrong(
                f"on {what}, the pixel std is {population_std:.6f}, but you returned {value:.6f}"
                f"{_near_miss((value,), (population_std,))}"
            )
        praise += f". On {what} it gives {value:.4f}"
    return praise + "."


q1 = Exercise(
    "nb01.q1",
    _check_pixel_std,
    hint_text="The bytes run from 0 to 255: scale them to [0, 1] first. Then take one standard deviation over every"
    " pixel of every image together, with no step per image, and return it as a Python float.",
    lab_functions=(pixel_stats,),
)


# q3: the variance of all pixels = within images + between images


def _split(x: Tensor) -> tuple[Tensor, Tensor]:
    return x.var(dim=1, correction=0).mean(), x.mean(dim=1).var(correction=0)


_SPLIT_MISTAKES = {  # what the student did: what it gives from a [0, 1] pixel batch x
    "your two numbers are swapped: return (within, between)": lambda x: _split(x)[::-1],
    "you used the sample variance (correction=1); the parts add up to the variance of all pixels only with the "
    "population variance: pass correction=0 to var()": lambda x: (x.var(dim=1).mean(), x.mean(dim=1).var()),
    # var()'s default is correction=1: a student who passes correction=0 in one part only
    "your between-image part uses the sample variance (correction=1, var()'s default): pass correction=0 there "
    "too": lambda x: (x.var(dim=1, correction=0).mean(), x.mean(dim=1).var()),
    "your within-image part uses the sample variance (correction=1, var()'s default): pass correction=0 there "
    "too": lambda x: (x.var(dim=1).mean(), x.mean(dim=1).var(correction=0)),
    "you returned standard deviations: return variances, which add up": lambda x: (
        x.std(dim=1, correction=0).mean(),
        x.mean(dim=1).std(correction=0),
    ),
    "you returned the square root of the within part and the std of the means: return variances, "
    "which add up": lambda x: (
        x.var(dim=1, correction=0).mean().sqrt(),
        x.mean(dim=1).std(correction=0),
    ),
    "your numbers are far too large: divide the bytes by 255 first": lambda x: tuple(255**2 * v for v in _split(x)),
    "your within-image part is the square of the mean per-image std (the report's 0.3202, squared, in our reading): "
    "take the mean of the per-image variances instead": lambda x: (
        x.std(dim=1, correction=0).mean() ** 2,
        _split(x)[1],
    ),
    "your within-image part is the variance of all pixels, the total: within is the mean of each image's own "
    "variance": lambda x: (x.var(correction=0), _split(x)[1]),
}


_PAIR = "the pair (within, between)"


def _stds_and_split(images: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Each image's pixel std and the (within, between) split, from one float32 copy of the pixels."""
    x = _pixels(images, torch.float32)
    return x.std(dim=1, correction=0), _split(x)


def _check_within_and_between(within_and_between, train_images: Tensor | None = None, generator=None) -> str:
    if train_images is not None:
        _expect_images(train_images)
    _refuse_the_notebooks_data(within_and_between, "within_and_between", "images")
    cases = _cases(generator)
    answers, first_wrong = {}, None
    for case, images in cases.items():
        returned = call(within_and_between, images, case=case, keep_input=_KEEP_IMAGES, advice=_IMAGE_ADVICE)
        got = as_tensor(returned, "within_and_between", case, (2,), expected=_PAIR)
        answers[case] = tuple(got.tolist())
        if first_wrong is None and not all(
            close(g, float(r), scale=1e-3) for g, r in zip(answers[case], _split(_pixels(images)))
        ):
            first_wrong = case
    if first_wrong is not None:
        mistake = _diagnose(answers, _SPLIT_MISTAKES, {case: _pixels(images) for case, images in cases.items()})
        if mistake is not None:
            raise Wrong(f"on {first_wrong}, {mistake}")
        within, between = (float(v) for v in _split(_pixels(cases[first_wrong])))
        got = answers[first_wrong]
        raise Wrong(
            f"on {first_wrong}, the within-image variance is {within:.5f} and the between-image variance "
            f"{between:.5f}, but you returned {got[0]:.5f} and {got[1]:.5f}{_near_miss(got, (within, between))}"
        )
    praise = f"within + between equals the variance of all pixels on each of the {in_words(len(cases))} cases"
    if train_images is not None:
        what = describe_images(train_images)
        # float32 is enough for 4 decimals, and half the fresh memory of a float64 copy
        (per_image_std, right), seconds = timed(_stds_and_split, train_images)
        answer = call(within_and_between, train_images, case=what, reference_s=seconds)
        within, between = as_tensor(answer, "within_and_between", what, (2,), expected=_PAIR).tolist()
        if not all(close(g, float(r), tolerance=1e-3, scale=1e-3) for g, r in zip((within, between), right)):
            raise Wrong(
                f"on {what}, the within-image variance is {float(right[0]):.5f} and the between-image variance "
                f"{float(right[1]):.5f}, but you returned {within:.5f} and {between:.5f}"
                f"{_near_miss((within, between), right)}"
            )
        mean_std = float(per_image_std.mean())
        praise += (
            f". On {what}: within {within:.4f} + between {between:.4f} = {within + between:.4f} = "
            f"{math.sqrt(within + between):.4f}², the pixel variance; √within = {math.sqrt(within):.4f}; the "
            f"mean of the per-image stds: {mean_std:.4f}"
        )
    return praise + "."


q3 = Exercise(
    "nb01.q3",
    _check_within_and_between,
    # a nudge, not the recipe: which dimension each variance runs along is the exercise (solution() has the rest)
    hint_text="Scale to [0, 1] and give each image one row of all its pixels (the check's images are not all "
    "28×28). Each part is then one variance along one dimension: 'within' looks inside every row, 'between' "
    "compares something each row has exactly one of. Use correction=0 for both, or the parts will not add up. "
    "Return two floats, within first.",
)


# q5: the two classes whose average images are closest


def _distances(means: Tensor, p: float = 2.0) -> Tensor:
    flat = means.double().flatten(1)
    return torch.cdist(flat, flat, p=p)


_INDICES = "two class indices (i, j)"


def _closest(means: Tensor, p: float = 2.0) -> tuple[int, int]:
    distances = _distances(means, p).fill_diagonal_(math.inf)
    i, j = divmod(int(distances.argmin()), len(means))
    return min(i, j), max(i, j)


def _mean_image_cases(generator: torch.Generator | None = None) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(2)
    far_apart = (torch.arange(4, dtype=torch.float64).view(4, 1, 1).expand(4, 6, 6) * 10).clone()  # 10 units apart
    far_apart[3] = far_apart[1] + 0.5  # classes 1 and 3 (not neighbours in the index) nearly alike
    noisy = torch.rand(6, 28, 28, generator=g, dtype=torch.float64)
    noisy[4] = noisy[0] + 0.01 * torch.rand(28, 28, generator=g, dtype=torch.float64)
    cases = {
        "4 average images of 6x6 pixels where classes 1 and 3 are alike": far_apart,
        "6 random 28x28 average images": noisy,
        # closest: (0, 3) by Euclidean distance, (2, 3) by the sum of absolute differences, (0, 1) by the largest
        "4 average images of 2x2 pixels where other distances pick other pairs": torch.tensor(
            [[[4, 3], [2, 0]], [[2, 1], [4, 2]], [[3, 0], [1, 4]], [[3, 0], [1, 0]]], dtype=torch.float64
        ),
        # (0, 1) by every distance; (0, 2) by the first row or the first column alone
        "3 average images of 2x2 pixels, two of them alike in their first row and column": torch.tensor(
            [[[0, 0], [0, 0]], [[1, 0], [0, 0]], [[0, 0], [0, 5]]], dtype=torch.float64
        ),
    }
    if generator is not None:
        for n in range(2):  # the first as many as the notebook's classes, where a pair past the sixth was missed
            classes = 10 if n == 0 else int(torch.randint(3, 11, (1,), generator=generator))
            cases[f"hidden case {n + 1}: {classes} random 28x28 average images"] = torch.rand(
                classes, 28, 28, generator=generator, dtype=torch.float64
            )
    return cases


def _check_closest_pair(closest_pair, class_means: Tensor | None = None, classes=CLASS_NAMES, generator=None) -> str:
    if class_means is not None:
        what = "the average image of each class (class_means, a float tensor: classes, height, width)"
        expect_data(class_means, Tensor, what)
        if class_means.dim() != 3 or not class_means.is_floating_point():  # the images themselves, say
            raise Misused(f"check() expects {what} after your function, but it got {describe(class_means)}")
        expect_classes(classes, len(class_means), "the average images")
    _refuse_the_notebooks_data(closest_pair, "closest_pair", "class_means")
    cases = _mean_image_cases(generator)
    answers = {}
    advice = {
        **_IMAGE_ADVICE,
        "is out of bounds": "your function assumes the notebook's 10 classes; the check's cases have other numbers, so "
        "take the count from the tensor you are given (its len())",
    }
    for case, means in cases.items():
        got = call(closest_pair, means, case=case, advice=advice)
        if isinstance(got, (tuple, list)) and any(isinstance(v, str) for v in got):
            raise Wrong(
                f"`closest_pair` should return two class indices (i, j), but on {case} it returned the names "
                f"{tuple(got)}: return the classes' positions (the rows of the average images), not their names"
            )
        answers[case] = tuple(as_indices(got, "closest_pair", case, (2,), f": return {_INDICES}", _INDICES))
    for case, means in cases.items():
        i, j = answers[case]
        right = _closest(means)
        if (min(i, j), max(i, j)) == right:
            continue
        if not (0 <= i < len(means) and 0 <= j < len(means)):
            raise Wrong(
                f"on {case}, ({i}, {j}) are not class indices between 0 and {len(means) - 1}: the check's cases have "
                f"other numbers of classes than the notebook's 10, so take the count from the tensor you are given, "
                f"and count from 0"
            )
        distances = _distances(means)
        if i == j:
            raise Wrong(
                f"on {case}, you returned ({i}, {j}), a class and itself: compare only different classes and "
                f"take the smallest distance (infinity on the diagonal, then argmin; an argmax picks that infinity)"
            )
        if distances[i, j] == distances.max():
            raise Wrong(f"on {case}, ({i}, {j}) is the pair farthest apart; look for the smallest distance")
        for p, distance in ((1.0, "the sum of absolute differences"), (math.inf, "the largest pixel difference")):
            # named only when that distance explains the answer on every case, not one pair that happens to agree
            if all(tuple(sorted(answers[c])) == _closest(cases[c], p) for c in cases):
                raise Wrong(
                    f"on {case}, ({i}, {j}) is the closest pair by {distance}; the exercise asks for the Euclidean "
                    f"distance (the square root of the sum of squared differences), which makes {right} closest"
                )
        raise Wrong(
            f"on {case}, the closest pair is {right} at distance {distances[right]:.3f}, but you returned "
            f"({i}, {j}) at distance {distances[i, j]:.3f}"
        )
    praise = "your closest_pair finds the nearest pair of average images on every test case"
    if class_means is not None:
        what = "the training set's average images"
        returned = call(closest_pair, class_means, case=what)
        i, j = sorted(as_indices(returned, "closest_pair", what, (2,), f": return {_INDICES}", _INDICES))
        if (i, j) != _closest(class_means):
            raise Wrong(f"on {what}, the closest pair is {_closest(class_means)}, but you returned ({i}, {j})")
        praise += (
            f". On Fashion-MNIST the closest average images are {classes[i]} and {classes[j]}: "
            f"watch that pair in notebook 06's confusion matrix"
        )
    return praise + "."


q5 = Exercise(
    "nb01.q5",
    _check_closest_pair,
    hint_text="Treat each class's average image as one vector of all its pixels (784 for Fashion-MNIST; the check's "
    "cases have other sizes and numbers of classes too) and measure the Euclidean distance of "
    "every pair of classes. A class paired with itself is no answer: leave those pairs out, then return "
    "the pair (i, j) with the smallest distance.",
)

__getattr__ = missing_exercise(__name__, globals())
