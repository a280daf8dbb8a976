"""The operator web app's pages against 1,000,000 verdicts in PostgreSQL (issue 17: every page in <= 300 ms).

Fills a fresh PostgreSQL database (created on the server of --database-url or TEST_POSTGRES_URL, dropped after
unless --keep) through the migrations and COPY (bench/web_fill.py): 1,000,000 verdicts over 60 days across 2 tasks
and 20 chats, and in proportion people's labels, decisions, actions, reports, policies and runs. Then serves the real app with uvicorn on
127.0.0.1 (in a thread with its own event loop), logs in as an admin through a one-time link, and times each page
with httpx: 2 warm-up requests, then 20 timed ones; median and p95. Writes bench/results/web.json.

Ablations, in the same process and run, as ratios to the served figures: the health check, the overview and the
queue with the served heap thawed (no `gc.freeze` after the model swap) and from a server whose socket is made as
before (protocol 0: Nagle's algorithm on).

    source .ci/postgres.sh && pg_start && trap pg_stop EXIT
    .venv/bin/python -m bench.bench_web
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import secrets
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import make_url

from bench.common import RESULTS_DIR
from bench.web_fill import (
    ADMIN,
    CHATS,
    DAYS,
    REVIEWERS,
    _plain,
    create_database,
    drop_database,
    fill_database,
    row_counts,
)

GOAL_MS = 300.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("TEST_POSTGRES_URL"))
    parser.add_argument("--verdicts", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "web.json")
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path("models/first"),
        help="a sentiment model version the review queue shows labels of (make run's first model); when "
        "missing, the queue page is left out",
    )
    parser.add_argument(
        "--reuse-database", default=None, help="time the pages on a database filled before (--keep), no fill"
    )
    return parser.parse_args()


class ServerThread:
    """The real web app under uvicorn, in a thread with its own event loop (the client's timing stays apart)."""

    def __init__(self, database_url: str, model_dir: Path | None, *, nagle: bool = False) -> None:
        self.database_url = database_url
        self.model_dir = model_dir
        self.nagle = nagle  # the ablation: served on a socket made as before (protocol 0: Nagle stays on)
        self.ready = threading.Event()
        self.url = ""
        self.error: BaseException | None = None
        self.server: Any = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # noqa: BLE001 - reported to the main thread
            self.error = error
            self.ready.set()

    async def _serve(self) -> None:
        from bot import storage
        from bot.moderation import Moderation
        from bot.serving import MicroBatcher, ServingModel, TaskServing
        from bot.settings import Settings
        from bot.web.serve import listening_port, server_for

        settings = Settings(
            _env_file=None,
            database_url=self.database_url,
            admin_ids=frozenset({ADMIN}),
            reviewer_ids=frozenset(REVIEWERS),
            web_port=0,
            web_session_secret="bench-session-secret-0123456789",
            retrain_cron=None,
        )
        engine = storage.create_engine(self.database_url)
        sentiment, toxicity = ServingModel(), ServingModel()  # only the queue needs one (its labels' names)
        if self.model_dir is not None:
            from classifier import Classifier

            sentiment.swap(Classifier.load(self.model_dir), 1)
        moderation = Moderation(
            session_factory=storage.make_session_factory(engine),
            serving=sentiment,
            batcher=MicroBatcher(sentiment, window_ms=2.0, max_batch=8),
            settings=settings,
            toxicity=TaskServing(toxicity, MicroBatcher(toxicity, window_ms=2.0, max_batch=8)),
        )
        self.server, sock = server_for(settings, moderation, embedded=True)
        if self.nagle:
            sock.close()
            sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{listening_port(sock)}"
        task = asyncio.create_task(self.server.serve(sockets=[sock]))
        while not self.server.started and not task.done():
            await asyncio.sleep(0.01)  # polls a condition; the main thread waits on `ready` with a timeout
        self.ready.set()
        await task
        await moderation.aclose_serving()
        await engine.dispose()

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(60) or self.error is not None or not self.url:
            raise RuntimeError(f"the web app did not start: {self.error!r}")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


async def login_token(database_url: str) -> str:
    from bot import storage

    engine = storage.create_engine(database_url)
    try:
        async with storage.make_session_factory(engine).begin() as session:
            token = secrets.token_urlsafe(32)
            await storage.add_web_login(session, token=token, user_id=ADMIN, valid_for=timedelta(minutes=10))
            return token
    finally:
        await engine.dispose()


def time_pages(url: str, token: str, *, requests: int, warmup: int, queue: bool) -> dict[str, dict[str, Any]]:
    pages = {
        "overview (30 days)": "/",
        "overview (60 days)": "/?days=60",
        "overview (one chat, 30 days)": f"/?chat={CHATS[3]}",
        "runs": "/runs",
        "chats": "/chats",
        "chat (policy and action log)": f"/chats/{CHATS[3]}",
        "users (labellers)": "/users",
        "models": "/models",
        "model version (its run's gate, its activations)": "/models/1",
    }
    if queue:
        pages["review queue"] = "/queue"
        pages["review queue (one chat)"] = f"/queue?chat={CHATS[3]}"
    results: dict[str, dict[str, Any]] = {}
    with logged_in_client(url, token) as client:
        for name, path in pages.items():
            results[name] = {"path": path, **time_page(client, path, requests=requests, warmup=warmup)}
            print(
                f"{name:32s} median {results[name]['median_ms']:7.1f} ms  p95 {results[name]['p95_ms']:7.1f} ms"
            )
    return results


@contextlib.contextmanager
def logged_in_client(url: str, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=60.0) as client:
        page = client.get(f"/login/{token}")
        csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        assert client.post(f"/login/{token}", data={"csrf_token": csrf}).status_code == 303
        yield client


def time_page(client: httpx.Client, path: str, *, requests: int, warmup: int) -> dict[str, Any]:
    for _ in range(warmup):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
    timings = []
    for _ in range(requests):
        began = time.perf_counter()
        response = client.get(path)
        timings.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    timings.sort()
    p95 = timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))]
    return {
        "median_ms": round(statistics.median(timings), 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(timings[-1], 1),
        "bytes": len(response.content),
        "within_goal": p95 <= GOAL_MS,
    }


ABLATION_PAGES = {"health": "/healthz", "overview (30 days)": "/", "review queue": "/queue"}


def time_ablations(
    database_url: str, served_url: str, model_dir: Path | None, *, requests: int, warmup: int
) -> dict[str, Any]:
    """The same pages as served, with the served heap thawed (no `gc.freeze`), and from a server whose socket is
    made as before the fix (protocol 0: Nagle's algorithm stays on), all in this process, one after the other;
    each as a ratio to the served figure of the same run."""
    paths = {name: path for name, path in ABLATION_PAGES.items() if model_dir is not None or path != "/queue"}

    def timed(url: str) -> dict[str, dict[str, Any]]:
        with logged_in_client(url, asyncio.run(login_token(database_url))) as client:
            return {
                name: time_page(client, path, requests=requests, warmup=warmup)
                for name, path in paths.items()
            }

    served = timed(served_url)
    gc.unfreeze()  # what every collection walked before: the models and libraries, thawed
    try:
        thawed = timed(served_url)
    finally:
        gc.freeze()
    nagle_server = ServerThread(database_url, model_dir, nagle=True)
    nagle_server.start()
    try:
        nagle = timed(nagle_server.url)
    finally:
        nagle_server.stop()
    result: dict[str, Any] = {"served": served}
    for variant, figures in (("heap_not_frozen", thawed), ("nagle_on", nagle)):
        result[variant] = {
            name: {
                **page,
                "median_ratio_to_served": round(page["median_ms"] / served[name]["median_ms"], 2),
                "p95_ratio_to_served": round(page["p95_ms"] / served[name]["p95_ms"], 2),
            }
            for name, page in figures.items()
        }
        for name, page in result[variant].items():
            print(
                f"ablation {variant:16s} {name:20s} median {page['median_ms']:7.1f} ms "
                f"({page['median_ratio_to_served']}x)  p95 {page['p95_ms']:7.1f} ms ({page['p95_ratio_to_served']}x)"
            )
    return result


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": model,
        "cpu_count": os.cpu_count(),
    }


async def server_version(database_url: str) -> str:
    connection = await asyncpg.connect(_plain(make_url(database_url)))
    try:
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


def main() -> int:
    args = parse_args()
    if not args.database_url or not args.database_url.startswith("postgresql"):
        raise SystemExit(
            "a PostgreSQL server is needed: --database-url or TEST_POSTGRES_URL (.ci/postgres.sh)"
        )
    from bot import storage

    model_dir = args.model_dir if (args.model_dir / "config.json").exists() else None
    if model_dir is None:
        print(f"no model at {args.model_dir}: the review queue page is left out")
    name = args.reuse_database or f"moderator_bench_web_{os.getpid()}"
    if args.reuse_database:
        database_url = make_url(args.database_url).set(database=name).render_as_string(hide_password=False)
    else:
        database_url = asyncio.run(create_database(args.database_url, name))
    try:
        began = time.perf_counter()
        if args.reuse_database:
            storage.upgrade_database(database_url)
            counts = asyncio.run(row_counts(database_url))
        else:
            counts = fill_database(database_url, verdicts=args.verdicts, seed=args.seed)
        fill_s = time.perf_counter() - began
        print(f"filled in {fill_s:.0f} s: {counts}")
        token = asyncio.run(login_token(database_url))
        server = ServerThread(database_url, model_dir)
        server.start()
        try:
            load_before = os.getloadavg()
            pages = time_pages(
                server.url, token, requests=args.requests, warmup=args.warmup, queue=model_dir is not None
            )
            ablations = time_ablations(
                database_url, server.url, model_dir, requests=args.requests, warmup=args.warmup
            )
            load_after = os.getloadavg()
        finally:
            server.stop()
        result = {
            "benchmark": "bench/bench_web.py",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "postgresql": asyncio.run(server_version(database_url)),
            "load_average_before": [round(value, 2) for value in load_before],
            "load_average_after": [round(value, 2) for value in load_after],
            "rows": counts,
            "days": DAYS,
            "chats": len(CHATS),
            "fill_seconds": None if args.reuse_database else round(fill_s, 1),
            "reused_database": bool(args.reuse_database),
            "review_queue_model": str(model_dir) if model_dir else None,
            "requests_per_page": args.requests,
            "warmup_per_page": args.warmup,
            "goal_ms": GOAL_MS,
            "pages": pages,
            "ablations": ablations,
            "all_within_goal": all(page["within_goal"] for page in pages.values()),
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.output}")
        return 0 if result["all_within_goal"] else 1
    finally:
        if not args.keep:
            asyncio.run(drop_database(args.database_url, name))


if __name__ == "__main__":
    raise SystemExit(main())
