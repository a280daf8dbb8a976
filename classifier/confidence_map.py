"""A version's confidence map: the second step of its calibration, after the temperature baked into its head.

A temperature rescales every logit by one number. It cannot straighten a model whose confidences are bunched: the
quick-start model put 81% of 10,000 unseen reviews between 73% and 80% confidence, right 83% of the time, and the
rest below, right 44-61% of the time; no single temperature brings its ECE under 0.023 (bench_calibration's oracle).

The map is a monotone step-wise linear function from a verdict's confidence (its top probability) to the accuracy
that held-out verdicts at that confidence had: isotonic regression, fitted by the trainer (`trainer.temperature`)
and stored beside the weights as `confidence_map.json`. It is applied after the softmax to the probabilities of
every runtime (torch, the ONNX fast path), so all of them give identical numbers. It never changes which label
wins: the top probability moves, the others share the rest in their old proportions, and the top stays on top.
(`pipeline()` knows nothing of it: it reads the weights, with their temperature, only.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CONFIDENCE_MAP_FILE = "confidence_map.json"
TIE_MARGIN = 1e-6


class ConfidenceMapError(ValueError):
    """The file is not a usable map; the message says why."""


@dataclass(frozen=True)
class ConfidenceMap:
    confidence: tuple[float, ...]  # knots, increasing, in [0, 1]
    calibrated: tuple[float, ...]  # the map's value at each knot: non-decreasing, in [0, 1]
    fitted_on: int  # how many held-out verdicts

    def __post_init__(self) -> None:
        x = np.asarray(self.confidence, dtype=float)
        y = np.asarray(self.calibrated, dtype=float)
        if x.ndim != 1 or x.size == 0 or x.shape != y.shape:
            raise ConfidenceMapError("confidence and calibrated must be equally long, non-empty lists")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise ConfidenceMapError("the map's numbers must be finite")
        if np.any(np.diff(x) <= 0) or np.any(np.diff(y) < 0):
            raise ConfidenceMapError("the map must be increasing in confidence and never decrease")
        if x.min() < 0 or x.max() > 1 or y.min() < 0 or y.max() > 1:
            raise ConfidenceMapError("the map's numbers must lie in [0, 1]")

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """Rows of probabilities (each sums to 1) -> the same rows with their top probability mapped."""
        rows = np.asarray(probabilities, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[0] == 0:
            return rows
        top = rows.argmax(axis=1)
        index = np.arange(rows.shape[0])
        confidence = rows[index, top]
        second = np.sort(rows, axis=1)[:, -2] if rows.shape[1] > 1 else np.zeros_like(confidence)
        mapped = np.interp(confidence, self.confidence, self.calibrated)
        # The top label stays on top. The others are scaled by (1 - mapped) / (1 - confidence), so the runner-up
        # stays below the top while mapped > second / (1 - confidence + second) (1/2 for two classes; 1/K for a
        # certain row, whose others share the rest evenly). A hair above that, and never above where it was.
        gap = 1.0 - confidence + second
        floor = np.where(gap > 1e-12, second / np.maximum(gap, 1e-12), 1.0 / rows.shape[1]) + TIE_MARGIN
        mapped = np.maximum(mapped, np.minimum(floor, confidence))
        rest = 1.0 - confidence
        scale = np.divide(1.0 - mapped, rest, out=np.zeros_like(rest), where=rest > 1e-12)
        result = rows * scale[:, None]
        # A top probability of exactly 1 leaves the others nothing to scale: they share what the map took evenly.
        certain = rest <= 1e-12
        if np.any(certain) and rows.shape[1] > 1:
            result[certain] = ((1.0 - mapped[certain]) / (rows.shape[1] - 1))[:, None]
        result[index, top] = mapped
        return result

    def to_json(self) -> dict:
        return {
            "method": "isotonic regression of held-out correctness on the top probability (after the temperature)",
            "fitted_on": self.fitted_on,
            "confidence": list(self.confidence),
            "calibrated": list(self.calibrated),
        }

    def save(self, directory: Path) -> None:
        (Path(directory) / CONFIDENCE_MAP_FILE).write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def read(cls, directory: Path) -> ConfidenceMap | None:
        """The map saved in a version directory; None when the version has none (it was trained before maps)."""
        path = Path(directory) / CONFIDENCE_MAP_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                confidence=tuple(float(v) for v in data["confidence"]),
                calibrated=tuple(float(v) for v in data["calibrated"]),
                fitted_on=int(data.get("fitted_on", 0)),
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConfidenceMapError(f"{path}: {error}") from error
