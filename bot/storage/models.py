"""SQLAlchemy 2 typed models: the one `Base` whose metadata Alembic migrates.

Types are portable on purpose (JSON, non-native enums backed by VARCHAR + CHECK, timezone-aware
UTC datetimes) so that SQLite and PostgreSQL behave the same.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from classifier.tasks import SENTIMENT, TOXICITY

# Named constraints keep Alembic batch migrations on SQLite (which rebuild tables) reliable.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The value of `active_slot` while a row holds the one slot; NULL otherwise. A UNIQUE column admits many
# NULLs but only one 1, so the database itself allows at most one active model / one live run.
ACTIVE_SLOT = 1


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite drops the offset, so it is restored here).

    Naive datetimes passed in are taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Task(enum.StrEnum):
    """What a model judges (classifier.tasks): each task has its own versions, verdicts, labels and runs."""

    SENTIMENT = SENTIMENT
    TOXICITY = TOXICITY


class ModelStatus(enum.StrEnum):
    CANDIDATE = "candidate"
    ACTIVE = "active"
    REJECTED = "rejected"
    RETIRED = "retired"


class RunTrigger(enum.StrEnum):
    SCHEDULE = "schedule"
    ADMIN = "admin"
    CLI = "cli"


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"


class FeedbackSource(enum.StrEnum):
    BUTTON = "button"  # 맞아요 / 틀렸어요 / a label button under a verdict
    COMMAND = "command"  # /feedback
    REVIEW = "review"  # a label given in the /review queue


class ReviewOutcome(enum.StrEnum):
    SHOWN = "shown"
    SKIPPED = "skipped"
    LABELLED = "labelled"


class ActivationReason(enum.StrEnum):
    IMPORT = "import"  # `moderator model import`
    MANUAL = "manual"  # `moderator model activate`
    PROMOTION = "promotion"  # a retraining run passed the gate
    ROLLBACK = "rollback"  # /rollback
    FALLBACK = "fallback"  # the active version could not load at start-up


LIVE_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
FINISHED_RUN_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.REJECTED)


def portable_enum(enum_class: type[enum.Enum], name: str) -> Enum:
    # VARCHAR + CHECK on every backend; stores the lowercase value, not the member name.
    return Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        CheckConstraint(
            "(status = 'active' AND active_slot IS NOT NULL AND active_slot = 1) OR (status <> 'active' AND active_slot IS NULL)",
            name="active_slot_matches_status",
        ),
        UniqueConstraint("task", "active_slot"),  # one active version per task
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[Task] = mapped_column(portable_enum(Task, "task"), default=Task.SENTIMENT)
    path: Mapped[str] = mapped_column(String(1024))
    base_checkpoint: Mapped[str] = mapped_column(String(1024))
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[ModelStatus] = mapped_column(portable_enum(ModelStatus, "model_status"))
    status_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    active_slot: Mapped[int | None] = mapped_column(Integer)
    pruned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # its files were deleted (retention)

    def __repr__(self) -> str:
        return f"ModelVersion(id={self.id}, status={self.status}, path={self.path!r})"


class Verdict(Base):
    __tablename__ = "verdicts"
    __table_args__ = (
        UniqueConstraint("chat_id", "message_id", "task"),  # a message gets one verdict per task
        Index(None, "chat_id", "reply_message_id"),
        Index(None, "chat_id", "user_id"),
        # the web app's overview: verdicts per day and label over a window, for all chats or one (0008)
        Index(None, "task", "created_at", "label_name"),
        Index(None, "chat_id", "task", "created_at"),
        # the review queue's count of unlabelled verdicts in its window, index-only: every column the count
        # reads, over the verdicts that still have their text (0009)
        Index(
            None,
            "task",
            "created_at",
            "id",
            "text_length",
            postgresql_where=sql_text("text IS NOT NULL"),
            sqlite_where=sql_text("text IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[Task] = mapped_column(portable_enum(Task, "task"), default=Task.SENTIMENT)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    text: Mapped[str | None] = mapped_column(Text)  # NULL once retention purged it
    text_length: Mapped[int] = mapped_column(Integer)
    label: Mapped[int] = mapped_column(Integer)
    label_name: Mapped[str] = mapped_column(String(64))
    confidence: Mapped[float] = mapped_column(Float)
    probabilities: Mapped[dict[str, float]] = mapped_column(JSON)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    # top probability minus the runner-up: the review queue shows the least certain verdicts first
    margin: Mapped[float | None] = mapped_column(Float, index=True)
    reply_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    text_purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    feedback: Mapped[list[Feedback]] = relationship(
        back_populates="verdict", cascade="all, delete-orphan", passive_deletes=True, lazy="raise"
    )

    def __repr__(self) -> str:
        return (
            f"Verdict(id={self.id}, chat_id={self.chat_id}, message_id={self.message_id}, label={self.label})"
        )


class TrainingRun(Base):
    __tablename__ = "training_runs"
    __table_args__ = (
        CheckConstraint(
            "(status IN ('queued', 'running') AND active_slot IS NOT NULL AND active_slot = 1)"
            " OR (status NOT IN ('queued', 'running') AND active_slot IS NULL)",
            name="active_slot_matches_status",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # the task whose model it trains; one run is live at a time across tasks (they share the machine)
    task: Mapped[Task] = mapped_column(portable_enum(Task, "task"), default=Task.SENTIMENT)
    trigger: Mapped[RunTrigger] = mapped_column(portable_enum(RunTrigger, "run_trigger"))
    requested_by: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[RunStatus] = mapped_column(portable_enum(RunStatus, "run_status"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    example_count: Mapped[int | None] = mapped_column(Integer)
    correction_count: Mapped[int | None] = mapped_column(Integer)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    error: Mapped[str | None] = mapped_column(Text)
    log_path: Mapped[str | None] = mapped_column(String(1024))
    progress: Mapped[str | None] = mapped_column(String(255))
    active_slot: Mapped[int | None] = mapped_column(Integer, unique=True)
    # The process executing the run ("host:pid:nonce") and its last sign of life: a live run whose heartbeat
    # stopped is stale, whichever process notices.
    owner: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    seed: Mapped[int | None] = mapped_column(Integer)  # draws this run's base rows
    gate: Mapped[dict[str, Any] | None] = mapped_column(
        JSON
    )  # the promotion gate's checks, as metrics.json has them

    def __repr__(self) -> str:
        return f"TrainingRun(id={self.id}, trigger={self.trigger}, status={self.status})"


class Feedback(Base):
    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint("verdict_id", "user_id"),
        Index(None, "user_id", "updated_at"),
        # the overview's labels per day of a task over a window, and the review queue's labels of the verdicts
        # in its window, without reading the verdicts (0009)
        Index(None, "task", "created_at"),
        Index(None, "task", "verdict_created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    verdict_id: Mapped[int] = mapped_column(ForeignKey("verdicts.id", ondelete="CASCADE"))
    # The verdict's task, chat, message, label and creation time, copied when the label is recorded (a verdict's
    # never change): the overview counts labels per day by kind, and the review queue finds the labels of its
    # window, without reading the verdicts (0009).
    task: Mapped[Task] = mapped_column(portable_enum(Task, "task"))
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)
    verdict_label: Mapped[int] = mapped_column(Integer)
    verdict_created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    user_id: Mapped[int] = mapped_column(BigInteger)
    label: Mapped[int] = mapped_column(
        Integer
    )  # the label the user gave (equal to the verdict's: a confirmation)
    is_admin: Mapped[bool] = mapped_column(default=False)  # at the time of the label
    # Admin labels and review-queue labels count without a second opinion and win conflicts.
    trusted: Mapped[bool] = mapped_column(default=False)
    source: Mapped[FeedbackSource] = mapped_column(
        portable_enum(FeedbackSource, "feedback_source"), default=FeedbackSource.BUTTON
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    voided_by: Mapped[int | None] = mapped_column(BigInteger)
    used_by_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_runs.id", ondelete="SET NULL"), index=True
    )

    verdict: Mapped[Verdict] = relationship(back_populates="feedback", lazy="raise")

    def __repr__(self) -> str:
        return f"Feedback(id={self.id}, verdict_id={self.verdict_id}, user_id={self.user_id}, label={self.label})"


class VerdictDayCount(Base):
    """Verdicts per UTC day, task, chat and label: the overview's rollup. `add_verdict` adds each verdict to its
    row in the verdict's own transaction (verdicts are never deleted, and their time, task, chat and label never
    change); migration 0009 counted the verdicts recorded before it."""

    __tablename__ = "verdict_day_counts"

    task: Mapped[Task] = mapped_column(portable_enum(Task, "task"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    label_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class ReviewView(Base):
    """A verdict shown to a reviewer in the /review queue: no reviewer sees an item twice."""

    __tablename__ = "review_views"
    __table_args__ = (UniqueConstraint("reviewer_id", "verdict_id"), Index(None, "reviewer_id", "shown_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reviewer_id: Mapped[int] = mapped_column(BigInteger)
    verdict_id: Mapped[int] = mapped_column(ForeignKey("verdicts.id", ondelete="CASCADE"), index=True)
    outcome: Mapped[ReviewOutcome] = mapped_column(portable_enum(ReviewOutcome, "review_outcome"))
    shown_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ModelActivation(Base):
    """Every change of the active model version, in order: rollback walks back through this history."""

    __tablename__ = "model_activations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    previous_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    reason: Mapped[ActivationReason] = mapped_column(portable_enum(ActivationReason, "activation_reason"))
    actor: Mapped[int | None] = mapped_column(BigInteger)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# --- Group moderation (bot/moderation/groups*.py) ------------------------------------------------------------
# Each group has its own policy. A message the policy judges toxic gets one decision (unique per message), with
# its strike and the actions it asks for, in one transaction; the actions are then executed from these rows
# (bot/telegram/actions.py), so that a crash, a restart or a re-delivered update acts at most once.


class ChatMode(enum.StrEnum):
    OFF = "off"  # not watched
    WATCH = "watch"  # decide and log, touch nothing (the default when the bot joins)
    ACT = "act"  # decide, log and act


class ToxicAction(enum.StrEnum):
    DELETE = "delete"  # delete the message
    WARN = "warn"  # delete it and warn its author in the group


class ActionKind(enum.StrEnum):
    DELETE = "delete"
    MUTE = "mute"  # restrictChatMember until `until`
    BAN = "ban"
    UNMUTE = "unmute"  # an admin undid a mute
    UNBAN = "unban"  # an admin undid a ban


class ActionStatus(enum.StrEnum):
    PENDING = "pending"  # decided, not executed yet (executed after a restart)
    DONE = "done"
    FAILED = "failed"  # Telegram refused it (no rights, too old, an admin): logged, never retried


class ChatPolicy(Base):
    """A group's moderation policy, set by its admins with /settings."""

    __tablename__ = "chat_policies"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    mode: Mapped[ChatMode] = mapped_column(portable_enum(ChatMode, "chat_mode"), default=ChatMode.WATCH)
    # a message is toxic when its calibrated probability of 공격적 or 혐오 reaches this
    toxicity_threshold: Mapped[float] = mapped_column(Float, default=0.9)
    action: Mapped[ToxicAction] = mapped_column(
        portable_enum(ToxicAction, "toxic_action"), default=ToxicAction.DELETE
    )
    mute_after_strikes: Mapped[int] = mapped_column(Integer, default=3)  # 0: never mute
    mute_minutes: Mapped[int] = mapped_column(Integer, default=60)
    ban_after_strikes: Mapped[int] = mapped_column(Integer, default=0)  # 0: never ban
    strike_window_hours: Mapped[int] = mapped_column(Integer, default=24)
    # answer reviews with their verdict in the group
    post_sentiment: Mapped[bool] = mapped_column(default=False)
    # /report from this many distinct members acts on a message (watch: logs it); 0: reports never act
    reports_to_act: Mapped[int] = mapped_column(Integer, default=3)
    log_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    updated_by: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ModerationDecision(Base):
    """What a group's policy decided about one toxic message (in `watch`: what it would have done)."""

    __tablename__ = "moderation_decisions"
    __table_args__ = (
        UniqueConstraint("chat_id", "message_id"),
        Index(None, "chat_id", "user_id", "decided_at"),
        # the web app: a chat's action log newest first, and whose label a decision's verdict got (0008)
        Index(None, "chat_id", "id"),
        Index(None, "verdict_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    verdict_id: Mapped[int | None] = mapped_column(ForeignKey("verdicts.id", ondelete="SET NULL"))
    mode: Mapped[ChatMode] = mapped_column(portable_enum(ChatMode, "chat_mode"))
    toxic_probability: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    rule: Mapped[str] = mapped_column(Text)  # the rule that fired, in words
    strike: Mapped[bool] = mapped_column(default=False)  # counts toward mutes and bans (cleared on undo)
    strikes: Mapped[int] = mapped_column(
        Integer, default=0
    )  # the author's strikes in the window, this one too
    warn: Mapped[bool] = mapped_column(default=False)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # an admin's answer in the log chat: "wrong" (undone), "right", "banned"
    admin_decision: Mapped[str | None] = mapped_column(String(16))
    admin_id: Mapped[int | None] = mapped_column(BigInteger)
    admin_decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    actions: Mapped[list[ModerationAction]] = relationship(
        back_populates="decision",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="selectin",
        order_by="ModerationAction.id",  # in the order decided: a message is deleted before its author is banned
    )


class ModerationAction(Base):
    """One Telegram action a decision asks for; executed once, from this row."""

    __tablename__ = "moderation_actions"
    __table_args__ = (
        UniqueConstraint("decision_id", "kind"),
        Index(None, "status", "id"),
        Index(
            None, "created_at", "chat_id"
        ),  # the web app's overview: actions per group over a window (0008)
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("moderation_decisions.id", ondelete="CASCADE"))
    kind: Mapped[ActionKind] = mapped_column(portable_enum(ActionKind, "action_kind"))
    chat_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    until: Mapped[datetime | None] = mapped_column(UTCDateTime())  # a mute's end
    status: Mapped[ActionStatus] = mapped_column(
        portable_enum(ActionStatus, "action_status"), default=ActionStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[int | None] = mapped_column(Integer)  # the process executing it (process_claims.py)

    decision: Mapped[ModerationDecision] = relationship(back_populates="actions", lazy="raise")


class MessageReport(Base):
    """A member's /report of a group message: an untrusted suggestion that it is toxic."""

    __tablename__ = "message_reports"
    __table_args__ = (
        UniqueConstraint("chat_id", "message_id", "reporter_id"),
        Index(None, "reporter_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)
    reporter_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# --- The operator web app (bot/web) ----------------------------------------------------------------------------


class WebLogin(Base):
    """A one-time login link sent by `/web`: only the SHA-256 hash of its token is kept; it works once, until
    `expires_at`."""

    __tablename__ = "web_logins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # hex SHA-256 of the token
    user_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
