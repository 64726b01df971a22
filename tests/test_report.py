"""The report's logged results, as the lab holds them, and the measure notebook 05 and the replay compare by."""

import pytest

from fmnist_lab import report


def test_the_log_holds_23_epochs_ending_at_the_reports_final_accuracy():
    assert len(report.TEST_ACCURACY) == 23 and report.TEST_ACCURACY[-1] == 92.54  # "9254/10000" at epoch 23


def test_late_movement_is_the_mean_change_over_the_second_half():
    assert report.late_movement([5.0, 9.0, 1.0, 1.0, 1.0, 1.0]) == 0.0  # the first half's swings do not count
    assert report.late_movement([0.0, 0.0, 0.0, 1.0, 0.0, 1.0]) == 1.0
    assert report.late_movement([0.0, 0.0, 0.0, 0.0, 2.0, 2.0, 4.0]) == pytest.approx(4 / 3)


def test_late_movement_refuses_a_curve_too_short_to_have_one():
    with pytest.raises(ValueError, match="at least 3 epochs, got 2"):
        report.late_movement([91.0, 92.0])
