"""Text rules shared by the classifier and its callers; importable without torch."""

from __future__ import annotations

import unicodedata


def has_visible_text(text: str) -> bool:
    """False for text made only of whitespace, control and format (zero-width) characters."""
    return any(not char.isspace() and unicodedata.category(char) not in ("Cc", "Cf") for char in text)
