"""How long one retraining run takes: export, trainer child process, promotion gate, hot swap.

For each model, the real `RetrainingService` runs twice on a fresh SQLite database: a first run from the base
checkpoint (no active model yet), then, after `--corrections` corrected reviews arrive (two users each), the
run the bot does every night: from the active model, with the gate scoring both models on the same examples.
The phases come from the run's own progress reports: export (until the trainer starts), training (the child
process, including its start-up), gate + swap (loading and evaluating both models, registering, swapping).

    python -m bench.bench_retraining                       # scratch with default settings sizes, e5 with stated ones
    python -m bench.bench_retraining --models scratch --train-size 600 --eval-size 300   # smoke test
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from bench.common import (
    base_parser,
    e5_dir,
    environment,
    markdown_table,
    sample_nsmc,
    setup_torch,
    write_result,
)

MODELS = ("scratch", "e5-small")


class TimingReporter:
    """Timestamps the run's progress messages to split it into phases."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.training_started: float | None = None
        self.evaluation_started: float | None = None
        self.finished_time: float | None = None

    async def progress(self, run_id: int, text: str) -> None:
        from bot.retraining import texts

        now = time.perf_counter()
        if text.startswith(texts.TRAINING_STARTED.split("(")[0]) and self.training_started is None:
            self.training_started = now
        elif text == texts.EVALUATING:
            self.evaluation_started = now

    async def finished(self, run_id: int, text: str) -> None:
        self.finished_time = time.perf_counter()

    def phases(self) -> dict[str, float | None]:
        def span(start: float | None, end: float | None) -> float | None:
            return None if start is None or end is None else round(end - start, 1)

        return {
            "export_s": span(self.started, self.training_started),
            "train_s": span(self.training_started, self.evaluation_started),
            "gate_swap_s": span(self.evaluation_started, self.finished_time),
            "total_s": span(self.started, self.finished_time),
        }


async def one_model(name: str, base: str, args, workdir: Path) -> list[dict]:
    from bot.retraining.service import RetrainingService
    from bot.serving import ServingModel
    from bot.settings import Settings
    from bot.storage import (
        RunTrigger,
        add_verdict,
        create_engine,
        make_session_factory,
        record_feedback,
        upgrade_database,
    )

    url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    await asyncio.to_thread(upgrade_database, url)
    engine = create_engine(url)
    factory = make_session_factory(engine)
    sizes = {
        "scratch": (args.scratch_train_size, args.scratch_eval_size, args.scratch_epochs),
        "e5-small": (args.e5_train_size, args.e5_eval_size, args.e5_epochs),
    }[name]
    settings = Settings(
        _env_file=None,
        database_url=url,
        model_dir=workdir / "models",
        runs_dir=workdir / "runs",
        korpora_root=args.shared_dir / "korpora",
        base_model=base,
        retrain_cron=None,
        retrain_train_size=sizes[0],
        retrain_eval_size=sizes[1],
        retrain_epochs=sizes[2],
        retrain_max_length=args.max_length,
        retrain_learning_rate=5e-4 if name == "scratch" else None,
        promotion_tolerance=100.0,  # timing only: always promote
    )
    serving = ServingModel()
    rows = []
    try:
        for run_kind in ("from base (first model)", "from active + corrections"):
            if run_kind.startswith("from active"):
                corrections = sample_nsmc(
                    shared_dir=args.shared_dir, split="train", count=args.corrections, seed=7
                )
                async with factory() as session, session.begin():
                    for index, (text, label) in enumerate(zip(corrections.texts, corrections.labels)):
                        verdict = await add_verdict(
                            session,
                            chat_id=1,
                            message_id=index,
                            user_id=1,
                            text=text,
                            label=1 - label,
                            label_name=("부정", "긍정")[1 - label],
                            confidence=0.5,
                            probabilities={"부정": 0.5, "긍정": 0.5},
                            model_version_id=None,
                        )
                        for user in (1, 2):
                            await record_feedback(
                                session,
                                verdict_id=verdict.id,
                                user_id=user,
                                label=label,
                                num_labels=2,
                                is_admin=False,
                            )
            service = RetrainingService(
                settings=settings.model_copy(
                    update={"retrain_from": "active" if "active" in run_kind else "base"}
                ),
                session_factory=factory,
                serving=serving,
                progress_interval_seconds=5.0,
            )
            reporter = TimingReporter()
            run_id, _ = await service.request_run(
                trigger=RunTrigger.CLI, requested_by=None, reporter=reporter
            )
            outcome = await service.wait_for_run(run_id)
            if outcome.status.value == "failed":
                raise SystemExit(f"{name} run failed: {outcome.error}")
            rows.append(
                {
                    "model": name,
                    "run": run_kind,
                    "train_size": sizes[0],
                    "eval_size": sizes[1],
                    "epochs": sizes[2],
                    "corrections": args.corrections if "active" in run_kind else 0,
                    **reporter.phases(),
                    "base_accuracy": round(outcome.candidate.base_accuracy, 4),
                    "status": outcome.status.value,
                }
            )
            print(markdown_table(rows[-1:], list(rows[-1])), flush=True)
    finally:
        await engine.dispose()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {MODELS}")
    parser.add_argument(
        "--scratch-train-size", type=int, default=4000, help="default: RETRAIN_TRAIN_SIZE's default"
    )
    parser.add_argument("--scratch-eval-size", type=int, default=1000)
    parser.add_argument("--scratch-epochs", type=float, default=2.0)
    parser.add_argument("--e5-train-size", type=int, default=1000)
    parser.add_argument("--e5-eval-size", type=int, default=500)
    parser.add_argument("--e5-epochs", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument(
        "--corrections", type=int, default=100, help="corrected reviews before the second run"
    )
    args = parser.parse_args(argv)
    device = setup_torch(threads=args.threads, device=args.device, seed=args.seed)
    bases = {"scratch": "scratch", "e5-small": str(e5_dir(args.shared_dir).resolve())}
    args.shared_dir = args.shared_dir.resolve()
    rows: list[dict] = []
    for name in [model.strip() for model in args.models.split(",") if model.strip()]:
        if name not in bases:
            raise SystemExit(f"unknown model {name!r}; choose from {MODELS}")
        with tempfile.TemporaryDirectory(prefix=f"bench-retrain-{name}-") as workdir:
            rows += asyncio.run(one_model(name, bases[name], args, Path(workdir)))
    columns = [
        "model",
        "run",
        "train_size",
        "eval_size",
        "epochs",
        "corrections",
        "export_s",
        "train_s",
        "gate_swap_s",
        "total_s",
        "base_accuracy",
    ]
    print("\n## One retraining run (wall-clock seconds)\n")
    print(markdown_table(rows, columns))
    path = write_result("retraining", {"environment": environment(device), "rows": rows}, args.output)
    print(f"\nresult written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
