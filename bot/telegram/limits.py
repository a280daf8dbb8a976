"""Telegram's size limits, enforced where every request goes out (`RetryingRateLimiter.process_request`).

Telegram counts a message's length in UTF-16 code units (an emoji outside the BMP counts twice), so the text is
measured that way; what is cut ends with "…" (`bot.textclip.clip`).
"""

from __future__ import annotations

from typing import Any

from bot.textclip import ELLIPSIS, clip, utf16_length

__all__ = [
    "CALLBACK_ANSWER_LIMIT",
    "CAPTION_LIMIT",
    "ELLIPSIS",
    "MESSAGE_TEXT_LIMIT",
    "clip",
    "clip_request",
    "utf16_length",
]

MESSAGE_TEXT_LIMIT = 4096  # sendMessage / editMessageText text
CAPTION_LIMIT = 1024
CALLBACK_ANSWER_LIMIT = 200  # answerCallbackQuery text (the toast)

_TEXT_LIMITS = {
    "sendMessage": ("text", MESSAGE_TEXT_LIMIT),
    "editMessageText": ("text", MESSAGE_TEXT_LIMIT),
    "answerCallbackQuery": ("text", CALLBACK_ANSWER_LIMIT),
    "editMessageCaption": ("caption", CAPTION_LIMIT),
}


def clip_request(endpoint: str, data: dict[str, Any]) -> None:
    """Clip the text of an outgoing Bot API request to Telegram's limit for `endpoint`, in place."""
    field_and_limit = _TEXT_LIMITS.get(endpoint)
    if field_and_limit is None:
        return
    field, limit = field_and_limit
    value = data.get(field)
    if isinstance(value, str):
        data[field] = clip(value, limit)
