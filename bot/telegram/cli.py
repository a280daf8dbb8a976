"""`moderator run | chat | model ...`: the bot, the terminal chat, and model version management."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import shutil
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.settings import Settings

logger = logging.getLogger(__name__)

EXIT_NOT_READY = 2
FIRST_MODEL_HINT = (
    "moderator train --base ../shared/models/multilingual-e5-small-ko --output models/first"
    " && moderator model import models/first"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "run", help="start the Telegram bot (long polling, or a webhook when WEBHOOK_URL is set)"
    )
    run.set_defaults(func=run_command)

    chat = subparsers.add_parser("chat", help="talk to the moderator in the terminal (no Telegram needed)")
    chat.set_defaults(func=chat_command)

    model = subparsers.add_parser("model", help="manage model versions")
    model_commands = model.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    model_import = model_commands.add_parser(
        "import", help="validate, copy under MODEL_DIR and register a model directory"
    )
    model_import.add_argument(
        "directory", type=Path, help="a model version directory (save_pretrained files)"
    )
    model_import.add_argument(
        "--activate", action="store_true", help="activate it even when another is active"
    )
    model_import.set_defaults(func=model_import_command)
    model_list = model_commands.add_parser("list", help="list model versions")
    model_list.add_argument("--limit", type=int, default=20)
    model_list.set_defaults(func=model_list_command)
    model_activate = model_commands.add_parser("activate", help="make a model version the active one")
    model_activate.add_argument("version_id", type=int)
    model_activate.set_defaults(func=model_activate_command)


@dataclass(frozen=True)
class ActiveVersion:
    version_id: int
    path: Path
    classifier: object = None  # loaded as served and trial-checked by `_prepare_database`
    # The toxicity task's active version, loaded as served; None: no toxicity model (sentiment only).
    toxicity: tuple[int, object] | None = None  # (version id, classifier)


def _settings() -> Settings:
    from bot.settings import get_settings

    return get_settings()


def _no_model_message() -> str:
    return (
        "No trained model is active yet, so there is nothing to answer with.\n"
        f"Train a first model and import it:\n  {FIRST_MODEL_HINT}"
    )


async def _prepare_database(settings: Settings) -> ActiveVersion | None:
    """Migrations, recovery of abandoned training runs, and the active model version loaded as served.

    A run owned by another live process (`moderator retrain`) is left alone; only runs whose heartbeat stopped
    are failed. When the active version cannot load, the newest earlier version that can takes over (recorded
    in the activation history, logged loudly). Raises VersionError when no version can serve.
    """
    from datetime import timedelta

    from bot import storage, versions

    await asyncio.to_thread(storage.upgrade_database, settings.database_url)
    engine = storage.create_engine(settings.database_url)
    try:
        session_factory = storage.make_session_factory(engine)
        async with session_factory.begin() as session:
            failed = await storage.fail_stale_runs(
                session, stale_after=timedelta(seconds=settings.run_stale_seconds)
            )
            if failed:
                logger.warning("marked %d abandoned training run(s) as failed", failed)
        active = await versions.load_active_or_fall_back(session_factory, settings)
        toxicity = None
        if active is not None:
            try:
                toxicity = await versions.load_active_or_fall_back(
                    session_factory, settings, task=storage.Task.TOXICITY
                )
            except versions.VersionError as error:
                # Sentiment still answers: a broken toxicity model must not keep the bot down.
                logger.error("NO TOXICITY MODEL CAN SERVE (%s); reviews get sentiment verdicts only", error)
    finally:
        await engine.dispose()
    if active is None:
        return None
    return ActiveVersion(
        active.version.id,
        Path(active.version.path),
        active.classifier,
        toxicity=None if toxicity is None else (toxicity.version.id, toxicity.classifier),
    )


def _build_moderation(
    settings: Settings, classifier: object, version_id: int, toxicity: tuple[int, object] | None = None
):  # -> (Moderation, AsyncEngine)
    from bot import storage
    from bot.moderation import Moderation
    from bot.serving import MicroBatcher, ServingModel, TaskServing

    def batcher(serving: ServingModel) -> MicroBatcher:
        return MicroBatcher(serving, window_ms=settings.batch_window_ms, max_batch=settings.max_batch_size)

    engine = storage.create_engine(settings.database_url)
    serving = ServingModel(classifier, version_id)  # type: ignore[arg-type]
    # Empty without a toxicity model: one activated later (`moderator model import`) is swapped in by the
    # retraining service's sync job.
    toxicity_model = ServingModel()
    if toxicity is not None:
        toxicity_version_id, toxicity_classifier = toxicity
        toxicity_model.swap(toxicity_classifier, toxicity_version_id)  # type: ignore[arg-type]
    moderation = Moderation(
        session_factory=storage.make_session_factory(engine),
        serving=serving,
        batcher=batcher(serving),
        settings=settings,
        toxicity=TaskServing(toxicity_model, batcher(toxicity_model)),
    )
    moderation.warn_about_settings()
    return moderation, engine


def _load_classifier(settings: Settings, active: ActiveVersion):
    if active.classifier is not None:
        return active.classifier
    from bot.serving import load_serving_classifier

    return load_serving_classifier(active.path, settings)


def run_command(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.telegram_bot_token is None or not settings.telegram_bot_token.get_secret_value().strip():
        print(
            "TELEGRAM_BOT_TOKEN is not set (environment or .env), so the bot cannot connect to Telegram.\n"
            "Get a token from @BotFather, or try the moderator in the terminal: moderator chat",
            file=sys.stderr,
        )
        return EXIT_NOT_READY
    from bot.telegram.app import build_application
    from bot.telegram.redaction import install_token_redaction

    install_token_redaction(settings.telegram_bot_token.get_secret_value())
    if settings.training_executor == "local" and importlib.util.find_spec("torch") is None:
        logger.warning(
            "torch is not installed, so this process cannot train: /retrain and the schedule will fail here. Set "
            "TRAINING_EXECUTOR=worker and run `moderator worker` where torch is (docs/cluster.md)"
        )
    active = asyncio.run(_prepare_database(settings))
    if active is None:
        print(_no_model_message(), file=sys.stderr)
        return EXIT_NOT_READY
    classifier = _load_classifier(settings, active)
    moderation, engine = _build_moderation(settings, classifier, active.version_id, active.toxicity)
    application = build_application(settings, moderation=moderation, engine=engine)
    from bot.retraining import attach_retraining

    attach_retraining(application, settings=settings, moderation=moderation)  # /retrain, schedule, hot swap
    from bot.telegram.runner import BotRunner

    # Updates are stored in the inbox before they are confirmed, replies go through the outbox; SIGINT/SIGTERM
    # stop within SHUTDOWN_TIMEOUT_SECONDS. A refused token or a deleted database raises telegram_trouble.FatalError,
    # which `moderator` prints as one line (exit 1).
    runner = BotRunner(application, settings=settings, session_factory=moderation.session_factory)
    logger.info("starting the bot with %s", "a webhook" if settings.webhook_url else "long polling")
    if settings.web_port is not None:  # the web app (docs/web.md) shares this moderator and event loop
        from bot.web.serve import serve_beside

        return asyncio.run(
            serve_beside(runner.run, settings, moderation, chat_admins=application.bot_data["chat_admins"])
        )
    return asyncio.run(runner.run())


def chat_command(args: argparse.Namespace) -> int:
    settings = _settings()
    active = asyncio.run(_prepare_database(settings))
    if active is None:
        print(_no_model_message(), file=sys.stderr)
        return EXIT_NOT_READY
    classifier = _load_classifier(settings, active)
    return asyncio.run(_chat(settings, classifier, active.version_id, active.toxicity))


async def _chat(
    settings: Settings, classifier: object, version_id: int, toxicity: tuple[int, object] | None = None
) -> int:
    from bot.jobs import training_dispatcher
    from bot.retraining import RetrainingService
    from bot.telegram.chat import TerminalChat

    moderation, engine = _build_moderation(settings, classifier, version_id, toxicity)
    # /retrain in the terminal trains for real too; the schedule stays with `moderator run`.
    moderation.retrainer = RetrainingService(
        settings=settings,
        session_factory=moderation.session_factory,
        serving=moderation.serving,
        toxicity_serving=moderation.toxicity.serving if moderation.toxicity is not None else None,
        dispatch=training_dispatcher(settings),
    )
    try:
        await TerminalChat(moderation, output=sys.stdout).run(sys.stdin)
    finally:
        await moderation.retrainer.stop()
        await moderation.aclose_serving()
        await engine.dispose()
    return 0


def model_import_command(args: argparse.Namespace) -> int:
    from bot.versions import VersionError

    settings = _settings()
    source: Path = args.directory.resolve()
    if not (source / "config.json").is_file():
        print(f"Cannot import {source}: not a model version directory (no config.json)", file=sys.stderr)
        return 1
    model_dir = settings.model_dir.resolve()
    copied = not source.is_relative_to(model_dir)
    target = source if not copied else _free_target(model_dir, source.name)
    if copied:
        model_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, target)
    try:
        version_id, activated, task = asyncio.run(_register(settings, target, activate=args.activate))
    except VersionError as exc:
        if copied:
            shutil.rmtree(target, ignore_errors=True)
        print(f"Cannot import {source}: {exc}", file=sys.stderr)
        return 1
    print(f"imported {source} as {task} model version #{version_id} at {target}")
    print(
        f"it is now the active {task} model"
        if activated
        else f"activate it with: moderator model activate {version_id}"
    )
    return 0


def _free_target(model_dir: Path, name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    target = model_dir / f"{name}-{stamp}"
    suffix = 1
    while target.exists():
        suffix += 1
        target = model_dir / f"{name}-{stamp}-{suffix}"
    return target


async def _register(settings: Settings, path: Path, *, activate: bool) -> tuple[int, bool, str]:
    """Validate (load as served + trial prediction), register and maybe activate; VersionError if it cannot serve.
    Returns (version id, activated, the task it judges)."""
    from bot import storage, versions

    await asyncio.to_thread(storage.upgrade_database, settings.database_url)
    engine = storage.create_engine(settings.database_url)
    try:
        session_factory = storage.make_session_factory(engine)
        version_id, activated = await versions.register(
            session_factory, settings, path=path, activate_it=activate
        )
        async with session_factory() as session:
            version = await storage.get_model_version(session, version_id=version_id)
        assert version is not None
        return version_id, activated, str(version.task)
    finally:
        await engine.dispose()


def model_list_command(args: argparse.Namespace) -> int:
    rows = asyncio.run(_list(_settings(), limit=args.limit))
    if not rows:
        print("no model versions yet; import one with: moderator model import DIR")
        return 0
    header = ("id", "task", "status", "accuracy", "macro_f1", "created", "path")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


async def _list(settings: Settings, *, limit: int) -> list[tuple[object, ...]]:
    from bot import storage

    await asyncio.to_thread(storage.upgrade_database, settings.database_url)
    engine = storage.create_engine(settings.database_url)
    try:
        async with storage.make_session_factory(engine).begin() as session:
            versions = await storage.list_model_versions(session, limit=limit)
    finally:
        await engine.dispose()

    def metric(version: object, key: str) -> str:
        value = (getattr(version, "metrics", None) or {}).get(key)
        return f"{100 * value:.2f}%" if isinstance(value, int | float) else "-"

    return [
        (
            version.id,
            str(version.task),
            getattr(version.status, "value", version.status),
            metric(version, "accuracy"),
            metric(version, "macro_f1"),
            version.created_at.strftime("%Y-%m-%d %H:%M") if version.created_at else "-",
            version.path,
        )
        for version in versions
    ]


def model_activate_command(args: argparse.Namespace) -> int:
    from bot import storage, versions
    from bot.storage import ActivationReason

    settings = _settings()

    async def activate() -> versions.Activated:
        await asyncio.to_thread(storage.upgrade_database, settings.database_url)
        engine = storage.create_engine(settings.database_url)
        try:
            return await versions.activate(
                storage.make_session_factory(engine),
                settings,
                version_id=args.version_id,
                reason=ActivationReason.MANUAL,
            )
        finally:
            await engine.dispose()

    try:
        activated = asyncio.run(activate())
    except (versions.VersionError, storage.StorageError) as exc:
        print(f"Cannot activate model version #{args.version_id}: {exc}", file=sys.stderr)
        return 1
    print(
        f"model version #{args.version_id} ({activated.version.path}) is now active; "
        "a running bot switches to it within a minute"
    )
    return 0
