"""What counts as a review: the bot classifies, stores and learns from reviews only.

A review is at least `MIN_REVIEW_CHARS` characters long once invisible characters are dropped and white space is
folded (the trainer drops documents shorter than that, so a label on anything shorter could never be trained
on; "최악의 영화" is just long enough), with at least one letter or digit ("👍👍👍👍👍👍" says nothing a sentiment
model can learn). A message that replies to the bot's own message is talk with the bot
("고마워요", "왜요?") unless it is at least `MIN_REPLY_REVIEW_CHARS` long.
"""

from __future__ import annotations

import unicodedata

MIN_REVIEW_CHARS = 6  # trainer.config.TrainConfig.min_chars
MIN_REPLY_REVIEW_CHARS = 12


def visible_length(text: str) -> int:
    """The length of `text` without control and format characters (zero-width joiners and the like), with white
    space folded to single spaces and stripped at both ends: what a reader sees."""
    if text.isprintable():  # no control, format or separator characters but ASCII spaces: the fast path
        return len(" ".join(text.split()))
    shown = "".join(char for char in text if unicodedata.category(char)[0] != "C" or char.isspace())
    return len(" ".join(shown.split()))


def is_review(text: str, *, replies_to_bot: bool = False) -> bool:
    if not any(char.isalnum() for char in text):
        return False
    return visible_length(text) >= (MIN_REPLY_REVIEW_CHARS if replies_to_bot else MIN_REVIEW_CHARS)
