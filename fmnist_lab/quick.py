"""Quick mode: ``FMNIST_LAB_QUICK=1`` makes the notebooks run small sizes (for tests and CI).

It changes sizes only (images, epochs, steps), never which code runs.
"""

import os

QUICK: bool = os.environ.get("FMNIST_LAB_QUICK", "0") not in ("", "0")
