"""Telegram's size limits, enforced where every request goes out (`RetryingRateLimiter.process_request`).

Telegram counts a message's length in UTF-16 code units (an emoji outside the BMP counts twice), so the text is
measured that way; what is cut ends with "…".
"""

from __future__ import annotations

from typing import Any

MESSAGE_TEXT_LIMIT = 4096  # sendMessage / editMessageText text
CAPTION_LIMIT = 1024
CALLBACK_ANSWER_LIMIT = 200  # answerCallbackQuery text (the toast)
ELLIPSIS = "…"

_TEXT_LIMITS = {
    "sendMessage": ("text", MESSAGE_TEXT_LIMIT),
    "editMessageText": ("text", MESSAGE_TEXT_LIMIT),
    "answerCallbackQuery": ("text", CALLBACK_ANSWER_LIMIT),
    "editMessageCaption": ("caption", CAPTION_LIMIT),
}


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def clip(text: str, limit: int) -> str:
    """`text` if it fits in `limit` UTF-16 code units, else its longest prefix that fits with "…" after it.
    A character is never split (no half of a surrogate pair)."""
    if utf16_length(text) <= limit:
        return text
    budget = limit - utf16_length(ELLIPSIS)
    used = 0
    for index, character in enumerate(text):
        used += 2 if ord(character) > 0xFFFF else 1
        if used > budget:
            return text[:index] + ELLIPSIS
    return text  # unreachable: the text did not fit


def clip_request(endpoint: str, data: dict[str, Any]) -> None:
    """Clip the text of an outgoing Bot API request to Telegram's limit for `endpoint`, in place."""
    field_and_limit = _TEXT_LIMITS.get(endpoint)
    if field_and_limit is None:
        return
    field, limit = field_and_limit
    value = data.get(field)
    if isinstance(value, str):
        data[field] = clip(value, limit)
