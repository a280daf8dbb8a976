"""What counts as a review (`bot.reviews`)."""

from __future__ import annotations

import random
import unicodedata

from bot.reviews import is_review, visible_length


def visible_length_by_definition(text: str) -> int:
    shown = "".join(char for char in text if unicodedata.category(char)[0] != "C" or char.isspace())
    return len(" ".join(shown.split()))


def test_visible_length_fast_path_agrees_with_the_definition_on_fuzzed_text():
    # ASCII and ideographic spaces, tabs, line and paragraph separators, zero-width and bidi format characters,
    # controls, a byte-order mark, emoji and Hangul: whatever the fast path (printable text) skips must not matter.
    alphabet = "가나다 abc1\t\n\r\u00a0\u3000\u2028\u2029\u200b\u200d\u202e\ufeff\x00\x7f\x85\u1680😀👍!."
    rng = random.Random(20261206)
    for _ in range(50_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        assert visible_length(text) == visible_length_by_definition(text), repr(text)


def test_reviews_need_six_visible_characters_and_a_letter_or_digit():
    assert is_review("최악의 영화")
    assert not is_review("최악\u200b\u200b\u200b\u200b영화")  # four visible characters
    assert not is_review("👍👍👍👍👍👍")
    assert not is_review("고마워요 정말로", replies_to_bot=True)  # talk with the bot, not a review
    assert is_review("고마워요 정말로 좋은 영화였어요", replies_to_bot=True)
