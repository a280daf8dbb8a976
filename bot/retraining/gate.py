"""The promotion gate: pure rules deciding whether a retrained candidate replaces the active model.

Both models are scored by the same code (`classifier.evaluate`) on the same examples: the base
evaluation set and the corrections held out of training. Accuracies are fractions in [0, 1];
the tolerance is in accuracy *points* (0.5 means half a percentage point).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelScores:
    """One model's accuracy on the base evaluation set and on the held-out corrections."""

    base_accuracy: float
    holdout_accuracy: float | None = None  # None when no corrections were held out
    base_macro_f1: float | None = None
    labels: tuple[str, ...] = ()  # label names by id; the two models must agree


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str


def decide_promotion(
    *,
    candidate: ModelScores,
    active: ModelScores | None,
    tolerance_points: float,
    num_labels: int,
) -> GateDecision:
    """Promote only when the candidate keeps base accuracy (within tolerance) and does not get worse on
    the held-out corrections. With no active model, a candidate that beats chance is promoted."""
    if not _finite(candidate.base_accuracy) or (
        candidate.holdout_accuracy is not None and not _finite(candidate.holdout_accuracy)
    ):
        return GateDecision(False, "candidate metrics are not finite numbers")
    chance = 1.0 / max(num_labels, 1)
    if active is None:
        if candidate.base_accuracy <= chance:
            return GateDecision(
                False,
                f"no active model, and the candidate's base accuracy {_pct(candidate.base_accuracy)} "
                f"is not above chance ({_pct(chance)})",
            )
        return GateDecision(True, f"no active model; candidate base accuracy {_pct(candidate.base_accuracy)}")

    if active.labels and candidate.labels and active.labels != candidate.labels:
        return GateDecision(
            False, f"label set changed from {list(active.labels)} to {list(candidate.labels)}"
        )
    drop_points = (active.base_accuracy - candidate.base_accuracy) * 100.0
    if drop_points > tolerance_points + 1e-9:
        return GateDecision(
            False,
            f"base accuracy fell from {_pct(active.base_accuracy)} to {_pct(candidate.base_accuracy)} "
            f"({drop_points:.2f} points; tolerance {tolerance_points:g})",
        )
    if (
        candidate.holdout_accuracy is not None
        and active.holdout_accuracy is not None
        and candidate.holdout_accuracy + 1e-9 < active.holdout_accuracy
    ):
        return GateDecision(
            False,
            f"held-out correction accuracy fell from {_pct(active.holdout_accuracy)} "
            f"to {_pct(candidate.holdout_accuracy)}",
        )
    parts = [f"base accuracy {_pct(active.base_accuracy)} -> {_pct(candidate.base_accuracy)}"]
    if candidate.holdout_accuracy is not None and active.holdout_accuracy is not None:
        parts.append(
            f"held-out corrections {_pct(active.holdout_accuracy)} -> {_pct(candidate.holdout_accuracy)}"
        )
    return GateDecision(True, "; ".join(parts))


def _finite(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"
