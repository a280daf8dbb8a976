"""The training set of one retraining run: the configured base data plus the users' corrections.

The base data (NSMC through Korpora, or `BASE_DATA`) is read by the trainer itself; this module builds
the `TrainConfig` describing it, so the promotion gate can load exactly the trainer's evaluation
examples through the same `trainer.data.load_training_data`. Corrections are split deterministically
by verdict id into a training part (oversampled `CORRECTION_WEIGHT` times) and a held-out part that
no model ever trains on, and both are written as CSV into the run's folder.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.settings import Settings

CORRECTIONS_TRAIN_FILE = "corrections_train.csv"
CORRECTIONS_HOLDOUT_FILE = "corrections_holdout.csv"


@dataclass(frozen=True)
class CorrectionExample:
    verdict_id: int
    text: str
    label: int
    feedback_ids: tuple[int, ...] = ()


@dataclass
class CorrectionSplit:
    train: list[CorrectionExample] = field(default_factory=list)
    holdout: list[CorrectionExample] = field(default_factory=list)

    @property
    def feedback_ids(self) -> list[int]:
        return sorted({fid for example in (*self.train, *self.holdout) for fid in example.feedback_ids})


def is_held_out(verdict_id: int, fraction: float) -> bool:
    """Whether a corrected verdict belongs to the evaluation slice: a stable hash of its id, so a verdict
    held out once stays held out in every later run (and never leaks into training)."""
    if fraction <= 0:
        return False
    digest = hashlib.sha256(f"verdict:{verdict_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_corrections(corrections: Sequence[object], *, holdout_fraction: float) -> CorrectionSplit:
    """Split storage `Correction` rows (verdict_id, text, label, feedback_ids) into train and held-out parts.

    Corrections whose text was purged by retention (None/blank) cannot be trained on and are skipped.
    """
    split = CorrectionSplit()
    for correction in corrections:
        text = getattr(correction, "text", None)
        if text is None or not str(text).strip():
            continue
        example = CorrectionExample(
            verdict_id=int(correction.verdict_id),
            text=str(text),
            label=int(correction.label),
            feedback_ids=tuple(int(fid) for fid in correction.feedback_ids),
        )
        (split.holdout if is_held_out(example.verdict_id, holdout_fraction) else split.train).append(example)
    return split


def write_corrections_csv(
    path: Path, examples: Sequence[CorrectionExample], id2label: dict[int, str] | None
) -> Path:
    """`text,label` CSV (the trainer's `--extra` format). Labels are written as names when the label names
    are known, so they map correctly whatever ids the training data gives them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for example in examples:
            label = id2label.get(example.label, example.label) if id2label else example.label
            writer.writerow([example.text, label])
    return path


def base_train_config(settings: Settings, *, output: Path, base: str, extra: Path | None):
    """The `TrainConfig` of a retraining run (also how the gate finds the base evaluation examples)."""
    from trainer import TrainConfig

    return TrainConfig(
        output=output,
        base=base,
        korpora_root=None if settings.base_data is not None else settings.korpora_root,
        data=settings.base_data,
        eval_data=settings.base_eval_data,
        train_size=settings.retrain_train_size,
        eval_size=settings.retrain_eval_size,
        extra=extra,
        extra_weight=settings.correction_weight,
        epochs=settings.retrain_epochs,
        batch_size=settings.retrain_batch_size,
        learning_rate=settings.retrain_learning_rate,
        max_length=settings.retrain_max_length,
        progress_json=True,
    )


def load_base_evaluation(config) -> tuple[list[str], list[int], dict[int, str]]:
    """The trainer's own evaluation examples for `config` (texts, label ids, id2label). Blocking."""
    from trainer.data import load_training_data

    data = load_training_data(dataclasses.replace(config, extra=None))
    return data.eval.texts, data.eval.labels, dict(data.id2label)
