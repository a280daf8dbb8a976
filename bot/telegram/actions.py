"""Executing the moderation actions decided in groups (bot.moderation.group_watching): each from its row, once.

An action row is executed and then marked done. A process killed in between executes it again after the
restart; every action is harmless to repeat on Telegram's side: a second deleteMessage answers "message to
delete not found" (taken as done), restrict and ban set a state the user is already in. So the user sees each
action once, and a strike, counted in the decision's row, is never counted twice. Telegram refusing an action
(no rights, a message over 48 hours old, an admin) marks it failed and says so in the group's log chat, never
crashing anything; passing trouble (network, 5xx, 429 after the rate limiter's retries) leaves it pending for
the next flush.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from telegram import ChatPermissions
from telegram.error import BadRequest, Forbidden, TelegramError

from bot import storage
from bot.moderation import group_texts
from bot.storage import ActionKind, ActionStatus, ModerationAction

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
    from telegram import Bot

    from bot.storage.process_claims import ProcessLock

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 20  # passing failures tolerated before an action is given up
ALREADY_GONE = "message to delete not found"
RIGHTS_NEEDED = {
    ActionKind.DELETE: "can_delete_messages",
    ActionKind.MUTE: "can_restrict_members",
    ActionKind.BAN: "can_restrict_members",
    ActionKind.UNMUTE: "can_restrict_members",
    ActionKind.UNBAN: "can_restrict_members",
}


@dataclass
class ActionWorker:
    bot: Bot
    session_factory: async_sessionmaker[AsyncSession]
    process_lock: ProcessLock | None = None  # set by the runner: actions are claimed before they are executed
    _locks: dict[int, asyncio.Lock] = field(default_factory=dict)
    _told_missing: set[tuple[int, str]] = field(default_factory=set)  # (chat, right) said in the log chat

    async def execute(self, action_id: int) -> ActionStatus | None:
        """Execute a pending action (another caller executing it meanwhile waits, then finds it done)."""
        lock = self._locks.setdefault(action_id, asyncio.Lock())
        try:
            async with lock:
                return await self._execute(action_id)
        finally:
            if not lock.locked() and self._locks.get(action_id) is lock:
                del self._locks[action_id]

    @property
    def _process_key(self) -> int | None:
        return self.process_lock.key if self.process_lock is not None else None

    async def flush(self, *, limit: int = 100) -> int:
        """Execute what is pending (left by a crash, or by passing trouble); returns how many were done."""
        async with self.session_factory.begin() as session:
            due = await storage.pending_actions(session, process_key=self._process_key, limit=limit)
        done = 0
        for action in due:
            if await self.execute(action.id) is ActionStatus.DONE:
                done += 1
        return done

    async def _execute(self, action_id: int) -> ActionStatus | None:
        async with self.session_factory.begin() as session:
            action = await storage.get_action(session, action_id=action_id)
        if action is None or action.status is not ActionStatus.PENDING:
            return action.status if action is not None else None
        key = self._process_key
        if key is not None and action.claimed_by != key:
            async with self.session_factory.begin() as session:
                if not await storage.claim_action(session, action_id=action.id, process_key=key):
                    return ActionStatus.PENDING  # a live process sharing the database executes it
        try:
            await self._call(action)
        except BadRequest as error:
            if action.kind is ActionKind.DELETE and ALREADY_GONE in str(error).lower():
                return await self._finish(action, ActionStatus.DONE)  # deleted before (by us or its author)
            return await self._refused(action, error)
        except Forbidden as error:  # the bot was removed from the group
            return await self._refused(action, error)
        except TelegramError as error:
            logger.warning(
                "action %s (%s in chat %s) not done yet: %s", action.id, action.kind, action.chat_id, error
            )
            if action.attempts + 1 >= MAX_ATTEMPTS:
                return await self._refused(action, error)
            async with self.session_factory.begin() as session:
                row = await storage.get_action(session, action_id=action.id)
                if row is not None:
                    row.attempts += 1
            return ActionStatus.PENDING
        return await self._finish(action, ActionStatus.DONE)

    async def _call(self, action: ModerationAction) -> None:
        chat_id, user_id = action.chat_id, action.user_id
        if action.kind is ActionKind.DELETE:
            await self.bot.delete_message(chat_id=chat_id, message_id=int(action.message_id or 0))
        elif action.kind is ActionKind.MUTE:
            await self.bot.restrict_chat_member(
                chat_id=chat_id,
                user_id=int(user_id or 0),
                permissions=ChatPermissions.no_permissions(),
                until_date=action.until,
            )
        elif action.kind is ActionKind.UNMUTE:
            await self.bot.restrict_chat_member(
                chat_id=chat_id, user_id=int(user_id or 0), permissions=ChatPermissions.all_permissions()
            )
        elif action.kind is ActionKind.BAN:
            await self.bot.ban_chat_member(chat_id=chat_id, user_id=int(user_id or 0))
        elif action.kind is ActionKind.UNBAN:
            await self.bot.unban_chat_member(chat_id=chat_id, user_id=int(user_id or 0), only_if_banned=True)

    async def _finish(
        self, action: ModerationAction, status: ActionStatus, error: str | None = None
    ) -> ActionStatus:
        async with self.session_factory.begin() as session:
            await storage.finish_action(session, action_id=action.id, status=status, error=error)
        if status is ActionStatus.DONE:
            logger.info("action %s done: %s in chat %s", action.id, action.kind, action.chat_id)
        return status

    async def _refused(self, action: ModerationAction, error: TelegramError) -> ActionStatus:
        reason = str(error)
        logger.warning(
            "action %s (%s in chat %s) refused: %s", action.id, action.kind, action.chat_id, reason
        )
        await self._finish(action, ActionStatus.FAILED, reason)
        await self._tell_log_chat(action, reason)
        return ActionStatus.FAILED

    async def _tell_log_chat(self, action: ModerationAction, reason: str) -> None:
        """Say in the group's log chat that an action failed: a missing right once per chat, anything else per
        action. The message goes through the outbox (sent by its next flush)."""
        async with self.session_factory.begin() as session:
            policy = await storage.get_chat_policy(session, chat_id=action.chat_id)
        if policy.log_chat_id is None:
            return
        action_name = group_texts.ACTION_NAMES[action.kind]
        right = RIGHTS_NEEDED[action.kind]
        if await self._lacks(action.chat_id, right):
            if (action.chat_id, right) in self._told_missing:
                return
            self._told_missing.add((action.chat_id, right))
            text = group_texts.LOG_MISSING_RIGHT.format(
                chat_id=action.chat_id, right=group_texts.RIGHT_NAMES[right], action=action_name
            )
        else:
            text = group_texts.LOG_ACTION_FAILED.format(
                chat_id=action.chat_id, action=action_name, reason=reason, decision_id=action.decision_id
            )
        async with self.session_factory.begin() as session:
            await storage.enqueue_message(session, bot_id=self.bot.id, chat_id=policy.log_chat_id, text=text)

    async def _lacks(self, chat_id: int, right: str) -> bool:
        """Whether the bot lacks `right` in the chat (Telegram answers a missing right and a message over 48 hours
        old with the same "message can't be deleted")."""
        try:
            member = await self.bot.get_chat_member(chat_id=chat_id, user_id=self.bot.id)
        except TelegramError:
            return False
        return not getattr(member, right, False)
