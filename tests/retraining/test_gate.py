"""The promotion gate's statistics and rules, on per-example correctness vectors with known differences.

The end-to-end tests (tests/retraining/test_service.py) train real candidates; here the rules themselves are
pinned down exactly: noise never rejects, a real loss beyond the tolerance does, the drift guard stops small
losses from adding up, and a shortcut shows up as a loss on one class of the human labels.
"""

from __future__ import annotations

import random

import pytest
from scipy.stats import binomtest

from bot.retraining.gate import Scores, compare, decide

N = 5000  # the default size of the fixed evaluation set
CONFIDENCE = 0.95


def model(accuracy: float, *, seed: int = 0, n: int = N) -> list[bool]:
    rng = random.Random(seed)
    correct = [True] * round(accuracy * n) + [False] * (n - round(accuracy * n))
    rng.shuffle(correct)
    return correct


def worse(base: list[bool], examples: int, *, seed: int = 1) -> list[bool]:
    """`base` with `examples` of its right answers turned wrong (a loss of examples / n)."""
    rng = random.Random(seed)
    flipped = list(base)
    for index in rng.sample([i for i, right in enumerate(base) if right], examples):
        flipped[index] = False
    return flipped


def noisy(base: list[bool], changes: int, *, seed: int) -> list[bool]:
    """`base` with `changes` right answers turned wrong and as many wrong ones turned right: same accuracy."""
    rng = random.Random(seed)
    flipped = list(base)
    for index in rng.sample([i for i, right in enumerate(base) if right], changes):
        flipped[index] = False
    for index in rng.sample([i for i, right in enumerate(base) if not right], changes):
        flipped[index] = True
    return flipped


def gate(
    candidate,
    active,
    reference=None,
    *,
    human=None,
    active_human=None,
    tolerance=0.5,
    classes=None,
    class_tolerance=10.0,
):
    return decide(
        candidate=Scores(candidate, human or {}, base_classes=classes),
        active=None if active is None else Scores(active, active_human or {}, base_classes=classes),
        reference=None if reference is None else Scores(reference),
        active_version=2,
        reference_version=None if reference is None else 1,
        tolerance_points=tolerance,
        confidence=CONFIDENCE,
        class_tolerance_points=class_tolerance,
    )


def test_compare_is_a_paired_test_with_an_interval():
    active = model(0.78)
    candidate = noisy(active, 100, seed=3)[:]  # 200 discordant pairs, no net change
    candidate = worse(candidate, 30, seed=4)  # then 30 more lost: -0.6 points
    result = compare(candidate, active, confidence=CONFIDENCE)
    assert result.difference == pytest.approx(-30 / N)
    assert result.low < result.difference < result.high
    assert result.other_only - result.candidate_only == 30
    test = binomtest(result.candidate_only, result.candidate_only + result.other_only, 0.5)
    assert result.p_value == pytest.approx(test.pvalue)
    share = test.proportion_ci(confidence_level=CONFIDENCE, method="exact")
    discordant = (result.candidate_only + result.other_only) / N
    assert (result.low, result.high) == pytest.approx(
        (discordant * (2 * share.low - 1), discordant * (2 * share.high - 1))
    )

    # A tiny slice where the candidate wins all 12 discordant pairs: an honest, wide interval above zero.
    small = compare([True] * 12, [False] * 12, confidence=CONFIDENCE)
    assert small.difference == 1.0 and 0.4 < small.low < 0.8 and small.high == pytest.approx(1.0)
    assert compare(active, active, confidence=CONFIDENCE).high == 0.0  # identical answers: no interval at all


def test_a_loss_within_noise_is_not_a_reason_to_reject():
    """The issue's case: a candidate 0.8 points lower on a small sample. Here the loss beyond the tolerance is
    real in the point estimate, but with few examples the interval includes zero: noise, so it is promoted."""
    active = model(0.78, n=1000)
    candidate = worse(noisy(active, 40, seed=5), 8)
    decision = gate(candidate, active)
    (check,) = decision.checks
    assert check.comparison.difference < -0.005 and check.comparison.high > 0
    assert decision.promote, decision.reason


def test_a_significant_loss_beyond_the_tolerance_rejects():
    active = model(0.78)
    candidate = worse(noisy(active, 80, seed=6), 60)  # -1.2 points, 220 discordant pairs
    decision = gate(candidate, active)
    assert not decision.promote
    assert "base_vs_active" in decision.reason and "exceeds the tolerance" in decision.reason


def test_a_significant_loss_within_the_tolerance_is_accepted():
    active = model(0.78)
    candidate = worse(active, 15)  # -0.3 points, every discordant pair against the candidate: significant
    decision = gate(candidate, active)
    (check,) = decision.checks
    assert check.comparison.significantly_worse and decision.promote


def test_the_drift_guard_rejects_successive_small_losses():
    """Three candidates in a row, each within the tolerance of the model it would replace, but the active model
    has already drifted below the best version ever promoted: against that reference each loses too much."""
    reference = model(0.80)
    active = worse(reference, 20, seed=10)  # an earlier promotion lost 0.4 points, within tolerance
    rejected = 0
    current_reference = reference
    for step, seed in enumerate((11, 12, 13), start=1):
        candidate = worse(active, 8 + 4 * step, seed=seed)  # -0.24 .. -0.4 points against the active model
        decision = gate(candidate, active, current_reference)
        by_name = {check.name: check for check in decision.checks}
        assert by_name["base_vs_active"].passed  # the active model alone would let every one through
        assert not by_name["base_vs_reference"].passed  # the drift guard stops it
        rejected += not decision.promote
        # Without the guard it would have been promoted and become the next active model.
        assert gate(candidate, active).promote
    assert rejected == 3


def test_without_the_guard_losses_would_add_up():
    """The same small steps, each promoted against the then-active model, lose more than twice the tolerance in
    all; with the guard the chain stops as soon as the total exceeds it."""
    reference = model(0.80)
    unguarded, guarded = reference, reference
    for seed in range(20, 25):
        candidate = worse(unguarded, 20, seed=seed)
        if gate(candidate, unguarded).promote:
            unguarded = candidate
        candidate = worse(guarded, 20, seed=seed)
        if gate(candidate, guarded, reference).promote:
            guarded = candidate
    assert sum(reference) - sum(unguarded) >= 100  # 2 points lost, step by step
    assert sum(reference) - sum(guarded) <= 0.01 * N  # never more than ~the tolerance plus one step


def test_a_shortcut_shows_as_a_loss_on_the_other_class_of_human_labels():
    """A candidate that learned "this phrase -> 긍정": better on corrected 긍정 examples, but it now calls the
    phrase's 부정 examples 긍정 too. Base accuracy is unchanged; the per-class human-label check rejects it."""
    base = model(0.8)
    active_human = {"긍정": [False] * 30 + [True] * 10, "부정": [True] * 36 + [False] * 4}
    shortcut_human = {"긍정": [True] * 40, "부정": [True] * 12 + [False] * 28}
    decision = gate(base, base, human=shortcut_human, active_human=active_human)
    by_name = {check.name: check for check in decision.checks}
    assert by_name["human_긍정"].passed and by_name["human_긍정"].comparison.significantly_better
    assert not by_name["human_부정"].passed and not decision.promote

    genuine_human = {"긍정": [True] * 34 + [False] * 6, "부정": [True] * 35 + [False] * 5}
    assert gate(base, base, human=genuine_human, active_human=active_human).promote


def test_no_active_model_needs_better_than_chance_and_labels_must_match():
    assert gate(model(0.7), None).promote
    at_chance = gate(model(0.5), None)
    assert not at_chance.promote and "chance" in at_chance.reason
    mismatch = decide(
        candidate=Scores(model(0.9)),
        active=Scores(model(0.8)),
        reference=None,
        active_version=1,
        reference_version=None,
        tolerance_points=0.5,
        confidence=CONFIDENCE,
        labels_match=False,
    )
    assert not mismatch.promote and "label set" in mismatch.reason


def test_the_record_is_plain_json_with_every_number():
    import json

    active = model(0.78)
    decision = gate(worse(active, 10), active, model(0.79, seed=9))
    record = json.loads(json.dumps(decision.record()))
    assert {check["name"] for check in record["checks"]} == {"base_vs_active", "base_vs_reference"}
    check = record["checks"][0]
    assert {"n", "candidate_accuracy", "other_accuracy", "difference", "low", "high", "p_value"} <= set(check)


def calibration_gate(candidate, candidate_confidence, active, active_confidence, *, tolerance=1.0, version=2):
    """The gate on two models' correctness and confidences (no reference, no human labels)."""
    return decide(
        candidate=Scores(candidate, {}, candidate_confidence),
        active=Scores(active, {}, active_confidence),
        reference=None,
        active_version=version,
        reference_version=None,
        tolerance_points=0.5,
        confidence=CONFIDENCE,
        calibration_tolerance_points=tolerance,
    )


def test_a_candidate_with_the_same_accuracy_but_overconfident_probabilities_is_rejected():
    active = model(0.8)
    candidate = noisy(active, 50, seed=5)
    active_confidence = [0.8] * N  # 80% right at 80%: calibrated
    overconfident = [0.99] * N  # 80% right at 99%: ECE about 0.19
    rejected = calibration_gate(candidate, overconfident, active, active_confidence)
    assert not rejected.promote
    (check,) = [check for check in rejected.checks if check.name == "calibration_vs_active"]
    assert not check.passed and check.rule.startswith("significantly worse calibrated and beyond")
    assert check.comparison.other_ece == pytest.approx(
        0.0
    ) and check.comparison.candidate_ece == pytest.approx(0.19)
    assert check.comparison.low > 0.01 and check.comparison.n == N
    record = {entry["name"]: entry for entry in rejected.record()["checks"]}["calibration_vs_active"]
    assert record["candidate_ece"] == pytest.approx(0.19) and record["passed"] is False
    assert "calibration_vs_active" in rejected.reason

    # As well calibrated as the active model (a different but equally honest confidence): promoted.
    promoted = calibration_gate(candidate, [0.8] * N, active, active_confidence)
    assert promoted.promote, promoted.reason
    # A generous tolerance lets the same overconfident candidate through: the setting is the rule.
    tolerant = calibration_gate(candidate, overconfident, active, active_confidence, tolerance=25.0)
    assert tolerant.promote, tolerant.reason


def test_better_calibration_never_fails_the_check():
    active = model(0.8)
    candidate = list(active)
    better = calibration_gate(candidate, [0.8] * N, active, [0.99] * N)  # 80% right at 80%
    assert better.promote
    (check,) = [check for check in better.checks if check.name == "calibration_vs_active"]
    assert check.passed and check.comparison.difference < -0.1 and check.comparison.high < 0


def test_the_calibration_check_reads_in_korean():
    from bot.retraining.texts import gate_summary

    decision = calibration_gate(model(0.8), [0.99] * N, model(0.8), [0.8] * N, version=3)
    text = gate_summary({**decision.record(), "confidence": CONFIDENCE})
    line = next(line for line in text.splitlines() if "확률 보정" in line)
    assert line.startswith("✘ 확률 보정(ECE, 낮을수록 좋음), 현재 모델 v3 대비: 0.0% → 19.0% (+19.0%p")
    assert "허용치를 넘음" in line and "n=5000" in line


def test_examples_without_a_confidence_are_left_out_of_the_calibration_check():
    """A toxicity gate example labelled only "toxic" has no top-class confidence to check: the check reads the rest."""
    active = model(0.8)
    candidate = list(active)
    half = N // 2
    # Overconfident where it is checked... and the unchecked half, however it looks, changes nothing.
    overconfident = [0.99] * half + [None] * (N - half)
    calibrated = [0.8] * half + [None] * (N - half)
    rejected = calibration_gate(candidate, overconfident, active, calibrated)
    (check,) = [check for check in rejected.checks if check.name == "calibration_vs_active"]
    assert not check.passed and check.comparison.n == half
    nothing = calibration_gate(candidate, [None] * N, active, [None] * N)
    (check,) = [check for check in nothing.checks if check.name == "calibration_vs_active"]
    assert check.passed and check.comparison is None and nothing.promote


def test_a_run_that_trades_one_class_for_another_is_rejected_though_its_accuracy_held():
    classes = ["정상"] * 2000 + ["공격적"] * 1000 + ["공격적|혐오"] * 2000
    active = model(0.7, seed=3)
    candidate = list(active)
    offensive = [i for i in range(2000, 3000) if candidate[i]][:150]  # 공격적: 15 points worse
    normal = [i for i in range(2000) if not candidate[i]][:150]  # 정상: 7.5 points better
    for i in offensive:
        candidate[i] = False
    for i in normal:
        candidate[i] = True
    decision = gate(candidate, active, classes=classes)
    assert sum(candidate) == sum(active)  # the overall accuracy did not move
    checks = {check.name: check for check in decision.checks}
    assert set(checks) == {"base_vs_active", "base_class_정상", "base_class_공격적", "base_class_공격적|혐오"}
    assert checks["base_vs_active"].passed and checks["base_class_정상"].passed
    assert not checks["base_class_공격적"].passed and not decision.promote
    assert checks["base_class_공격적"].comparison.n == 1000
    assert (
        "base_class_공격적: significantly worse and the loss exceeds the tolerance (10 points)"
        in decision.reason
    )
    # Within the class tolerance (here 20 points) the same trade passes.
    assert gate(candidate, active, classes=classes, class_tolerance=20).promote


def test_the_class_check_reads_in_korean():
    from bot.retraining.texts import gate_summary

    classes = ["정상"] * (N // 2) + ["공격적|혐오"] * (N // 2)
    decision = gate(model(0.8), model(0.8), classes=classes)
    text = gate_summary({**decision.record(), "confidence": CONFIDENCE})
    assert "✔ 기본 평가 중 '공격적 또는 혐오', 현재 모델 v2 대비:" in text
    assert "✔ 기본 평가 중 '정상', 현재 모델 v2 대비:" in text


def test_a_run_that_breaks_the_other_class_of_the_corrected_pattern_is_rejected():
    """The (b) overshoot: corrections taught "1점 -> 긍정", and the 부정 reviews naming 1점 broke. They are 400
    of 10,000 부정 examples, so the whole class moves 2 points and passes; on the pattern's slice it is 20."""
    from bot.retraining.correction_pattern import CorrectionPattern

    classes = ["부정"] * (N // 2) + ["긍정"] * (N // 2)
    active = model(0.8, seed=5)
    pattern_negatives = [i for i in range(N // 2) if active[i]][:400]  # right before, and in the slice
    candidate = list(active)
    for i in pattern_negatives[:80]:  # 20 % of them broken
        candidate[i] = False
    for i in [i for i in range(N // 2, N) if not active[i]][:80]:  # paid back on 긍정: accuracy unchanged
        candidate[i] = True
    pattern = CorrectionPattern(("1점",), tuple(pattern_negatives))

    decision = decide(
        candidate=Scores(candidate, base_classes=classes),
        active=Scores(active, base_classes=classes),
        reference=None,
        active_version=2,
        reference_version=None,
        tolerance_points=0.5,
        confidence=CONFIDENCE,
        class_tolerance_points=10.0,
        pattern=pattern,
    )
    checks = {check.name: check for check in decision.checks}
    assert checks["base_class_부정"].passed and checks["base_vs_active"].passed
    assert not checks["pattern_class_부정"].passed and not decision.promote
    assert checks["pattern_class_부정"].comparison.n == 400
    assert round(checks["pattern_class_부정"].comparison.difference, 3) == -0.2
    assert "pattern_class_긍정" not in checks  # the slice holds no 긍정 example
    assert decision.record()["pattern"] == {"terms": ["1점"], "rows": 400}

    from bot.retraining.texts import gate_summary

    text = gate_summary({**decision.record(), "confidence": CONFIDENCE})
    assert "✘ 정정된 패턴('1점') 중 '부정', 현재 모델 v2 대비: 100.0% → 80.0%" in text

    # Without the pattern the same candidate is promoted: the whole set cannot see the loss.
    assert gate(candidate, active, classes=classes).promote
