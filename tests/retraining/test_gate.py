"""The promotion gate's rules, one by one."""

from __future__ import annotations

import math

from bot.retraining.gate import ModelScores, decide_promotion

LABELS = ("부정", "긍정")


def decide(candidate: ModelScores, active: ModelScores | None, tolerance: float = 0.5):
    return decide_promotion(candidate=candidate, active=active, tolerance_points=tolerance, num_labels=2)


def test_candidate_within_tolerance_and_better_on_corrections_is_promoted():
    active = ModelScores(base_accuracy=0.800, holdout_accuracy=0.40, labels=LABELS)
    candidate = ModelScores(base_accuracy=0.796, holdout_accuracy=0.90, labels=LABELS)
    decision = decide(candidate, active)
    assert decision.promote, decision.reason
    assert "80.0% -> 79.6%" in decision.reason


def test_base_accuracy_drop_beyond_tolerance_is_rejected():
    active = ModelScores(base_accuracy=0.800, holdout_accuracy=0.40)
    candidate = ModelScores(base_accuracy=0.790, holdout_accuracy=1.0)  # 1 point lower, tolerance 0.5
    decision = decide(candidate, active)
    assert not decision.promote
    assert "base accuracy fell" in decision.reason and "1.00 points" in decision.reason
    assert decide(candidate, active, tolerance=1.5).promote


def test_worse_on_held_out_corrections_is_rejected_even_with_better_base_accuracy():
    active = ModelScores(base_accuracy=0.80, holdout_accuracy=0.75)
    candidate = ModelScores(base_accuracy=0.85, holdout_accuracy=0.70)
    decision = decide(candidate, active)
    assert not decision.promote
    assert "held-out correction accuracy fell" in decision.reason


def test_equal_held_out_accuracy_is_enough():
    active = ModelScores(base_accuracy=0.80, holdout_accuracy=0.5)
    assert decide(ModelScores(base_accuracy=0.80, holdout_accuracy=0.5), active).promote


def test_without_held_out_corrections_only_base_accuracy_counts():
    active = ModelScores(base_accuracy=0.80)
    assert decide(ModelScores(base_accuracy=0.797), active).promote
    assert not decide(ModelScores(base_accuracy=0.79), active).promote


def test_changed_label_set_is_rejected():
    active = ModelScores(base_accuracy=0.8, labels=("부정", "긍정"))
    candidate = ModelScores(base_accuracy=0.9, labels=("긍정", "부정"))
    decision = decide(candidate, active)
    assert not decision.promote and "label set changed" in decision.reason


def test_no_active_model_promotes_a_sane_candidate_only():
    assert decide(ModelScores(base_accuracy=0.7), None).promote
    at_chance = decide(ModelScores(base_accuracy=0.5), None)
    assert not at_chance.promote and "chance" in at_chance.reason


def test_non_finite_metrics_are_rejected():
    active = ModelScores(base_accuracy=0.5)
    assert not decide(ModelScores(base_accuracy=math.nan), active).promote
    assert not decide(ModelScores(base_accuracy=0.9, holdout_accuracy=math.inf), None).promote
