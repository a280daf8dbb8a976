"""Telegram trouble, told apart: refusals that need the operator (a bad token, another poller) from trouble that
passes by itself (network, 5xx, 429), with the growing pause and the one-line description the runner logs."""

from __future__ import annotations

import time
import warnings
from datetime import timedelta

from telegram.error import Conflict, Forbidden, InvalidToken, RetryAfter
from telegram.warnings import PTBDeprecationWarning

FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0


class FatalError(Exception):
    """The bot cannot go on serving; the message is one line for the operator, without secrets."""


class Backoff:
    def __init__(self) -> None:
        self.failures = 0

    def next_delay(self) -> float:
        self.failures += 1
        return min(FIRST_BACKOFF_SECONDS * 2 ** (self.failures - 1), MAX_BACKOFF_SECONDS)

    def reset(self) -> None:
        self.failures = 0


class RefusalWindow:
    """How long Telegram has kept refusing us (bad token, another poller) without a success in between."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.since: float | None = None

    def failed(self) -> float:
        now = time.monotonic()
        if self.since is None:
            self.since = now
        return now - self.since

    def reset(self) -> None:
        self.since = None


def refusal(error: BaseException) -> str | None:
    """Why Telegram refuses to serve this bot at all, or None for trouble that passes by itself."""
    if isinstance(error, InvalidToken):
        return "Telegram rejected the bot token (401/404); check TELEGRAM_BOT_TOKEN"
    if isinstance(error, Forbidden):
        return "Telegram forbids this bot to fetch updates (403)"
    if isinstance(error, Conflict):
        return (
            "another process is fetching updates with this token, or a webhook is set (409 Conflict); "
            "run one bot per token"
        )
    return None


def retry_after(error: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns that the type changes to timedelta in a future version
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    return float(value.total_seconds() if isinstance(value, timedelta) else value)


def describe(error: BaseException) -> str:
    """One line about a Telegram/network error; never the exception's text for refusals (it can hold the
    token, e.g. PTB's 'The token `…` was rejected by the server')."""
    why = refusal(error)
    if why is not None:
        return why
    if isinstance(error, RetryAfter):
        return f"flood control (429, retry after {retry_after(error):.0f} s)"
    text = " ".join(str(error).split())[:200]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
