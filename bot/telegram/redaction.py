"""Keep the bot token out of every log record (PTB and httpx put it in URLs and some error texts)."""

from __future__ import annotations

import logging

REDACTED = "[REDACTED]"


class TokenRedactingFilter(logging.Filter):
    """Replaces the token in a record's message, arguments, exception and stack text."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.token:
            return True
        message = record.getMessage()
        if self.token in message:
            record.msg = message.replace(self.token, REDACTED)
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and self.token in record.exc_text:
            record.exc_text = record.exc_text.replace(self.token, REDACTED)
        if record.stack_info and self.token in record.stack_info:
            record.stack_info = record.stack_info.replace(self.token, REDACTED)
        return True


def install_token_redaction(token: str, *, logger: logging.Logger | None = None) -> TokenRedactingFilter:
    """Attach the filter to every handler of `logger` (the root logger by default).

    Handler filters see records from every logger that propagates to them; logger filters would not.
    Installing twice for the same token is a no-op.
    """
    target = logger or logging.getLogger()
    redactor = TokenRedactingFilter(token)
    for handler in target.handlers:
        if not any(isinstance(f, TokenRedactingFilter) and f.token == token for f in handler.filters):
            handler.addFilter(redactor)
    return redactor
