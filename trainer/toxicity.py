"""Toxicity data: BEEP! (Korean entertainment-news comments, Moon et al. 2020) and K-MHaS (news comments, Lee et
al. 2022), read from files already on disk (`korpora_root`, e.g. ../shared/korpora).

Labels are BEEP!'s three, with Korean names unique across tasks (sentiment's are 부정/긍정):
정상 (none), 공격적 (offensive), 혐오 (hate). "Toxic" means 공격적 or 혐오.

K-MHaS labels each comment with a set of 0-8, 8 meaning "not hate speech" and 0-7 hate categories (3 is
profanity). That is not BEEP!'s scheme: scores read only its binary signal (toxic or not), and training may read
it in BEEP!'s three classes (`kmhas_as_beep`: a comment aimed at a group identity is 혐오, any other toxic one
공격적). Its file is the dataset's public test split; `load_kmhas` holds a fixed fifth of it out, chosen by a hash
of the text, so no run ever trains on the comments toxicity is checked on.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from classifier.tasks import TASK_ID2LABEL, TOXICITY
from trainer.config import TrainingError

TOXICITY_ID2LABEL = TASK_ID2LABEL[TOXICITY]
BEEP_LABELS = {"none": 0, "offensive": 1, "hate": 2}
BEEP_DIR = Path("korean_hate_speech") / "labeled"
KMHAS_FILE = Path("kmhas") / "kmhas_test.txt"
KMHAS_NOT_HATE = "8"
KMHAS_HELD_OUT_SHARE = 5  # one comment in five, by hash
# K-MHaS's categories aimed at a group identity (origin, age, gender, race, religion): BEEP!'s 혐오 is hate
# against such a group; its 공격적 covers the rest (insults, profanity, appearance, politics).
KMHAS_GROUP_TARGETS = frozenset({"0", "4", "5", "6", "7"})


@dataclass
class ToxicityTexts:
    texts: list[str]
    labels: list[int]  # TOXICITY_ID2LABEL ids, or 0/1 (not toxic / toxic) for binary data

    def __len__(self) -> int:
        return len(self.texts)


def _read_tsv(path: Path, *, quoting: int) -> pd.DataFrame:
    if not path.is_file():
        raise TrainingError(
            f"{path} not found: pass --korpora-root pointing at a folder with korean_hate_speech/labeled/ and "
            "kmhas/ (e.g. ../shared/korpora)"
        )
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=quoting)


def load_beep(korpora_root: Path, split: str) -> ToxicityTexts:
    """BEEP!'s labelled `split` ("train": 7,896 comments, "dev": 471), labels 정상/공격적/혐오."""
    path = Path(korpora_root) / BEEP_DIR / f"{split}.tsv"
    frame = _read_tsv(path, quoting=csv.QUOTE_NONE)  # BEEP! quotes nothing: a quote is part of the comment
    missing = {"comments", "hate"} - set(frame.columns)
    if missing:
        raise TrainingError(f"{path}: column(s) {', '.join(sorted(missing))} not found")
    unknown = sorted(set(frame["hate"]) - set(BEEP_LABELS))
    if unknown:
        raise TrainingError(f"{path}: unknown hate label(s) {', '.join(unknown[:5])}")
    return ToxicityTexts(frame["comments"].tolist(), [BEEP_LABELS[value] for value in frame["hate"]])


def _held_out(text: str) -> bool:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) % KMHAS_HELD_OUT_SHARE == 0


def kmhas_as_beep(categories: set[str]) -> int:
    """A K-MHaS comment's label set read as BEEP!'s class id: 정상, 혐오 (aimed at a group), else 공격적."""
    hate = set(categories) - {KMHAS_NOT_HATE}
    if not hate:
        return BEEP_LABELS["none"]
    return BEEP_LABELS["hate"] if hate & KMHAS_GROUP_TARGETS else BEEP_LABELS["offensive"]


def load_kmhas(korpora_root: Path, *, three_class: bool = False) -> tuple[ToxicityTexts, ToxicityTexts]:
    """(usable for training, held out) K-MHaS comments with binary labels (1 = any hate category), or with
    BEEP!'s class ids (`kmhas_as_beep`) when `three_class`.

    The held-out part is every comment whose text hashes into one fifth: fixed across runs and machines, and a
    comment that appears twice is on one side only.
    """
    path = Path(korpora_root) / KMHAS_FILE
    frame = _read_tsv(path, quoting=csv.QUOTE_MINIMAL)  # K-MHaS quotes cells with quotes or commas, CSV-style
    if {"document", "label"} - set(frame.columns):
        raise TrainingError(f"{path}: expected the columns document and label")
    train, held_out = ToxicityTexts([], []), ToxicityTexts([], [])
    for text, labels in zip(frame["document"], frame["label"], strict=True):
        categories = {label.strip() for label in labels.split(",") if label.strip()}
        if not text.strip() or not categories <= set("012345678"):
            continue
        target = held_out if _held_out(text) else train
        target.texts.append(text)
        beep_label = kmhas_as_beep(categories)
        target.labels.append(beep_label if three_class else toxic(beep_label))
    return train, held_out


def toxic(label: int) -> int:
    """BEEP! three-way label -> binary (1 = 공격적 or 혐오)."""
    return int(label != 0)
