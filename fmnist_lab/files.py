"""Files that are never half-written: write beside the target, flush to disk, then rename into place."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it: done once, at import, not beside other threads
    os.umask(mask)
    return mask


UMASK = _read_umask()  # the mode bits a new file of this process must not have
PARTIAL_SUFFIX = ".partial"  # of the temporary file atomic_write writes beside its target


def nearest_existing(path: Path) -> Path:
    """``path`` if it exists, else the nearest folder above it that does: where it would be created."""
    return next(p for p in (path, *path.parents) if p.exists())


def atomic_write(path: str | os.PathLike, mode: str, write: Callable[[IO], None]) -> None:
    """Call ``write`` on a fresh temporary file in ``path``'s folder, then rename it to ``path``.

    A crash, an interrupt or an exception from ``write`` leaves ``path`` as it was (or absent),
    never half-written. The temporary name is unique (``mkstemp``, O_EXCL), so concurrent
    writers never share it and a pre-placed symlink is never followed; ``os.replace`` swaps a
    symlink at ``path`` for the file instead of writing through it.
    """
    path = Path(path)
    if path.exists() and not path.is_file():  # a folder, or a device such as /dev/null: never replace it by a file
        raise OSError(
            errno.EINVAL, "not a regular file (a folder or a device); give the path of a file to write", str(path)
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX)
    except OSError as err:  # name the file asked for, not the temporary one
        raise OSError(err.errno, err.strerror, str(path)) from err
    try:
        # text in UTF-8 on every platform (Windows' default code page cannot write "≥")
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            if hasattr(os, "fchmod"):  # not on Windows before Python 3.13, where mkstemp's mode is no problem
                os.fchmod(f.fileno(), 0o666 & ~UMASK)  # mkstemp makes 0600; give the mode any other file gets
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)  # the rename itself on disk: after a power cut, path is the new file, not the old


def remove_partial_files(folder: Path) -> None:
    """Remove the temporary files that atomic_write left in ``folder`` when its process was killed mid-write.

    Call it only while no other process can be writing there (a run folder's lock held, say).
    """
    for partial in folder.glob(f".*{PARTIAL_SUFFIX}"):
        partial.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file (settings, metrics, benchmark results) atomically."""
    atomic_write(path, "w", lambda f: f.write(text))


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` that never leaves a broken file under ``path``."""
    atomic_write(path, "wb", lambda f: _torch_save(obj, f))


def _torch_save(obj: Any, f: IO) -> None:
    try:
        torch.save(obj, f)
    except RuntimeError as err:
        # a Ctrl-C inside one of its writes reaches us as the RuntimeError its zip writer raises on closing
        if isinstance(err.__context__, KeyboardInterrupt):
            raise err.__context__ from None
        raise


def atomic_savefig(fig: Figure, path: str | os.PathLike, **savefig_kwargs: Any) -> None:
    """``fig.savefig`` that never leaves a half-written image; the format follows the suffix (default png)."""
    image_format = Path(path).suffix.lstrip(".").lower() or "png"
    atomic_write(path, "wb", lambda f: fig.savefig(f, format=image_format, **savefig_kwargs))


def _fsync_folder(folder: Path) -> None:
    if os.name != "posix":  # Windows cannot open a folder to flush it; NTFS journals the rename
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # some file systems (network, FUSE, VM shares) cannot flush a folder: the rename is done anyway
        pass
