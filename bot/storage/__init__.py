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
training run and one active model version, across processes. A live run names its owner process and beats a
heartbeat; a run whose heartbeat stopped is stale, and the next request fails it (`start_training_run`).

Training set from people's labels (`export_human_labels`; corrections and confirmations alike): per verdict,
each user's latest non-voided label counts; the most recent trusted label (an admin's, or a reviewer's in the
review queue) wins outright; otherwise only labellers whose record of reviewers' spot checks earned them trust
count (`bot.storage.label_trust`).

Call `upgrade_database(url)` (synchronous; `await asyncio.to_thread(upgrade_database, url)` from async code)
before first use: it applies the Alembic migrations.
"""

from bot.storage.chat_policies import DEFAULT_POLICY, get_chat_policy, update_chat_policy
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
    HumanLabel,
    LabelBacklog,
    RateLimitedError,
    count_feedback_by_user_since,
    count_unused_feedback,
    export_human_labels,
    label_backlog,
    labeller_standing,
    mark_feedback_used,
    record_feedback,
    void_feedback_of_user,
)
from bot.storage.guard import DatabaseFileGuard, DatabaseGoneError
from bot.storage.inbox import (
    fail_poison_updates,
    finish_updates,
    pending_updates,
    purge_inbox,
    start_updates,
    store_updates,
)
from bot.storage.label_trust import LabellerRecord, LabelRule, Standing, labeller_records, settle
from bot.storage.model_versions import (
    activate_model_version,
    get_active_model_version,
    get_model_version,
    list_activations,
    list_model_versions,
    mark_version_pruned,
    prunable_rejected_versions,
    register_model_version,
    reject_model_version,
    rollback_candidates,
    served_versions,
)
from bot.storage.models import (
    ActionKind,
    ActionStatus,
    ActivationReason,
    Base,
    ChatMode,
    ChatPolicy,
    Feedback,
    FeedbackSource,
    InboxStatus,
    MessageReport,
    ModelActivation,
    ModelStatus,
    ModelVersion,
    ModerationAction,
    ModerationDecision,
    OutboxMessage,
    OutboxStatus,
    ReviewOutcome,
    ReviewView,
    RunStatus,
    RunTrigger,
    Task,
    TelegramUpdate,
    ToxicAction,
    TrainingRun,
    Verdict,
)
from bot.storage.moderation_decisions import (
    PlannedAction,
    add_action,
    count_strikes,
    finish_action,
    get_action,
    get_decision,
    get_decision_for_message,
    pending_actions,
    record_admin_decision,
    record_decision,
    record_report,
)
from bot.storage.outbox import (
    due_outbox_messages,
    enqueue_message,
    get_outbox_message,
    mark_outbox_failed_attempt,
    mark_outbox_sent,
    purge_outbox,
)
from bot.storage.retention import purge_old_texts
from bot.storage.review_queue import ReviewItem, next_review_item, record_review_outcome
from bot.storage.stats import Stats, get_stats
from bot.storage.training_runs import (
    DEFAULT_STALE_AFTER,
    RunNotOwnedError,
    fail_stale_runs,
    finish_training_run,
    get_live_training_run,
    get_training_run,
    heartbeat_run,
    is_stale,
    last_training_run,
    list_training_runs,
    mark_run_running,
    require_run_owner,
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
    "DEFAULT_POLICY",
    "DEFAULT_STALE_AFTER",
    "ActionKind",
    "ActionStatus",
    "ActivationReason",
    "Base",
    "ChatMode",
    "ChatPolicy",
    "DatabaseFileGuard",
    "DatabaseGoneError",
    "Feedback",
    "FeedbackSource",
    "HumanLabel",
    "InboxStatus",
    "InvalidDataError",
    "LabelBacklog",
    "LabelRule",
    "LabellerRecord",
    "MessageReport",
    "ModelActivation",
    "ModelStatus",
    "ModelVersion",
    "ModerationAction",
    "ModerationDecision",
    "OutboxMessage",
    "OutboxStatus",
    "PlannedAction",
    "RateLimitedError",
    "ReviewItem",
    "ReviewOutcome",
    "ReviewView",
    "RunNotOwnedError",
    "RunStatus",
    "RunTrigger",
    "Standing",
    "Stats",
    "StorageError",
    "Task",
    "TelegramUpdate",
    "ToxicAction",
    "TrainingRun",
    "Verdict",
    "activate_model_version",
    "add_action",
    "add_verdict",
    "count_feedback_by_user_since",
    "count_strikes",
    "count_unused_feedback",
    "create_engine",
    "downgrade_database",
    "due_outbox_messages",
    "enqueue_message",
    "export_human_labels",
    "fail_poison_updates",
    "fail_stale_runs",
    "find_verdict_by_message",
    "finish_action",
    "finish_training_run",
    "finish_updates",
    "get_action",
    "get_active_model_version",
    "get_chat_policy",
    "get_decision",
    "get_decision_for_message",
    "get_live_training_run",
    "get_model_version",
    "get_outbox_message",
    "get_stats",
    "get_training_run",
    "get_verdict",
    "heartbeat_run",
    "is_stale",
    "label_backlog",
    "labeller_records",
    "labeller_standing",
    "last_training_run",
    "latest_verdict_for_user",
    "list_activations",
    "list_model_versions",
    "list_training_runs",
    "make_session_factory",
    "mark_feedback_used",
    "mark_outbox_failed_attempt",
    "mark_outbox_sent",
    "mark_run_running",
    "mark_version_pruned",
    "next_review_item",
    "parse_database_url",
    "pending_actions",
    "pending_updates",
    "prunable_rejected_versions",
    "purge_inbox",
    "purge_old_texts",
    "purge_outbox",
    "record_admin_decision",
    "record_decision",
    "record_feedback",
    "record_report",
    "record_review_outcome",
    "register_model_version",
    "reject_model_version",
    "require_run_owner",
    "rollback_candidates",
    "safe_url",
    "served_versions",
    "set_reply_message_id",
    "settle",
    "start_training_run",
    "start_updates",
    "store_updates",
    "update_chat_policy",
    "update_run_progress",
    "upgrade_database",
    "void_feedback_of_user",
]
