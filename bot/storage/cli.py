"""`moderator db upgrade` and `moderator db purge [--days N]`."""

from __future__ import annotations

import argparse
import asyncio
import logging

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    db_parser = subparsers.add_parser("db", help="database maintenance (migrations, retention)")
    db_commands = db_parser.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")

    upgrade_parser = db_commands.add_parser(
        "upgrade", help="apply the database migrations (alembic upgrade head)"
    )
    upgrade_parser.add_argument("--database-url", help="default: DATABASE_URL from the settings")
    upgrade_parser.set_defaults(func=upgrade_command)

    purge_parser = db_commands.add_parser(
        "purge", help="forget review texts older than N days (labels and statistics stay)"
    )
    purge_parser.add_argument("--days", type=int, help="default: RETENTION_DAYS from the settings")
    purge_parser.add_argument("--database-url", help="default: DATABASE_URL from the settings")
    purge_parser.set_defaults(func=purge_command)


def _database_url(args: argparse.Namespace) -> str:
    if args.database_url:
        return args.database_url
    from bot.settings import get_settings

    return get_settings().database_url


def upgrade_command(args: argparse.Namespace) -> int:
    from bot.storage.database import safe_url, upgrade_database
    from bot.storage.errors import StorageError

    url = _database_url(args)
    try:
        upgrade_database(url)
    except StorageError as error:
        logger.error("%s", error)
        return 1
    print(f"database is up to date: {safe_url(url)}")
    return 0


def purge_command(args: argparse.Namespace) -> int:
    from bot.settings import get_settings
    from bot.storage.errors import StorageError

    days = args.days if args.days is not None else get_settings().retention_days
    if days is None:
        logger.error("retention is off: pass --days N or set RETENTION_DAYS")
        return 2
    if days < 0:
        logger.error("--days must be 0 or more, got %d", days)
        return 2
    url = _database_url(args)
    try:
        purged = asyncio.run(_purge(url, days))
    except StorageError as error:
        logger.error("%s", error)
        return 1
    print(f"purged the text of {purged} verdict(s) older than {days} day(s)")
    return 0


async def _purge(url: str, days: int) -> int:
    from bot.storage.database import create_engine, make_session_factory, upgrade_database
    from bot.storage.retention import purge_old_texts

    await asyncio.to_thread(upgrade_database, url)
    engine = create_engine(url)
    try:
        async with make_session_factory(engine)() as session, session.begin():
            return await purge_old_texts(session, older_than_days=days)
    finally:
        await engine.dispose()
