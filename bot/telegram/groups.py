"""Thin adapters for groups: every message to `Moderation.watch`, `/settings`, the log chat's buttons, and who
administers a chat (getChatMember, cached briefly).

Which messages are judged (a deliberate rule for each kind):
- text and captions of members, forwarded ones included (the member chose to post them): judged;
- an edited message: judged again (a message decided once is not decided twice);
- messages of other bots, channel posts and automatic forwards from a linked channel: not judged;
- anonymous admins (sent as the group itself) and the group's admins: judged, never acted on;
- service messages (joins, pins, ...): not judged (they carry no text of a member).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace

from telegram import Bot, Message, Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.moderation import BotRights, GroupMessage, GroupOutcome, Moderation, Reply, Report, group_texts
from bot.telegram.delivery import current_outbox

logger = logging.getLogger(__name__)

ADMIN_CACHE_SECONDS = 60.0  # Telegram's admin list changes rarely; a removed admin keeps rights this long
ADMIN_STATUSES = (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)
GROUP_TYPES = (ChatType.GROUP, ChatType.SUPERGROUP)


@dataclass
class TelegramChatAdmins:
    """Who administers a chat, from getChatMember, remembered for ADMIN_CACHE_SECONDS. A failed lookup counts as
    "not an admin" and is not remembered."""

    bot: Bot
    ttl_s: float = ADMIN_CACHE_SECONDS
    _cache: dict[tuple[int, int], tuple[float, bool]] = field(default_factory=dict)

    async def is_admin(self, chat_id: int, user_id: int) -> bool:
        key = (chat_id, user_id)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        if chat_id == user_id:  # a private chat with the bot: its one user administers it
            return True
        try:
            member = await self.bot.get_chat_member(chat_id=chat_id, user_id=user_id)
        except TelegramError as error:
            logger.warning("could not check the admins of chat %s: %s", chat_id, error)
            return False
        answer = member.status in ADMIN_STATUSES
        self._cache[key] = (now + self.ttl_s, answer)
        return answer

    async def bot_rights(self, chat_id: int) -> BotRights:
        try:
            member = await self.bot.get_chat_member(chat_id=chat_id, user_id=self.bot.id)
        except TelegramError as error:
            logger.warning("could not read the bot's rights in chat %s: %s", chat_id, error)
            return BotRights(False, False, bool(self.bot.can_read_all_group_messages))
        is_admin = member.status in ADMIN_STATUSES
        return BotRights(
            can_delete_messages=bool(getattr(member, "can_delete_messages", False)),
            can_restrict_members=bool(getattr(member, "can_restrict_members", False)),
            reads_all_messages=is_admin or bool(self.bot.can_read_all_group_messages),
        )


def _moderation(context: ContextTypes.DEFAULT_TYPE) -> Moderation:
    return context.application.bot_data["moderation"]


def chat_admins(context: ContextTypes.DEFAULT_TYPE) -> TelegramChatAdmins:
    return context.application.bot_data["chat_admins"]


def is_group(message: Message) -> bool:
    return message.chat.type in GROUP_TYPES


def judged(message: Message) -> bool:
    """Whether a group message is judged at all (see the module's rules)."""
    author = message.from_user
    if message.is_automatic_forward or (author is not None and author.is_bot):
        return False
    sender_chat = message.sender_chat
    return not (sender_chat is not None and sender_chat.id != message.chat.id)  # a channel posting here


async def _group_message(
    message: Message,
    context: ContextTypes.DEFAULT_TYPE,
    *,
    text: str,
    addressed: bool = False,
    replies_to_bot: bool = False,
) -> GroupMessage:
    """A group message as the use cases take it (who wrote it, and whether they administer the group)."""
    moderation = _moderation(context)
    author = message.from_user
    anonymous_admin = message.sender_chat is not None and message.sender_chat.id == message.chat.id
    author_is_admin = anonymous_admin or (
        author is not None
        and (
            moderation.settings.is_admin(author.id)
            or await chat_admins(context).is_admin(message.chat.id, author.id)
        )
    )
    return GroupMessage(
        chat_id=message.chat.id,
        message_id=message.message_id,
        user_id=author.id if author is not None and not anonymous_admin else None,
        text=text,
        bot_id=context.bot.id,
        author=author.full_name if author is not None else "",
        addressed=addressed,
        replies_to_bot=replies_to_bot,
        author_is_admin=author_is_admin,
    )


async def watch_message(
    message: Message, context: ContextTypes.DEFAULT_TYPE, *, text: str, addressed: bool, replies_to_bot: bool
) -> Reply | None:
    """Judge a group message; carry out what was decided; returns what to answer in the group."""
    if not judged(message):
        return None
    moderation = _moderation(context)
    ticket = moderation.arrive(message.chat.id)  # before anything waits: the chat's arrival order
    try:
        group_message = await _group_message(
            message, context, text=text, addressed=addressed, replies_to_bot=replies_to_bot
        )
        outcome = await moderation.watch(replace(group_message, ticket=ticket))
    finally:
        moderation.leave(message.chat.id, ticket)
    await carry_out(outcome, context)
    return outcome.reply


async def carry_out(outcome: GroupOutcome, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Execute the outcome's actions now (what fails for a passing reason stays pending for the runner's flush).

    Its messages (a log entry, a warning) are stored already and go out with the outbox's next flush: Telegram
    takes 20 messages a minute in a group, and a flood must not keep the next updates waiting for them."""
    worker = context.application.bot_data.get("actions")
    if worker is not None:
        for action_id in outcome.action_ids:
            await worker.execute(action_id)


async def edited_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.edited_message
    if message is None or not is_group(message):
        return
    text = message.text or message.caption
    if text:
        await watch_message(message, context, text=text, addressed=False, replies_to_bot=False)


async def settings_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Reply:
    message = update.message
    assert message is not None
    if not is_group(message):
        return Reply(group_texts.SETTINGS_GROUP_ONLY)
    parts = (message.text or "").split(maxsplit=1)
    admins = chat_admins(context)
    return await _moderation(context).group_settings(
        chat_id=message.chat.id,
        user_id=message.from_user.id if message.from_user else None,
        argument=parts[1] if len(parts) == 2 else "",
        admins=admins,
        rights=await admins.bot_rights(message.chat.id),
    )


async def report_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Reply | None:
    """`/report` as a reply to a group member's message."""
    message = update.message
    assert message is not None
    if not is_group(message):
        return Reply(group_texts.REPORT_USAGE)
    target = message.reply_to_message
    reporter = message.from_user
    if target is None or reporter is None or not (target.text or target.caption):
        return Reply(group_texts.REPORT_USAGE)
    outcome = await _moderation(context).report(
        Report(
            reporter_id=reporter.id,
            target=await _group_message(target, context, text=target.text or target.caption or ""),
        )
    )
    await carry_out(outcome, context)
    return outcome.reply


async def my_chat_member(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The bot was added to a group (it starts in `watch`: say so once) or removed from one (logged)."""
    change = update.my_chat_member
    if change is None or change.chat.type not in GROUP_TYPES:
        return
    joined = change.new_chat_member.status in (ChatMemberStatus.MEMBER, *ADMIN_STATUSES)
    was_in = change.old_chat_member.status in (
        ChatMemberStatus.MEMBER,
        ChatMemberStatus.RESTRICTED,
        *ADMIN_STATUSES,
    )
    logger.info(
        "chat %s: the bot's membership %s -> %s",
        change.chat.id,
        change.old_chat_member.status,
        change.new_chat_member.status,
    )
    outbox = current_outbox()
    if joined and not was_in and outbox is not None:
        await outbox.send(chat_id=change.chat.id, text=group_texts.JOINED)


async def log_button(update: Update, context: ContextTypes.DEFAULT_TYPE, rest: str) -> str:
    """A log entry's button; returns the toast."""
    query = update.callback_query
    assert query is not None
    outcome = await _moderation(context).log_button(
        user_id=query.from_user.id if query.from_user else None, rest=rest, admins=chat_admins(context)
    )
    await carry_out(outcome, context)
    return outcome.reply.text if outcome.reply is not None else group_texts.LOG_UNKNOWN
