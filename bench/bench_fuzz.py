"""Fuzz: 10,000 seeded, hostile Telegram updates through the whole bot (runner, inbox, outbox, PTB, SQLite) against
the Bot API stand-in on 127.0.0.1. CI runs 1,000 of them (tests/bot/test_fuzz_updates.py); this runs the full
count and reports handler exceptions, unanswered callbacks, replies over Telegram's limits and updates not
processed, all of which must be 0.

    .venv/bin/python -m bench.bench_fuzz [--count 10000] [--seed 20261125] [--model DIR]

Without --model it builds a tiny randomly initialised BERT with multilingual-e5-small-ko's tokenizer (verdicts
are coin flips; the fuzz is about everything around them). Prints a Markdown table and writes
bench/results/fuzz.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("MODERATOR_SHARED_DIR", REPO_ROOT.parent / "shared"))
TOKEN = "123456789:fuzz-token-0123456789abcdefghijk"
ADMIN_ID = 4242

# the Bot API stand-in and the fuzzer live with the tests
sys.path.insert(0, str(REPO_ROOT / "tests" / "bot"))


def tiny_model(workdir: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from bench.common import e5_dir

    tokenizer = AutoTokenizer.from_pretrained(e5_dir(SHARED_DIR))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=2,
        id2label={0: "부정", 1: "긍정"},
        label2id={"부정": 0, "긍정": 1},
    )
    target = workdir / "tiny-model"
    BertForSequenceClassification(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


async def fuzz(model_dir: Path, *, count: int, seed: int, workdir: Path) -> dict:
    from fake_telegram import FakeBotApi
    from fuzz_updates import run_fuzz

    from bot import storage
    from bot.moderation import Moderation
    from bot.serving import MicroBatcher, ServingModel
    from bot.settings import Settings
    from bot.telegram.app import build_application
    from bot.telegram.runner import BotRunner
    from classifier import Classifier

    api = FakeBotApi(token=TOKEN)
    await api.start()
    url = f"sqlite+aiosqlite:///{workdir / 'fuzz.db'}"
    await asyncio.to_thread(storage.upgrade_database, url)
    settings = Settings(
        _env_file=None,
        telegram_bot_token=TOKEN,
        telegram_base_url=api.base_url,
        telegram_base_file_url=api.base_url.replace("/bot", "/file/bot"),
        database_url=url,
        admin_ids=frozenset({ADMIN_ID}),
        retrain_cron=None,
        feedback_rate_limit_per_hour=1_000_000,
        outbox_flush_interval_seconds=0.5,
    )
    engine = storage.create_engine(url)
    session_factory = storage.make_session_factory(engine)
    async with session_factory.begin() as session:
        version = await storage.register_model_version(
            session, path=str(model_dir), base_checkpoint="bench", metrics={"accuracy": 0.5}
        )
        await storage.activate_model_version(session, version_id=version.id)
    classifier = await asyncio.to_thread(Classifier.load, model_dir, max_length=64)
    serving = ServingModel(classifier, version.id)
    moderation = Moderation(
        session_factory=session_factory,
        serving=serving,
        batcher=MicroBatcher(serving, window_ms=5.0, max_batch=64),
        settings=settings,
    )
    application = build_application(settings, moderation=moderation, engine=engine)
    runner = BotRunner(application, settings=settings, session_factory=session_factory, poll_timeout=1)
    await runner.start()
    bot = SimpleNamespace(api=api, application=application, session=session_factory.begin)
    try:
        report = await run_fuzz(bot, count=count, seed=seed, timeout=1800.0)
    finally:
        await runner.stop()
        await api.stop()
    return {
        "updates": report.updates,
        "seed": seed,
        "handler_exceptions": len(report.handler_exceptions),
        "exception_samples": report.handler_exceptions[:10],
        "callbacks": report.callbacks,
        "callbacks_answered": report.callbacks_answered,
        "replies": report.replies,
        "replies_over_limit": len(report.over_limit),
        "private_messages": report.private_messages,
        "private_messages_not_answered_once": len(report.private_messages_not_answered_once),
        "updates_not_processed": len(report.not_processed),
        "seconds": round(report.seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--model", type=Path, help="a model version directory (default: a tiny random BERT)")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench" / "results" / "fuzz.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tornado.access").setLevel(logging.CRITICAL)  # the stand-in's own 4xx/5xx lines
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from datetime import UTC, datetime

    from bench.reliability import environment

    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = [round(value, 2) for value in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model_dir = args.model or tiny_model(workdir)
        result = asyncio.run(fuzz(model_dir, count=args.count, seed=args.seed, workdir=workdir))
    # Where and when it ran, and how busy the machine was (the time depends on it; the counts do not).
    result["created_at"] = started_at
    result["environment"] = environment()
    result["load_average"] = {"before": load_before, "after": [round(value, 2) for value in os.getloadavg()]}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(
        "| updates | handler exceptions | callbacks answered | replies over limit | not processed | seconds |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| {result['updates']:,} | {result['handler_exceptions']} | "
        f"{result['callbacks_answered']:,} / {result['callbacks']:,} | {result['replies_over_limit']} | "
        f"{result['updates_not_processed']} | {result['seconds']} |"
    )


if __name__ == "__main__":
    main()
