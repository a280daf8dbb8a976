"""What the use cases take and give: plain data, Korean replies with buttons, and parsing of user input."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ParamSpec

from sqlalchemy.exc import SQLAlchemyError

from bot.moderation import texts
from bot.serving import NoActiveModelError
from bot.storage import InvalidDataError, RateLimitedError, StorageError
from bot.textclip import clip

logger = logging.getLogger("bot.moderation")

# Telegram user, chat and message ids fit in 64 bits; anything longer is not an id (and would overflow BIGINT).
_ID_PATTERN = re.compile(r"-?[0-9]{1,18}")
ECHO_LIMIT = 64  # characters of a user's own input quoted back in a reply


@dataclass(frozen=True)
class Button:
    text: str
    data: str  # callback data, at most 64 bytes


@dataclass(frozen=True)
class Reply:
    text: str
    buttons: tuple[Button, ...] = ()
    verdict_id: int | None = None  # the verdict this reply announces; its message id is stored after sending
    run_id: int | None = None  # the training run this reply announces
    toast: str | None = None  # for a button press: the short notice shown (default: the text)
    silent: bool = False  # nothing to say in this chat (a group message that is no review): send nothing
    text_after_send: str | None = None  # what the outbox keeps once sent, when `text` holds a secret


def inline_keyboard(buttons: tuple[Button, ...]) -> dict:
    """Buttons as one row of Telegram's inline keyboard, the form a message stored in the outbox keeps them in
    (a message queued in the same transaction as what it announces)."""
    return {"inline_keyboard": [[{"text": b.text, "callback_data": b.data} for b in buttons]]}


class NotAllowedError(Exception):
    """The caller may not do this; the message is the Korean refusal."""


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    is_admin: bool


@dataclass(frozen=True)
class IncomingText:
    chat_id: int
    message_id: int
    user_id: int | None
    text: str
    private: bool = True  # a private chat with the bot (in groups, what is no review gets no answer)
    replies_to_bot: bool = False  # a reply to one of the bot's own messages


P = ParamSpec("P")


def friendly_errors(method: Callable[P, Awaitable[Reply]]) -> Callable[P, Awaitable[Reply]]:
    """Storage trouble or a missing model becomes a Korean apology instead of an exception."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Reply:
        try:
            return await method(*args, **kwargs)
        except NotAllowedError as exc:
            return Reply(str(exc))
        except InvalidDataError as exc:
            return Reply(texts.INVALID_DATA.format(detail=exc))
        except RateLimitedError as exc:
            return Reply(texts.FEEDBACK_RATE_LIMITED.format(limit=exc.limit))
        except NoActiveModelError:
            return Reply(texts.NO_MODEL)
        except (StorageError, SQLAlchemyError, OSError):
            logger.exception("storage failed in %s", method.__name__)
            return Reply(texts.STORAGE_ERROR)

    return wrapper


def parse_id(value: str) -> int | None:
    """An integer id written in ASCII digits, or None. `str.isdigit` accepts '²' and other digits `int` rejects."""
    value = value.strip()
    return int(value) if _ID_PATTERN.fullmatch(value) else None


def echo(value: str) -> str:
    """A user's input as quoted back in a reply: cut, so that no reply outgrows Telegram's limits."""
    return clip(" ".join(value.split()), ECHO_LIMIT)


def parse_label(argument: str, labels: dict[int, str]) -> int | None:
    wanted = argument.strip().casefold()
    for label_id, name in labels.items():
        if name.casefold() == wanted:
            return label_id
    number = parse_id(wanted)
    return number if number in labels else None
