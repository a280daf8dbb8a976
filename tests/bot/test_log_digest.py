"""A log chat's due entries combined into digests within Telegram's limits (bot/telegram/digest.py)."""

from __future__ import annotations

from bot.telegram.digest import (
    DIGEST_FROM,
    DIGEST_HEADER,
    DIGEST_MAX_ENTRIES,
    INLINE_KEYBOARD_BUTTON_LIMIT,
    Entry,
    digests,
)
from bot.telegram.limits import MESSAGE_TEXT_LIMIT, utf16_length


def entry(number: int, *, text: str | None = None, buttons: int = 3) -> Entry:
    keyboard = {
        "inline_keyboard": [
            [
                {"text": name, "callback_data": f"gm:{name}:{number}"}
                for name in ("undo", "ok", "ban")[:buttons]
            ]
        ]
    }
    return Entry(number, text or f"entry {number}", keyboard if buttons else None)


def test_a_few_entries_go_out_one_by_one_exactly_as_stored():
    few = [entry(n) for n in range(1, DIGEST_FROM)]
    result = digests(few)
    assert [(d.entries, d.text, d.reply_markup) for d in result] == [
        ((e,), e.text, e.reply_markup) for e in few
    ]


def test_a_backlog_is_numbered_with_each_entrys_buttons_numbered_alike():
    backlog = [entry(n) for n in range(1, DIGEST_FROM + 2)]
    (digest,) = digests(backlog)
    assert digest.entries == tuple(backlog)
    assert digest.text.startswith(DIGEST_HEADER.format(count=len(backlog)))
    assert "[1] entry 1" in digest.text and f"[{len(backlog)}] entry {len(backlog)}" in digest.text
    rows = digest.reply_markup["inline_keyboard"]
    assert [[b["text"] for b in row] for row in rows[:2]] == [
        ["1 undo", "1 ok", "1 ban"],
        ["2 undo", "2 ok", "2 ban"],
    ]
    # A press means the same wherever the entry is shown: the callback data is the entry's own.
    assert [b["callback_data"] for row in rows for b in row] == [
        f"gm:{name}:{n}" for n in range(1, len(backlog) + 1) for name in ("undo", "ok", "ban")
    ]


def test_digests_keep_every_entry_once_in_order_within_each_limit():
    long_text = "가" * 900  # five such entries are over 4,096 characters
    backlog = [entry(n, text=long_text if n % 4 == 0 else None) for n in range(1, 101)]
    result = digests(backlog)
    assert [e.id for d in result for e in d.entries] == list(range(1, 101))
    for digest in result:
        assert len(digest.entries) <= DIGEST_MAX_ENTRIES
        assert utf16_length(digest.text) <= MESSAGE_TEXT_LIMIT
        buttons = sum(len(row) for row in (digest.reply_markup or {}).get("inline_keyboard", []))
        assert buttons == 3 * len(digest.entries) <= INLINE_KEYBOARD_BUTTON_LIMIT
    assert len(result) > 100 // DIGEST_MAX_ENTRIES  # the long entries cut some digests short


def test_the_text_limit_cuts_a_digest_and_an_entry_too_long_to_share_goes_alone():
    big = entry(2, text="나" * (MESSAGE_TEXT_LIMIT - 10))
    result = digests([entry(1), big, entry(3), entry(4), entry(5)])
    assert [[e.id for e in d.entries] for d in result] == [[1], [2], [3, 4, 5]]
    assert result[1].text.startswith(DIGEST_HEADER.format(count=1)) is False  # alone: as stored
    assert all(utf16_length(d.text) <= MESSAGE_TEXT_LIMIT for d in result)
