"""The Fashion-MNIST files: find them (or stage or download them), verify them, load them into memory.

Search order: a folder you name (then the only one read, and the one filled), else the project's data
folder; then Debian's ``dataset-fashion-mnist`` package, torchvision's download. Every file is checked
(IDX header, size, SHA-256 of its bytes) before a tensor is made of it. What happens to the tensors
next is ``data.py``'s business.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import torch
from torch import Tensor

from .errors import LabError
from .files import atomic_write
from .quick import env_switch

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
IMAGE_SIZE = 28
# file stem -> (IDX magic number, expected number of items)
FILES: dict[str, tuple[int, int]] = {
    "train-images-idx3-ubyte": (0x0803, 60_000),
    "train-labels-idx1-ubyte": (0x0801, 60_000),
    "t10k-images-idx3-ubyte": (0x0803, 10_000),
    "t10k-labels-idx1-ubyte": (0x0801, 10_000),
}
# file stem -> SHA-256 of the decompressed file, the original dataset's bytes. Computed once with
#   gunzip -c /usr/share/datasets/fashion-mnist/<stem>.gz | sha256sum
# (Debian's dataset-fashion-mnist); other projects derive the same values from Zalando's archives.
# A file with the right header and size can still hold the wrong images (an interrupted copy
# once left 19,559 all-zero training images), and only the content's hash catches that.
SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DATA_DIR_ENV = "FMNIST_DATA_DIR"
ALLOW_OTHER_DATA_ENV = "FMNIST_LAB_ALLOW_OTHER_DATA"
REINSTALL_DEBIAN = "sudo apt-get install --reinstall dataset-fashion-mnist"


def how_to_get_data() -> str:
    """The ways to get the dataset, naming this installation's data folder (a wheel's is not ``data/``)."""
    return f"""Ways to get Fashion-MNIST (any one is enough):
  1. point the lab at a folder holding the four files: set {DATA_DIR_ENV}=/path/to/folder
     (or pass data_dir=... / --data-dir ...);
  2. put the files into the lab's data folder, in torchvision's layout:
     {default_data_dir() / "FashionMNIST" / "raw" / "train-images-idx3-ubyte.gz"} (and the three others);
  3. on Debian/Ubuntu: sudo apt-get install -y dataset-fashion-mnist
     (the lab copies them from {DEBIAN_DIR});
  4. be online: torchvision downloads them into the data folder."""


class DataError(LabError, RuntimeError):
    """The dataset files are missing, unreadable or not what they claim to be."""


def default_data_dir() -> Path:
    """``data/`` in a source checkout of the lab, else ``~/.cache/fmnist-lab``."""
    repo = Path(__file__).resolve().parent.parent
    if (repo / "pyproject.toml").is_file():
        return repo / "data"
    return Path.home() / ".cache" / "fmnist-lab"


@dataclass(frozen=True)
class FashionMNIST:
    """The dataset as uint8 image tensors (N, 28, 28) and int64 label tensors (N,)."""

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    source: str
    classes: tuple[str, ...] = CLASS_NAMES


def _checksums_wanted(verify_checksums: bool | None) -> bool:
    """The argument where given, else True unless ``$FMNIST_LAB_ALLOW_OTHER_DATA`` is 1."""
    if verify_checksums is not None:
        return verify_checksums
    return not env_switch(ALLOW_OTHER_DATA_ENV, False, "verify the checksums", "accept another dataset in this format")


def _checksum_error(path: Path, found: str, expected: str, fix: str) -> DataError:
    return DataError(
        f"{path}: right format and size, but not the original Fashion-MNIST file: its SHA-256 is {found}, "
        f"expected {expected}. The content is corrupt (for example an interrupted or mixed-up copy). {fix} "
        f"(To use a different dataset in this format on purpose, set {ALLOW_OTHER_DATA_ENV}=1.)"
    )


def _sha256(*parts: bytes | bytearray) -> str:
    """The hex SHA-256 of the parts one after the other (hashed in turn, not joined into a copy)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


def read_idx(path: Path, magic: int, count: int, sha256: str | None = None) -> Tensor:
    """Read one (optionally gzipped) IDX file and check magic number, count, size and, if given, SHA-256.

    The data is read straight into the buffer the tensor keeps: one copy of the file in memory, not three
    (the bytes read, their slice past the header, a writable copy), 110 MB less fresh memory for the images.
    The hash is of the decompressed bytes, the ones already read: no second pass over the file.
    """
    dims = magic & 0xFF
    header = 4 + 4 * dims
    expected_bytes = header + count * (1 if dims == 1 else IMAGE_SIZE * IMAGE_SIZE)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            head = f.read(header)
            body = bytearray(expected_bytes - header)
            filled = f.readinto(body)
            beyond = 0  # bytes past the expected end, counted for the message (none in a whole file)
            while chunk := f.read(2**20):
                beyond += len(chunk)
    except PermissionError as err:  # the file is fine; its permissions are not
        raise DataError(
            f"{path}: cannot be read ({err.strerror}). Give yourself read access to it (chmod u+r), or point "
            f"{DATA_DIR_ENV} at a copy you can read."
        ) from err
    except (OSError, EOFError) as err:  # gzip raises these for truncated/corrupt archives
        raise DataError(f"{path}: cannot be read ({err}). Delete it and fetch it again.") from err
    size = len(head) + filled + beyond
    # all four: the folder is staged as a set, and one file deleted alone is refused as a partial set
    fix = f"The file is corrupt or truncated: delete the four dataset files in {path.parent} and stage the data again."
    if len(head) < header:
        raise DataError(f"{path}: only {size} bytes, too short for an IDX header. {fix}")
    found_magic = struct.unpack(">I", head[:4])[0]
    if found_magic != magic:
        raise DataError(f"{path}: IDX magic number is {found_magic:#010x}, expected {magic:#010x}. {fix}")
    shape = struct.unpack(f">{dims}I", head[4:header])
    expected_shape = (count,) if dims == 1 else (count, IMAGE_SIZE, IMAGE_SIZE)
    if shape != expected_shape:
        raise DataError(f"{path}: header says shape {shape}, expected {expected_shape}. {fix}")
    if size != expected_bytes:
        raise DataError(f"{path}: {size} bytes, expected {expected_bytes}. {fix}")
    if sha256 is not None and (found := _sha256(head, body)) != sha256:
        raise _checksum_error(
            path,
            found,
            sha256,
            f"Delete the dataset files in {path.parent} and load the "
            f"data again (e.g. `fmnist-lab data`) to stage fresh copies.",
        )
    data = torch.frombuffer(body, dtype=torch.uint8).reshape(shape)
    if dims == 1:
        data = data.long()
        if int(data.max()) >= len(CLASS_NAMES):
            raise DataError(f"{path}: label {int(data.max())} outside 0-9. {fix}")
    return data


def _find_files(folder: Path) -> dict[str, Path]:
    """The dataset files found in ``folder`` (flat, or torchvision's FashionMNIST/raw)."""
    found: dict[str, Path] = {}
    for place in (folder / "FashionMNIST" / "raw", folder):
        for stem in FILES:
            for name in (stem, stem + ".gz"):
                if stem not in found and (place / name).is_file():
                    found[stem] = place / name
    return found


def _complete(folder: Path) -> dict[str, Path] | None:
    """All four files of ``folder``, None if it holds none; a partial set is an error."""
    found = _find_files(folder)
    if not found:
        return None
    missing = [stem for stem in FILES if stem not in found]
    if missing:
        raise DataError(
            f"{folder} holds only part of Fashion-MNIST: missing {', '.join(missing)}. "
            f"Put the missing file(s) there, or delete the folder's dataset files to let the "
            f"lab stage them again.\n{how_to_get_data()}"
        )
    return found


def _copy_and_hash(src: IO[bytes], dst: IO[bytes]) -> str:
    """Copy ``src`` to ``dst`` in chunks; the SHA-256 of what was copied."""
    digest = hashlib.sha256()
    while chunk := src.read(1 << 20):
        digest.update(chunk)
        dst.write(chunk)
    return digest.hexdigest()


def _decompress_and_verify(source: Path, expected: str | None, dst: IO[bytes]) -> None:
    """Decompress ``source`` into ``dst``; a DataError if it is broken or (``expected`` given) not the original."""
    try:
        with gzip.open(source, "rb") as src:
            found = _copy_and_hash(src, dst)
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(f"{source}: cannot be decompressed ({err}). Reinstall it: {REINSTALL_DEBIAN}") from err
    if expected is not None and found != expected:
        raise _checksum_error(source, found, expected, f"Reinstall the package: {REINSTALL_DEBIAN}")


def _stage_from_debian(data_dir: Path, verify_checksums: bool = True) -> dict[str, Path]:
    """Decompress Debian's four files into ``data_dir``, each verified before it takes its real name.

    Each file is decompressed into its own temporary file, hashed as it is written, checked, and
    only then renamed into place (``files.atomic_write``: concurrent stagings never share a
    temporary file, and no symlink is followed).
    """
    raw_dir = data_dir / "FashionMNIST" / "raw"
    try:
        raw_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=raw_dir):  # a unique probe file: concurrent stagings never share one
            pass
    except OSError as err:
        raise DataError(
            f"The data folder {data_dir} is not writable ({err}). Set {DATA_DIR_ENV} (or --data-dir) to a folder "
            f"you can write to."
        ) from err
    for stem in FILES:
        source = DEBIAN_DIR / f"{stem}.gz"
        expected = SHA256[stem] if verify_checksums else None
        try:  # the real name only ever holds a verified file
            atomic_write(raw_dir / stem, "wb", functools.partial(_decompress_and_verify, source, expected))
        except OSError as err:
            raise DataError(
                f"Staging {source} into {raw_dir} failed ({err}). Free some disk space, or set {DATA_DIR_ENV} to a "
                f"folder on another disk; if {source} itself cannot be read, reinstall it: {REINSTALL_DEBIAN}"
            ) from err
    return {stem: raw_dir / stem for stem in FILES}


def _download_with_torchvision(data_dir: Path) -> dict[str, Path]:
    from torchvision.datasets import FashionMNIST as TorchvisionFashionMNIST

    TorchvisionFashionMNIST(str(data_dir), train=True, download=True)
    TorchvisionFashionMNIST(str(data_dir), train=False, download=True)
    return {stem: data_dir / "FashionMNIST" / "raw" / stem for stem in FILES}


def locate_files(
    data_dir: str | os.PathLike | None = None, download: bool = True, verify_checksums: bool | None = None
) -> tuple[dict[str, Path], str]:
    """Find (and if needed stage) the four files; returns them and where they came from.

    Search order: the explicit folder (argument or ``$FMNIST_DATA_DIR``; it must exist, and where it is
    named the project's data folder is not read: what it lacks is staged or downloaded into it), the project's
    data folder, Debian's ``dataset-fashion-mnist`` package, torchvision's download.
    ``verify_checksums``: as in ``load_fashion_mnist``; staged files are checked before they land.
    """
    explicit = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    if explicit is not None and not Path(explicit).is_dir():  # a typo would otherwise pass unnoticed
        named_by = "data_dir (or --data-dir)" if data_dir is not None else f"${DATA_DIR_ENV}"
        raise DataError(
            f"The data folder {explicit}, named by {named_by}, is not a folder. Correct the path, or create the "
            f"folder (the lab then stages the dataset into it), or name no folder to use {default_data_dir()}."
        )
    project_dir = default_data_dir()
    target = Path(explicit) if explicit is not None else project_dir
    if explicit is not None and (files := _complete(Path(explicit))):
        return files, f"explicit folder {explicit}"
    if explicit is None and (files := _complete(project_dir)):  # a folder you name is the only one read
        return files, f"project data folder {project_dir}"
    if all((DEBIAN_DIR / f"{stem}.gz").is_file() for stem in FILES):
        staged = _stage_from_debian(target, _checksums_wanted(verify_checksums))
        return staged, f"Debian package dataset-fashion-mnist ({DEBIAN_DIR}), staged into {target}"
    if download:
        try:
            return _download_with_torchvision(target), f"torchvision download into {target}"
        except Exception as err:  # any network or mirror failure ends in the same advice
            raise DataError(
                f"Fashion-MNIST not found, and torchvision's download failed ({err}).\n{how_to_get_data()}"
            ) from err
    raise DataError(f"Fashion-MNIST not found.\n{how_to_get_data()}")


def load_fashion_mnist(
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    verbose: bool = True,
    verify_checksums: bool | None = None,
) -> FashionMNIST:
    """Load and verify the whole dataset into memory, saying where it came from.

    Each file must be the original Fashion-MNIST (SHA-256 of its decompressed bytes). For a
    different dataset in the same format pass ``verify_checksums=False``, or set
    ``FMNIST_LAB_ALLOW_OTHER_DATA=1`` (what the command line reads; the argument wins where given).
    """
    verify = _checksums_wanted(verify_checksums)
    files, source = locate_files(data_dir, download, verify)
    arrays = {
        stem: read_idx(path, *FILES[stem], sha256=SHA256[stem] if verify else None) for stem, path in files.items()
    }
    if verbose:
        print(f"Fashion-MNIST from {source}")
    return FashionMNIST(
        train_images=arrays["train-images-idx3-ubyte"],
        train_labels=arrays["train-labels-idx1-ubyte"],
        test_images=arrays["t10k-images-idx3-ubyte"],
        test_labels=arrays["t10k-labels-idx1-ubyte"],
        source=source,
    )
