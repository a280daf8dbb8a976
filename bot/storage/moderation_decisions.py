"""Decisions about toxic group messages and the Telegram actions they ask for.

A decision is unique per (chat, message): deciding about a message again (a re-delivered update, a restart)
returns the first decision, so a strike is counted and an action is queued once. Actions are rows executed by
the bot's action worker (bot/telegram/actions.py) and marked done; a pending action is executed after a
restart. Functions flush; the caller commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.errors import InvalidDataError
from bot.storage.feedback import RateLimitedError
from bot.storage.models import (
    ActionKind,
    ActionStatus,
    ChatMode,
    MessageReport,
    ModerationAction,
    ModerationDecision,
    utcnow,
)
from bot.storage.process_claims import claim_row, claimable_by

ERROR_TEXT_LIMIT = 1000


@dataclass(frozen=True)
class PlannedAction:
    kind: ActionKind
    until: datetime | None = None


async def count_strikes(
    session: AsyncSession, *, chat_id: int, user_id: int, since: datetime, mode: ChatMode
) -> int:
    """The user's live strikes in the chat since `since`, among decisions taken in `mode` (would-be strikes of
    `watch` never count toward a mute in `act`)."""
    return int(
        await session.scalar(
            select(func.count())
            .select_from(ModerationDecision)
            .where(
                ModerationDecision.chat_id == chat_id,
                ModerationDecision.user_id == user_id,
                ModerationDecision.strike.is_(True),
                ModerationDecision.mode == ChatMode(mode),
                ModerationDecision.decided_at >= since,
            )
        )
        or 0
    )


async def get_decision_for_message(
    session: AsyncSession, *, chat_id: int, message_id: int
) -> ModerationDecision | None:
    return await session.scalar(
        select(ModerationDecision).where(
            ModerationDecision.chat_id == chat_id, ModerationDecision.message_id == message_id
        )
    )


async def get_decision(
    session: AsyncSession, *, decision_id: int, for_update: bool = False
) -> ModerationDecision | None:
    """The decision; with `for_update`, its row locked until the transaction ends (two admins answering at once
    answer one after the other; SQLite's one writer does that anyway)."""
    return await session.get(
        ModerationDecision, decision_id, populate_existing=True, with_for_update=for_update
    )


async def record_decision(
    session: AsyncSession,
    *,
    chat_id: int,
    message_id: int,
    user_id: int | None,
    verdict_id: int | None,
    mode: ChatMode,
    toxic_probability: float,
    threshold: float,
    rule: str,
    strike: bool,
    strikes: int,
    warn: bool,
    actions: Iterable[PlannedAction] = (),
) -> tuple[ModerationDecision, bool]:
    """Store a decision and its actions; returns (decision, created). When the message has a decision already,
    that one is returned unchanged (created False) and nothing is added."""
    if not 0.0 <= toxic_probability <= 1.0:
        raise InvalidDataError(f"A probability lies in [0, 1], got {toxic_probability}.")
    existing = await get_decision_for_message(session, chat_id=chat_id, message_id=message_id)
    if existing is not None:
        return existing, False
    decision = ModerationDecision(
        chat_id=chat_id,
        message_id=message_id,
        user_id=user_id,
        verdict_id=verdict_id,
        mode=ChatMode(mode),
        toxic_probability=float(toxic_probability),
        threshold=float(threshold),
        rule=rule,
        strike=strike,
        strikes=strikes,
        warn=warn,
        decided_at=utcnow(),
    )
    decision.actions = [
        ModerationAction(
            kind=planned.kind,
            chat_id=chat_id,
            user_id=user_id,
            message_id=message_id,
            until=planned.until,
            status=ActionStatus.PENDING,
            attempts=0,
            created_at=utcnow(),
        )
        for planned in actions
    ]
    try:
        async with (
            session.begin_nested()
        ):  # losing a race for the same message keeps the caller's transaction
            session.add(decision)
    except IntegrityError:
        existing = await get_decision_for_message(session, chat_id=chat_id, message_id=message_id)
        if existing is None:
            raise
        return existing, False
    return decision, True


async def add_action(
    session: AsyncSession, *, decision: ModerationDecision, kind: ActionKind, until: datetime | None = None
) -> tuple[ModerationAction, bool]:
    """Queue one more action for a decision (an admin's undo or escalation); returns (action, created). Each
    kind happens at most once per decision."""
    existing = await _action_of(session, decision_id=decision.id, kind=kind)
    if existing is not None:
        return existing, False
    action = ModerationAction(
        decision_id=decision.id,
        kind=kind,
        chat_id=decision.chat_id,
        user_id=decision.user_id,
        message_id=decision.message_id,
        until=until,
        status=ActionStatus.PENDING,
        attempts=0,
        created_at=utcnow(),
    )
    try:
        async with session.begin_nested():
            session.add(action)
    except IntegrityError:
        existing = await _action_of(session, decision_id=decision.id, kind=kind)
        if existing is None:
            raise
        return existing, False
    return action, True


async def _action_of(session: AsyncSession, *, decision_id: int, kind: ActionKind) -> ModerationAction | None:
    return await session.scalar(
        select(ModerationAction).where(
            ModerationAction.decision_id == decision_id, ModerationAction.kind == kind
        )
    )


async def pending_actions(
    session: AsyncSession, *, process_key: int | None = None, limit: int = 100
) -> list[ModerationAction]:
    """Actions decided and not executed yet, oldest first (a chat's actions keep their order); with
    `process_key`, only those that process may claim."""
    statement = select(ModerationAction).where(ModerationAction.status == ActionStatus.PENDING)
    if process_key is not None:
        statement = statement.where(claimable_by(session, ModerationAction.claimed_by, process_key))
    return list((await session.scalars(statement.order_by(ModerationAction.id).limit(limit))).all())


async def claim_action(session: AsyncSession, *, action_id: int, process_key: int) -> bool:
    """Make process `process_key` the one that executes a pending action: unclaimed, its own, or held by a
    process that is gone (one conditional UPDATE). False when it is not pending or a live process holds it."""
    return await claim_row(
        session, ModerationAction, row_id=action_id, pending=ActionStatus.PENDING, process_key=process_key
    )


async def get_action(session: AsyncSession, *, action_id: int) -> ModerationAction | None:
    return await session.get(ModerationAction, action_id, populate_existing=True)


async def finish_action(
    session: AsyncSession, *, action_id: int, status: ActionStatus, error: str | None = None
) -> ModerationAction:
    """Mark an action done, or failed for good with Telegram's reason."""
    action = await session.get(ModerationAction, action_id)
    if action is None:
        raise InvalidDataError(f"Action {action_id} does not exist.")
    action.status = ActionStatus(status)
    action.attempts += 1
    action.last_error = error[:ERROR_TEXT_LIMIT] if error else None
    action.done_at = utcnow()
    await session.flush()
    return action


async def record_admin_decision(
    session: AsyncSession, *, decision: ModerationDecision, answer: str, admin_id: int
) -> None:
    """An admin's answer in the log chat; "wrong" also clears the strike."""
    decision.admin_decision = answer
    decision.admin_id = admin_id
    decision.admin_decided_at = utcnow()
    if answer == "wrong":
        decision.strike = False
    await session.flush()


async def record_report(
    session: AsyncSession, *, chat_id: int, message_id: int, reporter_id: int, hourly_limit: int
) -> tuple[int, bool]:
    """Record a member's report of a message; returns (distinct reporters of the message, newly recorded). A
    member reports a message once; more than `hourly_limit` reports an hour raise RateLimitedError."""
    exists = await session.scalar(
        select(MessageReport.id).where(
            MessageReport.chat_id == chat_id,
            MessageReport.message_id == message_id,
            MessageReport.reporter_id == reporter_id,
        )
    )
    created = False
    if exists is None:
        recent = await session.scalar(
            select(func.count())
            .select_from(MessageReport)
            .where(
                MessageReport.reporter_id == reporter_id,
                MessageReport.created_at >= utcnow() - timedelta(hours=1),
            )
        )
        if int(recent or 0) >= hourly_limit:
            raise RateLimitedError(hourly_limit)
        try:
            async with session.begin_nested():
                session.add(
                    MessageReport(
                        chat_id=chat_id, message_id=message_id, reporter_id=reporter_id, created_at=utcnow()
                    )
                )
            created = True
        except IntegrityError:
            pass  # the same report, recorded meanwhile
    reporters = await session.scalar(
        select(func.count())
        .select_from(MessageReport)
        .where(MessageReport.chat_id == chat_id, MessageReport.message_id == message_id)
    )
    return int(reporters or 0), created
