"""`moderator retrain` as a real subprocess: exit codes and messages."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from bot.storage import RunStatus, RunTrigger, Task, list_training_runs, start_training_run


def moderator(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'moderator.db'}",
        "MODEL_DIR": str(tmp_path / "models"),
        "RUNS_DIR": str(tmp_path / "runs"),
        "RETRAIN_TRAIN_SIZE": "200",
        "RETRAIN_EVAL_SIZE": "100",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "retrain", *args],
        cwd=tmp_path,  # no .env from the repository
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def test_retrain_refuses_while_another_run_is_in_progress(tmp_path, session_factory):
    async with session_factory() as session, session.begin():
        running, _ = await start_training_run(session, trigger=RunTrigger.ADMIN, requested_by=7)
    result = await asyncio.to_thread(moderator, tmp_path)
    assert result.returncode == 1
    assert f"#{running.id} is already in progress" in result.stderr


async def test_a_failed_run_exits_1_with_the_trainers_error(tmp_path, session_factory, korpora_root):
    missing = tmp_path / "no-such-checkpoint"
    result = await asyncio.to_thread(
        moderator, tmp_path, "--from", "base", BASE_MODEL=str(missing), KORPORA_ROOT=str(korpora_root)
    )
    assert result.returncode == 1, result.stderr
    assert "실패" in result.stdout and "exited with code 2" in result.stdout
    async with session_factory() as session:
        (run,) = await list_training_runs(session)
    assert (
        run.status is RunStatus.FAILED and run.trigger is RunTrigger.CLI and "exited with code 2" in run.error
    )


async def test_retrain_task_toxicity_runs_the_toxicity_model_from_its_own_base(
    tmp_path, session_factory, korpora_root
):
    missing = tmp_path / "no-such-toxicity-checkpoint"
    result = await asyncio.to_thread(
        moderator,
        tmp_path,
        "--task",
        "toxicity",
        "--from",
        "base",
        BASE_MODEL=str(tmp_path / "the-sentiment-base"),
        TOXICITY_BASE_MODEL=str(missing),
        KORPORA_ROOT=str(korpora_root),
    )
    assert result.returncode == 1, result.stderr
    async with session_factory() as session:
        (run,) = await list_training_runs(session)
    assert run.task is Task.TOXICITY and run.status is RunStatus.FAILED
    train_log = (tmp_path / "runs" / f"run-{run.id}" / "train.log").read_text(encoding="utf-8")
    assert "--task toxicity" in train_log and str(missing) in train_log  # TOXICITY_BASE_MODEL, not BASE_MODEL
    assert "the-sentiment-base" not in train_log
