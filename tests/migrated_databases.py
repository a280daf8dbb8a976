"""Fresh databases already at the newest migration, for the many tests that are not about migrating.

Running every migration costs about a second a database, and hundreds of tests need one; the migrations
themselves are tested in tests/storage/test_migrations.py and test_database.py. So each test process migrates
one template per backend, and every test gets its own copy: SQLite copies the file, PostgreSQL creates the
database from the template (`CREATE DATABASE ... TEMPLATE`, a file-level copy made by the server).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from pathlib import Path

from bot.storage import upgrade_database

_template_lock = threading.Lock()
_sqlite_template: list[Path] = []


def _migrated_sqlite_template() -> Path:
    with _template_lock:
        if not _sqlite_template:
            directory = Path(tempfile.mkdtemp(prefix="moderator-migrated-"))
            atexit.register(shutil.rmtree, directory, ignore_errors=True)
            template = directory / "template.db"
            upgrade_database(f"sqlite+aiosqlite:///{template}")
            # The migration's engine is disposed, so the file holds everything (no write-ahead log left over).
            leftovers = [p.name for p in directory.iterdir() if p != template]
            assert not leftovers, f"the migrated template left {leftovers} beside it"
            _sqlite_template.append(template)
        return _sqlite_template[0]


def migrated_sqlite_url(path: Path) -> str:
    """The URL of a new SQLite file at `path`, at the newest migration, as `upgrade_database` leaves it.
    Blocking (the first call migrates the template): from async code call it via `asyncio.to_thread`."""
    template = _migrated_sqlite_template()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        raise FileExistsError(f"{path} exists: a migrated copy needs a new path")
    shutil.copyfile(template, path)
    return f"sqlite+aiosqlite:///{path}"
