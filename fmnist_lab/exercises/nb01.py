"""Exercises of notebook 01: pixel statistics, the report's 0.3202, and which classes look alike."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..data import CLASS_NAMES
from . import Exercise, Wrong, as_number, call, close


def _cases() -> dict[str, Tensor]:
    """uint8 image batches the checks use besides the notebook's, each named for the messages."""
    g = torch.Generator().manual_seed(1)
    black, white = torch.zeros(28, 28, dtype=torch.uint8), torch.full((28, 28), 255, dtype=torch.uint8)
    black_and_white = torch.stack([black, white])
    brightness = torch.tensor([20, 90, 160, 250]).view(4, 1, 1)  # images that differ in overall brightness
    varied = (torch.rand(4, 28, 28, generator=g) * brightness).to(torch.uint8)
    odd_shape = torch.randint(0, 256, (3, 5, 7), generator=g, dtype=torch.uint8)
    return {
        "a batch of one black and one white 28x28 image": black_and_white,
        "4 random images of different brightness": varied,
        "3 random images of 5x7 pixels": odd_shape,
    }


def _pixels(images: Tensor) -> Tensor:
    return images.double().flatten(1) / 255  # one row of [0, 1] pixels per image


# q1: the std of all pixels

def _check_pixel_std(pixel_std, train_images: Tensor | None = None, generator=None) -> str:
    for case, images in _cases().items():
        got = as_number(call(pixel_std, images, case=case), "pixel_std", case)
        x = _pixels(images)
        right = (float(x.std(correction=0)), float(x.std()))  # either correction is fine
        if any(close(got, r) for r in right):
            continue
        per_image = (float(x.std(dim=1, correction=0).mean()), float(x.std(dim=1).mean()))
        if any(close(got, r) for r in per_image):
            raise Wrong(f"on {case}, you returned {got:.4f}, the mean of the per-image standard deviations (the "
                        f"report's 0.3202 statistic), not the std of all pixels ({right[0]:.4f}). Take one std over "
                        f"every pixel of every image at once")
        if any(close(got, 255 * r, 1e-4) for r in right):
            raise Wrong(f"on {case}, you returned {got:.4f}, 255 times too large: scale the bytes to [0, 1] "
                        f"(divide by 255) first")
        if any(close(got, r * r) for r in right):
            raise Wrong(f"on {case}, you returned {got:.4f}, the variance: take its square root")
        raise Wrong(f"on {case}, the pixel std is {right[0]:.4f}, but you returned {got:.4f}")
    praise = ("your pixel_std is right on a black and a white image (0.5), on images of different brightness and "
              "on 5x7 images")
    if train_images is not None:
        value = as_number(call(pixel_std, train_images, case="the training images"), "pixel_std", "the training images")
        praise += f". On the {len(train_images):,} training images it gives {value:.4f}"
    return praise + "."


q1 = Exercise(
    "nb01.q1", _check_pixel_std,
    hint_text="Turn the bytes into floats in [0, 1] with images.double() / 255, then take .std() of the whole "
              "tensor (no dim argument: one std over all pixels). Return a float with .item() or float().",
)


# q2: the variance of all pixels = within images + between images

_SPLIT_MISTAKES = (  # (what the student did, what it gives from a [0, 1] pixel batch x)
    ("your two numbers are swapped: return (within, between)",
     lambda x: (x.mean(dim=1).var(correction=0), x.var(dim=1, correction=0).mean())),
    ("you used the sample variance (correction=1); the parts add up to the variance of all pixels only with the "
     "population variance: pass correction=0 to var()", lambda x: (x.var(dim=1).mean(), x.mean(dim=1).var())),
    ("you returned standard deviations: return variances, which add up",
     lambda x: (x.std(dim=1, correction=0).mean(), x.mean(dim=1).std(correction=0))),
    ("you returned standard deviations: return variances, which add up",
     lambda x: (x.var(dim=1, correction=0).mean().sqrt(), x.mean(dim=1).std(correction=0))),
    ("your numbers are far too large: divide the bytes by 255 first",
     lambda x: (255**2 * x.var(dim=1, correction=0).mean(), 255**2 * x.mean(dim=1).var(correction=0))),
)


def _check_within_and_between(within_and_between, train_images: Tensor | None = None, generator=None) -> str:
    answers, pixels = [], []
    for case, images in _cases().items():
        got = call(within_and_between, images, case=case)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise Wrong(f"`within_and_between` should return two numbers (within, between), but on {case}, it "
                        f"returned {type(got).__name__} {str(got)[:60]}")
        answers.append(tuple(as_number(v, "within_and_between", case) for v in got))
        pixels.append(_pixels(images))

    def matches(rule) -> list[bool]:
        return [all(close(g, float(v), 1e-4) for g, v in zip(answer, rule(x))) for answer, x in zip(answers, pixels)]

    right = matches(lambda x: (x.var(dim=1, correction=0).mean(), x.mean(dim=1).var(correction=0)))
    if not all(right):
        first = right.index(False)
        case = list(_cases())[first]
        for message, rule in _SPLIT_MISTAKES:  # a mistake explains the answer only if it does so on every case
            if all(matches(rule)):
                raise Wrong(f"on {case}, {message}")
        x = pixels[first]
        raise Wrong(f"on {case}, the within-image variance is {float(x.var(dim=1, correction=0).mean()):.5f} and the "
                    f"between-image variance {float(x.mean(dim=1).var(correction=0)):.5f}, but you returned "
                    f"{answers[first][0]:.5f} and {answers[first][1]:.5f}")
    praise = "within + between equals the variance of all pixels on each of the three cases"
    if train_images is not None:
        case = "the training images"
        answer = call(within_and_between, train_images, case=case)
        within, between = (as_number(v, "within_and_between", case) for v in answer)
        x = _pixels(train_images)
        mean_std = float(x.std(dim=1, correction=0).mean())
        praise += (f". On the training images: within {within:.4f} + between {between:.4f} = {within + between:.4f} = "
                   f"{math.sqrt(within + between):.4f}², the pixel variance. The per-image stds see only the within "
                   f"part, √{within:.4f} = {math.sqrt(within):.4f}, and their mean, {mean_std:.4f}, is smaller still "
                   f"(a mean of square roots is at most the square root of the mean)")
    return praise + "."


q3 = Exercise(
    "nb01.q3", _check_within_and_between,
    hint_text="x = images.double().flatten(1) / 255 gives one row per image. Within: x.var(dim=1, correction=0)"
              ".mean() (the spread inside each image, averaged). Between: x.mean(dim=1).var(correction=0) (how much "
              "the images' average brightness varies). Return both as floats, in that order.",
)


# q3: the two classes whose average images are closest

def _closest(means: Tensor) -> tuple[tuple[int, int], Tensor]:
    flat = means.double().flatten(1)
    distances = torch.cdist(flat, flat)
    distances.fill_diagonal_(math.inf)
    i, j = divmod(int(distances.argmin()), len(means))
    return (min(i, j), max(i, j)), distances


def _mean_image_cases() -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(2)
    far_apart = torch.arange(4, dtype=torch.float64).view(4, 1, 1).expand(4, 6, 6) * 10  # classes 10 units apart
    far_apart = far_apart.clone()
    far_apart[3] = far_apart[1] + 0.5  # classes 1 and 3 (not neighbours in the index) nearly alike
    noisy = torch.rand(6, 28, 28, generator=g, dtype=torch.float64)
    noisy[4] = noisy[0] + 0.01 * torch.rand(28, 28, generator=g, dtype=torch.float64)
    return {"4 average images where classes 1 and 3 are alike": far_apart,
            "6 random 28x28 average images": noisy}


def _check_closest_pair(closest_pair, class_means: Tensor | None = None, classes=CLASS_NAMES, generator=None) -> str:
    for case, means in _mean_image_cases().items():
        got = call(closest_pair, means, case=case)
        try:
            i, j = (int(v) for v in got)
        except (TypeError, ValueError):
            raise Wrong(f"`closest_pair` should return two class indices (i, j), but on {case} it returned "
                        f"{type(got).__name__} {str(got)[:60]}") from None
        right, distances = _closest(means)
        if (min(i, j), max(i, j)) == right:
            continue
        if i == j:
            raise Wrong(f"on {case}, you returned ({i}, {j}): every class is at distance 0 from itself, so compare "
                        f"only different classes")
        if not (0 <= i < len(means) and 0 <= j < len(means)):
            raise Wrong(f"on {case}, ({i}, {j}) are not class indices between 0 and {len(means) - 1}")
        finite = distances.masked_fill(distances.isinf(), -1)
        if distances[i, j] == finite.max():
            raise Wrong(f"on {case}, ({i}, {j}) is the pair farthest apart; look for the smallest distance")
        raise Wrong(f"on {case}, the closest pair is {right} at distance {distances[right]:.3f}, but you returned "
                    f"({i}, {j}) at distance {distances[i, j]:.3f}")
    praise = "your closest_pair finds the nearest pair of average images on both test cases"
    if class_means is not None:
        i, j = sorted(int(v) for v in call(closest_pair, class_means, case="the training set's average images"))
        praise += (f". On Fashion-MNIST the closest average images are {classes[i]} and {classes[j]}: "
                   f"watch that pair in notebook 06's confusion matrix")
    return praise + "."


q5 = Exercise(
    "nb01.q5", _check_closest_pair,
    hint_text="Flatten each average image into a vector: flat = class_means.flatten(1). torch.cdist(flat, flat) "
              "gives every pairwise Euclidean distance. Put infinity on the diagonal (a class against itself) "
              "and take the argmin; divmod(index, number_of_classes) turns it into (i, j).",
)
