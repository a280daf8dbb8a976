"""Thin adapters: Telegram update -> `Moderation` use case -> Telegram reply."""

from __future__ import annotations

import logging
import re
import time

from sqlalchemy.exc import SQLAlchemyError
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.constants import ChatType
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.moderation import Actor, IncomingText, Moderation, Reply, parse_id, texts
from bot.storage import RunTrigger, StorageError
from bot.telegram import groups
from bot.telegram.delivery import current_outbox
from bot.telegram.limits import CALLBACK_ANSWER_LIMIT, MESSAGE_TEXT_LIMIT, clip

logger = logging.getLogger(__name__)

NEW_MESSAGES = filters.UpdateType.MESSAGE  # edited group messages are judged again (bot.telegram.groups)
PROGRESS_EDIT_INTERVAL_S = 3.0  # Telegram throttles frequent edits of one message


def register(application: Application) -> None:
    commands = {
        ("start", "help"): help_command,
        ("predict",): predict_command,
        ("feedback",): feedback_command,
        ("review",): review_command,
        ("stats",): stats_command,
        ("model",): model_command,
        ("retrain",): retrain_command,
        ("runs",): runs_command,
        ("rollback",): rollback_command,
        ("void",): void_command,
        ("settings",): settings_command,
        ("report",): report_command,
        ("web",): web_command,
    }
    for names, callback in commands.items():
        application.add_handler(CommandHandler(list(names), callback, filters=NEW_MESSAGES))
    application.add_handler(CallbackQueryHandler(button_pressed))
    application.add_handler(ChatMemberHandler(groups.my_chat_member, ChatMemberHandler.MY_CHAT_MEMBER))
    application.add_handler(
        MessageHandler(NEW_MESSAGES & (filters.TEXT | filters.CAPTION) & ~filters.COMMAND, text_message)
    )
    application.add_handler(
        MessageHandler(
            NEW_MESSAGES & filters.ChatType.PRIVATE & ~filters.StatusUpdate.ALL, other_private_message
        )
    )
    application.add_handler(
        MessageHandler(
            filters.UpdateType.EDITED_MESSAGE & filters.ChatType.GROUPS & (filters.TEXT | filters.CAPTION),
            groups.edited_message,
        )
    )
    application.add_error_handler(on_error)


def _moderation(context: ContextTypes.DEFAULT_TYPE) -> Moderation:
    return context.application.bot_data["moderation"]


def _actor(update: Update, moderation: Moderation) -> Actor:
    user = update.effective_user
    user_id = user.id if user else None
    return Actor(user_id=user_id, is_admin=moderation.settings.is_admin(user_id))


def _keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(b.text, callback_data=b.data) for b in reply.buttons]])


async def _answer(message: Message, moderation: Moderation, reply: Reply) -> Message | None:
    """Reply to `message`; every answer goes out here.

    Under the runner the reply goes through the outbox (bot.telegram.delivery): stored, sent, then marked sent
    together with the verdict's reply message id. A reply that cannot be sent now stays in the outbox and is
    sent later (None is returned); a reply already sent when an update is processed again is not sent twice.
    """
    if reply.silent:
        return None
    outbox = current_outbox()
    if outbox is None:  # outside the runner (no inbox, no outbox): send directly
        sent = await message.reply_text(clip(reply.text, MESSAGE_TEXT_LIMIT), reply_markup=_keyboard(reply))
        if reply.verdict_id is not None:
            await moderation.remember_reply(verdict_id=reply.verdict_id, reply_message_id=sent.message_id)
        return sent
    return await outbox.send(
        chat_id=message.chat.id,
        text=reply.text,
        reply_to_message_id=message.message_id,
        reply_markup=_keyboard(reply),
        verdict_id=reply.verdict_id,
        text_after_send=reply.text_after_send,
    )


def _command_argument(message: Message) -> str:
    """Everything after `/command` (kept verbatim, unlike context.args)."""
    parts = (message.text or message.caption or "").split(maxsplit=1)
    return parts[1] if len(parts) == 2 else ""


def _replies_to_bot(message: Message, bot: Bot) -> bool:
    replied = message.reply_to_message
    return replied is not None and replied.from_user is not None and replied.from_user.id == bot.id


def _addressed_text(message: Message, bot: Bot) -> str | None:
    """The text meant for the bot, or None when a group message is not addressed to it."""
    text = message.text or message.caption or ""
    if message.chat.type == ChatType.PRIVATE or _replies_to_bot(message, bot):
        return text
    if bot.username:
        mention = re.compile(rf"@{re.escape(bot.username)}\b", re.IGNORECASE)
        if mention.search(text):
            return mention.sub("", text).strip()
    return None


async def text_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.message
    if message is None:
        return
    text = _addressed_text(message, context.bot)
    moderation = _moderation(context)
    if groups.is_group(message):  # every message is watched; only what is addressed to the bot is answered
        reply = await groups.watch_message(
            message,
            context,
            text=text if text is not None else message.text or message.caption or "",
            addressed=text is not None,
            replies_to_bot=_replies_to_bot(message, context.bot),
        )
        if reply is not None:
            await _answer(message, moderation, reply)
        return
    if text is None:
        return
    user_id = message.from_user.id if message.from_user else None
    reply = await moderation.classify(
        IncomingText(
            chat_id=message.chat.id,
            message_id=message.message_id,
            user_id=user_id,
            text=text,
            private=message.chat.type == ChatType.PRIVATE,
            replies_to_bot=_replies_to_bot(message, context.bot),
        )
    )
    await _answer(message, moderation, reply)


async def other_private_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.message
    if message is None:
        return
    unknown_command = bool(message.text and message.text.startswith("/"))
    await _answer(
        message,
        _moderation(context),
        Reply(texts.CHAT_UNKNOWN_COMMAND if unknown_command else texts.NON_TEXT),
    )


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.message:
        await _answer(update.message, _moderation(context), Reply(texts.HELP))


async def predict_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.message
    if message is None:
        return
    moderation = _moderation(context)
    argument = _command_argument(message)
    replied = message.reply_to_message
    if argument:
        target, text = message, argument
    elif replied is not None and replied.from_user is not None and replied.from_user.id == context.bot.id:
        # The bot's own words are not a review: a verdict on them would poison the review queue and training.
        await _answer(message, moderation, Reply(texts.PREDICT_BOT_MESSAGE))
        return
    elif replied is not None and (replied.text or replied.caption):
        target, text = replied, replied.text or replied.caption or ""
    else:
        await _answer(message, moderation, Reply(texts.PREDICT_USAGE))
        return
    user_id = target.from_user.id if target.from_user else None
    reply = await moderation.classify(
        IncomingText(chat_id=message.chat.id, message_id=target.message_id, user_id=user_id, text=text),
        show_probabilities=True,
    )
    await _answer(message, moderation, reply)


async def feedback_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.message
    if message is None:
        return
    moderation = _moderation(context)
    replied = message.reply_to_message
    reply = await moderation.feedback(
        actor=_actor(update, moderation),
        chat_id=message.chat.id,
        target_message_id=replied.message_id if replied else None,
        argument=_command_argument(message),
        verdict_id_hint=_verdict_id_in_buttons(replied),
    )
    await _answer(message, moderation, reply)


def _verdict_id_in_buttons(message: Message | None) -> int | None:
    """The verdict id in a bot reply's 맞아요/틀렸어요 buttons.

    A reply to the bot's verdict can arrive before the verdict row knows that reply's message id (the id is
    stored once sendMessage returns), so the buttons are the reliable link.
    """
    markup = message.reply_markup if message is not None else None
    for row in markup.inline_keyboard if markup is not None else ():
        for button in row:
            action, _, rest = str(button.callback_data or "").partition(":")
            verdict_id = parse_id(rest.split(":")[0])
            if action in {"ok", "wrong"} and verdict_id is not None:
                return verdict_id
    return None


async def button_pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    if query is None:
        return
    moderation = _moderation(context)
    if query.message is None or not query.data:
        await query.answer(texts.FEEDBACK_NO_VERDICT)
        return
    if query.data.startswith("gm:"):  # a log chat's 잘못 판정 / 맞아요 / 추방
        await query.answer((await groups.log_button(update, context, query.data[3:]))[:CALLBACK_ANSWER_LIMIT])
        return
    reply = await moderation.button(
        actor=_actor(update, moderation),
        chat_id=query.message.chat.id,
        data=query.data,
        private=query.message.chat.type == ChatType.PRIVATE,
    )
    await query.answer((reply.toast or reply.text)[:CALLBACK_ANSWER_LIMIT])
    # More to say than the toast: a choice of labels, the next review item, or that the queue is empty.
    if reply.buttons or (reply.toast is not None and reply.toast != reply.text):
        outbox = current_outbox()
        if outbox is None:
            await context.bot.send_message(query.message.chat.id, reply.text, reply_markup=_keyboard(reply))
        else:
            await outbox.send(chat_id=query.message.chat.id, text=reply.text, reply_markup=_keyboard(reply))


async def review_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.message
    if message is not None:
        moderation = _moderation(context)
        reply = await moderation.review(
            actor=_actor(update, moderation), private=message.chat.type == ChatType.PRIVATE
        )
        await _answer(message, moderation, reply)


async def stats_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.message:
        moderation = _moderation(context)
        await _answer(update.message, moderation, await moderation.stats())


async def model_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.message:
        moderation = _moderation(context)
        await _answer(update.message, moderation, await moderation.model_info())


async def runs_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.message:
        moderation = _moderation(context)
        await _answer(update.message, moderation, await moderation.runs(actor=_actor(update, moderation)))


async def rollback_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.message:
        moderation = _moderation(context)
        reply = await moderation.rollback(
            actor=_actor(update, moderation), argument=_command_argument(update.message)
        )
        await _answer(update.message, moderation, reply)


async def settings_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.message:
        await _answer(update.message, _moderation(context), await groups.settings_command(update, context))


async def report_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.message:
        reply = await groups.report_command(update, context)
        if reply is not None:
            await _answer(update.message, _moderation(context), reply)


async def web_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.message
    if message is not None:
        moderation = _moderation(context)
        reply = await moderation.web_login_link(
            actor=_actor(update, moderation),
            private=message.chat.type == ChatType.PRIVATE,
            admins=groups.chat_admins(context),  # a group's Telegram admins get a link to their groups' pages
        )
        await _answer(message, moderation, reply)


async def void_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.message
    if message:
        moderation = _moderation(context)
        reply = await moderation.void(actor=_actor(update, moderation), argument=_command_argument(message))
        await _answer(message, moderation, reply)


async def retrain_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.message
    if message is None:
        return
    moderation = _moderation(context)
    reporter = TelegramRunReporter(context.bot, chat_id=message.chat.id)
    reply = await moderation.retrain(
        actor=_actor(update, moderation),
        trigger=RunTrigger.ADMIN,
        reporter=reporter,
        argument=_command_argument(message),
    )
    sent = await _answer(message, moderation, reply)
    if reply.run_id is not None and sent is not None:
        reporter.attach(sent.message_id)


class TelegramRunReporter:
    """Reports a training run in a chat: progress edits one message, the result is a new message.

    Telegram trouble is logged and swallowed: a run must not fail because a message could not be edited.
    """

    def __init__(self, bot: Bot, *, chat_id: int) -> None:
        self._bot = bot
        self._outbox = current_outbox()  # the result is kept in the outbox until it is sent
        self._chat_id = chat_id
        self._message_id: int | None = None
        self._last_edit = 0.0

    def attach(self, message_id: int) -> None:
        if self._message_id is None:
            self._message_id = message_id

    async def progress(self, run_id: int, text: str) -> None:
        now = time.monotonic()
        if now - self._last_edit < PROGRESS_EDIT_INTERVAL_S:
            return
        self._last_edit = now
        body = texts.RETRAIN_PROGRESS.format(run_id=run_id, text=text)
        try:
            if self._message_id is None:
                self._message_id = (await self._bot.send_message(self._chat_id, body)).message_id
            else:
                await self._bot.edit_message_text(body, chat_id=self._chat_id, message_id=self._message_id)
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():
                logger.warning("could not show progress of run %s: %s", run_id, exc)
        except TelegramError as exc:
            logger.warning("could not show progress of run %s: %s", run_id, exc)

    async def finished(self, run_id: int, text: str) -> None:
        body = texts.RETRAIN_PROGRESS.format(run_id=run_id, text=text)
        try:
            if self._outbox is not None:  # not tied to the /retrain update: it is sent whenever it can be
                await self._outbox.send(
                    chat_id=self._chat_id, text=body, reply_to_message_id=self._message_id, scoped=False
                )
            else:
                await self._bot.send_message(self._chat_id, body, reply_to_message_id=self._message_id)
        except (TelegramError, StorageError, SQLAlchemyError, OSError) as exc:
            logger.warning("could not report the end of run %s: %s", run_id, type(exc).__name__)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log (the token is redacted by the logging filter) and keep running; apologise where possible, and never
    leave a button's callback unanswered (the user's client would show a spinner)."""
    update_id = update.update_id if isinstance(update, Update) else None
    logger.error("update %s failed: %s", update_id, type(context.error).__name__, exc_info=context.error)
    if not isinstance(update, Update):
        return
    if update.callback_query is not None:
        try:
            await update.callback_query.answer(texts.INTERNAL_ERROR[:CALLBACK_ANSWER_LIMIT])
        except TelegramError:
            pass  # already answered, or Telegram is unreachable; the error is already logged
    elif update.effective_chat and update.effective_chat.type == ChatType.PRIVATE:
        try:
            await context.bot.send_message(update.effective_chat.id, texts.INTERNAL_ERROR)
        except TelegramError:
            pass  # the apology itself failed to send; the error is already logged
