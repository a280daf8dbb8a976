"""`moderator retrain`: one retraining run in the foreground, with a progress log and the result."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from datetime import datetime


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "retrain",
        help="retrain the model on the stored corrections now (gate, then promote or reject)",
        description=(
            "Export the base data plus every counted correction, train a candidate in a child process, "
            "compare it with the active model and promote it only if it is no worse. Exit code 0 when the "
            "run succeeded or its candidate was rejected, 1 when it failed or another run is in progress."
        ),
    )
    parser.add_argument(
        "--from",
        dest="retrain_from",
        choices=("active", "base"),
        default=None,
        help="start from the active model or from the task's base model (default: RETRAIN_FROM)",
    )
    parser.add_argument(
        "--task",
        choices=("sentiment", "toxicity"),
        default="sentiment",
        help="which model to retrain, from that task's labels, judged on that task's gate set (default: sentiment)",
    )
    parser.set_defaults(func=run_retrain_command)


class ConsoleReporter:
    """Prints progress lines with a timestamp (stderr) and the final summary (stdout)."""

    async def progress(self, run_id: int, text: str) -> None:
        print(f"[{datetime.now():%H:%M:%S}] #{run_id} {text}", file=sys.stderr, flush=True)

    async def finished(self, run_id: int, text: str) -> None:
        print(text, flush=True)


def run_retrain_command(args: argparse.Namespace) -> int:
    from bot.settings import get_settings

    settings = get_settings()
    if args.retrain_from is not None:
        settings = settings.model_copy(update={"retrain_from": args.retrain_from})
    try:
        return asyncio.run(retrain_once(settings, task=args.task))
    except asyncio.CancelledError:  # SIGTERM
        print("retraining interrupted; the run is marked failed", file=sys.stderr)
        return 1


async def retrain_once(settings, *, task: str = "sentiment") -> int:
    from bot.jobs import training_dispatcher
    from bot.retraining.service import RetrainingService
    from bot.storage import RunStatus, RunTrigger, Task, create_engine, make_session_factory, upgrade_database

    # SIGTERM ends the run like Ctrl-C does: the trainer is terminated and the run marked failed.
    main_task = asyncio.current_task()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    await asyncio.to_thread(upgrade_database, settings.database_url)
    engine = create_engine(settings.database_url)
    service = RetrainingService(
        settings=settings,
        session_factory=make_session_factory(engine),
        progress_interval_seconds=2.0,
        dispatch=training_dispatcher(settings),
    )
    try:
        run_id, created = await service.request_run(
            trigger=RunTrigger.CLI, requested_by=None, reporter=ConsoleReporter(), task=Task(task)
        )
        if not created:
            print(
                f"retraining run #{run_id} is already in progress; try again when it has finished",
                file=sys.stderr,
            )
            return 1
        print(
            f"retraining run #{run_id} started (log: {settings.runs_dir / f'run-{run_id}' / 'train.log'})",
            file=sys.stderr,
        )
        outcome = await service.wait_for_run(run_id)
        return 0 if outcome.status in (RunStatus.SUCCEEDED, RunStatus.REJECTED) else 1
    finally:
        await service.stop()  # on Ctrl-C: terminates the trainer and marks the run failed
        await engine.dispose()
