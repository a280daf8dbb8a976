"""SQLite under concurrent handlers: one pooled connection per process against the pool the engine had before.

Every SQLite transaction begins IMMEDIATE (bot/storage/database.py), so one process's transactions run one at a
time whatever the pool holds. With the default pool (5 connections + 10 overflow) the waiting transactions sleep
in SQLite's busy handler and poll; with one connection they wait in the pool's queue. Both engines get the same
PRAGMAs and BEGIN IMMEDIATE and run the same work in the same process, alternately: `workers` concurrent tasks,
as the bot's concurrent update handlers are, each recording verdicts (`storage.add_verdict`, one transaction)
and reading them back (`storage.get_verdict`, another).

    .venv/bin/python -m bench.bench_sqlite_pool [--workers 32] [--transactions 40] [--rounds 3]

Writes bench/results/sqlite_pool.json: per engine and round, transactions per second and the latency of one
transaction (median, 99th percentile, maximum), and the ratios of the one-connection engine to the old pool.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTPUT = REPO_ROOT / "bench" / "results" / "sqlite_pool.json"


def engines(url: str) -> dict:
    from sqlalchemy.ext.asyncio import create_async_engine

    from bot import storage
    from bot.storage.database import _configure_sqlite

    # The engine as it was before SQLITE_FILE_POOL: the same SQLite set-up on SQLAlchemy's default pool.
    pooled = create_async_engine(url, hide_parameters=True)
    _configure_sqlite(pooled, enforce_foreign_keys=True)
    return {"pool of 5 + 10 (before)": pooled, "one connection (now)": storage.create_engine(url)}


async def run_round(engine, *, workers: int, transactions: int, first_message_id: int) -> dict:
    from bot import storage

    session_factory = storage.make_session_factory(engine)
    latencies: list[float] = []

    async def worker(number: int) -> None:
        for index in range(transactions):
            message_id = first_message_id + number * transactions + index
            started = time.perf_counter()
            async with session_factory.begin() as session:
                verdict = await storage.add_verdict(
                    session,
                    chat_id=1000 + number,
                    message_id=message_id,
                    user_id=number,
                    text=f"벤치마크 리뷰 {message_id} 정말 재미있었어요",
                    label=1,
                    label_name="긍정",
                    confidence=0.9,
                    probabilities={"부정": 0.1, "긍정": 0.9},
                    model_version_id=None,
                )
            latencies.append(time.perf_counter() - started)
            started = time.perf_counter()
            async with session_factory() as session:
                assert await storage.get_verdict(session, verdict_id=verdict.id) is not None
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(number) for number in range(workers)))
    seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "transactions": len(latencies),
        "seconds": round(seconds, 3),
        "transactions_per_second": round(len(latencies) / seconds, 1),
        "latency_ms": {
            "median": round(statistics.median(latencies) * 1000, 2),
            "p99": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 2),
            "max": round(latencies[-1] * 1000, 2),
        },
    }


async def bench(*, workers: int, transactions: int, rounds: int, workdir: Path) -> dict:
    from bot import storage

    url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    await asyncio.to_thread(storage.upgrade_database, url)
    by_engine: dict[str, list[dict]] = {}
    message_id = 1
    for _ in range(rounds):  # alternately, so that a drift in the machine's speed hits both
        for name, engine in engines(url).items():
            result = await run_round(
                engine, workers=workers, transactions=transactions, first_message_id=message_id
            )
            message_id += workers * transactions
            by_engine.setdefault(name, []).append(result)
            await engine.dispose()
    summary = {}
    for name, results in by_engine.items():
        summary[name] = {
            "transactions_per_second": statistics.median(r["transactions_per_second"] for r in results),
            "latency_ms": {
                key: statistics.median(r["latency_ms"][key] for r in results)
                for key in ("median", "p99", "max")
            },
        }
    before, now = summary.values()
    ratios = {
        "throughput": round(now["transactions_per_second"] / before["transactions_per_second"], 2),
        **{
            f"latency_{key}": round(now["latency_ms"][key] / before["latency_ms"][key], 3)
            for key in ("median", "p99", "max")
        },
    }
    return {"rounds": by_engine, "median_of_rounds": summary, "now_over_before": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workers", type=int, default=32, help="concurrent tasks (the bot runs many handlers)"
    )
    parser.add_argument(
        "--transactions", type=int, default=40, help="verdicts each task records and reads back"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    from bench.reliability import environment

    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = [round(value, 2) for value in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(
            bench(workers=args.workers, transactions=args.transactions, rounds=args.rounds, workdir=Path(tmp))
        )
    result = {
        "benchmark": "sqlite_pool",
        "created_at": created_at,
        "command": " ".join(["python -m bench.bench_sqlite_pool", *sys.argv[1:]]),
        "workload": {
            "workers": args.workers,
            "transactions_per_worker": 2 * args.transactions,
            "what": "each worker: add_verdict in one transaction, get_verdict in the next, repeated",
        },
        **result,
        "environment": environment(),
        "load_average": {"before": load_before, "after": [round(value, 2) for value in os.getloadavg()]},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print("| engine | transactions/s | median ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    for name, row in result["median_of_rounds"].items():
        latency = row["latency_ms"]
        print(
            f"| {name} | {row['transactions_per_second']} | {latency['median']} | {latency['p99']} | {latency['max']} |"
        )
    print(f"now / before: {result['now_over_before']}")


if __name__ == "__main__":
    main()
