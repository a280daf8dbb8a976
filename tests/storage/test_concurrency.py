"""Many concurrent writers lose nothing (SQLite: WAL + busy_timeout + BEGIN IMMEDIATE; PostgreSQL: MVCC)."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from storage_helpers import count_rows, insert_verdict, verdict_fields

from bot.storage import (
    RateLimitedError,
    add_verdict,
    create_engine,
    get_stats,
    make_session_factory,
    record_feedback,
)
from bot.storage.models import Feedback, Verdict

WRITERS = 50


async def test_fifty_concurrent_writers_lose_nothing(migrated_url):
    # Two engines stand for two bot processes sharing the database.
    engines = [create_engine(migrated_url), create_engine(migrated_url)]
    factories = [make_session_factory(engine) for engine in engines]
    try:
        shared = await insert_verdict(factories[0], message_id=10_000)

        async def writer(index: int) -> tuple[int, int]:
            session_factory = factories[index % 2]
            async with session_factory() as session, session.begin():
                verdict = await add_verdict(session, **verdict_fields(message_id=index, user_id=index))
                own, _ = await record_feedback(
                    session, verdict_id=verdict.id, user_id=index, label=0, num_labels=2, is_admin=False
                )
                # Everyone also corrects the same verdict, and re-sends the same message (a duplicate update).
                await record_feedback(
                    session,
                    verdict_id=shared.id,
                    user_id=index,
                    label=index % 2,
                    num_labels=2,
                    is_admin=False,
                )
            async with session_factory() as session, session.begin():
                duplicate = await add_verdict(session, **verdict_fields(message_id=index, user_id=index))
            assert duplicate.id == verdict.id
            return verdict.id, own.id

        results = await asyncio.gather(*(writer(index) for index in range(WRITERS)))

        assert len({verdict_id for verdict_id, _ in results}) == WRITERS
        assert await count_rows(factories[0], Verdict) == WRITERS + 1
        assert await count_rows(factories[0], Feedback) == 2 * WRITERS
        async with factories[1]() as session:
            shared_labels = (
                await session.scalars(select(Feedback.label).where(Feedback.verdict_id == shared.id))
            ).all()
            stats = await get_stats(session)
        assert sorted(shared_labels) == sorted(index % 2 for index in range(WRITERS))
        assert stats.verdicts == WRITERS + 1 and stats.corrections + stats.confirmations == 2 * WRITERS
        assert stats.confirmations == WRITERS // 2  # shared verdict says 긍정 (1): the odd writers agreed
    finally:
        for engine in engines:
            await engine.dispose()


async def test_concurrent_duplicates_of_one_message_make_one_verdict(migrated_url):
    engines = [create_engine(migrated_url), create_engine(migrated_url)]
    factories = [make_session_factory(engine) for engine in engines]
    try:

        async def write(index: int) -> int:
            async with factories[index % 2]() as session, session.begin():
                return (await add_verdict(session, **verdict_fields(message_id=1))).id

        verdict_ids = await asyncio.gather(*(write(index) for index in range(20)))
        assert len(set(verdict_ids)) == 1
        assert await count_rows(factories[0], Verdict) == 1
    finally:
        for engine in engines:
            await engine.dispose()


async def test_the_hourly_label_limit_is_exact_under_concurrency(migrated_url):
    """Sixty labels from one user at once, from two "processes": exactly the limit gets in (count-then-insert is
    atomic per user: SQLite's write lock, PostgreSQL's advisory lock)."""
    limit = 30
    engines = [create_engine(migrated_url), create_engine(migrated_url)]
    factories = [make_session_factory(engine) for engine in engines]
    try:
        verdicts = [await insert_verdict(factories[0], message_id=index) for index in range(2 * limit)]

        async def label(index: int) -> bool:
            try:
                async with factories[index % 2]() as session, session.begin():
                    await record_feedback(
                        session,
                        verdict_id=verdicts[index].id,
                        user_id=77,
                        label=0,
                        num_labels=2,
                        is_admin=False,
                        hourly_limit=limit,
                    )
                return True
            except RateLimitedError:
                return False

        accepted = await asyncio.gather(*(label(index) for index in range(2 * limit)))
        assert sum(accepted) == limit
        assert await count_rows(factories[0], Feedback) == limit
        # Trusted labels (admins, reviewers) are not limited.
        async with factories[0]() as session, session.begin():
            await record_feedback(
                session,
                verdict_id=verdicts[0].id,
                user_id=1,
                label=0,
                num_labels=2,
                is_admin=True,
                hourly_limit=1,
            )
            await record_feedback(
                session,
                verdict_id=verdicts[1].id,
                user_id=1,
                label=0,
                num_labels=2,
                is_admin=True,
                hourly_limit=1,
            )
    finally:
        for engine in engines:
            await engine.dispose()
