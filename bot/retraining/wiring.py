"""Wiring the retraining service into the bot: `moderator run` calls `attach_retraining` after building the
python-telegram-bot `Application`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.jobs import training_dispatcher
from bot.retraining.service import RetrainingService
from bot.settings import Settings

logger = logging.getLogger(__name__)


def attach_retraining(application: Any, *, settings: Settings, moderation: Any) -> RetrainingService:
    """Create the service for a running bot and hook it into the application's lifecycle.

    `moderation` is the bot's `Moderation` (its session factory and serving model are shared, and
    `moderation.retrainer` is set so `/retrain` uses the service). Admins are told about every finished run
    through the bot; the admin who asked for a run already hears through the run's reporter.
    """

    async def notify_admins(text: str, requested_by: int | None) -> None:
        for admin_id in sorted(settings.admin_ids):
            if admin_id == requested_by:
                continue
            try:
                await application.bot.send_message(chat_id=admin_id, text=text)
            except Exception as error:  # noqa: BLE001 - one unreachable admin must not stop the others
                logger.warning("could not notify admin %s: %s", admin_id, type(error).__name__)

    service = RetrainingService(
        settings=settings,
        session_factory=moderation.session_factory,
        serving=moderation.serving,
        notify_admins=notify_admins,
        toxicity_serving=moderation.toxicity.serving if moderation.toxicity is not None else None,
        dispatch=training_dispatcher(settings),
    )
    moderation.retrainer = service
    return attach(application, service)


def attach(application: Any, service: RetrainingService) -> RetrainingService:
    """Start the service's schedule after the application's own `post_init` and stop it (terminating a
    running trainer, marking its run failed) in `post_stop`, before `post_shutdown` disposes the engine.

    Chains whatever `post_init`/`post_stop` callbacks the application already has.
    """
    application.post_init = _chain(application.post_init, lambda _app: service.start(), ours_first=False)
    application.post_stop = _chain(application.post_stop, lambda _app: service.stop(), ours_first=True)
    return service


def _chain(
    existing: Callable[[Any], Awaitable[None]] | None,
    ours: Callable[[Any], Awaitable[None]],
    *,
    ours_first: bool,
) -> Callable[[Any], Awaitable[None]]:
    async def callback(application: Any) -> None:
        if not ours_first and existing is not None:
            await existing(application)
        await ours(application)
        if ours_first and existing is not None:
            await existing(application)

    return callback
