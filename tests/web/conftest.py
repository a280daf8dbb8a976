"""Fixtures for the web app's tests: a tiny real model, a temporary SQLite database filled through the real storage
functions and use cases, and the real app served by uvicorn on 127.0.0.1 (a free port) in the test's event loop."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from migrated_databases import migrated_sqlite_url
from web_helpers import WebApp, wait_until_started, web_settings

from bot import storage
from bot.moderation import Moderation
from bot.serving import MicroBatcher, ServingModel, TaskServing


@pytest.fixture
async def start_web(scratch_model_dir: Path, tmp_path: Path) -> AsyncIterator[Any]:
    """Start the real web app for a test (settings overrides as keyword arguments; `chat_admins`: who
    administers which group, as the bot's TelegramChatAdmins would say); stopped afterwards. Its two model
    versions are the session's scratch sentiment model and a copy."""
    from bot.web.serve import listening_port, server_for, stop
    from classifier import Classifier

    started: list[tuple[Any, asyncio.Task, Any, Any]] = []
    second_dir = tmp_path / "second-version"
    shutil.copytree(scratch_model_dir, second_dir)

    async def start(chat_admins: Any = None, **overrides: Any) -> WebApp:
        database_url = await asyncio.to_thread(migrated_sqlite_url, tmp_path / "web.db")
        settings = web_settings(database_url, tmp_path, **overrides)
        engine = storage.create_engine(database_url)
        session_factory = storage.make_session_factory(engine)
        async with session_factory.begin() as session:
            first = await storage.register_model_version(
                session,
                path=str(scratch_model_dir),
                base_checkpoint="scratch",
                metrics={"accuracy": 0.61, "macro_f1": 0.6},
                status=storage.ModelStatus.ACTIVE,
            )
            second = await storage.register_model_version(
                session, path=str(second_dir), base_checkpoint="scratch", metrics={"accuracy": 0.64}
            )
        serving = ServingModel(Classifier.load(scratch_model_dir), first.id)
        toxicity = ServingModel()
        moderation = Moderation(
            session_factory=session_factory,
            serving=serving,
            batcher=MicroBatcher(serving, window_ms=settings.batch_window_ms, max_batch=8),
            settings=settings,
            toxicity=TaskServing(toxicity, MicroBatcher(toxicity, window_ms=2.0, max_batch=8)),
        )
        server, sock = server_for(settings, moderation, embedded=True, chat_admins=chat_admins)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        started.append((server, task, sock, (moderation, engine)))
        await wait_until_started(server, task)
        url = f"http://127.0.0.1:{listening_port(sock)}"
        app = server.config.app
        return WebApp(
            url, settings, moderation, session_factory, (first.id, second.id), server, app, chat_admins
        )

    yield start
    for server, task, sock, (moderation, engine) in started:
        await stop(server, task)
        sock.close()
        await moderation.aclose_serving()
        await engine.dispose()
