"""The report's logged results as numbers: what the lab compares its replay with (notebook 05,
benchmarks/report_replay.py)."""

from __future__ import annotations

from collections.abc import Sequence

# Its log's "Test set: ... Accuracy: N/10000" after epochs 1 to 23, in percent: its only results
TEST_ACCURACY: tuple[float, ...] = (
    87.36,
    88.62,
    89.59,
    90.71,
    90.66,
    91.02,
    90.58,
    90.50,
    91.00,
    91.83,
    91.84,
    91.64,
    91.10,
    91.54,
    91.83,
    92.29,
    92.27,
    92.32,
    91.54,
    91.93,
    92.00,
    92.52,
    92.54,
)
LR = 0.155  # "Best LR 0.15500949999999986" in its log: the LR its optimizer started from


def late_movement(curve: Sequence[float]) -> float:
    """The mean change, in points, from one epoch to the next over the curve's second half (epochs 12 to 23 of
    the report's 23): a decayed LR freezes it, a constant one keeps it moving."""
    late = curve[len(curve) // 2 :]
    if len(late) < 2:
        raise ValueError(f"late_movement needs a curve of at least 3 epochs, got {len(curve)}")
    return sum(abs(b - a) for a, b in zip(late, late[1:])) / (len(late) - 1)
