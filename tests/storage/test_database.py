"""Engines (SQLite pragmas, folders), URL handling without leaking passwords, and the `moderator db` commands."""

from __future__ import annotations

import argparse
import asyncio
import logging

import pytest
from sqlalchemy import event, func, inspect, make_url, select, text
from storage_helpers import insert_verdict

from bot.settings import get_settings
from bot.storage import (
    StorageError,
    create_engine,
    make_session_factory,
    parse_database_url,
    safe_url,
    upgrade_database,
)
from bot.storage import cli as storage_cli
from bot.storage.models import Verdict

SECRET = "s3cret-Passw0rd"


async def test_sqlite_engine_creates_its_folder_and_sets_pragmas(tmp_path):
    database_file = tmp_path / "nested" / "folder" / "moderator.db"
    engine = create_engine(f"sqlite+aiosqlite:///{database_file}")
    try:
        async with engine.connect() as connection:
            journal_mode = await connection.scalar(text("PRAGMA journal_mode"))
            foreign_keys = await connection.scalar(text("PRAGMA foreign_keys"))
            busy_timeout = await connection.scalar(text("PRAGMA busy_timeout"))
    finally:
        await engine.dispose()
    assert database_file.exists()
    assert (journal_mode, foreign_keys) == ("wal", 1)
    assert busy_timeout >= 5000


async def test_a_sqlite_file_gets_one_connection_that_concurrent_transactions_wait_for_in_turn(tmp_path):
    # Its transactions run one at a time anyway (BEGIN IMMEDIATE); more connections only poll SQLite's lock.
    url = f"sqlite+aiosqlite:///{tmp_path / 'moderator.db'}"
    await asyncio.to_thread(upgrade_database, url)
    engine = create_engine(url)
    opened: list[object] = []
    event.listen(engine.sync_engine, "connect", lambda connection, record: opened.append(connection))
    session_factory = make_session_factory(engine)
    try:
        verdict_ids = await asyncio.gather(
            *(insert_verdict(session_factory, message_id=index) for index in range(20))
        )
        async with session_factory() as session:
            stored = await session.scalar(select(func.count()).select_from(Verdict))
    finally:
        await engine.dispose()
    assert len({verdict.id for verdict in verdict_ids}) == stored == 20
    assert len(opened) == 1


def test_urls_get_async_drivers_and_never_show_passwords():
    assert parse_database_url("sqlite:///data/x.db").drivername == "sqlite+aiosqlite"
    assert parse_database_url(f"postgresql://bot:{SECRET}@db/x").drivername == "postgresql+asyncpg"
    assert parse_database_url("postgresql+psycopg://db/x").drivername == "postgresql+psycopg"
    masked = safe_url(f"postgresql+asyncpg://bot:{SECRET}@db:5432/x")
    assert SECRET not in masked and "bot:***@db:5432/x" in masked
    with pytest.raises(StorageError, match="not a valid database URL") as raised:
        parse_database_url(f"not a url {SECRET}")
    assert SECRET not in str(raised.value)


async def test_upgrade_database_refuses_to_block_the_event_loop(tmp_path):
    with pytest.raises(StorageError, match="asyncio.to_thread"):
        upgrade_database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")


async def test_upgrade_logs_no_password(database_url, caplog):
    url = make_url(database_url)
    # The test PostgreSQL server trusts local connections, so any password is accepted; it must not be logged.
    if url.host:
        url = url.set(password=SECRET)
    with caplog.at_level(logging.DEBUG):
        await asyncio.to_thread(upgrade_database, url.render_as_string(hide_password=False))
    assert "database upgrade" in caplog.text
    assert SECRET not in caplog.text


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="moderator")
    storage_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


async def test_db_commands(database_url, capsys):
    assert await asyncio.to_thread(run_cli, "db", "upgrade", "--database-url", database_url) == 0
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        assert "verdicts" in tables
        session_factory = make_session_factory(engine)
        verdict = await insert_verdict(session_factory)
        assert (
            await asyncio.to_thread(run_cli, "db", "purge", "--days", "0", "--database-url", database_url)
            == 0
        )
        async with session_factory() as session:
            purged = await session.get(Verdict, verdict.id)
        assert purged.text is None and purged.label == verdict.label
    finally:
        await engine.dispose()
    assert "purged the text of 1 verdict(s)" in capsys.readouterr().out


def test_db_purge_without_a_retention_setting_explains_itself(monkeypatch, caplog, tmp_path):
    monkeypatch.delenv("RETENTION_DAYS", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    get_settings.cache_clear()
    try:
        with caplog.at_level(logging.ERROR):
            assert run_cli("db", "purge", "--database-url", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}") == 2
    finally:
        get_settings.cache_clear()
    assert "retention is off" in caplog.text


async def test_an_unreachable_database_is_a_clear_error_without_the_password():
    url = f"postgresql+asyncpg://bot:{SECRET}@127.0.0.1:1/moderator"  # port 1: connection refused
    with pytest.raises(StorageError, match="Database upgrade failed for .*127.0.0.1:1") as raised:
        await asyncio.to_thread(upgrade_database, url)
    assert SECRET not in str(raised.value)
