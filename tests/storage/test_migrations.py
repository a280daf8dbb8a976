"""Alembic migrations: up and down, models and migrations agree, and upgrading keeps every row."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, func, insert, inspect, select, text

from bot.jobs.schema import include_object
from bot.storage import (
    LabelRule,
    RunTrigger,
    Task,
    add_verdict,
    create_engine,
    downgrade_database,
    export_human_labels,
    get_active_model_version,
    get_stats,
    make_session_factory,
    record_feedback,
    register_model_version,
    start_training_run,
    upgrade_database,
)
from bot.storage.models import Base, Feedback, TrainingRun, Verdict

CORE_TABLES = {"model_versions", "training_runs", "verdicts", "feedback"}
JOB_QUEUE_TABLES = {"procrastinate_jobs", "procrastinate_workers", "procrastinate_events"}
CREATED = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)


async def table_names(engine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    from bot.storage.database import alembic_config

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


async def current_revision(engine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())


async def test_upgrade_to_head_and_downgrade_to_base(database_url):
    engine = create_engine(database_url)
    try:
        await asyncio.to_thread(upgrade_database, database_url)
        assert CORE_TABLES <= await table_names(engine)
        assert await current_revision(engine) == head_revision()

        # The job queue's tables come with PostgreSQL only (migration 0011) and go with the downgrade.
        postgres = engine.dialect.name == "postgresql"
        assert (JOB_QUEUE_TABLES <= await table_names(engine)) is postgres

        await asyncio.to_thread(downgrade_database, database_url, "base")
        assert await table_names(engine) & CORE_TABLES == set()
        assert await table_names(engine) & JOB_QUEUE_TABLES == set()
        if postgres:  # and so do its functions and types
            async with engine.connect() as connection:
                left = await connection.scalar(
                    text(
                        "SELECT (SELECT count(*) FROM pg_proc WHERE proname LIKE 'procrastinate%')"
                        " + (SELECT count(*) FROM pg_type WHERE typname LIKE 'procrastinate%')"
                    )
                )
            assert left == 0
        assert await current_revision(engine) is None

        await asyncio.to_thread(upgrade_database, database_url)  # and up again from nothing
        assert CORE_TABLES <= await table_names(engine)
    finally:
        await engine.dispose()


async def test_models_and_migrations_agree(migrated_url):
    engine = create_engine(migrated_url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(
                        sync, opts={"compare_type": True, "include_object": include_object}
                    ),
                    Base.metadata,
                )
            )
    finally:
        await engine.dispose()
    assert differences == []


async def test_upgrading_a_filled_database_keeps_every_row(database_url):
    await asyncio.to_thread(upgrade_database, database_url, "0001")
    engine = create_engine(database_url)
    try:
        await fill_revision_0001(engine)
        await asyncio.to_thread(upgrade_database, database_url)
        assert await current_revision(engine) == head_revision()
        await assert_rows_intact(engine)

        # Downgrading rebuilds tables on SQLite (batch mode); children of rebuilt tables must survive.
        await asyncio.to_thread(downgrade_database, database_url, "0001")
        async with engine.connect() as connection:
            for table, expected in {
                "verdicts": 3,
                "feedback": 3,
                "training_runs": 1,
                "model_versions": 2,
            }.items():
                reflected = MetaData()
                await connection.run_sync(reflected.reflect, only=[table])
                count = await connection.scalar(select(func.count()).select_from(reflected.tables[table]))
                assert count == expected, table
        await asyncio.to_thread(upgrade_database, database_url)
        await assert_rows_intact(engine)

        async with make_session_factory(engine)() as session, session.begin():
            new_run, created = await start_training_run(session, trigger=RunTrigger.CLI, requested_by=None)
        assert created and new_run.id == 2  # new rows continue after the migrated ones
    finally:
        await engine.dispose()


async def fill_revision_0001(engine) -> None:
    """Rows written the way revision 0001 knew them (reflected tables, no ORM: the models are newer).

    Ids come from the database (1, 2, 3 in a fresh one), so its sequences stay in step with the rows."""
    metadata = MetaData()
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: metadata.reflect(sync))
        tables = metadata.tables
        await connection.execute(
            insert(tables["model_versions"]),
            [
                {
                    "path": "models/v1",
                    "base_checkpoint": "base",
                    "metrics": {"accuracy": 0.85},
                    "status": "retired",
                    "created_at": CREATED,
                    "activated_at": CREATED,
                    "active_slot": None,
                },
                {
                    "path": "models/v2",
                    "base_checkpoint": "models/v1",
                    "metrics": {"accuracy": 0.87},
                    "status": "active",
                    "created_at": CREATED,
                    "activated_at": CREATED,
                    "active_slot": 1,
                },
            ],
        )
        await connection.execute(
            insert(tables["training_runs"]),
            [
                {
                    "trigger": "schedule",
                    "status": "succeeded",
                    "created_at": CREATED,
                    "finished_at": CREATED,
                    "example_count": 4000,
                    "correction_count": 2,
                    "model_version_id": 2,
                    "active_slot": None,
                }
            ],
        )
        await connection.execute(
            insert(tables["verdicts"]),
            [
                {
                    "chat_id": -100,
                    "message_id": verdict_id,
                    "user_id": 7,
                    "text": text,
                    "text_length": len(text),
                    "label": label,
                    "label_name": ["부정", "긍정"][label],
                    "confidence": 0.9,
                    "probabilities": {"부정": 0.1, "긍정": 0.9},
                    "model_version_id": 2,
                    "reply_message_id": 100 + verdict_id,
                    "created_at": CREATED,
                }
                for verdict_id, text, label in [
                    (1, "재밌다 정말 최고", 1),
                    (2, "지루하다 너무 길다", 1),
                    (3, "별로였어요 정말", 0),
                ]
            ],
        )
        await connection.execute(
            insert(tables["feedback"]),
            [
                {
                    "verdict_id": 2,
                    "user_id": 8,
                    "label": 0,
                    "is_admin": False,
                    "created_at": CREATED,
                    "updated_at": CREATED,
                    "used_by_run_id": 1,
                },
                {
                    "verdict_id": 2,
                    "user_id": 9,
                    "label": 0,
                    "is_admin": False,
                    "created_at": CREATED,
                    "updated_at": CREATED,
                    "used_by_run_id": None,
                },
                {
                    "verdict_id": 3,
                    "user_id": 1000,
                    "label": 1,
                    "is_admin": True,
                    "created_at": CREATED,
                    "updated_at": CREATED,
                    "used_by_run_id": None,
                },
            ],
        )


async def assert_rows_intact(engine) -> None:
    session_factory = make_session_factory(engine)
    async with session_factory() as session:
        verdicts = (await session.scalars(select(Verdict).order_by(Verdict.id))).all()
        feedback = (await session.scalars(select(Feedback).order_by(Feedback.id))).all()
        run = await session.get(TrainingRun, 1)
        active = await get_active_model_version(session)
        stats = await get_stats(session)
        corrections = await export_human_labels(session, rule=LabelRule())

    assert [(v.id, v.text, v.label, v.reply_message_id) for v in verdicts] == [
        (1, "재밌다 정말 최고", 1, 101),
        (2, "지루하다 너무 길다", 1, 102),
        (3, "별로였어요 정말", 0, 103),
    ]
    assert all(v.created_at == CREATED and v.text_purged_at is None for v in verdicts)
    assert [v.margin for v in verdicts] == [pytest.approx(0.8)] * 3  # backfilled from the probabilities
    assert [(f.id, f.verdict_id, f.label, f.used_by_run_id, f.voided_at) for f in feedback] == [
        (1, 2, 0, 1, None),
        (2, 2, 0, None, None),
        (3, 3, 1, None, None),
    ]
    assert [(f.trusted, f.source) for f in feedback] == [
        (False, "button"),
        (False, "button"),
        (True, "button"),
    ]
    assert (run.example_count, run.model_version_id, run.progress) == (4000, 2, None)
    assert active.id == 2 and active.metrics == {"accuracy": 0.87}
    # Everything that was there is the sentiment task's, the only task there was.
    assert {v.task for v in verdicts} == {Task.SENTIMENT} and run.task is Task.SENTIMENT
    assert active.task is Task.SENTIMENT
    assert (
        stats.verdicts == 3 and stats.corrections == 3 and stats.verdicts_by_label == {"긍정": 2, "부정": 1}
    )
    # Verdict 2's two untrusted labels wait for a reviewer's check; verdict 3's trusted one counts.
    assert {(c.verdict_id, c.label) for c in corrections} == {(3, 1)}


async def test_each_task_has_its_active_version_and_its_verdict_per_message(database_url):
    """After 0005: a toxicity version activates beside the sentiment one, and a message gets both verdicts;
    downgrading to 0004 (one task) drops the toxicity rows and keeps every sentiment row."""
    await asyncio.to_thread(upgrade_database, database_url, "0001")
    engine = create_engine(database_url)
    try:
        await fill_revision_0001(engine)
        await asyncio.to_thread(upgrade_database, database_url)
        async with make_session_factory(engine)() as session, session.begin():
            toxicity = await register_model_version(
                session,
                path="models/t1",
                base_checkpoint="e5",
                metrics=None,
                status="active",
                task=Task.TOXICITY,
            )
            verdict = await add_verdict(
                session,
                chat_id=-100,
                message_id=2,  # the message verdict 2 judged for sentiment
                user_id=7,
                text="지루하다 너무 길다",
                label=1,
                label_name="공격적",
                confidence=0.7,
                probabilities={"정상": 0.2, "공격적": 0.7, "혐오": 0.1},
                model_version_id=toxicity.id,
                task=Task.TOXICITY,
            )
            await record_feedback(
                session, verdict_id=verdict.id, user_id=8, label=0, num_labels=3, is_admin=False
            )
        async with make_session_factory(engine)() as session:
            sentiment_active = await get_active_model_version(session)
            toxicity_active = await get_active_model_version(session, task=Task.TOXICITY)
            sentiment_labels = await export_human_labels(session, rule=LabelRule(trust_everyone=True))
            toxicity_labels = await export_human_labels(
                session, rule=LabelRule(trust_everyone=True), task=Task.TOXICITY
            )
        assert (sentiment_active.id, toxicity_active.id) == (2, toxicity.id)
        assert verdict.id == 4
        assert {label.verdict_id for label in sentiment_labels} == {2, 3}  # the toxicity label stays apart
        assert [(label.verdict_id, label.label) for label in toxicity_labels] == [(4, 0)]

        await asyncio.to_thread(downgrade_database, database_url, "0004")
        await asyncio.to_thread(upgrade_database, database_url)
        await assert_rows_intact(engine)
        async with make_session_factory(engine)() as session:
            assert await get_active_model_version(session, task=Task.TOXICITY) is None
            assert await session.scalar(select(func.count()).select_from(Verdict)) == 3
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_processes_starting_at_once_upgrade_once(postgres_url, tmp_path):
    """Bots and a training worker starting together each upgrade the PostgreSQL database (the set-up with several
    processes, docs/cluster.md): eight `moderator db upgrade` processes at once take turns on an advisory lock, and
    none fails. (Alembic's command API keeps global state, so processes, not threads.)"""
    environment = {**os.environ, "DATABASE_URL": postgres_url}
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "db",
            "upgrade",
            cwd=tmp_path,
            env=environment,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for _ in range(8)
    ]
    outputs = await asyncio.wait_for(asyncio.gather(*(process.communicate() for process in processes)), 120)
    assert [process.returncode for process in processes] == [0] * len(processes), [out for out, _ in outputs]
    engine = create_engine(postgres_url)
    try:
        assert await current_revision(engine) == head_revision()
        assert CORE_TABLES | JOB_QUEUE_TABLES <= await table_names(engine)
    finally:
        await engine.dispose()
