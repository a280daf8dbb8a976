"""Serving two tasks against one: what a toxicity verdict beside every sentiment verdict costs, as the bot serves.

Both first models (`make run`'s recipes: bot.quickstart) are prepared exactly as at import (static int8 ONNX fast
path, calibrated on the bot's NSMC sample) and served through the bot's own `MicroBatcher`s, one per task, with
the bot's default window and batch limit. Measured in one process on NSMC test reviews (never trained on), the two
set-ups interleaved round by round so that other load on the machine hits them alike:

- single-message latency: one review at a time; one task awaits the sentiment batcher, two tasks await both
  batchers at once (`asyncio.gather`, as `bot.moderation.classification` does);
- throughput: a burst of reviews sent concurrently, all answered.

Ratios are two tasks over one task in the same run. A shared encoder with two heads would cost about one task's
time (the heads are a few thousand multiply-adds); the two-task ratio is therefore the most a shared encoder could
save, weighed in docs/benchmarks.md against what separate models keep (each task's own versions, gate, rollback).

    python -m bench.bench_two_tasks                      # ~5 min on 2 cores (trains the first models if missing)
    python -m bench.bench_two_tasks --single 20 --burst 64 --rounds 1   # smoke
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, base_parser, e5_dir, environment, sample_nsmc, setup_torch, write_result

NAME = "two_tasks"
logger = logging.getLogger(__name__)


def first_model(task: str, shared_dir: Path, workdir: Path, seed: int) -> Path:
    """The first model `make run` trains for the task (bot.quickstart), trained once into `workdir`."""
    from bot.quickstart import FIRST_MODEL_RECIPE, FIRST_TOXICITY_RECIPE
    from trainer import TrainConfig, train

    output = workdir / f"first-{task}"
    if not (output / "metrics.json").is_file():
        workdir.mkdir(parents=True, exist_ok=True)
        recipe = FIRST_MODEL_RECIPE if task == "sentiment" else FIRST_TOXICITY_RECIPE
        train(
            TrainConfig(
                output=output,
                task=task,
                base=str(e5_dir(shared_dir)),
                korpora_root=shared_dir / "korpora",
                seed=seed,
                **recipe,
            )
        )
    return output


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(1000 * statistics.median(ordered), 2),
        "p90_ms": round(1000 * ordered[int(0.9 * (len(ordered) - 1))], 2),
    }


async def measure(
    models: dict[str, Any], settings: Any, texts: list[str], *, single: int, burst: int, rounds: int
):
    from bot.serving import MicroBatcher, ServingModel

    batchers = {
        task: MicroBatcher(
            ServingModel(classifier, None),
            window_ms=settings.batch_window_ms,
            max_batch=settings.max_batch_size,
        )
        for task, classifier in models.items()
    }

    async def one(text: str) -> None:
        await batchers["sentiment"].classify(text)

    async def both(text: str) -> None:
        await asyncio.gather(batchers["sentiment"].classify(text), batchers["toxicity"].classify(text))

    setups = {"one_task": one, "two_tasks": both}
    latencies: dict[str, list[float]] = {name: [] for name in setups}
    throughput: dict[str, list[float]] = {name: [] for name in setups}
    for text in texts[:8]:  # warm both paths
        await both(text)
    for round_index in range(rounds):
        order = list(setups) if round_index % 2 == 0 else list(setups)[::-1]
        for position in range(single):
            text = texts[(round_index * single + position) % len(texts)]
            for name in order:
                started = time.perf_counter()
                await setups[name](text)
                latencies[name].append(time.perf_counter() - started)
        for name in order:
            chunk = texts[:burst]
            started = time.perf_counter()
            await asyncio.gather(*(setups[name](text) for text in chunk))
            throughput[name].append(len(chunk) / (time.perf_counter() - started))
        logger.info("round %d of %d done", round_index + 1, rounds)
    for batcher in batchers.values():
        await batcher.aclose()
    result: dict[str, Any] = {}
    for name in setups:
        result[name] = {
            "single_message": percentiles(latencies[name]),
            "burst_reviews_per_second": round(statistics.median(throughput[name]), 1),
        }
    result["two_over_one"] = {
        "single_message_median": round(
            result["two_tasks"]["single_message"]["median_ms"]
            / result["one_task"]["single_message"]["median_ms"],
            3,
        ),
        "burst_throughput": round(
            result["two_tasks"]["burst_reviews_per_second"] / result["one_task"]["burst_reviews_per_second"],
            3,
        ),
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "data" / "bench-two-tasks")
    parser.add_argument("--single", type=int, default=100, help="single messages per set-up and round")
    parser.add_argument("--burst", type=int, default=256, help="reviews sent at once per set-up and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    device = setup_torch(threads=args.threads, device="cpu", seed=args.seed)
    shared_dir = args.shared_dir.resolve()

    from bot.retraining.dataset import calibration_texts
    from bot.serving import prepare_model_version
    from bot.settings import Settings

    settings = Settings(_env_file=None, korpora_root=shared_dir / "korpora", fast_inference=True)
    models = {}
    for task in ("sentiment", "toxicity"):
        path = first_model(task, shared_dir, args.workdir, args.seed)
        models[task] = prepare_model_version(
            path, settings, calibration_texts=lambda count: calibration_texts(settings, count)
        )
    reviews = sample_nsmc(
        shared_dir=shared_dir, split="test", count=max(args.burst, args.single), seed=args.seed
    )
    measured = asyncio.run(
        measure(
            models, settings, list(reviews.texts), single=args.single, burst=args.burst, rounds=args.rounds
        )
    )
    result = {
        "what": "the bot's serving path (MicroBatcher per task, window "
        f"{settings.batch_window_ms} ms, batch up to {settings.max_batch_size}) with the first models of "
        "bot.quickstart on e5-small",
        "backends": {task: classifier.backend for task, classifier in models.items()},
        "single_messages": args.single * args.rounds,
        "burst_size": args.burst,
        "rounds": args.rounds,
        **measured,
        "environment": environment(device),
    }
    path = write_result(NAME, result, args.output)
    logger.info(
        "two tasks / one task: single message x%.2f, burst throughput x%.2f",
        measured["two_over_one"]["single_message_median"],
        measured["two_over_one"]["burst_throughput"],
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
