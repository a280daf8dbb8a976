"""Clipping text to a length limit counted the way Telegram counts it, in UTF-16 code units (an emoji outside the
BMP counts twice); what is cut ends with "…".

A neutral module with no dependencies: the use cases (`bot.moderation`) and the Telegram adapter
(`bot.telegram.limits`) both clip with it.
"""

from __future__ import annotations

ELLIPSIS = "…"


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
