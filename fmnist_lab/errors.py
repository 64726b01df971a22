"""The lab's own exceptions: problems a user can fix, each message naming the problem and the fix.

The command line prints these as one line, and an OSError too (a file or folder the user
names); any other exception is a bug (or an edit to the code that went wrong) and keeps its
full traceback.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

_PACKAGE = Path(__file__).resolve().parent


class LabError(Exception):
    """Base class of the errors a user of the lab can fix."""


class ConfigError(LabError, ValueError):
    """Settings that cannot work. ``problems`` lists (argument name, value, rule) triples."""

    def __init__(self, problems: list[tuple[str, Any, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{name}={value!r}: {rule}" for name, value, rule in problems))


class DegenerateRunWarning(UserWarning):
    """Settings that run, but cannot train a useful model. ``problem``: an (argument name, value, rule) triple."""

    def __init__(self, name: str, value: Any, rule: str) -> None:
        self.problem = (name, value, rule)
        super().__init__(f"{name}={value!r}: {rule}")


class TrainingDiverged(LabError, RuntimeError):
    """The loss became NaN or infinite."""

    def __init__(self, loss: float, lr: float, where: str = "") -> None:
        self.loss, self.lr = loss, lr
        super().__init__(
            f"Training diverged: the loss became {loss}{where}, at learning rate {lr:.4g}. The LR is too high "
            f"for this run: lower it (try the LR finder's suggestion, `fmnist-lab lr-find`) and train again."
        )


def warn(message: str | Warning, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn``, said at the first caller outside the lab's package: the student's cell or script, not
    the line of the lab that noticed (graded feedback showed the lab's path and source line, helper 118), however
    deep in the lab that line is."""
    frame, level = sys._getframe(1), 1  # level 1: warn's caller
    while frame is not None and Path(frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level + 1)
