"""The promotion gate: paired statistics deciding whether a retrained candidate replaces the active model.

Every model is scored on the same examples, in the precision the bot serves, so each comparison is paired:
per example, both right, both wrong, or one of them right. Only the discordant pairs carry information: McNemar's
exact test asks whether the candidate wins them more or less often than half (`scipy.stats.binomtest`), and the
exact (Clopper-Pearson) interval of that share, scaled by the share of discordant pairs, is the confidence interval
of the accuracy difference (candidate minus the other model). It is exact for small slices too, and agrees with
the test. A difference counts as a loss only when the interval lies wholly below zero: noise never rejects.

Checks (each shown with its interval):
1. **Base, against the active model**: on the fixed evaluation set. Fails when the candidate is significantly
   worse AND the loss exceeds the tolerance (`PROMOTION_TOLERANCE` points).
2. **Base, against the reference**: the same, against the best-scoring version ever promoted (the drift guard:
   each promotion may lose a little against the active model, but never more than the tolerance against the
   best version seen, so small losses cannot add up).
3. **Human labels, per class**: on the held-out slice of human labels (corrections and confirmations), the
   candidate must not be significantly worse than the active model on either class. A shortcut such as
   "this phrase -> positive" shows up here as a loss on the other class.
4. **Base, per class, against the active model**: on the fixed evaluation set's examples of each gold class,
   the same test with a wider tolerance (`PROMOTION_CLASS_TOLERANCE` points, default 10). A run that pays for
   what it learned with one class's examples (one class's error up 12 points, another's down 15, the overall
   accuracy even) is not promoted: the loop must get better at what people corrected without getting worse
   elsewhere.
5. **Calibration, against the active model**: on the fixed evaluation set, the candidate's expected calibration
   error (15 bins, `classifier.calibration`) must not be worse than the active model's by more than
   `CALIBRATION_TOLERANCE` points where a paired bootstrap interval of the difference lies wholly above zero.
   Thresholds (group moderation) read probabilities, so a promotion must not make them mean less.
6. **The corrected pattern, per class, against the active model**: on the fixed evaluation set's examples that
   share what this run's corrections have in common (`bot.retraining.correction_pattern`, e.g. every review
   naming "1점"), each gold class with the class tolerance. A run that learned "1점 -> 긍정" from corrections and
   broke the 부정 reviews naming 1점 loses there, though the whole set's classes hide it and the held-out human
   labels of 부정 are a handful.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bot.retraining.correction_pattern import NO_PATTERN, CorrectionPattern
from classifier.calibration import expected_calibration_error, paired_ece_difference


@dataclass(frozen=True)
class Comparison:
    """Candidate vs another model on the same examples (accuracies are fractions; differences too)."""

    n: int
    candidate_accuracy: float
    other_accuracy: float
    difference: float  # candidate - other
    low: float  # confidence interval of the difference
    high: float
    p_value: float  # McNemar's exact test, two-sided
    candidate_only: int  # examples only the candidate gets right
    other_only: int  # examples only the other model gets right

    @property
    def significantly_worse(self) -> bool:
        return self.high < 0

    @property
    def significantly_better(self) -> bool:
        return self.low > 0


def compare(
    candidate_correct: Sequence[bool], other_correct: Sequence[bool], *, confidence: float
) -> Comparison:
    """Paired comparison of two models' per-example correctness."""
    from scipy.stats import binomtest

    candidate = np.asarray(candidate_correct, dtype=float)
    other = np.asarray(other_correct, dtype=float)
    if candidate.shape != other.shape or candidate.ndim != 1 or candidate.size == 0:
        raise ValueError("compare needs two equally long, non-empty sequences")
    difference = float(candidate.mean() - other.mean())
    candidate_only = int(((candidate == 1) & (other == 0)).sum())
    other_only = int(((candidate == 0) & (other == 1)).sum())
    discordant = candidate_only + other_only
    if discordant == 0:
        low = high = 0.0  # identical answers: nothing can move the difference
        p_value = 1.0
    else:
        test = binomtest(candidate_only, discordant, 0.5)
        share = test.proportion_ci(confidence_level=confidence, method="exact")
        scale = discordant / candidate.size  # difference = (discordant / n) * (2 * share won - 1)
        low, high = scale * (2 * share.low - 1), scale * (2 * share.high - 1)
        p_value = float(test.pvalue)
    return Comparison(
        n=int(candidate.size),
        candidate_accuracy=float(candidate.mean()),
        other_accuracy=float(other.mean()),
        difference=difference,
        low=low,
        high=high,
        p_value=p_value,
        candidate_only=candidate_only,
        other_only=other_only,
    )


@dataclass(frozen=True)
class CalibrationComparison:
    """Candidate vs another model's expected calibration error on the same examples (fractions)."""

    n: int
    candidate_ece: float
    other_ece: float
    difference: float  # candidate - other: above zero is worse
    low: float  # paired bootstrap interval of the difference
    high: float


@dataclass(frozen=True)
class Check:
    # "base_vs_active", "base_vs_reference", "base_class_<label>", "human_<label>", "calibration_vs_active",
    # "pattern_class_<label>"
    name: str
    passed: bool
    comparison: Comparison | CalibrationComparison | None
    rule: str  # why it passed or failed, in words
    other_version: int | None = None


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    checks: list[Check] = field(default_factory=list)
    pattern: CorrectionPattern = NO_PATTERN  # what the corrections share, checked in check 6

    def record(self) -> dict[str, Any]:
        """The decision as plain JSON (metrics.json, the run record, /runs)."""
        return {
            "promote": self.promote,
            "reason": self.reason,
            "pattern": self.pattern.record(),
            "checks": [
                {
                    "name": check.name,
                    "passed": check.passed,
                    "rule": check.rule,
                    "other_version": check.other_version,
                    **(
                        {key: _finite_or_none(value) for key, value in asdict(check.comparison).items()}
                        if check.comparison is not None
                        else {}
                    ),
                }
                for check in self.checks
            ],
        }


@dataclass(frozen=True)
class Scores:
    """Per-example correctness of one model on the gate's examples."""

    base: Sequence[bool]  # on the fixed evaluation set
    human: dict[str, Sequence[bool]] = field(default_factory=dict)  # label name -> on held-out human labels
    # Each base verdict's confidence; None for the whole: not known; None for one example: left out of the
    # calibration check (its label accepts several answers).
    base_confidence: Sequence[float | None] | None = None
    # Each base example's gold label (as the evaluation set writes it); None: no per-class check.
    base_classes: Sequence[str] | None = None


def decide(
    *,
    candidate: Scores,
    active: Scores | None,
    reference: Scores | None,
    active_version: int | None,
    reference_version: int | None,
    tolerance_points: float,
    confidence: float,
    calibration_tolerance_points: float = 1.0,
    class_tolerance_points: float = 10.0,
    labels_match: bool = True,
    num_labels: int = 2,
    pattern: CorrectionPattern = NO_PATTERN,
) -> GateDecision:
    """Promote only when no check fails (see the module docstring)."""
    tolerance = tolerance_points / 100.0
    if not labels_match:
        return GateDecision(False, "the candidate's label set differs from the active model's")
    if not len(candidate.base):
        return GateDecision(False, "the evaluation set is empty")
    if active is None:
        accuracy = float(np.mean(candidate.base))
        chance = 1.0 / max(num_labels, 1)
        check = Check(
            "base_above_chance",
            accuracy > chance,
            None,
            f"no active model: base accuracy {accuracy:.1%} must beat chance ({chance:.1%})",
        )
        return GateDecision(check.passed, check.rule, [check])

    checks = [
        _base_check("base_vs_active", candidate.base, active.base, tolerance, confidence, active_version)
    ]
    if reference is not None and reference_version != active_version:
        checks.append(
            _base_check(
                "base_vs_reference", candidate.base, reference.base, tolerance, confidence, reference_version
            )
        )
    same_classes = candidate.base_classes is not None and list(candidate.base_classes) == list(
        active.base_classes or ()
    )
    if same_classes:
        checks.extend(
            _class_checks(candidate, active, class_tolerance_points / 100.0, confidence, active_version)
        )
        if pattern.rows:
            checks.extend(
                _class_checks(
                    candidate,
                    active,
                    class_tolerance_points / 100.0,
                    confidence,
                    active_version,
                    rows=pattern.rows,
                    prefix="pattern_class_",
                )
            )
    for label in sorted(candidate.human):
        if label not in active.human or not len(candidate.human[label]):
            continue
        comparison = compare(candidate.human[label], active.human[label], confidence=confidence)
        passed = not comparison.significantly_worse
        checks.append(
            Check(
                f"human_{label}",
                passed,
                comparison,
                "not significantly worse on this class" if passed else "significantly worse on this class",
                active_version,
            )
        )
    if candidate.base_confidence is not None and active.base_confidence is not None:
        checks.append(
            _calibration_check(
                candidate, active, calibration_tolerance_points / 100.0, confidence, active_version
            )
        )
    failed = [check for check in checks if not check.passed]
    reason = (
        "all checks passed" if not failed else "; ".join(f"{check.name}: {check.rule}" for check in failed)
    )
    return GateDecision(not failed, reason, checks, pattern)


def _base_check(
    name: str,
    candidate: Sequence[bool],
    other: Sequence[bool],
    tolerance: float,
    confidence: float,
    other_version: int | None,
) -> Check:
    comparison = compare(candidate, other, confidence=confidence)
    beyond_tolerance = comparison.difference < -tolerance - 1e-12  # exactly the tolerance is still within
    failed = comparison.significantly_worse and beyond_tolerance
    if failed:
        rule = f"significantly worse and the loss exceeds the tolerance ({tolerance * 100:g} points)"
    elif comparison.significantly_worse:
        rule = f"significantly worse, but within the tolerance ({tolerance * 100:g} points)"
    elif beyond_tolerance:
        rule = "the loss exceeds the tolerance, but is not significant (noise)"
    else:
        rule = "within the tolerance"
    return Check(name, not failed, comparison, rule, other_version)


def _class_checks(
    candidate: Scores,
    active: Scores,
    tolerance: float,
    confidence: float,
    active_version: int | None,
    *,
    rows: Sequence[int] | None = None,
    prefix: str = "base_class_",
) -> list[Check]:
    """One check per gold class of the evaluation set (or of its `rows`)."""
    chosen = np.arange(len(candidate.base)) if rows is None else np.asarray(rows, dtype=int)
    classes = np.asarray(candidate.base_classes)[chosen]
    candidate_base = np.asarray(candidate.base, bool)[chosen]
    active_base = np.asarray(active.base, bool)[chosen]
    return [
        _base_check(
            f"{prefix}{name}",
            candidate_base[classes == name],
            active_base[classes == name],
            tolerance,
            confidence,
            active_version,
        )
        for name in sorted(set(classes.tolist()))
    ]


def _calibration_check(
    candidate: Scores, active: Scores, tolerance: float, confidence: float, active_version: int | None
) -> Check:
    assert candidate.base_confidence is not None and active.base_confidence is not None
    rows = [
        index
        for index, (ours, theirs) in enumerate(
            zip(candidate.base_confidence, active.base_confidence, strict=True)
        )
        if ours is not None and theirs is not None
    ]
    if not rows:
        return Check(
            "calibration_vs_active", True, None, "no example to check calibration on", active_version
        )
    ours = ([float(candidate.base_confidence[i]) for i in rows], [candidate.base[i] for i in rows])  # type: ignore[arg-type]
    theirs = ([float(active.base_confidence[i]) for i in rows], [active.base[i] for i in rows])  # type: ignore[arg-type]
    difference, low, high = paired_ece_difference(ours, theirs, confidence=confidence)
    comparison = CalibrationComparison(
        n=len(rows),
        candidate_ece=expected_calibration_error(*ours),
        other_ece=expected_calibration_error(*theirs),
        difference=difference,
        low=low,
        high=high,
    )
    significantly_worse = low > 0
    beyond_tolerance = difference > tolerance + 1e-12
    failed = significantly_worse and beyond_tolerance
    if failed:
        rule = f"significantly worse calibrated and beyond the tolerance ({tolerance * 100:g} points)"
    elif significantly_worse:
        rule = f"significantly worse calibrated, but within the tolerance ({tolerance * 100:g} points)"
    else:
        rule = "calibration not significantly worse"
    return Check("calibration_vs_active", not failed, comparison, rule, active_version)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
