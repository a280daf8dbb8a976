"""Model version lifecycle: import and activate validate first, start-up falls back, rollback walks the history.

Real model directories (copies of the scratch model, some damaged on purpose), a real SQLite file, and the real
`moderator model` commands as subprocesses. The outcomes quoted in docs/reliability.md are recorded with
`bench.reliability.record` (with RELIABILITY_RESULTS=path, as `make bench` runs it: bench/results/reliability.json).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from migrated_databases import migrated_sqlite_url
from version_copies import copy_with_head

from bench.reliability import record
from bot import storage, versions
from bot.settings import Settings
from bot.storage import ActivationReason, ModelStatus


def settings_for(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'moderator.db'}",
        model_dir=tmp_path / "models",
        runs_dir=tmp_path / "runs",
        retrain_cron=None,
        quantize=False,
    )


def nan_copy(source: Path, target: Path) -> Path:
    """The same model with NaN classifier weights: it loads fine, and answers nothing usable."""

    def poison(weights: dict) -> None:
        weights["classifier.weight"] = weights["classifier.weight"] * float("nan")

    return copy_with_head(source, target, poison)


def truncated_copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    weights = target / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return target


@pytest.fixture
async def registry(tmp_path):
    settings = settings_for(tmp_path)
    await asyncio.to_thread(migrated_sqlite_url, tmp_path / "moderator.db")  # settings' database
    engine = storage.create_engine(settings.database_url)
    yield settings, storage.make_session_factory(engine)
    await engine.dispose()


async def register(
    session_factory, path: Path, *, activate: bool = False, task: storage.Task = storage.Task.SENTIMENT
) -> int:
    async with session_factory() as session, session.begin():
        version = await storage.register_model_version(
            session, path=str(path), base_checkpoint="t", metrics={}, task=task
        )
        if activate:
            await storage.activate_model_version(session, version_id=version.id)
        return version.id


async def active_id(session_factory) -> int | None:
    async with session_factory() as session:
        active = await storage.get_active_model_version(session)
    return None if active is None else active.id


@pytest.mark.parametrize("damage", ["nan", "truncated", "deleted"])
async def test_activate_refuses_a_version_that_cannot_serve_and_changes_nothing(
    registry, tmp_path, scratch_model_dir, damage
):
    settings, session_factory = registry
    good = await register(session_factory, scratch_model_dir, activate=True)
    broken_dir = tmp_path / f"broken-{damage}"
    if damage == "nan":
        nan_copy(scratch_model_dir, broken_dir)
    elif damage == "truncated":
        truncated_copy(scratch_model_dir, broken_dir)
    else:
        shutil.copytree(scratch_model_dir, broken_dir)
    broken = await register(session_factory, broken_dir)
    if damage == "deleted":
        shutil.rmtree(broken_dir)

    with pytest.raises(versions.VersionError) as raised:
        await versions.activate(session_factory, settings, version_id=broken, reason=ActivationReason.MANUAL)
    assert (
        str(broken_dir) in str(raised.value)
        or "does not exist" in str(raised.value)
        or "NaN" in str(raised.value)
    )
    assert await active_id(session_factory) == good
    async with session_factory() as session:
        # nothing recorded either: the history still holds only the good version's activation
        assert [a.version_id for a in await storage.list_activations(session)] == [good]
    record(
        f"activate_refused_{damage}",
        error=str(raised.value).replace(str(tmp_path), "<tmp>"),
        active_unchanged=True,  # asserted above
        history_unchanged=True,
    )


async def test_start_up_falls_back_to_the_newest_version_that_loads_and_records_it(
    registry, tmp_path, scratch_model_dir, caplog
):
    settings, session_factory = registry
    oldest = await register(session_factory, scratch_model_dir, activate=True)
    middle_dir = shutil.copytree(scratch_model_dir, tmp_path / "middle")
    middle = await register(session_factory, middle_dir)
    async with session_factory() as session, session.begin():
        await storage.activate_model_version(session, version_id=middle)
    newest_dir = shutil.copytree(scratch_model_dir, tmp_path / "newest")
    newest = await register(session_factory, newest_dir)
    async with session_factory() as session, session.begin():
        await storage.activate_model_version(session, version_id=newest)
    shutil.rmtree(newest_dir)  # the active version's files vanish
    (middle_dir / "model.safetensors").write_bytes(b"garbage")  # and the one before is damaged

    loaded = await versions.load_active_or_fall_back(session_factory, settings)

    assert loaded.version.id == oldest and loaded.classifier.predict(["재밌어요"])
    assert [vid for vid, _ in loaded.skipped] == [newest, middle]
    assert await active_id(session_factory) == oldest
    async with session_factory() as session:
        history = await storage.list_activations(session, limit=1)
        gone = await storage.get_model_version(session, version_id=newest)
    assert history[0].reason is ActivationReason.FALLBACK and history[0].previous_version_id == newest
    assert gone.status is ModelStatus.REJECTED
    assert "CANNOT LOAD" in caplog.text and f"NOW SERVING MODEL VERSION #{oldest}" in caplog.text
    names = {oldest: "oldest", middle: "middle (damaged)", newest: "active (deleted)"}
    record(
        "start_up_fallback",
        serving=names[loaded.version.id],
        skipped=[names[vid] for vid, _ in loaded.skipped],
        activation_reason=history[0].reason.value,
        broken_active_status=gone.status.value,
    )


async def test_rollback_walks_back_through_the_history_and_skips_what_cannot_load(
    registry, tmp_path, scratch_model_dir
):
    settings, session_factory = registry
    ids = []
    for name in ("v1", "v2", "v3", "v4"):
        path = shutil.copytree(scratch_model_dir, tmp_path / name)
        ids.append(await register(session_factory, path))
        async with session_factory() as session, session.begin():
            await storage.activate_model_version(
                session, version_id=ids[-1], reason=ActivationReason.PROMOTION
            )
    v1, v2, v3, v4 = ids
    (tmp_path / "v3" / "config.json").unlink()  # v3 can no longer load

    first = await versions.rollback(session_factory, settings, actor=42)
    assert (first.version.id, first.previous_id, [vid for vid, _ in first.skipped]) == (v2, v4, [v3])
    second = await versions.rollback(session_factory, settings, actor=42)
    # Never back to the version just rolled back from (v4 -> v2 -> v4 was the bug): onwards to v1.
    assert (second.version.id, second.previous_id) == (v1, v2)
    with pytest.raises(versions.VersionError, match="no earlier model version can serve"):
        await versions.rollback(session_factory, settings, actor=42)
    async with session_factory() as session:
        history = await storage.list_activations(session, limit=2)
        statuses = {vid: (await storage.get_model_version(session, version_id=vid)).status for vid in ids}
    assert [(a.version_id, a.reason, a.actor) for a in history] == [
        (v1, ActivationReason.ROLLBACK, 42),
        (v2, ActivationReason.ROLLBACK, 42),
    ]
    assert statuses[v4] is ModelStatus.REJECTED and statuses[v2] is ModelStatus.REJECTED
    assert statuses[v1] is ModelStatus.ACTIVE
    names = {v1: "v1", v2: "v2", v3: "v3 (unloadable)", v4: "v4"}
    record(
        "rollback",
        first=f"{names[first.previous_id]} -> {names[first.version.id]}",
        first_skipped=[names[vid] for vid, _ in first.skipped],
        second=f"{names[second.previous_id]} -> {names[second.version.id]}",
        third="refused: no earlier model version can serve",
        activations_recorded=[f"{names[a.version_id]} ({a.reason.value})" for a in reversed(history)],
    )


def moderator(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'moderator.db'}",
        "MODEL_DIR": str(tmp_path / "models"),
        "QUANTIZE": "false",
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "model", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def test_model_commands_validate_before_anything_changes(registry, tmp_path, scratch_model_dir):
    settings, session_factory = registry
    imported = await asyncio.to_thread(moderator, tmp_path, "import", str(scratch_model_dir))
    assert imported.returncode == 0, imported.stderr
    assert "now the active sentiment model" in imported.stdout

    nan_dir = nan_copy(scratch_model_dir, tmp_path / "nan-model")
    refused = await asyncio.to_thread(moderator, tmp_path, "import", str(nan_dir))
    assert refused.returncode == 1 and "trial prediction" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert sorted(p.name for p in settings.model_dir.iterdir()) == [
        p.name for p in settings.model_dir.iterdir() if p.name.startswith(scratch_model_dir.name)
    ]  # the refused copy was removed again

    second_dir = shutil.copytree(scratch_model_dir, tmp_path / "second")
    second = await register(session_factory, second_dir)
    shutil.rmtree(second_dir)
    gone = await asyncio.to_thread(moderator, tmp_path, "activate", str(second))
    assert gone.returncode == 1 and f"Cannot activate model version #{second}" in gone.stderr
    missing = await asyncio.to_thread(moderator, tmp_path, "activate", "9999")
    assert missing.returncode == 1 and "no model version #9999" in missing.stderr
    async with session_factory() as session:
        active = await storage.get_active_model_version(session)
        history = await storage.list_activations(session)
    assert active.id == 1 and [(a.version_id, a.reason) for a in history] == [(1, ActivationReason.IMPORT)]
    record(
        "model_commands",
        import_exit_code=imported.returncode,
        nan_import_exit_code=refused.returncode,
        nan_import_error=refused.stderr.strip().splitlines()[-1].replace(str(tmp_path), "<tmp>"),
        activate_deleted_exit_code=gone.returncode,
        activate_missing_exit_code=missing.returncode,
        activations_after=len(history),
    )


async def test_a_toxicity_version_is_imported_and_activated_beside_the_sentiment_one(
    registry, tmp_path, scratch_model_dir, toxicity_model_dir
):
    """Each task has its own active version: importing a toxicity model activates it for toxicity (the first of
    its task) and leaves the sentiment version active; `model list` names each version's task."""
    settings, session_factory = registry
    sentiment = await asyncio.to_thread(moderator, tmp_path, "import", str(scratch_model_dir))
    toxicity = await asyncio.to_thread(moderator, tmp_path, "import", str(toxicity_model_dir))
    assert sentiment.returncode == 0 and toxicity.returncode == 0, toxicity.stderr
    assert "as toxicity model version #2" in toxicity.stdout
    assert "now the active toxicity model" in toxicity.stdout
    listed = await asyncio.to_thread(moderator, tmp_path, "list")
    rows = {line.split()[0]: line.split()[1:3] for line in listed.stdout.splitlines()[1:]}
    assert rows == {"1": ["sentiment", "active"], "2": ["toxicity", "active"]}

    second = await register(
        session_factory,
        shutil.copytree(toxicity_model_dir, tmp_path / "toxicity-2"),
        task=storage.Task.TOXICITY,
    )
    activated = await asyncio.to_thread(moderator, tmp_path, "activate", str(second))
    assert activated.returncode == 0, activated.stderr
    async with session_factory() as session:
        active_sentiment = await storage.get_active_model_version(session)
        active_toxicity = await storage.get_active_model_version(session, task=storage.Task.TOXICITY)
        retired = await storage.get_model_version(session, version_id=2)
    assert (active_sentiment.id, active_toxicity.id) == (1, second)
    assert retired.status is storage.ModelStatus.RETIRED  # the task's previous version, not sentiment's

    rolled_back = await versions.rollback(session_factory, settings, actor=None, task=storage.Task.TOXICITY)
    assert (rolled_back.version.id, rolled_back.previous_id) == (2, second)
    async with session_factory() as session:
        assert (await storage.get_active_model_version(session)).id == 1


async def test_at_start_up_a_toxicity_model_that_cannot_serve_leaves_sentiment_serving(
    registry, tmp_path, scratch_model_dir, toxicity_model_dir, caplog
):
    """The bot's start-up (`_prepare_database`): the sentiment version loads; the only toxicity version answers
    NaN, so no toxicity model serves, loudly, and the bot still starts with sentiment."""
    from bot.telegram.cli import _prepare_database

    settings, session_factory = registry
    sentiment_id = await register(session_factory, scratch_model_dir, activate=True)
    broken = nan_copy(toxicity_model_dir, tmp_path / "toxicity-nan")
    await register(session_factory, broken, activate=True, task=storage.Task.TOXICITY)

    active = await _prepare_database(settings)
    assert active.version_id == sentiment_id and active.classifier is not None
    assert active.toxicity is None
    assert "NO TOXICITY MODEL CAN SERVE" in caplog.text

    healthy = await register(session_factory, toxicity_model_dir, activate=True, task=storage.Task.TOXICITY)
    active = await _prepare_database(settings)
    assert active.toxicity is not None and active.toxicity[0] == healthy
