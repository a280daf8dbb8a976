"""Expected calibration error, the reliability table and the paired ECE difference (classifier/calibration.py)."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.calibration import expected_calibration_error, paired_ece_difference, reliability_table


def test_ece_by_hand():
    # Bin (0.6, 0.667]: confidences 0.62 and 0.66, one right -> |0.5 - 0.64| = 0.14, weight 2/5.
    # Bin (0.933, 1]: 0.95, 1.0, 0.99, all right -> |1 - 0.98| = 0.02, weight 3/5.
    confidences = [0.62, 0.66, 0.95, 1.0, 0.99]
    correct = [True, False, True, True, True]
    assert expected_calibration_error(confidences, correct) == pytest.approx(0.4 * 0.14 + 0.6 * 0.02)


def test_a_calibrated_model_scores_near_zero_and_an_overconfident_one_does_not():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 20000)
    calibrated = rng.uniform(size=confidence.size) < confidence
    assert expected_calibration_error(confidence, calibrated) < 0.01
    overconfident = rng.uniform(size=confidence.size) < confidence - 0.2
    assert expected_calibration_error(confidence, overconfident) == pytest.approx(0.2, abs=0.01)


def test_reliability_table_counts_every_verdict_once():
    table = reliability_table([0.55, 0.56, 0.9, 1.0], [True, False, True, True], bins=10)
    assert len(table) == 10 and sum(row["count"] for row in table) == 4
    middle = table[5]
    assert (middle["low"], middle["high"], middle["count"]) == (0.5, 0.6, 2)
    assert middle["accuracy"] == 0.5 and middle["mean_confidence"] == pytest.approx(0.555)
    assert table[0]["accuracy"] is None and table[9]["count"] == 1 and table[8]["count"] == 1


def test_bad_input_is_refused_with_a_message():
    with pytest.raises(ValueError, match="equally long"):
        expected_calibration_error([0.5], [True, False])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error([1.5], [True])


def test_paired_difference_sees_a_worse_calibrated_model_and_not_an_equal_one():
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.5, 1.0, 5000)
    correct = rng.uniform(size=confidence.size) < confidence
    # Same verdicts, pushed towards certainty: as accurate, worse calibrated.
    overconfident = np.minimum(1.0, confidence + 0.1)
    difference, low, high = paired_ece_difference(
        (overconfident, correct), (confidence, correct), confidence=0.95, resamples=300
    )
    assert difference > 0.05 and low > 0 and low <= difference <= high
    same, low, high = paired_ece_difference((confidence, correct), (confidence, correct), confidence=0.95)
    assert same == 0.0 and low == 0.0 and high == 0.0
