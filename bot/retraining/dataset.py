"""The data of one retraining run: human labels (split, weighted, written for the trainer) and the fixed
evaluation set of the promotion gate.

- **Human labels** are every label people ever gave that counts (corrections and confirmations; see
  `bot.storage.export_human_labels`). A stable slice, chosen by a hash of the message id, is held out for the gate
  and never trained on. The rest is oversampled: `CORRECTION_WEIGHT` rows each, and with the default
  `CORRECTION_BALANCE=prior` the trainer draws its random base rows so the whole set keeps the base data's class
  mix, so labels that are mostly of one class teach their texts instead of shifting the prior towards that
  class ("classes" splits the labels' rows evenly between the classes instead). The trainer repeats each row
  its `weight` times.
- **The gate's evaluation set** is fixed and versioned, one per task. Sentiment: `GATE_EVAL_SIZE` reviews drawn
  once, with a fixed seed, from NSMC's test split (or from `BASE_EVAL_DATA`, or a hash-chosen part of `BASE_DATA`).
  Toxicity: BEEP!'s dev split (three classes) and K-MHaS's held-out fifth (`trainer.toxicity.load_kmhas`), whose
  labels are binary: a toxic K-MHaS comment is answered right by 공격적 or by 혐오 (`ANY_OF`). Its texts are passed
  to the trainer as `--exclude`, so no run ever trains or validates on them, and its identity (a hash of its
  content) is recorded with every run, so results compare across runs.
- **Base rows** (NSMC train or `BASE_DATA`; BEEP! train for toxicity) are read by the trainer itself, with a new
  seed per run: successive runs see fresh base rows, and a retry of a rejected run is a new sample, not a replay.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.settings import Settings
from classifier.tasks import SENTIMENT, TOXICITY

HUMAN_TRAIN_FILE = "human_labels_train.csv"
HUMAN_HOLDOUT_FILE = "human_labels_holdout.csv"
EVAL_SETS_DIR = "eval-sets"
# The gate's evaluation set is drawn with this seed, whatever a run's own seed: the same examples every time.
GATE_EVAL_SEED = 20261125
# One class's rows at most this many times the average weight (a class with very few labels is not blown up).
MAX_CLASS_BOOST = 4.0
MIN_CHARS = 6  # as the trainer: shorter documents are dropped
# An evaluation label that accepts several answers: "공격적|혐오" (K-MHaS says only "toxic").
ANY_OF = "|"


def accepted_labels(label: str) -> tuple[str, ...]:
    """The answers an evaluation label accepts (one, or several for a binary label)."""
    return tuple(label.split(ANY_OF))


logger = logging.getLogger(__name__)


def human_label_rule(settings: Settings) -> dict[str, object]:
    """The keyword arguments of `bot.storage.export_human_labels` (and `count_unused_feedback`) that settings
    decide: whose labels count."""
    from bot.storage import LabelRule

    return {"rule": LabelRule.from_settings(settings)}


@dataclass(frozen=True)
class HumanExample:
    verdict_id: int
    text: str
    label: int
    predicted: int | None = None
    trusted: bool = False
    feedback_ids: tuple[int, ...] = ()

    @property
    def is_confirmation(self) -> bool:
        """The label agrees with the verdict (as `bot.storage.HumanLabel` says)."""
        return self.label == self.predicted

    @property
    def is_correction(self) -> bool:
        """The label differs from a known verdict: a mistake the run is asked to fix."""
        return self.predicted is not None and not self.is_confirmation


@dataclass
class HumanLabelSplit:
    train: list[HumanExample] = field(default_factory=list)
    holdout: list[HumanExample] = field(default_factory=list)

    @property
    def feedback_ids(self) -> list[int]:
        return sorted({fid for example in (*self.train, *self.holdout) for fid in example.feedback_ids})


def is_held_out(verdict_id: int, fraction: float) -> bool:
    """Whether a labelled verdict belongs to the gate's held-out slice: a stable hash of its id, so a verdict
    held out once stays held out in every later run (and never leaks into training). The hash ignores the
    label, so each class keeps the same expected share (the slice is stratified by class in expectation)."""
    if fraction <= 0:
        return False
    digest = hashlib.sha256(f"verdict:{verdict_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_human_labels(labels: Sequence[object], *, holdout_fraction: float) -> HumanLabelSplit:
    """Split storage `HumanLabel` rows into train and held-out parts (texts purged by retention are skipped)."""
    split = HumanLabelSplit()
    for row in labels:
        text = getattr(row, "text", None)
        if text is None or not str(text).strip():
            continue
        example = HumanExample(
            verdict_id=int(row.verdict_id),
            text=str(text),
            label=int(row.label),
            predicted=getattr(row, "predicted", None),
            trusted=bool(getattr(row, "trusted", False)),
            feedback_ids=tuple(int(fid) for fid in row.feedback_ids),
        )
        (split.holdout if is_held_out(example.verdict_id, holdout_fraction) else split.train).append(example)
    return split


def class_balanced_weights(labels: Sequence[int], *, average_weight: int) -> list[int]:
    """Rows for each example (aligned with `labels`) so that every class gets the same number of rows: nominally
    average * N / K each (the total stays `average_weight` rows per example), shared as evenly as whole numbers
    allow among a class's examples. A class with few examples is boosted at most `MAX_CLASS_BOOST` times the
    average; when that cannot reach the nominal share, the other classes come down to its level, so the balance
    holds (each example still appears at least once, the only case where classes can differ)."""
    counts = Counter(labels)
    if not counts:
        return []
    per_class = average_weight * len(labels) / len(counts)
    cap = math.ceil(average_weight * MAX_CLASS_BOOST)
    target = round(min(per_class, *(cap * count for count in counts.values())))
    rows = {label: max(target, count) for label, count in counts.items()}
    seen: Counter[int] = Counter()
    weights = []
    for label in labels:
        base, extra = divmod(rows[label], counts[label])
        weights.append(base + (1 if seen[label] < extra else 0))
        seen[label] += 1
    return weights


def human_label_weights(labels: Sequence[int], *, average_weight: int, balance: str) -> list[int]:
    """Rows per human label as `CORRECTION_BALANCE` says: "classes" splits them evenly between the classes
    (`class_balanced_weights`); "prior" and "none" give every label `average_weight` rows, keeping the labels'
    class mix ("prior" then has the trainer draw its random base rows so the whole set keeps the base data's
    class mix: `base_train_config`)."""
    if balance == "classes":
        return class_balanced_weights(labels, average_weight=average_weight)
    if balance in ("prior", "none"):
        return [average_weight] * len(labels)
    raise ValueError(f"unknown balance {balance!r}; choose prior, classes or none")


def class_mix(
    examples: Sequence[HumanExample], weights: Sequence[int], id2label: dict[int, str] | None
) -> dict[str, dict[str, int | float]]:
    """Per class: examples, confirmations among them, rows after weighting and share of the rows."""
    rows_total = sum(weights) or 1
    mix: dict[str, dict[str, int | float]] = {}
    for example, weight in zip(examples, weights, strict=True):
        name = (id2label or {}).get(example.label, str(example.label))
        entry = mix.setdefault(name, {"examples": 0, "confirmations": 0, "rows": 0, "share": 0.0})
        entry["examples"] += 1
        entry["confirmations"] += int(example.is_confirmation)
        entry["rows"] += weight
    for entry in mix.values():
        entry["share"] = round(entry["rows"] / rows_total, 4)
    return dict(sorted(mix.items()))


def write_human_labels_csv(
    path: Path,
    examples: Sequence[HumanExample],
    id2label: dict[int, str] | None,
    weights: Sequence[int] | None = None,
) -> Path:
    """`text,label,weight` CSV (the trainer's `--extra` format). Labels are written as names when the label names
    are known, so they map correctly whatever ids the training data gives them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "weight"])
        for example, weight in zip(examples, weights or [1] * len(examples), strict=True):
            label = id2label.get(example.label, example.label) if id2label else example.label
            writer.writerow([example.text, label, weight])
    return path


# --- the gate's fixed evaluation set --------------------------------------------------------------------


@dataclass(frozen=True)
class EvalSet:
    texts: list[str]
    labels: list[str]  # label names, so each model is scored by its own ids
    source: str
    digest: str  # sha256 of the content: the set's identity
    path: Path  # the CSV, also passed to the trainer as --exclude
    # Per example: its label is only toxic or not (K-MHaS). The top class's probability is then not the
    # probability of being right, so such examples are left out of the calibration check. Empty: none is.
    binary: list[bool] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.texts)

    @property
    def identity(self) -> dict[str, object]:
        return {"hash": self.digest[:16], "size": self.size, "source": self.source}


def gate_eval_set(settings: Settings, task: str = SENTIMENT) -> EvalSet:
    """The task's fixed evaluation set (built from the configured data, stored under RUNS_DIR/eval-sets/).
    Blocking. Deterministic: the same data and GATE_EVAL_SIZE always give the same examples and the same hash.
    """
    frame, source = _toxicity_gate_frame(settings) if task == TOXICITY else _sentiment_gate_frame(settings)
    frame = frame[frame["text"].str.strip().str.len() >= MIN_CHARS]
    frame = frame.drop_duplicates(subset="text")
    if len(frame) > settings.gate_eval_size:
        frame = frame.sample(n=settings.gate_eval_size, random_state=GATE_EVAL_SEED)
    frame = frame.sort_values("text", kind="stable").reset_index(drop=True)
    texts = [str(text) for text in frame["text"]]
    labels = [str(label) for label in frame["label"]]
    binary = [bool(value) for value in frame["binary"]] if "binary" in frame else []
    digest = hashlib.sha256(
        "\n".join(f"{label}\t{text}" for text, label in zip(texts, labels)).encode()
    ).hexdigest()
    path = settings.runs_dir.resolve() / EVAL_SETS_DIR / f"gate-{digest[:16]}.csv"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        frame[["text", "label"]].to_csv(partial, index=False)
        partial.replace(path)
    return EvalSet(texts=texts, labels=labels, source=source, digest=digest, path=path, binary=binary)


def _sentiment_gate_frame(settings: Settings):
    import pandas as pd

    from trainer.data import NSMC_ID2LABEL, load_nsmc, normalized_text, read_table

    if settings.base_data is None:
        corpus = load_nsmc(settings.korpora_root)
        frame = pd.DataFrame(
            {"text": list(corpus.test.texts), "label": [NSMC_ID2LABEL[int(v)] for v in corpus.test.labels]}
        )
        return frame, "NSMC test"
    if settings.base_eval_data is not None:
        return read_table(settings.base_eval_data, text_col="text", label_col="label"), str(
            settings.base_eval_data
        )
    frame = read_table(settings.base_data, text_col="text", label_col="label")
    frame = frame[frame["text"].map(lambda text: _held_out_text(normalized_text(text)))]
    return frame, f"held-out part of {settings.base_data}"


def _toxicity_gate_frame(settings: Settings):
    """BEEP! dev (three classes) and K-MHaS's held-out fifth (binary: 정상, or 공격적|혐오); neither is ever trained
    on (the trainer takes BEEP! train only, and K-MHaS's held-out fifth is kept out of every recipe)."""
    import pandas as pd
    from Korpora.utils import default_korpora_path

    from trainer.toxicity import TOXICITY_ID2LABEL, load_beep, load_kmhas

    root = Path(settings.korpora_root or default_korpora_path).expanduser()
    dev = load_beep(root, "dev")
    _, held_out = load_kmhas(root)
    toxic = ANY_OF.join(name for label, name in sorted(TOXICITY_ID2LABEL.items()) if label != 0)
    frame = pd.DataFrame(
        {
            "text": [*dev.texts, *held_out.texts],
            "label": [TOXICITY_ID2LABEL[label] for label in dev.labels]
            + [toxic if label else TOXICITY_ID2LABEL[0] for label in held_out.labels],
            "binary": [False] * len(dev) + [True] * len(held_out),
        }
    )
    return frame, "BEEP! dev + K-MHaS held-out fifth (binary)"


# The calibration sample of the static int8 fast path: training reviews longer than 5 characters, drawn with this
# seed (bench_serving measured the fast path with exactly this sample of NSMC).
CALIBRATION_SEED = 2024


def calibration_texts(settings: Settings, count: int, *, task: str = SENTIMENT) -> list[str] | None:
    """`count` training texts of the task's base data (NSMC train, or BASE_DATA; BEEP! train for toxicity) for
    calibrating the static int8 fast path; None (with a warning) when no such file is on disk (this never
    downloads). Blocking."""
    import pandas as pd
    from Korpora.utils import default_korpora_path

    from trainer.config import TrainingError
    from trainer.data import load_nsmc, read_table
    from trainer.toxicity import load_beep

    try:
        if task == TOXICITY:
            root = Path(settings.korpora_root or default_korpora_path).expanduser()
            texts = pd.Series(load_beep(root, "train").texts, dtype=str)
        elif settings.base_data is None:
            root = Path(settings.korpora_root or default_korpora_path).expanduser()
            if not (root / "nsmc" / "ratings_train.txt").is_file():
                raise TrainingError(f"NSMC is not under {root} (set KORPORA_ROOT)")
            texts = pd.Series(list(load_nsmc(root).train.texts), dtype=str)
        else:
            texts = read_table(settings.base_data, text_col="text", label_col="label")["text"]
    except (TrainingError, OSError) as error:
        logger.warning("no calibration data for the fast path: %s", error)
        return None
    texts = texts[texts.str.len() > MIN_CHARS - 1]
    return texts.sample(min(count, len(texts)), random_state=CALIBRATION_SEED).tolist()


# The share of BASE_DATA held out for the gate when there is no BASE_EVAL_DATA (by a hash of the text, so the
# same rows every time and whatever the file's order).
BASE_DATA_GATE_FRACTION = 0.2


def _held_out_text(text: str) -> bool:
    digest = hashlib.sha256(f"gate:{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < BASE_DATA_GATE_FRACTION


def base_train_config(
    settings: Settings,
    *,
    output: Path,
    base: str,
    extra: Path | None,
    seed: int,
    exclude: Path | None,
    checkpoint_dir: Path | None,
    task: str = SENTIMENT,
):
    """The `TrainConfig` of a retraining run of `task`. Human labels carry their own weights (`weight` column).
    Toxicity trains on BEEP! train (under KORPORA_ROOT); BASE_DATA is sentiment's."""
    from trainer import TrainConfig

    data = None if task == TOXICITY else settings.base_data
    return TrainConfig(
        output=output,
        base=base,
        task=task,
        korpora_root=settings.korpora_root if data is None else None,
        data=data,
        # With BASE_DATA, the trainer validates on a part of it; BASE_EVAL_DATA belongs to the gate alone.
        eval_data=None,
        train_size=settings.retrain_train_size,
        eval_size=settings.retrain_eval_size,
        extra=extra,
        extra_weight=1,
        extra_neighbours=settings.correction_neighbours,
        keep_class_prior=settings.correction_balance == "prior",
        exclude=exclude,
        epochs=settings.retrain_epochs,
        best_metric=settings.retrain_best_metric,
        fine_tuned_share=settings.retrain_fine_tuned_share,
        batch_size=settings.retrain_batch_size,
        learning_rate=settings.retrain_learning_rate,
        max_length=settings.retrain_max_length,
        seed=seed,
        checkpoint_dir=checkpoint_dir,
        progress_json=True,
    )
