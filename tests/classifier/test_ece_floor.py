"""bench/bench_ece_floor.py: the ECE a perfectly calibrated model shows from sampling noise alone."""

from __future__ import annotations

import numpy as np

from bench.bench_ece_floor import floor
from classifier.calibration import expected_calibration_error


def test_a_perfect_model_scores_above_zero_on_few_examples_and_near_zero_on_many():
    rng = np.random.default_rng(1)
    small, large = floor(471, 0.4, 0.97, rng=rng, samples=200), floor(10_000, 0.4, 0.97, rng=rng, samples=200)
    assert small["p5"] <= small["mean"] <= small["p95"]
    assert small["mean"] > 0.03 and large["mean"] < 0.015  # noise shrinks about as 1/sqrt(n)
    assert small["share_at_or_under_goal"] < 0.05 and large["share_at_or_under_goal"] > 0.9


def test_a_model_ten_points_overconfident_scores_far_above_the_floor():
    rng = np.random.default_rng(2)
    confidence = rng.uniform(0.4, 0.97, 10_000)
    correct = rng.uniform(size=10_000) < confidence - 0.1
    assert expected_calibration_error(confidence, correct) > 0.08
