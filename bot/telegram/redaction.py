"""Keep the bot token out of every log record and every error printed (PTB and httpx put it in URLs and in some
error texts, e.g. `InvalidToken: The token `…` was rejected by the server.`)."""

from __future__ import annotations

import logging
import sys
import threading
from types import TracebackType
from urllib.parse import quote

REDACTED = "[REDACTED]"

_secrets: set[str] = set()


def register_secret(secret: str) -> None:
    """Redact `secret` (and its URL-encoded form) in every text passed to `redact` from now on."""
    secret = secret.strip()
    if len(secret) < 4:  # redacting a tiny string would garble everything
        return
    _secrets.add(secret)
    _secrets.add(quote(secret, safe=""))


def redact(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class TokenRedactingFilter(logging.Filter):
    """Replaces the token in a record's message, arguments, exception and stack text."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        register_secret(token)

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_token_redaction(token: str, *, logger: logging.Logger | None = None) -> TokenRedactingFilter:
    """Attach the filter to every handler of `logger` (the root logger by default).

    Handler filters see records from every logger that propagates to them; logger filters would not.
    Installing twice for the same token is a no-op. Uncaught exceptions (main thread and other threads) are
    redacted too.
    """
    target = logger or logging.getLogger()
    redactor = TokenRedactingFilter(token)
    for handler in target.handlers:
        if not any(isinstance(f, TokenRedactingFilter) and f.token == token for f in handler.filters):
            handler.addFilter(redactor)
    install_redacting_excepthooks()
    return redactor


def _print_redacted(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None, *, header: str = ""
) -> None:
    import traceback

    text = "".join(traceback.format_exception(exc_type, exc, tb))
    sys.stderr.write(header + redact(text))
    sys.stderr.flush()


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    _print_redacted(exc_type, exc, tb)


def _threading_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    _print_redacted(
        args.exc_type,
        args.exc_value if args.exc_value is not None else args.exc_type(),
        args.exc_traceback,
        header=f"Exception in thread {name}:\n",
    )


def install_redacting_excepthooks() -> None:
    """Uncaught exceptions print their traceback with every registered secret redacted."""
    sys.excepthook = _excepthook
    threading.excepthook = _threading_excepthook
