"""What a training run needs (`TrainConfig`) and the one error it raises (`TrainingError`); no heavy imports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DEFAULT_BASE = "kykim/bert-kor-base"
# Each task's default base checkpoint on the model hub: toxicity starts from an encoder pretrained on Korean
# online comments, its domain. Offline, pass a local folder (e.g. ../shared/models/multilingual-e5-small-ko).
DEFAULT_BASES = {"sentiment": DEFAULT_BASE, "toxicity": "beomi/KcELECTRA-base-v2022"}
SCRATCH_BASE = "scratch"
# A pretrained encoder wants small steps; a randomly initialised tiny BERT learns nothing useful at 5e-5.
PRETRAINED_LEARNING_RATE = 5e-5
SCRATCH_LEARNING_RATE = 1e-3
SCRATCH_DEFAULT_MAX_LENGTH = 128
# What picks the epoch a run keeps: the lowest held-out loss or the highest held-out accuracy.
BestMetric = Literal["loss", "accuracy"]


class TrainingError(Exception):
    """A training run cannot go on; the message says why and what to do (the CLI prints it and exits 2)."""


@dataclass
class TrainConfig:
    output: Path
    base: str = ""  # hub name, local checkpoint folder, or "scratch"; empty: the task's DEFAULT_BASES entry

    # Data: the task's built-in corpus (under korpora_root) unless `data` names a CSV/TSV file.
    # What the model judges. Without `data` each task trains on its own built-in corpus: NSMC for sentiment
    # (부정/긍정), BEEP! for toxicity (정상/공격적/혐오; trainer/toxicity.py). Label names are unique across tasks.
    task: Literal["sentiment", "toxicity"] = "sentiment"
    korpora_root: Path | None = None
    data: Path | None = None
    text_col: str = "text"
    label_col: str = "label"
    eval_data: Path | None = None
    train_size: int | None = 1000  # None: every row
    eval_size: int | None = 500
    min_chars: int = 6  # drop documents shorter than this, as the tutorial does
    extra: Path | None = None  # extra labelled examples (text,label[,weight]; label = id or name)
    extra_weight: int = 1  # each extra example appears this many times (times its own weight) in training
    # Also train on this many of the base corpus's nearest rows to each extra example (trainer/neighbours.py),
    # taken out of train_size (half of it at most). 0: a plain random sample.
    extra_neighbours: int = 0
    # Draw the random base rows class by class so that the whole training set (base rows, neighbours and the
    # extra rows after weighting) keeps the base data's class mix: extra examples of mostly one class then teach
    # their texts, not a shifted prior. Off: the random rows are a plain sample.
    keep_class_prior: bool = False
    exclude: Path | None = None  # CSV/TSV with a text column: these texts are never trained or validated on
    # Toxicity without `data`: also train on this many K-MHaS comments drawn from its training part (never its
    # held-out fifth) in its own class mix, read as BEEP!'s classes (trainer/toxicity.py). Clean comments come
    # too: toxic ones alone taught "a K-MHaS-style news comment is toxic" (bench/results/toxicity_steps/).
    # 0: BEEP! train alone.
    kmhas_rows: int = 0

    # Recipe
    epochs: float = 3
    batch_size: int = 16
    learning_rate: float | None = None  # None: 5e-5 for a pretrained base, 1e-3 for scratch
    # The layers the base checkpoint does not have (the new head, and e.g. e5's pooler, which it ships without)
    # start from random weights: they may learn faster than the pretrained encoder. None: at learning_rate.
    head_learning_rate: float | None = None
    weight_decay: float = 0.01
    # Weight each class's loss by rows / (classes x its rows) in the training set, so every class counts as much
    # in the loss as it does in a macro-F1. Off: each row counts once, and the data's class mix is the prior.
    balanced_class_weights: bool = False
    warmup_ratio: float = 0.1
    max_length: int | None = None  # None: the model's maximum (128 for scratch)
    early_stopping_patience: int = 2  # 0 disables early stopping
    best_metric: BestMetric = "loss"
    # Save this share of the fine-tuned weights and the rest of the base checkpoint's (trainer/weight_mix.py),
    # when the base is a classifier over the same labels; 1: the fine-tuned weights as they are.
    fine_tuned_share: float = 1.0
    seed: int = 42
    progress_json: bool = False
    checkpoint_dir: Path | None = (
        None  # where epoch checkpoints go (default: a temporary folder); removed after
    )

    # Scratch model (base="scratch"): a tiny BERT and a WordPiece vocabulary trained on the training texts.
    scratch_hidden: int = 128
    scratch_layers: int = 2
    scratch_heads: int = 2
    scratch_vocab_size: int = 8000

    def __post_init__(self) -> None:
        self.output = Path(self.output)
        if self.task not in DEFAULT_BASES:
            raise TrainingError(f"unknown task {self.task!r}; choose from {', '.join(DEFAULT_BASES)}")
        if not self.base:
            self.base = DEFAULT_BASES[self.task]
        if self.kmhas_rows < 0:
            raise TrainingError(f"--kmhas-rows must be 0 or more, got {self.kmhas_rows}")
        if self.kmhas_rows and (self.task != "toxicity" or self.data is not None):
            raise TrainingError(
                "--kmhas-rows adds to the toxicity task's built-in data: use it with --task toxicity and no --data"
            )
        if not 0.0 < self.fine_tuned_share <= 1.0:
            raise TrainingError(
                f"--fine-tuned-share must be above 0 and at most 1, got {self.fine_tuned_share}"
            )
        for name in ("korpora_root", "data", "eval_data", "extra", "exclude", "checkpoint_dir"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, Path(value))

    @property
    def is_scratch(self) -> bool:
        return self.base == SCRATCH_BASE

    @property
    def effective_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return SCRATCH_LEARNING_RATE if self.is_scratch else PRETRAINED_LEARNING_RATE
