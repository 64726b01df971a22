"""On the real Fashion-MNIST files. Skipped on a machine without them, never in CI."""

import gzip
import hashlib
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fmnist_lab.config import TrainConfig
from fmnist_lab.data import pixel_stats
from fmnist_lab.dataset import DEBIAN_DIR, FILES, SHA256, DataError, load_fashion_mnist, locate_files, read_idx
from fmnist_lab.experiment import pick_lr, run
from fmnist_lab.lr_finder import LRFinderWarning

pytestmark = pytest.mark.real_data


def independent_idx_reader(path: Path) -> torch.Tensor:
    """A second, deliberately different reader: struct for the header, numpy-free bytes."""
    with gzip.open(path) as f:
        zero, dtype, ndim = struct.unpack(">HBB", f.read(4))
        shape = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        body = f.read()
    assert zero == 0 and dtype == 0x08
    return torch.tensor(bytearray(body), dtype=torch.uint8).reshape(shape)


def require_debian_files() -> None:
    if not all((DEBIAN_DIR / f"{stem}.gz").is_file() for stem in FILES):
        if os.environ.get("CI"):
            pytest.fail("CI installs dataset-fashion-mnist, but its files are missing")
        pytest.skip("Debian's dataset-fashion-mnist is not installed")


def test_loader_equals_an_independent_reader_of_the_debian_files(real_data):
    require_debian_files()
    expected = {
        "train_images": "train-images-idx3-ubyte",
        "train_labels": "train-labels-idx1-ubyte",
        "test_images": "t10k-images-idx3-ubyte",
        "test_labels": "t10k-labels-idx1-ubyte",
    }
    for field, stem in expected.items():
        reference = independent_idx_reader(DEBIAN_DIR / f"{stem}.gz")
        assert torch.equal(getattr(real_data, field).to(reference.dtype), reference), field


def test_the_real_files_have_the_checksums_in_the_code(real_data):
    require_debian_files()
    for stem in FILES:
        with gzip.open(DEBIAN_DIR / f"{stem}.gz") as f:
            assert hashlib.sha256(f.read()).hexdigest() == SHA256[stem], stem
    files, _ = locate_files(download=False)  # the staged (or found) copies the lab loads
    for stem, path in files.items():
        read_idx(path, *FILES[stem], sha256=SHA256[stem])


def test_training_images_with_zeroed_tail_are_refused(tmp_path):
    """What an interrupted concurrent staging once left: right header and size, 19,559 zero images."""
    require_debian_files()
    for stem in FILES:
        with gzip.open(DEBIAN_DIR / f"{stem}.gz") as f:
            raw = bytearray(f.read())
        if stem == "train-images-idx3-ubyte":
            raw[len(raw) - 19_559 * 784 :] = bytes(19_559 * 784)
        (tmp_path / stem).write_bytes(bytes(raw))
    with pytest.raises(DataError, match="train-images-idx3-ubyte: right format and size, but not the original"):
        load_fashion_mnist(tmp_path, download=False, verbose=False)
    zeroed = load_fashion_mnist(tmp_path, download=False, verbose=False, verify_checksums=False).train_images
    assert zeroed.shape == (60_000, 28, 28) and pixel_stats(zeroed)[0] < 0.2  # 0.2860 on the real images


def test_counts_balance_and_statistics(real_data):
    assert real_data.train_images.shape == (60_000, 28, 28)
    assert real_data.test_images.shape == (10_000, 28, 28)
    assert real_data.train_labels.bincount().tolist() == [6000] * 10
    assert real_data.test_labels.bincount().tolist() == [1000] * 10
    mean, std = pixel_stats(real_data.train_images)
    assert (round(mean, 4), round(std, 4)) == (0.2860, 0.3530)
    per_image_std = (real_data.train_images.double() / 255).flatten(1).std(1, correction=0).mean()
    assert round(float(per_image_std), 4) == 0.3202  # the report's 0.3202: in our reading, this statistic


def test_short_training_run_learns_far_above_chance(real_data):
    config = TrainConfig(epochs=2, batch_size=128, lr=0.05, limit_train=6000, val_size=2000, limit_test=1000)
    result = run(config, real_data, progress=False, log=lambda line: None)
    assert result.history.val_accuracy[-1] > 0.75
    assert result.history.val_accuracy[-1] > result.history.val_accuracy[0] - 0.02


def test_lr_finder_suggestion_beats_a_clearly_bad_lr(real_data):
    base = dict(epochs=1, batch_size=128, limit_train=4000, val_size=1000, limit_test=1000)  # about 72% against 7%
    with pytest.warns(LRFinderWarning, match="capped at one pass"):  # 32 batches of 128, not the sweep's 200 steps
        config, model = pick_lr(TrainConfig(**base), real_data, log=lambda line: None)
    suggested = run(config, real_data, progress=False, log=lambda line: None, model=model)
    bad = run(TrainConfig(**base, lr=1e-5), real_data, progress=False, log=lambda line: None)
    assert suggested.history.val_accuracy[-1] > bad.history.val_accuracy[-1] + 0.1


def test_cli_train_prints_report_style_lines(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fmnist_lab",
            "train",
            "--epochs",
            "1",
            "--limit-train",
            "1000",
            "--val-size",
            "1000",
            "--lr",
            "0.05",
            "--no-progress",
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    # trained through the fused kernel, whose builder, imported, logs this where PyTorch built for CUDA finds a CUDA
    # toolkit and no GPU (as on the CI machine): a warning about nothing this run uses
    assert "No CUDA runtime is found" not in out.stderr, out.stderr
    assert "Train Epoch: 1 [0/1000 (0%)]\tLoss: " in out.stdout
    assert "Test set: Average loss: " in out.stdout and "/10000 (" in out.stdout
    assert "Test accuracy: " in out.stdout
    assert (tmp_path / "run" / "metrics.json").is_file() and (tmp_path / "run" / "best.pt").is_file()
    evaluated = subprocess.run(
        [sys.executable, "-m", "fmnist_lab", "evaluate", str(tmp_path / "run" / "best.pt")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert "Ankle boot" in evaluated.stdout and "Test set: Average loss" in evaluated.stdout
