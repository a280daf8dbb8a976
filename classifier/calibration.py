"""Calibration numbers: expected calibration error (ECE) and the reliability table behind a reliability diagram.

A verdict's confidence is the probability of the label it chose. A model is calibrated when, among verdicts given
at about 80%, about 80% are right. ECE bins the verdicts by confidence (15 equal-width bins, as in Guo et al.,
"On Calibration of Modern Neural Networks", 2017) and averages |accuracy - mean confidence| over the bins,
weighted by each bin's share of verdicts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ECE_BINS = 15


def _bin_index(confidences: np.ndarray, bins: int) -> np.ndarray:
    # Bin b holds (b/bins, (b+1)/bins]; a confidence of exactly 1 falls in the last bin.
    return np.clip(np.ceil(confidences * bins).astype(int) - 1, 0, bins - 1)


def _as_arrays(confidences: Sequence[float], correct: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    confidence = np.asarray(confidences, dtype=float)
    hits = np.asarray(correct, dtype=float)
    if confidence.shape != hits.shape or confidence.ndim != 1 or confidence.size == 0:
        raise ValueError("confidences and correct must be equally long, non-empty sequences")
    if not np.all((confidence >= 0) & (confidence <= 1)):
        raise ValueError("confidences must lie in [0, 1]")
    return confidence, hits


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], *, bins: int = ECE_BINS
) -> float:
    """ECE of verdicts with these confidences, right where `correct` is true (a fraction, 0 = calibrated)."""
    confidence, hits = _as_arrays(confidences, correct)
    index = _bin_index(confidence, bins)
    gaps = np.bincount(index, weights=hits - confidence, minlength=bins)
    return float(np.abs(gaps).sum() / confidence.size)


def reliability_table(
    confidences: Sequence[float], correct: Sequence[bool], *, bins: int = ECE_BINS
) -> list[dict[str, float | int | None]]:
    """Per confidence bin: its range, how many verdicts fell in it, their mean confidence and their accuracy
    (None for an empty bin): the points of a reliability diagram."""
    confidence, hits = _as_arrays(confidences, correct)
    index = _bin_index(confidence, bins)
    counts = np.bincount(index, minlength=bins)
    confidence_sums = np.bincount(index, weights=confidence, minlength=bins)
    hit_sums = np.bincount(index, weights=hits, minlength=bins)
    table = []
    for b in range(bins):
        count = int(counts[b])
        table.append(
            {
                "low": round(b / bins, 6),
                "high": round((b + 1) / bins, 6),
                "count": count,
                "mean_confidence": float(confidence_sums[b] / count) if count else None,
                "accuracy": float(hit_sums[b] / count) if count else None,
            }
        )
    return table


def paired_ece_difference(
    candidate: tuple[Sequence[float], Sequence[bool]],
    other: tuple[Sequence[float], Sequence[bool]],
    *,
    confidence: float,
    resamples: int = 1000,
    seed: int = 0,
    bins: int = ECE_BINS,
) -> tuple[float, float, float]:
    """(difference, low, high): candidate's ECE minus the other model's on the same examples, with a paired
    percentile-bootstrap interval (each resample draws the same examples for both models)."""
    candidate_confidence, candidate_hits = _as_arrays(*candidate)
    other_confidence, other_hits = _as_arrays(*other)
    if candidate_confidence.size != other_confidence.size:
        raise ValueError("both models must be scored on the same examples")
    size = candidate_confidence.size
    candidate_index = _bin_index(candidate_confidence, bins)
    other_index = _bin_index(other_confidence, bins)
    candidate_gap = candidate_hits - candidate_confidence
    other_gap = other_hits - other_confidence

    def ece(index: np.ndarray, gap: np.ndarray, weights: np.ndarray) -> float:
        return float(np.abs(np.bincount(index, weights=gap * weights, minlength=bins)).sum() / size)

    ones = np.ones(size)
    difference = ece(candidate_index, candidate_gap, ones) - ece(other_index, other_gap, ones)
    rng = np.random.default_rng(seed)
    draws = np.empty(resamples)
    for resample in range(resamples):
        weights = np.bincount(rng.integers(0, size, size), minlength=size).astype(float)
        draws[resample] = ece(candidate_index, candidate_gap, weights) - ece(other_index, other_gap, weights)
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return difference, float(low), float(high)
