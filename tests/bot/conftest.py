"""Fixtures for the bot tests: a real classifier, a real SQLite file, the Bot API stand-in, the real Application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bot_identity import ADMIN_ID, TOKEN
from fake_telegram import FakeBotApi
from migrated_databases import migrated_sqlite_url
from version_copies import copy_with_head

from bot import storage
from bot.moderation import Moderation, Retrainer
from bot.serving import MicroBatcher, ServingModel, TaskServing
from bot.settings import Settings

TEST_MAX_LENGTH = 64  # short sequences keep the suite light on 2 cores


@pytest.fixture(scope="session")
def bot_model_dir(scratch_model_dir: Path) -> Path:
    """A real, trained 2-label model version directory (부정/긍정)."""
    return scratch_model_dir


@pytest.fixture(scope="session")
def bot_classifier(bot_model_dir: Path):
    from classifier import Classifier

    try:
        return Classifier.load(bot_model_dir, max_length=TEST_MAX_LENGTH)
    except ValueError:  # a model whose own limit is already shorter
        return Classifier.load(bot_model_dir)


def one_answer_copy(source: Path, target: Path, label_id: int) -> Path:
    """The same model with its classification head set to answer `label_id` for every text (at about 88%): a real
    model version that is deterministic about which verdict it gives, whatever the tiny model learned."""

    def answer_one_label(weights: dict) -> None:
        weights["classifier.weight"] = weights["classifier.weight"] * 0.0
        bias = weights["classifier.bias"] * 0.0
        bias[label_id] = 3.0
        weights["classifier.bias"] = bias

    return copy_with_head(source, target, answer_one_label)


@pytest.fixture(scope="session")
def toxic_everywhere_model_dir(toxicity_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A toxicity version that calls every text 공격적 (label 1)."""
    return one_answer_copy(toxicity_model_dir, tmp_path_factory.mktemp("toxic-everywhere") / "version", 1)


@pytest.fixture(scope="session")
def clean_everywhere_model_dir(toxicity_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A toxicity version that calls every text 정상 (label 0)."""
    return one_answer_copy(toxicity_model_dir, tmp_path_factory.mktemp("clean-everywhere") / "version", 0)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A fresh SQLite file at the newest migration (tests/migrated_databases.py)."""
    return migrated_sqlite_url(tmp_path / "moderator.db")


def make_settings(
    *, database_url: str, base_url: str = "http://127.0.0.1:9/bot", **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "telegram_bot_token": TOKEN,
        "telegram_base_url": base_url,
        "telegram_base_file_url": base_url.replace("/bot", "/file/bot"),
        "database_url": database_url,
        "admin_ids": frozenset({ADMIN_ID}),
        "telegram_timeout_seconds": 2.0,
        "telegram_send_attempts": 4,
        "batch_window_ms": 5.0,
        "max_batch_size": 32,
        "retrain_cron": None,
        "outbox_flush_interval_seconds": 0.5,
        "telegram_auth_retry_seconds": 3.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@dataclass
class RunningBot:
    api: FakeBotApi
    application: Any
    moderation: Moderation
    session_factory: Any
    settings: Settings
    version_id: int
    runner: Any = None  # bot.telegram.runner.BotRunner

    def session(self) -> Any:
        return self.session_factory.begin()


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    fake = FakeBotApi(token=TOKEN)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def start_bot(
    api: FakeBotApi,
    database_url: str,
    bot_classifier: Any,
    bot_model_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> AsyncIterator[Callable[..., Awaitable[RunningBot]]]:
    """Starts the real Application through the real runner (inbox, outbox, long polling against the stand-in,
    or a webhook with `webhook=True`); stops it at the end of the test and checks that the token never reached
    the logs."""
    from bot.telegram.app import build_application
    from bot.telegram.runner import BotRunner

    caplog.set_level(logging.DEBUG)
    logging.getLogger("httpx").setLevel(logging.INFO)  # its request lines carry the token: prove redaction
    started: list[Any] = []

    async def start(
        *,
        retrainer: Retrainer | None = None,
        webhook: bool = False,
        toxicity_model: Path | None = None,
        **overrides: Any,
    ) -> RunningBot:
        """`toxicity_model`: a toxicity version to serve beside sentiment (registered and activated)."""
        settings = make_settings(database_url=database_url, base_url=api.base_url, **overrides)
        engine = storage.create_engine(database_url)
        session_factory = storage.make_session_factory(engine)
        async with session_factory.begin() as session:
            version = await storage.register_model_version(
                session,
                path=str(bot_model_dir),
                base_checkpoint="test",
                metrics={"accuracy": 0.5, "macro_f1": 0.5},
            )
            await storage.activate_model_version(session, version_id=version.id)
            toxicity_version = None
            if toxicity_model is not None:
                toxicity_version = await storage.register_model_version(
                    session,
                    path=str(toxicity_model),
                    base_checkpoint="test",
                    metrics=None,
                    status=storage.ModelStatus.ACTIVE,
                    task=storage.Task.TOXICITY,
                )
        serving = ServingModel(bot_classifier, version.id)
        toxicity_serving = ServingModel()
        if toxicity_version is not None:
            from classifier import Classifier

            toxicity_serving.swap(Classifier.load(toxicity_model), toxicity_version.id)
        moderation = Moderation(
            session_factory=session_factory,
            serving=serving,
            batcher=MicroBatcher(
                serving, window_ms=settings.batch_window_ms, max_batch=settings.max_batch_size
            ),
            settings=settings,
            retrainer=retrainer,
            toxicity=TaskServing(
                toxicity_serving,
                MicroBatcher(
                    toxicity_serving, window_ms=settings.batch_window_ms, max_batch=settings.max_batch_size
                ),
            ),
        )
        application = build_application(settings, moderation=moderation, engine=engine)
        runner = BotRunner(
            application, settings=settings, session_factory=session_factory, poll_timeout=1, webhook=webhook
        )
        await runner.start()
        started.append(runner)
        return RunningBot(api, application, moderation, session_factory, settings, version.id, runner)

    yield start
    for runner in started:
        await runner.stop()
    assert TOKEN not in caplog.text
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
