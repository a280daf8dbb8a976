"""Noticing that the SQLite file was deleted or replaced under a running process.

SQLite keeps writing to a deleted file through the connections already open (those writes vanish with the
last connection), while new connections create a new, empty file. Either way a process that goes on serving
loses data silently, so it must stop instead: remember the file's identity when starting and compare it
before confirming anything to the outside world.
"""

from __future__ import annotations

import os
from pathlib import Path

from bot.storage.database import _sqlite_file, parse_database_url
from bot.storage.errors import StorageError


class DatabaseGoneError(StorageError):
    """The database file in use was deleted or replaced; writes would be lost."""


class DatabaseFileGuard:
    """Remembers a SQLite file's (device, inode); `check()` raises DatabaseGoneError once it changed.

    For PostgreSQL and in-memory SQLite there is no file and `check()` does nothing.
    """

    def __init__(self, url: str) -> None:
        parsed = parse_database_url(url)
        sqlite_file = _sqlite_file(parsed) if parsed.get_backend_name() == "sqlite" else None
        self.path: Path | None = sqlite_file.resolve() if sqlite_file is not None else None
        self._identity: tuple[int, int] | None = None
        if self.path is not None:
            self._identity = self._stat()
            if self._identity is None:
                raise DatabaseGoneError(f"The database file {self.path} does not exist.")

    @property
    def enabled(self) -> bool:
        return self._identity is not None

    def _stat(self) -> tuple[int, int] | None:
        assert self.path is not None
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            return None
        return status.st_dev, status.st_ino

    def check(self) -> None:
        if self._identity is None:
            return
        identity = self._stat()
        if identity is None:
            raise DatabaseGoneError(
                f"The database file {self.path} was deleted while the bot was running; stopping, because "
                "anything written now would be lost."
            )
        if identity != self._identity:
            raise DatabaseGoneError(
                f"The database file {self.path} was replaced while the bot was running; stopping, because "
                "this process still writes to the old file."
            )
