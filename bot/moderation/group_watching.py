"""Watching a group: every message judged silently, toxic ones decided by the group's policy.

A decision, its actions and its messages (the log chat's entry, a warning in the group) are stored in one
transaction, keyed by the message: re-processing an update finds the decision and adds nothing, so a strike
is counted once and each action is executed once (from its row, by the adapter's action worker; what a crash
left pending is executed after the restart). Decisions of one chat are taken one at a time and in the order its
messages arrived, so that a burst counts its strikes in order.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from bot import storage
from bot.moderation import group_texts
from bot.moderation.classification import Classification, Judgement, verdict_reply
from bot.moderation.group_policy import GroupDecision, decide, toxic_probability
from bot.moderation.replies import Button, IncomingText, Reply, inline_keyboard
from bot.storage import ActionStatus, ChatMode, ChatPolicy, StorageError
from bot.storage.models import utcnow
from bot.textclip import clip
from classifier.errors import EmptyTextError

logger = logging.getLogger("bot.moderation")

LOG_TEXT_LIMIT = 1000  # characters of the message quoted in the log chat


class ChatAdmins(Protocol):
    """Who administers a chat, as Telegram says (the adapter caches it briefly)."""

    async def is_admin(self, chat_id: int, user_id: int) -> bool: ...


@dataclass(frozen=True)
class GroupMessage:
    chat_id: int
    message_id: int
    user_id: int | None
    text: str
    bot_id: int  # the bot's own id (its outbox is per bot)
    author: str = ""  # the author's name, for the log chat
    addressed: bool = False  # mentions the bot or replies to it: answered as in a private chat
    replies_to_bot: bool = False
    author_is_admin: bool = False  # an admin of the group (or an anonymous admin): never acted on
    ticket: int | None = None  # its place in the chat's arrival order (`GroupWatching.arrive`)

    def incoming(self) -> IncomingText:
        """The message as the classification use case takes it."""
        return IncomingText(
            chat_id=self.chat_id,
            message_id=self.message_id,
            user_id=self.user_id,
            text=self.text,
            private=False,
            replies_to_bot=self.replies_to_bot,
        )


@dataclass(frozen=True)
class GroupOutcome:
    reply: Reply | None = None  # what to answer in the group, if anything
    action_ids: tuple[int, ...] = ()  # Telegram actions to execute now


class ArrivalOrder:
    """One chat's decisions in the order its messages arrived, whatever order their classification finishes in
    (micro-batches, two models): a burst's strikes count in the order the members wrote. Every ticket taken must
    be finished (`finish` is idempotent, and the adapter finishes it whatever happens)."""

    def __init__(self) -> None:
        self._issued = 0
        self._next = 0  # every ticket below this is finished
        self._finished: set[int] = set()
        self._turns: dict[int, asyncio.Event] = {}

    def take(self) -> int:
        self._issued += 1
        return self._issued - 1

    async def turn(self, ticket: int) -> None:
        """Wait until every earlier ticket is finished."""
        if self._next < ticket:
            await self._turns.setdefault(ticket, asyncio.Event()).wait()

    def finish(self, ticket: int) -> None:
        if ticket < self._next:
            return
        self._finished.add(ticket)
        while self._next in self._finished:
            self._finished.discard(self._next)
            self._next += 1
            event = self._turns.pop(self._next, None)
            if event is not None:
                event.set()


class GroupWatching(Classification):
    def _chat_lock(self, chat_id: int) -> asyncio.Lock:
        locks: dict[int, asyncio.Lock] = self.__dict__.setdefault("_group_locks", {})
        return locks.setdefault(chat_id, asyncio.Lock())

    def _arrival_order(self, chat_id: int) -> ArrivalOrder:
        orders: dict[int, ArrivalOrder] = self.__dict__.setdefault("_arrival_orders", {})
        return orders.setdefault(chat_id, ArrivalOrder())

    def arrive(self, chat_id: int) -> int:
        """A ticket for a group message that just arrived (take it before anything can wait)."""
        return self._arrival_order(chat_id).take()

    def leave(self, chat_id: int, ticket: int) -> None:
        """The message is decided (or needs no decision): later ones may go."""
        self._arrival_order(chat_id).finish(ticket)

    async def watch(self, message: GroupMessage) -> GroupOutcome:
        """Judge a group message; when it is toxic, decide by the group's policy. Storage trouble is logged
        and the message left alone (a group is never told about it)."""
        try:
            return await self._watch(message)
        except (StorageError, SQLAlchemyError, OSError):
            logger.exception("could not watch message %s in chat %s", message.message_id, message.chat_id)
            return GroupOutcome()

    async def group_policy(self, chat_id: int) -> ChatPolicy:
        async with self._transaction() as session:
            return await storage.get_chat_policy(session, chat_id=chat_id)

    async def _watch(self, message: GroupMessage) -> GroupOutcome:
        policy = await self.group_policy(message.chat_id)
        if policy.mode is ChatMode.OFF and not message.addressed:
            return GroupOutcome()
        incoming = message.incoming()
        screened = self.screen(incoming)
        if isinstance(screened, Reply):  # no review: judged by neither model (silent in groups)
            return GroupOutcome()
        try:
            judgement = await self.judge(incoming, screened)
        except EmptyTextError:
            return GroupOutcome()
        answer = (
            verdict_reply(judgement, show_probabilities=False)
            if message.addressed or policy.post_sentiment
            else None
        )
        if (
            judgement.toxicity is None
            or policy.mode is ChatMode.OFF
            or message.author_is_admin
            or message.user_id is None
        ):
            return GroupOutcome(reply=answer)
        toxic = toxic_probability(judgement.toxicity.probabilities)
        if toxic < policy.toxicity_threshold:
            return GroupOutcome(reply=answer)
        outcome = await self._decide(policy, message, judgement, screened, toxic=toxic)
        deleted = policy.mode is ChatMode.ACT
        return GroupOutcome(reply=None if deleted else answer, action_ids=outcome.action_ids)

    async def _decide(
        self,
        policy: ChatPolicy,
        message: GroupMessage,
        judgement: Judgement | None,
        text: str,
        *,
        toxic: float,
        reporters: int = 0,
    ) -> GroupOutcome:
        """Decide about a message the model finds toxic or `reporters` members reported, once per message."""
        assert message.user_id is not None
        acting = policy.mode is ChatMode.ACT
        if message.ticket is not None:
            await self._arrival_order(message.chat_id).turn(message.ticket)
        async with self._chat_lock(message.chat_id), self._transaction() as session:
            existing = await storage.get_decision_for_message(
                session, chat_id=message.chat_id, message_id=message.message_id
            )
            if existing is not None:  # decided before (a re-delivered update): execute what is left
                return GroupOutcome(
                    action_ids=tuple(a.id for a in existing.actions if a.status is ActionStatus.PENDING)
                )
            now = utcnow()
            prior = await storage.count_strikes(
                session,
                chat_id=message.chat_id,
                user_id=message.user_id,
                since=now - timedelta(hours=policy.strike_window_hours),
                mode=policy.mode,
            )
            decision = decide(policy, toxic=toxic, prior_strikes=prior, now=now, reporters=reporters)
            if decision is None:
                return GroupOutcome()
            # An edited message keeps its first verdict: admins' labels go to it only while the text is the same.
            verdict = judgement.toxicity_row if judgement is not None else None
            same_text = verdict is not None and verdict.text == text
            row, created = await storage.record_decision(
                session,
                chat_id=message.chat_id,
                message_id=message.message_id,
                user_id=message.user_id,
                verdict_id=verdict.id if verdict is not None and same_text else None,
                mode=policy.mode,
                toxic_probability=toxic,
                threshold=policy.toxicity_threshold,
                rule=decision.rule,
                strike=True,
                strikes=decision.strikes,
                warn=acting and decision.warn,
                actions=decision.actions if acting else (),
            )
            if not created:
                return GroupOutcome()
            # The log entry and a warning are stored with the decision: the outbox sends each once.
            if policy.log_chat_id is not None:
                await storage.enqueue_message(
                    session,
                    bot_id=message.bot_id,
                    chat_id=policy.log_chat_id,
                    text=log_entry(message, judgement, text, decision, acting=acting),
                    reply_markup=inline_keyboard(log_buttons(row.id)),
                    digest=True,  # a flood's entries reach the admins a digest at a time, not 20 a minute
                )
            if acting and decision.warn:
                await storage.enqueue_message(
                    session,
                    bot_id=message.bot_id,
                    chat_id=message.chat_id,
                    text=group_texts.WARNING.format(
                        user_id=message.author or message.user_id, strikes=decision.strikes
                    ),
                )
            await session.flush()
            action_ids = tuple(action.id for action in row.actions)
        logger.info(
            "chat %s message %s: %s (%s)",
            message.chat_id,
            message.message_id,
            "acted" if acting else "would act",
            decision.rule,
        )
        return GroupOutcome(action_ids=action_ids)


def log_buttons(decision_id: int) -> tuple[Button, ...]:
    return (
        Button(group_texts.BUTTON_UNDO, f"gm:undo:{decision_id}"),
        Button(group_texts.BUTTON_CONFIRM, f"gm:ok:{decision_id}"),
        Button(group_texts.BUTTON_BAN, f"gm:ban:{decision_id}"),
    )


def log_entry(
    message: GroupMessage, judgement: Judgement | None, text: str, decision: GroupDecision, *, acting: bool
) -> str:
    actions = ", ".join(group_texts.ACTION_NAMES[planned.kind] for planned in decision.actions)
    header = (group_texts.LOG_ACTED if acting else group_texts.LOG_WATCHED).format(actions=actions)
    return group_texts.LOG_BODY.format(
        header=header,
        chat_id=message.chat_id,
        user_id=f"{message.author} ({message.user_id})" if message.author else message.user_id,
        text=clip(text, LOG_TEXT_LIMIT),
        toxicity=_scores(judgement.toxicity.probabilities) if judgement and judgement.toxicity else "-",
        sentiment=_scores(judgement.sentiment.probabilities) if judgement else "-",
        rule=decision.rule,
    )


def _scores(probabilities: dict[str, float]) -> str:
    return ", ".join(f"{name} {100 * p:.0f}%" for name, p in probabilities.items())
