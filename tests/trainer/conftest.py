"""Fixtures for the trainer tests: NSMC rows read independently of the trainer, and small CSV files from them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest


def _nsmc_frame(korpora_root: Path, split: str) -> pd.DataFrame:
    frame = pd.read_csv(
        korpora_root / "nsmc" / f"ratings_{split}.txt",
        sep="\t",
        dtype={"document": str},
        keep_default_na=False,
        quoting=3,
    )
    return frame[frame["document"].str.strip().str.len() >= 6]


@pytest.fixture(scope="session")
def nsmc_test_frame(korpora_root: Path) -> pd.DataFrame:
    """NSMC test-split rows (id, document, label) of 6+ characters; the trainer never trains on this split."""
    return _nsmc_frame(korpora_root, "test")


@pytest.fixture(scope="session")
def nsmc_train_frame(korpora_root: Path) -> pd.DataFrame:
    return _nsmc_frame(korpora_root, "train")


@pytest.fixture
def write_review_csv(nsmc_train_frame: pd.DataFrame, tmp_path: Path) -> Callable[..., Path]:
    """Write `size` NSMC training reviews to a CSV/TSV with `text` and `label` columns (labels optionally renamed)."""

    def write(name: str, *, size: int, seed: int = 0, label_names: dict[int, str] | None = None) -> Path:
        rows = nsmc_train_frame.sample(n=size, random_state=seed)
        labels = rows["label"].map(label_names) if label_names else rows["label"]
        frame = pd.DataFrame({"text": rows["document"].to_numpy(), "label": labels.to_numpy()})
        path = tmp_path / name
        frame.to_csv(path, sep="\t" if path.suffix == ".tsv" else ",", index=False)
        return path

    return write
