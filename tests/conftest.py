"""Fixtures shared by every test package: where ../shared lives, and torch kept to the machine's cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("MODERATOR_SHARED_DIR", REPO_ROOT.parent / "shared"))
KORPORA_ROOT = SHARED_DIR / "korpora"
NSMC_DIR = KORPORA_ROOT / "nsmc"
E5_MODEL_DIR = SHARED_DIR / "models" / "multilingual-e5-small-ko"

# Never touch a model hub from tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (set MODERATOR_SHARED_DIR to the shared/ folder)")
    return path


@pytest.fixture(scope="session")
def korpora_root() -> Path:
    """A Korpora root_dir holding nsmc/ratings_{train,test}.txt."""
    _require(NSMC_DIR / "ratings_train.txt", "NSMC")
    return KORPORA_ROOT


@pytest.fixture(scope="session")
def e5_model_dir() -> Path:
    """The real pretrained multilingual-e5-small-ko checkpoint."""
    return _require(E5_MODEL_DIR / "config.json", "multilingual-e5-small-ko")
