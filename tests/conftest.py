"""Fixtures shared by every test package: where ../shared lives, and torch pinned to a fixed number of threads."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import torch
from postgres_databases import fresh_postgres_database

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("MODERATOR_SHARED_DIR", REPO_ROOT.parent / "shared"))
KORPORA_ROOT = SHARED_DIR / "korpora"
NSMC_DIR = KORPORA_ROOT / "nsmc"
E5_MODEL_DIR = SHARED_DIR / "models" / "multilingual-e5-small-ko"

# Never touch a model hub from tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Torch pinned to a fixed thread count, not the machine's cores: a CPU model trained on other threads is another
# model. Children inherit it (and the trainer child gets this process's count, bot.retraining.process).
TORCH_THREADS = int(os.environ.get("MODERATOR_TEST_THREADS", "2"))
os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(TORCH_THREADS)
torch.set_num_threads(TORCH_THREADS)


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
    _require(E5_MODEL_DIR / "config.json", "multilingual-e5-small-ko")
    return E5_MODEL_DIR


@pytest.fixture(scope="session")
def scratch_model_dir(korpora_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model version directory: a tiny BERT trained from scratch on an NSMC sample, once per session.

    It reaches about 0.76 held-out accuracy (tests/trainer checks >= 0.70 on unseen NSMC test reviews), so
    tests can rely on its verdicts being mostly right without a model hub. It is the same model in every session:
    its vocabulary is deterministic (trainer.scratch) and torch runs on TORCH_THREADS.
    """
    from trainer import TrainConfig, train

    output = tmp_path_factory.mktemp("scratch-model") / "version"
    train(
        TrainConfig(
            output=output,
            korpora_root=korpora_root,
            base="scratch",
            train_size=6000,
            eval_size=500,
            max_length=48,  # NSMC reviews are short; this truncates few of them
            epochs=2,
            batch_size=32,
            # A scratch model needs far larger steps than fine-tuning, but at 2e-3 about one draw in five (seed, or
            # vocabulary) sat at chance for most of the run and ended at 0.51-0.71; 1e-3 gave 0.73-0.78 in 14 of 14.
            learning_rate=1e-3,
            scratch_hidden=64,  # tiny on purpose: 2 shared CPU cores
            scratch_layers=2,
            scratch_heads=2,
            scratch_vocab_size=8000,
            seed=42,
        )
    )
    return output


@pytest.fixture(scope="session")
def toxicity_model_dir(korpora_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny toxicity model (`--task toxicity`: BEEP! train, 정상/공격적/혐오), trained once per session; it
    learns little, so tests use it for its shape (three labels, a temperature), not its verdicts."""
    from trainer import TrainConfig, train

    output = tmp_path_factory.mktemp("toxicity-model") / "version"
    train(
        TrainConfig(
            output=output,
            task="toxicity",
            base="scratch",
            korpora_root=korpora_root,
            train_size=600,
            eval_size=150,
            epochs=1,
            max_length=32,
            scratch_hidden=32,
            scratch_layers=1,
            scratch_heads=2,
            scratch_vocab_size=2000,
        )
    )
    return output


@pytest.fixture
def record_strike():
    """Records an `act` decision with a strike on a verdict's message through `bot.storage.record_decision` (as
    the group use case does), with the plain defaults the tests share; returns the decision."""
    from bot import storage
    from bot.storage import ChatMode

    async def record(
        session,
        *,
        chat_id: int,
        message_id: int,
        verdict_id: int,
        actions=(),
        toxic_probability: float = 0.9,
        threshold: float = 0.8,
        rule: str = "기준 이상",
        strikes: int = 1,
    ):
        decision, _ = await storage.record_decision(
            session,
            chat_id=chat_id,
            message_id=message_id,
            user_id=77,
            verdict_id=verdict_id,
            mode=ChatMode.ACT,
            toxic_probability=toxic_probability,
            threshold=threshold,
            rule=rule,
            strike=True,
            strikes=strikes,
            warn=False,
            actions=list(actions),
        )
        return decision

    return record


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database (mark the test `postgres`)."""
    async with fresh_postgres_database() as url:
        yield url
