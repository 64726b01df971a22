"""The lab's switches in the environment, and quick mode.

``FMNIST_LAB_QUICK=1`` makes the notebooks run small sizes (for tests and CI). It changes sizes
only (images, epochs, steps), never which code runs.
"""

from __future__ import annotations

import os

from .errors import ConfigError


def env_switch(name: str, default: bool, off: str, on: str) -> bool:
    """The switch ``$name``: 0 is off, 1 is on, unset or empty the default; anything else is refused.

    ``off`` and ``on`` say what each value does, for the error message (so that "false" or "no",
    which a plain truth test would read as on, is refused instead of misread).
    """
    setting = os.environ.get(name, "").strip()
    if setting not in ("0", "1", ""):
        raise ConfigError([(name, setting, f"must be 0 ({off}) or 1 ({on})")])
    return default if setting == "" else setting == "1"


def switch_at_import(name: str, default: bool, off: str, on: str) -> bool:
    """``env_switch`` for a switch read as the lab is imported, before any command runs.

    A refused value exits with one line, as a command's errors do, instead of an import's traceback.
    """
    try:
        return env_switch(name, default, off, on)
    except ConfigError as err:
        raise SystemExit(f"fmnist-lab: error: {err}") from None


QUICK: bool = switch_at_import("FMNIST_LAB_QUICK", False, "full sizes", "quick mode's small sizes, for tests")
