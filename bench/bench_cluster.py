"""Several bot processes sharing the webhook traffic: the throughput of two `moderator run` processes against one.

Real processes on a fresh database of the PostgreSQL server named by TEST_POSTGRES_URL (`make bench` starts one
with .ci/postgres.sh), serving the first models `make run` trains (sentiment and toxicity, each on its static int8
ONNX fast path, as imported), against the Bot API stand-in on 127.0.0.1. The benchmark is Telegram and the load
balancer: it posts a burst of reviews, 40 requests in flight, and times them from the first post to the last reply.

- one process on its own port;
- two processes with WEBHOOK_REUSE_PORT on one port (deploy/Procfile's set-up: the kernel spreads the
  connections), every update claimed by one of them.

The two set-ups alternate for `--rounds` rounds, so that other load on the machine hits both alike; the ratio is
two processes over one, per round and their median. Each round also counts, from the database and the stand-in:
updates processed, processed twice, reviews answered, answered twice, lost, and the share of each process.

    python -m bench.bench_cluster                       # ~8 min on 2 cores (trains the first models if missing)
    python -m bench.bench_cluster --burst 200 --rounds 1   # smoke
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, base_parser, environment, write_result

NAME = "cluster"
TOKEN = "123456789:cluster-token-0123456789abcdefghij"
logger = logging.getLogger(__name__)

# the Bot API stand-in, the webhook traffic and the bot processes live with the tests
sys.path.insert(0, str(REPO_ROOT / "tests" / "bot"))
sys.path.insert(0, str(REPO_ROOT / "tests"))


async def import_models(url: str, models: list[Path], workdir: Path, korpora: Path) -> None:
    """`moderator model import` each model into the database: builds its static int8 fast path (calibrated on the
    task's training data under `korpora`), checks it and activates it."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "MODEL_DIR": str(workdir / "models"),
        "KORPORA_ROOT": str(korpora),
        "HF_HUB_OFFLINE": "1",
    }
    for model in models:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "model", "import", str(model), cwd=workdir, env=env
        )
        if await process.wait() != 0:
            raise SystemExit(f"moderator model import {model} failed")
    built = list((workdir / "models").glob("*/onnx/manifest.json"))
    if len(built) != len(models):  # the bots would serve torch fp32: not what this measures
        raise SystemExit(f"the fast path was built for {len(built)} of {len(models)} models")


async def burst(api, ports: list[int], count: int, url: str, first_update: int) -> dict[str, Any]:
    """Post `count` reviews round robin over `ports`; time until every one is answered; count what happened."""
    from webhook_traffic import LoadBalancer, inbox_rows, reply_counts, reviews

    messages, updates = reviews(api, count)
    balancer = LoadBalancer(ports)
    started = time.monotonic()
    try:
        await balancer.post_all(updates)
        await api.wait_until(lambda: 0 not in reply_counts(api, messages), timeout=900)
    finally:
        await balancer.aclose()
    seconds = time.monotonic() - started
    await asyncio.sleep(2.0)  # a second reply to anything would arrive by now
    rows = [row for row in await inbox_rows(url) if row[0] >= first_update]
    owners: dict[int, int] = {}
    for *_, owner in rows:
        owners[owner] = owners.get(owner, 0) + 1
    replies = reply_counts(api, messages)
    return {
        "seconds": round(seconds, 2),
        "reviews_per_second": round(count / seconds, 1),
        "updates": count,
        "processed": sum(1 for _, status, _, _ in rows if status == "done"),
        "processed_twice": sum(1 for _, _, attempts, _ in rows if attempts > 1),
        "answered": sum(1 for n in replies if n >= 1),
        "answered_twice": sum(1 for n in replies if n > 1),
        "lost": replies.count(0),
        "per_process": sorted(owners.values(), reverse=True),
        "posts_redelivered": balancer.redelivered,  # not answered 200 in 30 s (or reset), posted again
    }


async def serve(args) -> dict[str, Any]:
    from bot_process import BotProcess
    from fake_telegram import FakeBotApi
    from postgres_databases import fresh_postgres_database
    from webhook_traffic import free_port, wait_listening, webhook_bot_environment

    from bench.bench_two_tasks import first_model
    from bot import storage

    args.models_dir.mkdir(parents=True, exist_ok=True)
    models = [
        first_model(task, args.shared_dir, args.models_dir, args.seed) for task in ("sentiment", "toxicity")
    ]
    workdir = Path(
        tempfile.mkdtemp(prefix="bench-cluster-")
    )  # the imported versions, the bots' working directory
    api = FakeBotApi(token=TOKEN)
    await api.start()
    rounds: list[dict[str, Any]] = []
    try:
        async with fresh_postgres_database() as url:
            await asyncio.to_thread(storage.upgrade_database, url)
            korpora = (args.shared_dir / "korpora").resolve()
            await import_models(url, models, workdir, korpora)
            base = {**webhook_bot_environment(url, api, workdir), "KORPORA_ROOT": str(korpora)}
            base.pop("OMP_NUM_THREADS", None)  # as users run it: torch picks its threads
            next_update = 1
            for number in range(1, args.rounds + 1):
                row: dict[str, Any] = {"round": number}
                for processes in (1, 2):
                    port = free_port()
                    env = {
                        **base,
                        "WEBHOOK_PORT": str(port),
                        "WEBHOOK_REUSE_PORT": str(processes > 1).lower(),
                    }
                    bots = [await BotProcess(env, workdir, "run").start() for _ in range(processes)]
                    try:
                        for bot in bots:
                            await wait_listening(bot, port)
                        await asyncio.sleep(3.0)  # start-up work (model sync, first purge) out of the way
                        result = await burst(api, [port], args.burst, url, next_update)
                    finally:
                        for bot in bots:
                            bot.signal(signal.SIGTERM)
                        for bot in bots:
                            await bot.wait(120)
                    next_update += args.burst
                    row[f"{processes}_process"] = result
                    logger.info("round %d, %d process(es): %s", number, processes, result)
                row["ratio_two_over_one"] = round(
                    row["2_process"]["reviews_per_second"] / row["1_process"]["reviews_per_second"], 2
                )
                rounds.append(row)
    finally:
        await api.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "rounds": rounds,
        "median_ratio_two_over_one": round(statistics.median(r["ratio_two_over_one"] for r in rounds), 2),
        "burst": args.burst,
    }


def cluster_parser(description: str) -> argparse.ArgumentParser:
    """The flags of the cluster benchmarks: base_parser's and where the first models are kept."""
    parser = base_parser(description)
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=REPO_ROOT / "data" / "bench-two-tasks",
        help="where the first models are kept (bench_two_tasks trains them there)",
    )
    return parser


def run_cluster_benchmark(name: str, scenario, args) -> tuple[dict[str, Any], Path] | None:
    """Run `scenario(args)` against the PostgreSQL of TEST_POSTGRES_URL and write its result with the machine and
    the load; None (after saying why) when there is no PostgreSQL."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per posted update
    logging.getLogger("tornado.access").setLevel(logging.WARNING)  # the stand-in: a line per Bot API call
    if not os.environ.get("TEST_POSTGRES_URL"):
        print("TEST_POSTGRES_URL is not set: run under .ci/postgres.sh (make bench does)", file=sys.stderr)
        return None
    import torch

    load_before = round(os.getloadavg()[0], 2)
    result = asyncio.run(scenario(args))
    result["environment"] = {**environment(torch.device("cpu")), "load_average_1m_before": load_before}
    return result, write_result(name, result, args.output)


def main(argv: list[str] | None = None) -> int:
    parser = cluster_parser(__doc__ or NAME)
    parser.add_argument("--burst", type=int, default=1000, help="reviews per burst")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    written = run_cluster_benchmark(NAME, serve, args)
    if written is None:
        return 2
    result, path = written
    for row in result["rounds"]:
        one, two = row["1_process"], row["2_process"]
        print(
            f"round {row['round']}: one process {one['reviews_per_second']}/s, two {two['reviews_per_second']}/s "
            f"(x{row['ratio_two_over_one']}), two-process split {two['per_process']}, "
            f"processed twice {two['processed_twice']}, answered twice {two['answered_twice']}, lost {two['lost']}"
        )
    print(f"median two/one: x{result['median_ratio_two_over_one']}; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
