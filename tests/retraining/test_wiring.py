"""Hooking the service into a real python-telegram-bot Application's lifecycle (no network needed)."""

from __future__ import annotations

from types import SimpleNamespace

from retraining_helpers import make_settings
from telegram.ext import ApplicationBuilder

from bot.retraining.wiring import attach_retraining
from bot.serving import ServingModel


async def test_attach_chains_the_lifecycle_and_plugs_into_moderation(tmp_path, session_factory):
    calls: list[str] = []

    async def own_post_init(app):
        calls.append("bot post_init")

    async def own_post_stop(app):
        calls.append("bot post_stop")

    application = (
        ApplicationBuilder().token("123456:TEST").post_init(own_post_init).post_stop(own_post_stop).build()
    )
    moderation = SimpleNamespace(session_factory=session_factory, serving=ServingModel(), retrainer=None)
    service = attach_retraining(
        application, settings=make_settings(tmp_path, retrain_interval_seconds=3600), moderation=moderation
    )
    assert moderation.retrainer is service

    await application.post_init(application)
    scheduler = service._scheduler
    assert calls == ["bot post_init"] and scheduler is not None and scheduler.running
    assert {job.id for job in scheduler.get_jobs()} == {"retrain", "sync-active-model"}

    await application.post_stop(application)
    assert calls == ["bot post_init", "bot post_stop"] and service._scheduler is None
