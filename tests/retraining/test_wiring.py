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
    moderation = SimpleNamespace(
        session_factory=session_factory, serving=ServingModel(), retrainer=None, toxicity=None
    )
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


async def test_the_sync_job_serves_each_tasks_active_version(
    tmp_path, session_factory, scratch_model_dir, toxicity_model_dir
):
    """What another process activates (`moderator model import|activate`), of either task, is swapped in by the
    periodic sync, each into its own task's serving model; the other task's model is left alone."""
    from bot import storage
    from bot.retraining import RetrainingService
    from classifier import Classifier

    async def register(path, task) -> int:
        async with session_factory.begin() as session:
            version = await storage.register_model_version(
                session, path=str(path), base_checkpoint="t", metrics=None, status="active", task=task
            )
            return version.id

    sentiment_id = await register(scratch_model_dir, storage.Task.SENTIMENT)
    sentiment, toxicity = ServingModel(Classifier.load(scratch_model_dir), sentiment_id), ServingModel()
    service = RetrainingService(
        settings=make_settings(tmp_path),
        session_factory=session_factory,
        serving=sentiment,
        toxicity_serving=toxicity,
    )
    assert await service.sync_serving_with_database() is False  # nothing changed
    assert not toxicity.is_loaded

    toxicity_id = await register(toxicity_model_dir, storage.Task.TOXICITY)
    assert await service.sync_serving_with_database() is True
    assert toxicity.active.version_id == toxicity_id and toxicity.active.classifier.task == "toxicity"
    assert sentiment.active.version_id == sentiment_id

    newer_sentiment_id = await register(scratch_model_dir, storage.Task.SENTIMENT)
    assert await service.sync_serving_with_database() is True
    assert (sentiment.active.version_id, toxicity.active.version_id) == (newer_sentiment_id, toxicity_id)
