"""The bulk load of bench/bench_web.py: a fresh PostgreSQL database with 1,000,000 verdicts over 60 days across 2
tasks and 20 chats, and in proportion people's labels (correction, confirmation, review, a group admin's
decision, a report), moderation decisions with their actions, reports, chat policies and training runs, by COPY.

The rows are copied at revision `FILL_REVISION` (the columns below are that revision's); `fill_database` then
migrates to head, so that later migrations fill what they derive (0009: the verdicts-per-day rollup and the
verdict's columns copied onto each label) the way they do on a live database, and VACUUM ANALYZE sets the
statistics and visibility maps as autovacuum would.
"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta

import asyncpg
from sqlalchemy import make_url

# The revision the COPY below writes; `fill_database` migrates from it to head.
FILL_REVISION = "0008"

DAYS = 60
CHATS = [-1001000000000 - index for index in range(20)]
ADMIN = 111
REVIEWERS = (222, 223, 224)
LABELLERS = range(10_000, 10_500)
SENTIMENT_LABELS = ("부정", "긍정")
TOXICITY_LABELS = ("정상", "공격적", "혐오")
TEXTS = (
    "배우들 연기가 정말 좋았고 다시 보고 싶어요",
    "시간 낭비였어요 스토리가 너무 지루했습니다",
    "음악이 아름답고 화면도 멋진 영화였어요",
    "돈이 아까운 최악의 영화 다시는 안 봐요",
    "그럭저럭 볼만했지만 결말이 조금 아쉬웠어요",
)
CHUNK = 50_000


def _names(words: str) -> list[str]:
    return words.split()


# The columns each COPY writes (those of revision FILL_REVISION).
COLUMNS = {
    "model_versions": _names(
        "id task path base_checkpoint metrics status created_at activated_at active_slot"
    ),
    "verdicts": _names(
        "id task chat_id message_id user_id text text_length label label_name confidence "
        "probabilities model_version_id margin created_at"
    ),
    "feedback": _names("id verdict_id user_id label is_admin trusted source created_at updated_at"),
    "moderation_decisions": _names(
        "id chat_id message_id user_id verdict_id mode toxic_probability threshold rule "
        "strike strikes warn decided_at admin_decision admin_id admin_decided_at"
    ),
    "moderation_actions": _names(
        "id decision_id kind chat_id user_id message_id status attempts created_at done_at"
    ),
    "chat_policies": _names(
        "chat_id mode toxicity_threshold action mute_after_strikes mute_minutes "
        "ban_after_strikes strike_window_hours post_sentiment reports_to_act updated_at"
    ),
    "training_runs": _names(
        "id task trigger status created_at started_at finished_at example_count correction_count seed gate"
    ),
}
TABLES = (
    "verdicts",
    "feedback",
    "moderation_decisions",
    "moderation_actions",
    "message_reports",
    "chat_policies",
    "training_runs",
)


def _plain(url) -> str:
    """An asyncpg DSN from a SQLAlchemy URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def create_database(server_url: str, name: str) -> str:
    url = make_url(server_url)
    connection = await asyncpg.connect(_plain(url))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return url.set(database=name).render_as_string(hide_password=False)


async def drop_database(server_url: str, name: str) -> None:
    connection = await asyncpg.connect(_plain(make_url(server_url)))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await connection.close()


async def copy_rows(database_url: str, *, verdicts: int, seed: int) -> None:
    """Bulk-load the rows with COPY into a database at `FILL_REVISION`."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    start = now - timedelta(days=DAYS)
    span = (now - start).total_seconds()
    connection = await asyncpg.connect(_plain(make_url(database_url)))
    try:
        await connection.copy_records_to_table(
            "model_versions",
            columns=COLUMNS["model_versions"],
            records=[
                (
                    1,
                    "sentiment",
                    "/models/v1",
                    "scratch",
                    json.dumps({"accuracy": 0.86}),
                    "active",
                    start,
                    start,
                    1,
                ),
                (
                    2,
                    "toxicity",
                    "/models/v2",
                    "scratch",
                    json.dumps({"accuracy": 0.79}),
                    "active",
                    start,
                    start,
                    1,
                ),
            ],
        )
        probabilities = {
            ("sentiment", 0): json.dumps({"부정": 0.8, "긍정": 0.2}),
            ("sentiment", 1): json.dumps({"부정": 0.2, "긍정": 0.8}),
            ("toxicity", 0): json.dumps({"정상": 0.9, "공격적": 0.07, "혐오": 0.03}),
            ("toxicity", 1): json.dumps({"정상": 0.05, "공격적": 0.9, "혐오": 0.05}),
            ("toxicity", 2): json.dumps({"정상": 0.05, "공격적": 0.1, "혐오": 0.85}),
        }
        feedback, decisions, actions, reports = [], [], [], []
        feedback_id = decision_id = action_id = report_id = 0
        for first in range(1, verdicts + 1, CHUNK):
            rows = []
            for verdict_id in range(first, min(first + CHUNK, verdicts + 1)):
                task = "sentiment" if verdict_id % 5 < 3 else "toxicity"
                names = SENTIMENT_LABELS if task == "sentiment" else TOXICITY_LABELS
                label = rng.randrange(2) if task == "sentiment" else rng.choices((0, 1, 2), (85, 10, 5))[0]
                chat = CHATS[verdict_id % len(CHATS)]
                created = start + timedelta(seconds=span * (verdict_id - 1) / verdicts)
                text = TEXTS[verdict_id % len(TEXTS)]
                confidence = 0.55 + 0.45 * rng.random()
                rows.append(
                    (
                        verdict_id,
                        task,
                        chat,
                        verdict_id,
                        5000 + verdict_id % 3000,
                        text,
                        len(text),
                        label,
                        names[label],
                        confidence,
                        probabilities[(task, label)],
                        1 if task == "sentiment" else 2,
                        2 * confidence - 1,
                        created,
                    )
                )
                roll = rng.random()
                if roll < 0.05:  # about 5% of verdicts get a person's label
                    feedback_id += 1
                    kind = rng.random()
                    if kind < 0.25:  # a reviewer in the queue
                        user, given, trusted, source = rng.choice(REVIEWERS), label, True, "review"
                        if rng.random() < 0.2:
                            given = (label + 1) % len(names)
                    else:
                        user, trusted, source = rng.choice(LABELLERS), False, "button"
                        given = label if rng.random() < 0.7 else (label + 1) % len(names)
                    moment = created + timedelta(minutes=rng.randrange(1, 600))
                    feedback.append(
                        (feedback_id, verdict_id, user, given, False, trusted, source, moment, moment)
                    )
                if task == "toxicity" and label != 0 and roll > 0.8:  # a decision about a toxic message
                    decision_id += 1
                    answered = rng.random() < 0.2
                    admin = 900 + verdict_id % 20 if answered else None
                    answer = rng.choice(("wrong", "right")) if answered else None
                    decisions.append(
                        (
                            decision_id,
                            chat,
                            verdict_id,
                            5000 + verdict_id % 3000,
                            verdict_id,
                            "act",
                            0.9,
                            0.85,
                            "유해 확률이 기준 이상",
                            answer != "wrong",
                            1,
                            False,
                            created,
                            answer,
                            admin,
                            created + timedelta(hours=1) if answered else None,
                        )
                    )
                    for kind in ("delete", "mute") if rng.random() < 0.3 else ("delete",):
                        action_id += 1
                        actions.append(
                            (
                                action_id,
                                decision_id,
                                kind,
                                chat,
                                5000 + verdict_id % 3000,
                                verdict_id,
                                "done",
                                1,
                                created,
                                created,
                            )
                        )
                    if answered:
                        feedback_id += 1
                        moment = created + timedelta(hours=1)
                        feedback.append(
                            (
                                feedback_id,
                                verdict_id,
                                admin,
                                0 if answer == "wrong" else label,
                                False,
                                True,
                                "button",
                                moment,
                                moment,
                            )
                        )
                    if rng.random() < 0.3:
                        report_id += 1
                        reporter = 20_000 + verdict_id % 1000
                        reports.append((report_id, chat, verdict_id, reporter, created))
                        feedback_id += 1
                        feedback.append(
                            (
                                feedback_id,
                                verdict_id,
                                reporter,
                                label,
                                False,
                                False,
                                "button",
                                created,
                                created,
                            )
                        )
            await connection.copy_records_to_table(
                "verdicts",
                columns=COLUMNS["verdicts"],
                records=rows,
            )
        policies = [(chat, "act", 0.85, "delete", 3, 60, 0, 24, False, 3, start) for chat in CHATS]
        for table, columns, records in (
            ("feedback", COLUMNS["feedback"], feedback),
            ("moderation_decisions", COLUMNS["moderation_decisions"], decisions),
            ("moderation_actions", COLUMNS["moderation_actions"], actions),
            ("message_reports", ["id", "chat_id", "message_id", "reporter_id", "created_at"], reports),
            ("chat_policies", COLUMNS["chat_policies"], policies),
        ):
            await connection.copy_records_to_table(table, columns=columns, records=records)
        runs = []
        for run_id in range(1, 31):
            created = start + timedelta(days=2 * run_id)
            gate = {
                "promote": run_id % 3 != 0,
                "reason": "bench",
                "confidence": 0.95,
                "seed": run_id,
                "checks": [
                    {
                        "name": "base_vs_active",
                        "passed": run_id % 3 != 0,
                        "rule": "within the tolerance",
                        "other_version": 1,
                        "other_accuracy": 0.85,
                        "candidate_accuracy": 0.86,
                        "difference": 0.01,
                        "low": -0.004,
                        "high": 0.024,
                        "n": 5000,
                    }
                ],
                "human_labels": {
                    "train": {"긍정": {"examples": 400, "confirmations": 280, "rows": 900, "share": 0.5}}
                },
            }
            runs.append(
                (
                    run_id,
                    "sentiment",
                    "schedule",
                    "succeeded" if run_id % 3 else "rejected",
                    created,
                    created,
                    created + timedelta(minutes=14),
                    900,
                    120,
                    run_id,
                    json.dumps(gate),
                )
            )
        await connection.copy_records_to_table(
            "training_runs",
            columns=COLUMNS["training_runs"],
            records=runs,
        )
        for table in (
            "model_versions",
            "verdicts",
            "feedback",
            "moderation_decisions",
            "moderation_actions",
            "message_reports",
            "training_runs",
        ):
            await connection.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
    finally:
        await connection.close()


async def vacuum_analyze(database_url: str) -> None:
    """What autovacuum does to a live table: statistics, and visibility maps so that index-only scans work."""
    connection = await asyncpg.connect(_plain(make_url(database_url)))
    try:
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()


async def row_counts(database_url: str) -> dict[str, int]:
    connection = await asyncpg.connect(_plain(make_url(database_url)))
    try:
        return {table: int(await connection.fetchval(f"SELECT count(*) FROM {table}")) for table in TABLES}
    finally:
        await connection.close()


def fill_database(database_url: str, *, verdicts: int, seed: int) -> dict[str, int]:
    """Migrate an empty database to `FILL_REVISION`, COPY the rows, migrate to head, VACUUM ANALYZE; returns the
    row counts. Synchronous (the migrations run their own event loop)."""
    from bot import storage

    storage.upgrade_database(database_url, FILL_REVISION)
    asyncio.run(copy_rows(database_url, verdicts=verdicts, seed=seed))
    storage.upgrade_database(database_url)
    asyncio.run(vacuum_analyze(database_url))
    return asyncio.run(row_counts(database_url))
