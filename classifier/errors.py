"""Errors raised by the classifier; importable without torch."""

from __future__ import annotations

from pathlib import Path


class ModelDirError(Exception):
    """A model version directory is missing, incomplete or corrupt."""

    def __init__(self, directory: Path | str, problem: str) -> None:
        self.directory = Path(directory)
        self.problem = problem
        super().__init__(f"model directory {self.directory}: {problem}")


class EmptyTextError(ValueError):
    """A text to classify is empty or has nothing visible in it."""

    def __init__(self, index: int) -> None:
        self.index = index
        super().__init__(f"text at index {index} is empty or whitespace-only; there is nothing to classify")
