"""Your own photos: what ``predict`` refuses, and why, before it classifies anything."""

import struct
import warnings
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from fmnist_lab import predict
from fmnist_lab.dataset import CLASS_NAMES
from fmnist_lab.model import Net
from fmnist_lab.predict import ImageError, Prediction, load_image, predict_files, to_fashion_mnist


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header claiming ``width`` x ``height`` greyscale pixels, followed by almost no data.

    Decoding it would fail (the data stream is far too short), so a size error proves the size
    was refused from the header, before any decoding.
    """

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale, not interlaced
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


@pytest.fixture
def untrained_checkpoint():
    torch.manual_seed(0)
    return SimpleNamespace(model=Net(), mean=0.286, std=0.353, classes=CLASS_NAMES)


def test_the_top_classes_are_the_models_most_probable_first(tmp_path, untrained_checkpoint):
    model = untrained_checkpoint.model
    with torch.no_grad():  # classes far apart in probability, in an order of their own
        model.fc_2.bias.copy_(torch.tensor([3.0, 7, 1, 9, 0, 5, 2, 8, 4, 6]))
    shoe = Image.new("L", (300, 200), 255)
    shoe.paste(30, (40, 120, 200, 170))
    shoe.save(tmp_path / "shoe.png")
    (prediction,) = predict_files(untrained_checkpoint, [tmp_path / "shoe.png"], k=3)
    pixels = (prediction.image.float() / 255 - untrained_checkpoint.mean) / untrained_checkpoint.std  # by hand
    with torch.no_grad():
        probabilities = model.eval()(pixels[None, None]).exp()[0]
    expected = probabilities.topk(3)
    assert [name for name, _ in prediction.top] == [CLASS_NAMES[i] for i in expected.indices]
    assert [p for _, p in prediction.top] == pytest.approx(expected.values.tolist(), rel=1e-5)
    assert prediction.top[0][1] > prediction.top[1][1] > prediction.top[2][1]


def test_a_folder_is_named_as_a_folder(tmp_path):
    with pytest.raises(ImageError, match="is a folder; pass image files") as err:
        load_image(tmp_path)
    assert str(tmp_path) in str(err.value) and "no such file" not in str(err.value)


@pytest.mark.parametrize("width, height", [(10_000, 6_000), (10_000, 10_000)], ids=["60-MP", "100-MP-PIL-warns"])
def test_a_huge_image_is_refused_from_its_header(tmp_path, width, height):
    path = tmp_path / "huge.png"
    path.write_bytes(png_claiming(width, height))
    assert path.stat().st_size < 200
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's own decompression-bomb warning is not shown on top of our message
        with pytest.raises(ImageError, match=f"{width}x{height} pixels .* more than the 50 megapixels") as err:
            load_image(path)
    assert str(path) in str(err.value) and "shrink it first" in str(err.value)


def test_an_image_pil_calls_a_decompression_bomb_is_an_image_error(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(20_000, 20_000))  # 400 megapixels: PIL raises before we see the size
    with pytest.raises(ImageError, match="far more than the 50 megapixels"):
        load_image(path)


def test_the_pixel_limit_applies_to_real_images(tmp_path, monkeypatch):
    monkeypatch.setattr(predict, "MAX_MEGAPIXELS", 1)
    Image.new("L", (1000, 1000), 255).save(tmp_path / "at-limit.png")
    Image.new("L", (1001, 1000), 255).save(tmp_path / "above.png")
    assert load_image(tmp_path / "at-limit.png").size == (1000, 1000)
    with pytest.raises(ImageError, match="1001x1000 pixels"):
        load_image(tmp_path / "above.png")


@pytest.mark.parametrize(
    "low, high",
    [(255, 255), (0, 0), (120, 120), (244, 255), (0, 12)],
    ids=["white", "black", "grey", "white-with-noise", "black-with-noise"],
)
def test_an_image_without_contrast_is_not_classified(tmp_path, low, high):
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(low, high + 1, (120, 160), generator=g, dtype=torch.uint8)
    Image.fromarray(pixels.numpy()).convert("RGB").save(tmp_path / "blank.png")
    with pytest.raises(ImageError, match="no contrast, so nothing to classify") as err:
        to_fashion_mnist(load_image(tmp_path / "blank.png"))
    assert str(tmp_path / "blank.png") in str(err.value)
    with pytest.raises(ImageError, match="^the image: .*no contrast"):  # an image made in memory has no path
        to_fashion_mnist(Image.fromarray(pixels.numpy()))


def test_a_faint_object_still_counts(tmp_path):
    image = Image.new("L", (200, 150), 230)
    image.paste(200, (50, 40, 150, 110))  # a pale garment on a white sheet: 30 grey levels apart
    x = to_fashion_mnist(image)
    assert x[0, 0] == 0 and x[14, 14] == 255


def object_extent(x: torch.Tensor) -> tuple[int, int]:
    """Rows and columns the object (non-black pixels) of a 28x28 image spans."""
    return int((x > 0).any(1).sum()), int((x > 0).any(0).sum())


def test_a_phone_photo_stored_sideways_is_turned_upright(tmp_path):
    """A phone keeps a portrait photo's pixels sideways and an EXIF tag saying how to turn them: read as stored,
    a tall dress became a wide object (helper 97)."""
    upright = Image.new("L", (300, 400), 255)
    upright.paste(40, (120, 50, 180, 350))  # a tall, narrow dark garment on white
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turn 90 degrees clockwise to view
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "portrait.jpg", exif=exif)
    rows, cols = object_extent(to_fashion_mnist(load_image(tmp_path / "portrait.jpg")))
    assert rows == 28 and cols < 10, (rows, cols)


def test_a_16_bit_greyscale_image_keeps_its_contrast(tmp_path):
    """convert("L") clips 16-bit levels above 255 to white: a scan with a dark object on a light background was
    refused as having no contrast (helper 97)."""
    levels = np.full((100, 80), 60_000, dtype=np.uint16)
    levels[20:80, 25:55] = 5_000
    Image.fromarray(levels).save(tmp_path / "scan.png")
    assert load_image(tmp_path / "scan.png").mode.startswith("I")
    x = to_fashion_mnist(load_image(tmp_path / "scan.png"))
    assert x[0, 0] == 0 and x[14, 14] == 255 and object_extent(x) == (28, 14)


def test_predict_files_reports_each_refusal_and_classifies_the_rest(tmp_path, untrained_checkpoint):
    Image.new("RGB", (300, 200), (255, 255, 255)).save(tmp_path / "blank.jpg")
    (tmp_path / "huge.png").write_bytes(png_claiming(12_000, 8_000))
    (tmp_path / "photos").mkdir()
    shoe = Image.new("L", (300, 200), 255)
    shoe.paste(30, (40, 120, 200, 170))
    shoe.save(tmp_path / "shoe.png")
    paths = [tmp_path / "blank.jpg", tmp_path / "photos", tmp_path / "huge.png", tmp_path / "shoe.png"]
    blank, folder, huge, good = predict_files(untrained_checkpoint, paths)
    assert isinstance(blank, ImageError) and "blank.jpg: (almost) no contrast" in str(blank)
    assert isinstance(folder, ImageError) and "photos: is a folder" in str(folder)
    assert isinstance(huge, ImageError) and "12000x8000 pixels (96 megapixels)" in str(huge)
    assert isinstance(good, Prediction) and len(good.top) == 3
    assert sum(p for _, p in good.top) <= 1.0 and good.image.shape == (28, 28)
