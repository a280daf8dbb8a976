"""Benchmark: the whole bot (real Application, SQLite, classifier) through the Bot API stand-in on 127.0.0.1.

For each model and micro-batching on/off it measures
- paced: messages arriving at RATE per second -> p50/p95 time from getUpdates delivery to sendMessage received;
- burst: BURST messages at once -> messages answered per second.
Models: multilingual-e5-small-ko (head untrained; speed only) and a randomly initialised model of
kykim/bert-kor-base's shape (vocab 42000, hidden 768, 12 layers, 12 heads) with e5's tokenizer.

    .venv/bin/python -m bench.bench_bot [--rate 30] [--paced 150] [--burst 200]
Prints a Markdown table. Not a test: numbers depend on the (shared, noisy) machine.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("MODERATOR_SHARED_DIR", REPO_ROOT.parent / "shared"))
TOKEN = "123456789:bench-token-0123456789abcdefghij"

sys.path.insert(0, str(REPO_ROOT / "tests" / "bot"))  # the Bot API stand-in lives with the tests

from bench.common import nsmc_file, prepare_model_dir


def reviews(n: int) -> list[str]:
    lines = nsmc_file(SHARED_DIR, "test").read_text(encoding="utf-8").splitlines()[1:]
    texts = [line.split("\t")[1] for line in lines if line.count("\t") == 2 and line.split("\t")[1].strip()]
    return (texts * (n // len(texts) + 1))[:n]


async def run_bot(
    model_dir: Path, *, window_ms: float, quantize: bool, rate: float, paced: int, burst: int, workdir: Path
) -> dict:
    from fake_telegram import FakeBotApi

    from bot import storage
    from bot.moderation import Moderation
    from bot.serving import MicroBatcher, ServingModel
    from bot.settings import Settings
    from bot.telegram.app import build_application
    from bot.telegram.runner import BotRunner
    from classifier import Classifier

    api = FakeBotApi(token=TOKEN)
    await api.start()
    url = f"sqlite+aiosqlite:///{workdir / f'bench-{time.monotonic_ns()}.db'}"
    await asyncio.to_thread(storage.upgrade_database, url)
    settings = Settings(
        _env_file=None,
        telegram_bot_token=TOKEN,
        telegram_base_url=api.base_url,
        database_url=url,
        batch_window_ms=window_ms,
        max_batch_size=64,
        retrain_cron=None,
    )
    engine = storage.create_engine(url)
    serving = ServingModel(await asyncio.to_thread(Classifier.load, model_dir, quantize=quantize), None)
    moderation = Moderation(
        session_factory=storage.make_session_factory(engine),
        serving=serving,
        batcher=MicroBatcher(serving, window_ms=window_ms, max_batch=64),
        settings=settings,
    )
    application = build_application(settings, moderation=moderation, engine=engine)
    runner = BotRunner(
        application, settings=settings, session_factory=moderation.session_factory, poll_timeout=1
    )
    await runner.start()  # the real delivery path: inbox, outbox, long polling
    texts = reviews(paced + burst + 10)
    try:

        async def send(batch: list[str], *, interval: float) -> list[dict]:
            messages = []
            for i, text in enumerate(batch):
                messages.append(
                    api.push_message(text, chat_id=10_000 + len(api.update_of_message), user_id=7)
                )
                if interval:
                    await asyncio.sleep(interval)
            await api.wait_until(lambda: all(api.replies_to(m) for m in messages), timeout=600)
            return messages

        await send(texts[:10], interval=0)  # warm-up
        paced_messages = await send(texts[10 : 10 + paced], interval=1.0 / rate)
        burst_messages = await send(texts[10 + paced :], interval=0)
    finally:
        await runner.stop()
        await api.stop()

    def reply_times(messages: list[dict]) -> list[tuple[float, float]]:
        times = []
        for message in messages:
            delivered = api.delivered_at[
                api.update_of_message[(message["chat"]["id"], message["message_id"])]
            ]
            reply_id = api.replies_to(message)[0]["message_id"]
            answered = next(r.at for r in api.calls("sendMessage") if r.result["message_id"] == reply_id)
            times.append((delivered, answered))
        return times

    latencies = sorted(answered - delivered for delivered, answered in reply_times(paced_messages))
    burst_times = reply_times(burst_messages)
    burst_span = max(a for _, a in burst_times) - min(d for d, _ in burst_times)
    return {
        "p50": statistics.median(latencies),
        "p95": latencies[int(0.95 * (len(latencies) - 1))],
        "burst_rate": len(burst_messages) / burst_span,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=30.0, help="paced arrival rate, messages per second")
    parser.add_argument("--paced", type=int, default=150, help="messages in the paced phase")
    parser.add_argument("--burst", type=int, default=200, help="messages arriving at once in the burst phase")
    parser.add_argument("--models", default="e5-small,bert-base-random")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    print(f"torch threads: {torch.get_num_threads()}, CPUs: {os.cpu_count()}", file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for kind in args.models.split(","):
            model_dir = prepare_model_dir(kind, shared_dir=SHARED_DIR, workdir=workdir, seed=0)
            # micro-batching on and off in fp32, then on with dynamic int8 (QUANTIZE=true)
            for window_ms, quantize in ((5.0, False), (0.0, False), (5.0, True)):
                result = asyncio.run(
                    run_bot(
                        model_dir,
                        window_ms=window_ms,
                        quantize=quantize,
                        rate=args.rate,
                        paced=args.paced,
                        burst=args.burst,
                        workdir=workdir,
                    )
                )
                batching = "on (5 ms, ≤64)" if window_ms else "off"
                rows.append((kind, "int8" if quantize else "fp32", batching, result))
                print(kind, window_ms, quantize, result, file=sys.stderr)
    print(
        f"| model | weights | micro-batching | p50 update→reply at {args.rate:g} msg/s | p95 | burst of {args.burst}: answered msg/s |"
    )
    print("|---|---|---|---|---|---|")
    for kind, weights, batching, r in rows:
        print(
            f"| {kind} | {weights} | {batching} | {1000 * r['p50']:.0f} ms | {1000 * r['p95']:.0f} ms | {r['burst_rate']:.1f} |"
        )


if __name__ == "__main__":
    main()
