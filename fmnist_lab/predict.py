"""Predictions on your own photos: turn any PNG/JPEG into a Fashion-MNIST-like image.

Fashion-MNIST images are greyscale, show a light object on a black background, and the
object is trimmed, scaled so its longer side fills the 28 pixels, and centred. A photo
of a shoe on a white table is the opposite (dark on light), so we invert it first.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from .checkpoint import Checkpoint
from .data import normalize
from .dataset import IMAGE_SIZE
from .model import model_device

# Larger images are refused before their pixels are decoded: a 50-megapixel photo already takes
# about half a gigabyte on its way to 28x28, and a small file can claim billions of pixels.
MAX_MEGAPIXELS = 50
# An object must stand out from its background by this many grey levels (of 255); below that
# the image is blank or nearly so, and scaling its noise up to full contrast would give a
# confident-looking answer about nothing.
MIN_CONTRAST = 16


class ImageError(ValueError):
    """A file that cannot be used as an image."""


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file, with a clear error for anything that is not a readable image."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path}: is a folder; pass image files (for example {path / '*.jpg'})")
    if not path.is_file():
        raise ImageError(f"{path}: no such file; check the path (a PNG or JPEG file)")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: the file is empty (0 bytes); pass a PNG or JPEG image")
    too_large = (
        f"more than the {MAX_MEGAPIXELS} megapixels the lab decodes; shrink it first (the model sees 28x28 pixels)"
    )
    try:
        with warnings.catch_warnings():  # PIL's "decompression bomb" warning: our own limit below is lower
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            width, height = image.size  # from the header: nothing is decoded yet
            if width * height > MAX_MEGAPIXELS * 1_000_000:
                raise ImageError(
                    f"{path}: {width}x{height} pixels ({width * height / 1e6:.0f} megapixels), {too_large}"
                )
            image.load()
    except Image.DecompressionBombError as err:
        raise ImageError(f"{path}: far {too_large} ({err})") from err
    except PermissionError as err:  # the image may be fine; its permissions are not
        raise ImageError(
            f"{path}: cannot be read ({err.strerror}); give yourself read access to it (chmod u+r), or pass a copy"
        ) from err
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ImageError(f"{path}: not an image the lab can read ({err}); pass a PNG or JPEG file") from err
    return image


def greyscale(image: Image.Image) -> Image.Image:
    """8-bit greyscale, upright; transparent areas become white (product cut-outs are shot on white)."""
    image = ImageOps.exif_transpose(image)  # a phone stores a portrait photo sideways, with a tag to turn it
    if image.mode.startswith("I;16") or (image.mode == "I" and image.getextrema()[1] > 255):
        # 16-bit greyscale (a scanner's PNG): convert("L") would clip every level above 255 to white
        return Image.fromarray((np.asarray(image, dtype=np.float64) / 257).round().astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert("L")


def to_fashion_mnist(image: Image.Image) -> Tensor:
    """Any image -> uint8 (28, 28): light object on black, trimmed, scaled, centred.

    An image with (almost) no contrast is an ``ImageError``: there is nothing to classify.
    """
    grey = torch.from_numpy(np.asarray(greyscale(image), dtype=np.float32))
    border = torch.cat([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if border.median() > 127:  # light background: invert so the object is the light part
        grey = 255 - grey
    background = torch.cat([grey[0], grey[-1], grey[:, 0], grey[:, -1]]).median()
    grey = (grey - background).clamp(min=0)
    contrast = int(grey.max())
    if contrast < MIN_CONTRAST:
        name = getattr(image, "filename", "") or "the image"  # PIL keeps the path of an opened file
        raise ImageError(
            f"{name}: (almost) no contrast, so nothing to classify: nothing stands out from the "
            f"background by {MIN_CONTRAST} grey levels or more (the most is {contrast} of 255). "
            f"Pass a photo of one garment against a plain background."
        )
    mask = grey > 0.15 * grey.max()
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    grey = grey[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    grey = grey * (255.0 / grey.max().clamp(min=1))
    crop = Image.fromarray(grey.round().to(torch.uint8).numpy())
    crop = ImageOps.contain(crop, (IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
    canvas = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    canvas.paste(crop, ((IMAGE_SIZE - crop.width) // 2, (IMAGE_SIZE - crop.height) // 2))
    return torch.from_numpy(np.asarray(canvas, dtype=np.uint8).copy())


@torch.no_grad()
def class_probabilities(checkpoint: Checkpoint, images: Tensor) -> Tensor:
    """Probabilities (N, 10) for uint8 images (N, 28, 28), normalised as in training."""
    device = model_device(checkpoint.model)
    checkpoint.model.eval()
    x = normalize(images, checkpoint.mean, checkpoint.std).to(device)
    return checkpoint.model(x).exp().cpu()


@dataclass
class Prediction:
    """The model's top classes for one image file."""

    path: str
    top: list[tuple[str, float]]  # (class name, probability), best first
    image: Tensor  # the 28x28 input the model saw


def predict_files(checkpoint: Checkpoint, paths: list[str | os.PathLike], k: int = 3) -> list[Prediction | ImageError]:
    """Top-``k`` classes for each file; a file that fails gives its ``ImageError`` and the rest go on."""
    results: list[Prediction | ImageError] = []
    for path in paths:
        try:
            image = to_fashion_mnist(load_image(path))
        except ImageError as err:
            results.append(err)
            continue
        probs = class_probabilities(checkpoint, image.unsqueeze(0))[0]
        values, indices = probs.topk(k)
        results.append(
            Prediction(str(path), [(checkpoint.classes[i], float(v)) for v, i in zip(values, indices)], image)
        )
    return results
