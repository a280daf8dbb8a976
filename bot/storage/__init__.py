"""bot.storage: everything the bot records, in SQLite or PostgreSQL (SQLAlchemy 2 async + Alembic).

Transactions: the data-access functions only `flush`; the CALLER owns the transaction and commits::

    session_factory = make_session_factory(create_engine(settings.database_url))
    async with session_factory() as session, session.begin():   # commits on success, rolls back on error
        verdict = await add_verdict(session, chat_id=..., ...)

Functions that can lose a race to another writer (`add_verdict`, `record_feedback`, `start_training_run`)
wrap their insert in a SAVEPOINT and fall back to the winner's row, so the caller's transaction stays usable.
Invalid input raises `InvalidDataError` (a `StorageError`) before anything is written; its message is plain
words fit for a user. Keep transactions short: on SQLite every transaction holds the write lock
(`BEGIN IMMEDIATE`), so long transactions make other writers wait.

One-at-a-time rules live in the database, not in process memory: a UNIQUE nullable `active_slot` column
(1 while queued/running or active, NULL otherwise, tied to the status by a CHECK) allows at most one live
training run and one active model version, across processes.

Training set from corrections (`export_corrections`): per verdict, each user's latest non-voided correction
counts; the most recent admin correction wins outright; otherwise the majority label wins, a tie going to the
most recent correction; with `require_agreement=True` a verdict corrected only by non-admins needs at least
two distinct users agreeing on the winning label.

Call `upgrade_database(url)` (synchronous; `await asyncio.to_thread(upgrade_database, url)` from async code)
before first use: it applies the Alembic migrations.
"""

from bot.storage.database import (
    create_engine,
    downgrade_database,
    make_session_factory,
    parse_database_url,
    safe_url,
    upgrade_database,
)
from bot.storage.errors import InvalidDataError, StorageError
from bot.storage.feedback import (
    Correction,
    count_feedback_by_user_since,
    count_unused_feedback,
    export_corrections,
    mark_feedback_used,
    record_feedback,
    void_feedback_of_user,
    winning_label,
)
from bot.storage.model_versions import (
    activate_model_version,
    get_active_model_version,
    get_model_version,
    list_model_versions,
    previous_model_version,
    register_model_version,
    reject_model_version,
)
from bot.storage.models import (
    Base,
    Feedback,
    ModelStatus,
    ModelVersion,
    RunStatus,
    RunTrigger,
    TrainingRun,
    Verdict,
)
from bot.storage.retention import purge_old_texts
from bot.storage.stats import Stats, get_stats
from bot.storage.training_runs import (
    fail_stale_runs,
    finish_training_run,
    get_live_training_run,
    get_training_run,
    last_training_run,
    list_training_runs,
    mark_run_running,
    start_training_run,
    update_run_progress,
)
from bot.storage.verdicts import (
    add_verdict,
    find_verdict_by_message,
    get_verdict,
    latest_verdict_for_user,
    set_reply_message_id,
)

__all__ = [
    "Base",
    "Correction",
    "Feedback",
    "InvalidDataError",
    "ModelStatus",
    "ModelVersion",
    "RunStatus",
    "RunTrigger",
    "Stats",
    "StorageError",
    "TrainingRun",
    "Verdict",
    "activate_model_version",
    "add_verdict",
    "count_feedback_by_user_since",
    "count_unused_feedback",
    "create_engine",
    "downgrade_database",
    "export_corrections",
    "fail_stale_runs",
    "find_verdict_by_message",
    "finish_training_run",
    "get_active_model_version",
    "get_live_training_run",
    "get_model_version",
    "get_stats",
    "get_training_run",
    "get_verdict",
    "last_training_run",
    "latest_verdict_for_user",
    "list_model_versions",
    "list_training_runs",
    "make_session_factory",
    "mark_feedback_used",
    "mark_run_running",
    "parse_database_url",
    "previous_model_version",
    "purge_old_texts",
    "record_feedback",
    "register_model_version",
    "reject_model_version",
    "safe_url",
    "set_reply_message_id",
    "start_training_run",
    "update_run_progress",
    "upgrade_database",
    "void_feedback_of_user",
    "winning_label",
]
