"""Retraining runs through one training worker, asked for from two bot processes: the cluster's learning loop.

Real processes on a fresh database of the PostgreSQL server named by TEST_POSTGRES_URL (`make bench` starts one
with .ci/postgres.sh): two `moderator run` processes in webhook mode, each on its own port, and one
`moderator worker`, all with TRAINING_EXECUTOR=worker and one MODEL_DIR, against the Bot API stand-in on
127.0.0.1. Both bots serve the first models `make run` trains (imported with their int8 fast path).

The admin sends `/retrain` to bot 1, then to bot 2, then to bot 1 again; each run is waited for. Per run:

- request to job start: from posting `/retrain` to the worker claiming the run (its `started_at`);
- request to result: to the run's end (the worker's promotion, `finished_at`);
- promotion to serving: from `finished_at` to each bot logging that it serves the new version. The bot that asked
  follows the run's row; the other swaps at its model sync (MODEL_SYNC_SECONDS, set here to 2 s);
- who executed it (the worker's log: one claim per run), and how many result messages the admin got.

The runs are short (RETRAIN_TRAIN_SIZE 200, one epoch, a 1,000-review gate) and the gate is lenient, because what
this measures is the hand-over between processes, not what a run learns (bench_learning_loop does that).

    python -m bench.bench_cluster_runs           # ~6 min on 2 cores (trains the first models if missing)
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.bench_cluster import TOKEN, cluster_parser, import_models, run_cluster_benchmark
from bench.common import REPO_ROOT

NAME = "cluster_runs"
ADMIN = 4242
REQUESTED_FROM = (1, 2, 1)  # which bot each `/retrain` goes to
SERVING = re.compile(r"serving model version (\d+) ")
logger = logging.getLogger(__name__)

sys.path.insert(0, str(REPO_ROOT / "tests" / "bot"))
sys.path.insert(0, str(REPO_ROOT / "tests"))


def run_settings(args, korpora: Path) -> dict[str, str]:
    """What the bots and the worker share: the executor, the data, a short run, a lenient gate."""
    return {
        "TRAINING_EXECUTOR": "worker",
        "KORPORA_ROOT": str(korpora),
        "RETRAIN_TRAIN_SIZE": str(args.train_size),
        "RETRAIN_EVAL_SIZE": "100",
        "RETRAIN_EPOCHS": "1",
        "GATE_EVAL_SIZE": str(args.gate_eval_size),
        "PROMOTION_TOLERANCE": "100",
        "CALIBRATION_TOLERANCE": "100",
        "MODEL_SYNC_SECONDS": str(args.model_sync_seconds),
    }


class ServingWatch:
    """When each bot process first logs that it serves a version (UTC, read from its output every 50 ms)."""

    def __init__(self, bots: list) -> None:
        self.bots = bots
        self.seen: list[dict[int, datetime]] = [{} for _ in bots]
        self._read: dict[int, int] = {}  # lines read so far, per output stream (by its id)
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            now = datetime.now(UTC)
            for index, bot in enumerate(self.bots):
                for lines in (bot.stdout, bot.stderr):  # each stream on its own: both keep growing
                    for line in lines[self._read.get(id(lines), 0) :]:
                        if match := SERVING.search(line):
                            self.seen[index].setdefault(int(match[1]), now)
                    self._read[id(lines)] = len(lines)
            await asyncio.sleep(0.05)

    async def served_by_all(self, version_id: int, timeout: float) -> list[datetime]:
        deadline = time.monotonic() + timeout
        while not all(version_id in seen for seen in self.seen):
            if time.monotonic() > deadline:
                raise SystemExit(f"version {version_id} is not served by every bot after {timeout} s")
            await asyncio.sleep(0.05)
        return [seen[version_id] for seen in self.seen]

    def stop(self) -> None:
        self._task.cancel()


async def wait_for_row(url: str, run_id: int, ready, timeout: float):
    from bot import storage

    engine = storage.create_engine(url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            async with storage.make_session_factory(engine)() as session:
                run = await storage.get_training_run(session, run_id=run_id)
            if run is not None and ready(run):
                return run
            if time.monotonic() > deadline:
                raise SystemExit(f"run {run_id}: still {run.status if run else 'missing'} after {timeout} s")
            await asyncio.sleep(0.05)
    finally:
        await engine.dispose()


async def one_run(api, port: int, url: str, watch: ServingWatch, timeout: float) -> dict[str, Any]:
    """`/retrain` to the bot on `port`; follow the run to its end and to both bots serving its version."""
    from webhook_traffic import LoadBalancer

    from bot.storage import RunStatus

    command = api.push_message("/retrain", user_id=ADMIN, chat_id=ADMIN)
    balancer = LoadBalancer([port])
    posted_at = datetime.now(UTC)
    try:
        await balancer.post_all(api.take_updates())
    finally:
        await balancer.aclose()
    await api.wait_until(lambda: bool(api.replies_to(command)), timeout=60)
    run_id = int(re.search(r"#(\d+)", api.replies_to(command)[0]["text"])[1])
    started = await wait_for_row(url, run_id, lambda run: run.started_at is not None, 120)
    ended = await wait_for_row(
        url, run_id, lambda run: run.status not in (RunStatus.QUEUED, RunStatus.RUNNING), timeout
    )
    row: dict[str, Any] = {
        "run_id": run_id,
        "status": ended.status.value,
        "executed_by": ended.owner,
        "request_to_job_start_s": round((started.started_at - posted_at).total_seconds(), 2),
        "request_to_result_s": round((ended.finished_at - posted_at).total_seconds(), 1),
    }
    if ended.status is RunStatus.SUCCEEDED:
        served_at = await watch.served_by_all(ended.model_version_id, 120)
        row["version"] = ended.model_version_id
        row["promotion_to_serving_s"] = {
            f"bot_{index}": round((at - ended.finished_at).total_seconds(), 2)
            for index, at in enumerate(served_at, start=1)
        }
    else:
        row["error"] = ended.error
    await asyncio.sleep(2.0)  # a second result message would arrive by now
    row["result_messages_to_admin"] = sum(
        f"#{run_id} 완료" in message.get("text", "") or f"#{run_id} 실패" in message.get("text", "")
        for message in api.sent(chat_id=ADMIN)
    )
    return row


async def requested_runs(api, ports: list[int], url: str, bots: list, timeout: float) -> list[dict[str, Any]]:
    """The admin's `/retrain`s, one after another, to the bots of REQUESTED_FROM."""
    watch = ServingWatch(bots)
    runs = []
    try:
        for bot_number in REQUESTED_FROM:
            row = {"requested_from": f"bot_{bot_number}"}
            row.update(await one_run(api, ports[bot_number - 1], url, watch, timeout))
            logger.info("run: %s", row)
            runs.append(row)
    finally:
        watch.stop()
    return runs


async def cluster(args) -> dict[str, Any]:
    from bot_process import BotProcess, bot_environment
    from fake_telegram import FakeBotApi
    from postgres_databases import fresh_postgres_database
    from webhook_traffic import free_port, wait_listening, webhook_bot_environment

    from bench.bench_two_tasks import first_model
    from bot import storage

    args.models_dir.mkdir(parents=True, exist_ok=True)
    models = [
        first_model(task, args.shared_dir, args.models_dir, args.seed) for task in ("sentiment", "toxicity")
    ]
    workdir = Path(tempfile.mkdtemp(prefix="bench-cluster-runs-"))
    api = FakeBotApi(token=TOKEN)
    await api.start()
    try:
        async with fresh_postgres_database() as url:
            await asyncio.to_thread(storage.upgrade_database, url)
            korpora = (args.shared_dir / "korpora").resolve()
            await import_models(url, models, workdir, korpora)
            shared = run_settings(args, korpora)
            worker = BotProcess({**bot_environment(url, api, workdir), **shared}, workdir, "worker")
            ports = [free_port(), free_port()]
            bots = []
            for port in ports:
                env = {
                    **webhook_bot_environment(url, api, workdir),
                    **shared,
                    "ADMIN_IDS": str(ADMIN),
                    "WEBHOOK_PORT": str(port),
                }
                env.pop("OMP_NUM_THREADS", None)  # as users run it
                bots.append(BotProcess(env, workdir, "run"))
            processes = {"worker": worker, "bot_1": bots[0], "bot_2": bots[1]}
            try:
                for process in processes.values():
                    await process.start()
                for bot, port in zip(bots, ports, strict=True):
                    await wait_listening(bot, port)
                runs = await requested_runs(api, ports, url, bots, args.run_timeout)
            finally:  # before the database goes: SIGTERM, as a supervisor stops them
                started = {
                    name: p for name, p in processes.items() if getattr(p, "process", None) is not None
                }
                for process in started.values():
                    if process.process.returncode is None:
                        process.signal(signal.SIGTERM)
                exit_codes = {name: await process.wait(120) for name, process in started.items()}
    finally:
        await api.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    worker_log = worker.output
    for row in runs:
        # the worker logs "training run N of the <task> model claimed by <owner>" once, when it claims the run
        row["worker_claims"] = len(
            re.findall(rf"training run {row['run_id']} of the \w+ model claimed by", worker_log)
        )
    return {
        "runs": runs,
        "exit_codes_on_sigterm": exit_codes,
        "settings": run_settings(args, Path("shared/korpora")),
    }


def main(argv: list[str] | None = None) -> int:
    parser = cluster_parser(__doc__ or NAME)
    parser.add_argument("--train-size", type=int, default=200, help="RETRAIN_TRAIN_SIZE of each run")
    parser.add_argument("--gate-eval-size", type=int, default=1000, help="GATE_EVAL_SIZE of each run")
    parser.add_argument(
        "--model-sync-seconds", type=float, default=2.0, help="MODEL_SYNC_SECONDS of the bots"
    )
    parser.add_argument("--run-timeout", type=float, default=900.0, help="seconds a run may take")
    args = parser.parse_args(argv)
    written = run_cluster_benchmark(NAME, cluster, args)
    if written is None:
        return 2
    result, path = written
    for row in result["runs"]:
        print(
            f"run {row['run_id']} from {row['requested_from']}: {row['status']}, job start "
            f"{row['request_to_job_start_s']} s, result {row['request_to_result_s']} s, serving "
            f"{row.get('promotion_to_serving_s')}, claims {row['worker_claims']}, "
            f"result messages {row['result_messages_to_admin']}"
        )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
