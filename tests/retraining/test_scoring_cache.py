"""A version's cached answers on the gate's evaluation set (bot/retraining/scoring.py): confidences are kept for
the calibration check, and a file written before they were kept still serves the drift guard's labels while the
version is scored again, once, when its confidences are needed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bot.retraining.dataset import EvalSet
from bot.retraining.scoring import PREDICTIONS_DIR, _base_predictions, _cached_base_predictions


@dataclass
class _Verdict:
    label_name: str
    confidence: float


class _Model:
    def __init__(self) -> None:
        self.calls = 0

    def predict(self, texts: list[str]) -> list[_Verdict]:
        self.calls += 1
        return [_Verdict("긍정" if "좋" in text else "부정", 0.9) for text in texts]


def _eval_set(tmp_path: Path) -> EvalSet:
    return EvalSet(
        texts=["좋아요 정말", "별로예요 진짜"],
        labels=["긍정", "부정"],
        source="test",
        digest="a" * 64,
        path=tmp_path / "e.csv",
    )


def test_answers_are_cached_with_confidences_and_reused(tmp_path: Path):
    eval_set, model = _eval_set(tmp_path), _Model()
    first = _base_predictions(tmp_path, eval_set, "fp32", lambda: model)
    again = _base_predictions(tmp_path, eval_set, "fp32", lambda: model)
    assert first == again and first.labels == ["긍정", "부정"] and first.confidences == [0.9, 0.9]
    assert model.calls == 1


def test_a_file_from_before_confidences_serves_labels_and_is_rescored_once(tmp_path: Path):
    eval_set, model = _eval_set(tmp_path), _Model()
    old = tmp_path / PREDICTIONS_DIR / f"{eval_set.digest[:16]}-fp32.json"
    old.parent.mkdir()
    old.write_text(json.dumps({"predictions": ["긍정", "긍정"]}), encoding="utf-8")
    cached = _cached_base_predictions(tmp_path, eval_set, "fp32")
    assert cached is not None and cached.labels == ["긍정", "긍정"] and cached.confidences is None
    answers = _base_predictions(tmp_path, eval_set, "fp32", lambda: model)
    assert model.calls == 1 and answers.confidences == [0.9, 0.9] and answers.labels == ["긍정", "부정"]
    assert _base_predictions(tmp_path, eval_set, "fp32", lambda: model) == answers and model.calls == 1
