"""Helpers for the retraining tests: settings pointing into tmp, an active model, seeded corrections."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from bot.settings import Settings
from bot.storage import (
    FeedbackSource,
    Task,
    activate_model_version,
    add_verdict,
    record_feedback,
    register_model_version,
)

LABEL_NAMES = {0: "부정", 1: "긍정"}
# Independent non-admins: each correction is made by a different pair of them (two agree, so it counts), and no
# two of them label in lockstep (which would make them one voice, bot.storage.lockstep_voices).
CORRECTING_USERS = (1001, 1002, 1003, 1004, 1005, 1006)
CORRECTING_PAIRS = [(a, b) for index, a in enumerate(CORRECTING_USERS) for b in CORRECTING_USERS[index + 1 :]]
# A reviewer labelling in the /review queue: a trusted label, which counts on its own whatever rule decides whose
# untrusted labels count.
REVIEWER = 900


def make_settings(tmp_path: Path, **overrides) -> Settings:
    """Settings for a fast retraining run on small data; nothing read from the environment or .env."""
    values = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'moderator.db'}",
        "model_dir": tmp_path / "models",
        "runs_dir": tmp_path / "runs",
        "retrain_cron": None,
        "retrain_interval_seconds": None,
        "retrain_min_new_feedback": 0,
        "retrain_from": "active",
        "retrain_epochs": 2.0,
        "retrain_train_size": 600,
        "retrain_eval_size": 300,
        "retrain_batch_size": 32,
        "retrain_learning_rate": 5e-4,
        "retrain_max_length": None,  # the model's own maximum, as it serves
        "correction_weight": 4,
        # The tiny scratch models of these tests are saved as fine-tuned. Mixing them back with their start
        # (RETRAIN_FINE_TUNED_SHARE) is tested in tests/trainer/test_weight_mix.py and measured on e5 by the
        # learning-loop benchmark; a 64-wide model trained from scratch has no pretrained features to keep.
        "retrain_fine_tuned_share": 1.0,
        "correction_holdout_fraction": 0.25,
        "promotion_tolerance": 0.5,
        "gate_eval_size": 5000,
        "retrain_seed": 42,  # reproducible runs (each still draws its own sample: the seed is 42 + run id)  # the default 20,000 resolves real models' tolerance; the scratch tests need less
        "quantize": False,  # swaps are checked against full-precision reference probabilities
    }
    return Settings(_env_file=None, **{**values, **overrides})


async def activate_version(
    session_factory, path: Path, *, base: str = "scratch", task: Task = Task.SENTIMENT
) -> int:
    async with session_factory() as session, session.begin():
        version = await register_model_version(
            session, path=str(path), base_checkpoint=base, metrics=None, task=task
        )
        await activate_model_version(session, version_id=version.id)
        return version.id


async def add_corrections(
    session_factory,
    examples: Sequence[tuple[str, int]],
    *,
    users: Sequence[int] | None = None,
    first_message_id: int = 1,
    model_version_id: int | None = None,
    trusted: bool = False,
    task: Task = Task.SENTIMENT,
) -> list[int]:
    """Store each text as a verdict of `task` the bot got wrong, corrected to `label` by each of `users` (default: a
    pair of independent users, a different pair each time). With `trusted`, the labels are trusted ones given in the
    review queue (default: by `REVIEWER` alone). Returns verdict ids."""
    from classifier.tasks import TASK_ID2LABEL

    names = TASK_ID2LABEL[task]
    verdict_ids = []
    async with session_factory() as session, session.begin():
        for offset, (text, label) in enumerate(examples):
            wrong = 0 if label else 1
            verdict = await add_verdict(
                session,
                chat_id=1,
                message_id=first_message_id + offset,
                user_id=42,
                text=text,
                label=wrong,
                label_name=names[wrong],
                confidence=0.9,
                probabilities={
                    name: 0.9 if index == wrong else 0.1 / (len(names) - 1) for index, name in names.items()
                },
                model_version_id=model_version_id,
                task=task,
            )
            default_users = (REVIEWER,) if trusted else CORRECTING_PAIRS[offset % len(CORRECTING_PAIRS)]
            for user in users or default_users:
                await record_feedback(
                    session,
                    verdict_id=verdict.id,
                    user_id=user,
                    label=label,
                    num_labels=len(names),
                    is_admin=False,
                    trusted=trusted,
                    source=FeedbackSource.REVIEW if trusted else FeedbackSource.BUTTON,
                )
            verdict_ids.append(verdict.id)
    return verdict_ids


async def wait_for(
    predicate: Callable[[], Awaitable[object]], *, timeout: float = 60.0, interval: float = 0.1
):
    """Poll an async predicate until it returns something truthy (bounded by `timeout`)."""
    async with asyncio.timeout(timeout):
        while not (result := await predicate()):
            await asyncio.sleep(interval)
    return result


class RecordingReporter:
    """A RunReporter that keeps what it was told (the Telegram layer edits a message instead)."""

    def __init__(self) -> None:
        self.progress_texts: list[str] = []
        self.finished_texts: list[str] = []
        self.training_started = asyncio.Event()

    async def progress(self, run_id: int, text: str) -> None:
        self.progress_texts.append(text)
        if text.startswith("학습 중"):
            self.training_started.set()

    async def finished(self, run_id: int, text: str) -> None:
        self.finished_texts.append(text)


def trainer_children():
    """Live `python -m trainer` processes started by this test process."""
    import psutil

    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "trainer" in child.cmdline():
                found.append(child)
        except psutil.Error:
            continue
    return found
