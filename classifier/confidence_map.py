"""A version's confidence map: the second step of its calibration, after the temperature baked into its head.

A temperature rescales every logit by one number. It cannot straighten a model whose confidences are bunched: the
quick-start model put 81% of 10,000 unseen reviews between 73% and 80% confidence, right 83% of the time, and the
rest below, right 44-61% of the time; no single temperature brings its ECE under 0.023 (bench_calibration's oracle).

The map is a monotone step-wise linear function from a verdict's confidence (its top probability) to the accuracy
that held-out verdicts at that confidence had: isotonic regression (`fit_confidence_map`), fitted by the trainer
(`trainer.temperature`) and stored beside the weights as `confidence_map.json`. It is applied after the softmax to
the probabilities of torch and the fp32 ONNX export, which agree to 1e-5, so both give identical numbers. It never
changes which label wins: the top probability moves, the others share the rest in their old proportions, and the
top stays on top. (`pipeline()` knows nothing of it: it reads the weights, with their temperature, only.)

The static int8 fast path is not the same function: it is about a point less accurate, so the fp32 map leaves it
underconfident. The trainer therefore also keeps the held-out verdicts the map was fitted on
(`calibration_set.jsonl`: texts and label ids), and building the int8 artefact fits the int8 path its own map on
them (`classifier.fastpath`, stored in its manifest entry), which the int8 path then applies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CONFIDENCE_MAP_FILE = "confidence_map.json"
CALIBRATION_SET_FILE = (
    "calibration_set.jsonl"  # {"text": ..., "label": id} per line: what the map was fitted on
)
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
    def from_json(cls, data: dict) -> ConfidenceMap:
        try:
            return cls(
                confidence=tuple(float(v) for v in data["confidence"]),
                calibrated=tuple(float(v) for v in data["calibrated"]),
                fitted_on=int(data.get("fitted_on", 0)),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise ConfidenceMapError(str(error)) from error

    @classmethod
    def read(cls, directory: Path) -> ConfidenceMap | None:
        """The map saved in a version directory; None when the version has none (it was trained before maps)."""
        path = Path(directory) / CONFIDENCE_MAP_FILE
        if not path.is_file():
            return None
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as error:
            raise ConfidenceMapError(f"{path}: {error}") from error


def fit_confidence_map(probabilities: np.ndarray, labels: np.ndarray) -> ConfidenceMap:
    """Isotonic regression of whether each held-out verdict was right on its top probability. Each of its steps
    (a run of verdicts it gives one value) becomes two knots, at its lowest and highest confidence, valued
    (right + 1) / (verdicts + 2): a step of 40 verdicts that were all right says 97.6 %, not a certainty no
    held-out set can show."""
    from sklearn.isotonic import IsotonicRegression

    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    order = np.argsort(probabilities.max(axis=-1), kind="stable")
    confidence = probabilities.max(axis=-1)[order]
    correct = (probabilities.argmax(axis=-1) == labels)[order].astype(np.float64)
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True).fit_transform(confidence, correct)
    # Steps: runs of equal fitted values (the verdicts sorted by confidence).
    starts = np.flatnonzero(np.r_[True, np.diff(fitted) != 0])
    ends = np.r_[starts[1:], len(fitted)]
    knots: list[float] = []
    values: list[float] = []
    for start, end in zip(starts, ends, strict=True):
        value = (correct[start:end].sum() + 1.0) / (end - start + 2.0)
        for knot in (confidence[start], confidence[end - 1]):
            if (
                knots and knot <= knots[-1]
            ):  # a step of one confidence, or one that starts where the last ended
                values[-1] = max(values[-1], value)
                continue
            knots.append(float(knot))
            values.append(float(value))
    return ConfidenceMap(
        confidence=tuple(knots),
        calibrated=tuple(float(v) for v in np.maximum.accumulate(values)),
        fitted_on=len(labels),
    )


def save_calibration_set(directory: Path, texts: list[str], labels: list[int]) -> None:
    with (Path(directory) / CALIBRATION_SET_FILE).open("w", encoding="utf-8") as handle:
        for text, label in zip(texts, labels, strict=True):
            handle.write(json.dumps({"text": text, "label": int(label)}, ensure_ascii=False) + "\n")


def read_calibration_set(directory: Path) -> tuple[list[str], list[int]] | None:
    """The held-out verdicts a version's map was fitted on; None when it has none (or the file is unusable)."""
    path = Path(directory) / CALIBRATION_SET_FILE
    if not path.is_file():
        return None
    texts: list[str] = []
    labels: list[int] = []
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                texts.append(str(row["text"]))
                labels.append(int(row["label"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (texts, labels) if texts else None
