"""A log chat's entries that are due together, as few messages as Telegram's limits allow.

A moderated group under a flood decides hundreds of times a minute, but a bot may send only 20 messages a
minute into a group (the usual log chat). One message per entry would reach the admins hours late. So the
outbox marks log entries `digest`, and the flusher sends a chat's due ones together: numbered, each entry's
buttons numbered alike, at most DIGEST_MAX_ENTRIES entries, MESSAGE_TEXT_LIMIT characters and
INLINE_KEYBOARD_BUTTON_LIMIT buttons a message. Fewer than DIGEST_FROM due entries (an ordinary day) each go
out alone, exactly as stored.

The buttons carry their decision's id (`gm:undo:<id>`), so a press means the same wherever the entry is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.telegram.limits import MESSAGE_TEXT_LIMIT, utf16_length

DIGEST_FROM = 4  # due entries of one chat from which they are combined
DIGEST_MAX_ENTRIES = 20
INLINE_KEYBOARD_BUTTON_LIMIT = 100  # buttons in one inline keyboard
DIGEST_HEADER = "📋 기록 {count}건 (한꺼번에 들어와서 묶어 보내요)"
ENTRY_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Entry:
    """One stored outbox message: its id, text and inline keyboard (the Bot API's dict, or None)."""

    id: int
    text: str
    reply_markup: dict[str, Any] | None


@dataclass(frozen=True)
class Digest:
    entries: tuple[Entry, ...]
    text: str
    reply_markup: dict[str, Any] | None


def _numbered_text(entries: Sequence[Entry]) -> str:
    if len(entries) == 1:
        return entries[0].text
    parts = [DIGEST_HEADER.format(count=len(entries))]
    parts += [f"[{number}] {entry.text}" for number, entry in enumerate(entries, start=1)]
    return ENTRY_SEPARATOR.join(parts)


def _numbered_keyboard(entries: Sequence[Entry]) -> dict[str, Any] | None:
    if len(entries) == 1:
        return entries[0].reply_markup
    rows = []
    for number, entry in enumerate(entries, start=1):
        for row in (entry.reply_markup or {}).get("inline_keyboard", []):
            rows.append([{**button, "text": f"{number} {button['text']}"} for button in row])
    return {"inline_keyboard": rows} if rows else None


def _buttons(entry: Entry) -> int:
    return sum(len(row) for row in (entry.reply_markup or {}).get("inline_keyboard", []))


def digests(entries: Sequence[Entry]) -> list[Digest]:
    """One chat's due entries, in order, cut into messages within the limits (each holds one entry at least);
    fewer than DIGEST_FROM entries stay one message each."""
    if len(entries) < DIGEST_FROM:
        return [Digest((entry,), entry.text, entry.reply_markup) for entry in entries]
    result: list[Digest] = []
    current: list[Entry] = []

    def close() -> None:
        if current:
            result.append(Digest(tuple(current), _numbered_text(current), _numbered_keyboard(current)))

    for entry in entries:
        candidate = [*current, entry]
        fits = (
            len(candidate) <= DIGEST_MAX_ENTRIES
            and sum(_buttons(e) for e in candidate) <= INLINE_KEYBOARD_BUTTON_LIMIT
            and utf16_length(_numbered_text(candidate)) <= MESSAGE_TEXT_LIMIT
        )
        if current and not fits:
            close()
            current = [entry]
        else:
            current = candidate
    close()
    return result
