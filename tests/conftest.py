"""Shared fixtures: a tiny learnable dataset, tiny IDX files, and the real dataset."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import struct
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from fmnist_lab import dataset as dataset_module  # noqa: E402
from fmnist_lab.dataset import DataError, FashionMNIST, load_fashion_mnist  # noqa: E402

TINY_COUNTS = {"train": 120, "t10k": 40}

# The project's own conftest.py (nbval's rule for the checks, the units of work), as a module the tests can read.
_ROOT_CONFTEST = importlib.util.spec_from_file_location("root_conftest", Path(__file__).parent.parent / "conftest.py")
root_conftest = importlib.util.module_from_spec(_ROOT_CONFTEST)
_ROOT_CONFTEST.loader.exec_module(root_conftest)


def make_images(labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Noisy images where class c lights up a band at row 2c: easy to learn, not trivial."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 60, (len(labels), 28, 28), generator=g, dtype=torch.uint8)
    for i, c in enumerate(labels.tolist()):
        images[i, 2 * c + 3 : 2 * c + 6, 4:24] = 220
    return images


@pytest.fixture
def tiny_data() -> FashionMNIST:
    return tiny_dataset()


def tiny_dataset() -> FashionMNIST:
    """1,200 training and 200 test images of the easy task above (the tiny_data fixture, for wider-scoped fixtures)."""
    g = torch.Generator().manual_seed(1)
    train_labels = torch.randint(0, 10, (1200,), generator=g)
    test_labels = torch.randint(0, 10, (200,), generator=g)
    return FashionMNIST(
        make_images(train_labels, 2), train_labels, make_images(test_labels, 3), test_labels, "tiny fixture"
    )


def idx_bytes(array: torch.Tensor) -> bytes:
    """Serialise a uint8 tensor in the IDX format (magic 0x08 0x0N, big-endian dims)."""
    header = struct.pack(">I", 0x0800 + array.dim()) + struct.pack(f">{array.dim()}I", *array.shape)
    return header + array.to(torch.uint8).numpy().tobytes()


def tiny_idx_files(seed: int = 0) -> dict[str, tuple[torch.Tensor, bytes]]:
    """The four tiny IDX files for ``seed``: file stem -> (array, file bytes)."""
    g = torch.Generator().manual_seed(seed)
    files = {}
    for prefix, n in TINY_COUNTS.items():
        labels = torch.randint(0, 10, (n,), generator=g, dtype=torch.uint8)
        images = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
        for stem, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
            files[stem] = (array, idx_bytes(array))
    return files


@pytest.fixture
def tiny_counts(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Make the loader expect tiny files instead of 60,000/10,000 images.

    The checksums it verifies become those of the seed-0 set (``write_idx_set``'s default),
    hashed here from the bytes; a set written with another seed is well-formed but "corrupt".
    """
    files = {stem: (magic, TINY_COUNTS[stem.split("-")[0]]) for stem, (magic, _) in dataset_module.FILES.items()}
    monkeypatch.setattr(dataset_module, "FILES", files)
    checksums = {stem: hashlib.sha256(raw).hexdigest() for stem, (_, raw) in tiny_idx_files(seed=0).items()}
    monkeypatch.setattr(dataset_module, "SHA256", checksums)
    monkeypatch.delenv(dataset_module.ALLOW_OTHER_DATA_ENV, raising=False)
    return TINY_COUNTS


def write_idx_set(folder: Path, gz: bool = False, seed: int = 0) -> dict[str, torch.Tensor]:
    """Write the four tiny IDX files into ``folder``; returns what was written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for stem, (array, raw) in tiny_idx_files(seed).items():
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)
        written[stem] = array
    return written


@pytest.fixture
def isolated_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Point every data source of the loader at empty temporary folders."""
    project, debian = tmp_path / "project-data", tmp_path / "debian"
    monkeypatch.setattr(dataset_module, "default_data_dir", lambda: project)
    monkeypatch.setattr(dataset_module, "DEBIAN_DIR", debian)
    monkeypatch.delenv(dataset_module.DATA_DIR_ENV, raising=False)
    return {"project": project, "debian": debian}


@pytest.fixture(scope="session")
def real_data() -> FashionMNIST:
    """The real dataset. Skipped where it cannot be found, except in CI, where that fails."""
    try:
        return load_fashion_mnist(download=False, verbose=False)
    except DataError as err:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the real-data tests, but the dataset is missing: {err}")
        pytest.skip(f"real Fashion-MNIST not available: {err}")
