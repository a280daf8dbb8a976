"""`moderator web`: the web app alone, in its own process (`moderator run` serves it too when WEB_PORT is set).

Alone, it loads the active models as the bot does (the queue shows their labels, /readyz reports them) but judges
no messages: its /metrics counters stay at zero, so scrape the bot's process for those. A version activated here
is served by the bot within a minute (the bot's sync job follows the database). Group admins are checked with
Telegram over a Bot made from TELEGRAM_BOT_TOKEN; without a token only bot admins use the chat pages."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

logger = logging.getLogger("bot.web")

EXIT_NOT_READY = 2


async def _telegram_chat_admins(settings):
    """Who administers a group, asked of Telegram over a Bot made from TELEGRAM_BOT_TOKEN (the adapter's
    TelegramChatAdmins); (None, None) without a token or when Telegram cannot be reached: then only bot admins
    use the chat pages (docs/web.md)."""
    token = settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else ""
    if not token:
        logger.warning(
            "no TELEGRAM_BOT_TOKEN: group admins cannot log in; only bot admins see the chat pages"
        )
        return None, None
    from telegram import Bot
    from telegram.error import TelegramError

    from bot.telegram.groups import TelegramChatAdmins

    bot = Bot(token)
    try:
        await bot.initialize()  # getMe: the bot's id, to read its own rights in a group
    except (TelegramError, OSError) as error:
        logger.warning(
            "Telegram cannot be reached (%s): only bot admins see the chat pages", type(error).__name__
        )
        return None, None
    return TelegramChatAdmins(bot), bot


def register(subparsers: argparse._SubParsersAction) -> None:
    web = subparsers.add_parser("web", help="serve the operator web app alone (see docs/web.md)")
    web.add_argument(
        "--port", type=int, default=None, help="listen here instead of WEB_PORT (0: any free port)"
    )
    web.set_defaults(func=web_command)


def web_command(args: argparse.Namespace) -> int:
    from bot.settings import get_settings
    from bot.web.serve import WebServerError

    settings = get_settings()
    if args.port is None and settings.web_port is None:
        print("WEB_PORT is not set (environment or .env); set it or pass --port", file=sys.stderr)
        return EXIT_NOT_READY
    try:
        return asyncio.run(_serve(settings, port=args.port))
    except WebServerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


async def _serve(settings, *, port: int | None) -> int:
    from bot import storage, versions
    from bot.moderation import Moderation
    from bot.serving import MicroBatcher, ServingModel, TaskServing
    from bot.web.serve import listening_port, server_for

    await asyncio.to_thread(storage.upgrade_database, settings.database_url)
    engine = storage.create_engine(settings.database_url)
    try:
        session_factory = storage.make_session_factory(engine)
        servings = {}
        for task in storage.Task:
            active = await versions.load_active_or_fall_back(session_factory, settings, task=task)
            serving = ServingModel()
            if active is not None:
                serving.swap(active.classifier, active.version.id)
            servings[task] = serving
        if not servings[storage.Task.SENTIMENT].is_loaded:
            print(
                "No sentiment model is active yet; import one first (moderator model import DIR)",
                file=sys.stderr,
            )
            return EXIT_NOT_READY

        def batcher(serving: ServingModel) -> MicroBatcher:
            return MicroBatcher(
                serving, window_ms=settings.batch_window_ms, max_batch=settings.max_batch_size
            )

        sentiment, toxicity = servings[storage.Task.SENTIMENT], servings[storage.Task.TOXICITY]
        moderation = Moderation(
            session_factory=session_factory,
            serving=sentiment,
            batcher=batcher(sentiment),
            settings=settings,
            toxicity=TaskServing(toxicity, batcher(toxicity)),
        )
        chat_admins, telegram_bot = await _telegram_chat_admins(settings)
        try:
            server, sock = server_for(
                settings, moderation, embedded=False, port=port, chat_admins=chat_admins
            )
            logger.info(
                "web app on %s:%d (links: %s)",
                settings.web_host,
                listening_port(sock),
                settings.web_public_url,
            )
            try:
                await server.serve(sockets=[sock])
            finally:
                sock.close()
                await moderation.aclose_serving()
        finally:
            if telegram_bot is not None:
                await telegram_bot.shutdown()
        return 0
    finally:
        await engine.dispose()
