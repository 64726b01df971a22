"""Files that are never half-written: write beside the target, flush to disk, then rename into place."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def atomic_write(path: str | os.PathLike, mode: str, write: Callable[[IO], None]) -> None:
    """Call ``write`` on a fresh temporary file in ``path``'s folder, then rename it to ``path``.

    A crash, an interrupt or an exception from ``write`` leaves ``path`` as it was (or absent),
    never half-written. The temporary name is unique (``mkstemp``, O_EXCL), so concurrent
    writers never share it and a pre-placed symlink is never followed; ``os.replace`` swaps a
    symlink at ``path`` for the file instead of writing through it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode any other file gets
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
