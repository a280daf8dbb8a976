"""Benchmark: does the learning loop learn the right lesson? The real bot, through the Bot API stand-in.

Setting (issue 10): the quick-start model (`make run`'s first model: multilingual-e5-small-ko fine-tuned on 2,000
NSMC reviews) errs systematically on reviews that name a low score (`bench.learning_loop_data.PATTERN`: ~45%
error, mostly positive reviews called negative). Through the real python-telegram-bot stack, the real runner
(inbox, outbox), a real SQLite file and the real retraining service:

1. **Honest users.** 150 pattern reviews and 200 ordinary reviews (rated Naver reviews outside NSMC) arrive in
   review groups, each from its own user. Ten correctors, in pairs, correct every wrong pattern verdict (틀렸어요)
   and confirm ~30% of the right ones (맞아요). An admin labels 30 items of the `/review` queue (with their true labels) and sends `/retrain`. All
   settings are the defaults (4,000 fresh NSMC rows, 2 epochs, the 20,000-review gate, tolerance 0.5).
2. **Poisoning.** Then, against the model the honest run produced, two colluding accounts at the hourly rate
   limit: each hour both mark the same 30 correct verdicts of ordinary reviews as wrong (two users agree), and the
   admin retrains: three runs (30, 60, 90 poisoned labels on top of the honest ones). Time between runs is
   simulated by ageing the colluders' labels an hour, which is what the rate limit counts.

Reported: promoted or not; pattern error on the held-out pattern reviews (never sent to the bot), overall and per
class, with 95% intervals; base accuracy on 10,000 NSMC test reviews outside the gate's evaluation set; the run's
wall time and its gate record; for the poisoning, how many poisoned labels each run trained on and how many of the
colluders' reviews each model answers as they asked. Models are scored as the bot serves them.

    .venv/bin/python -m bench.bench_learning_loop [--scenario both|honest] [--workdir DIR]
    .venv/bin/python -m bench.bench_learning_loop --lockstep-min-shared 0 --output ...  # without the collusion rule

Writes bench/results/learning_loop.json. Expect about an hour on 2 CPU cores (four e5 retraining runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "bot"))  # the Bot API stand-in lives with the tests

from bench.common import RESULTS_DIR
from bench.learning_loop_data import (
    DEFAULT_MODEL_DIR,
    DEFAULT_SEED,
    PATTERN,
    error_report,
    load_rated_reviews,
    pattern_reviews,
)

TOKEN = "123456789:bench-learning-loop-0123456789abcdef"
ADMIN = 4242
CORRECTORS = tuple(
    range(7000, 7010)
)  # honest users who press 틀렸어요 / 맞아요 (ten, so none hits the hourly limit)
COLLUDERS = (6661, 6662)
GROUP_SIZE = 15
CONFIRM_SHARE = 0.3
REVIEW_ITEMS = 30
POISON_PER_RUN = 30  # the default FEEDBACK_RATE_LIMIT_PER_HOUR
POISON_RUNS = 3
ORDINARY_REVIEWS = 200
BASE_EVAL_SIZE = 10_000
SHARED_DIR = Path(os.environ.get("MODERATOR_SHARED_DIR", REPO_ROOT.parent / "shared"))
# Settings that differ from the defaults: only with --smoke (tiny runs that check the plumbing in minutes; their
# figures mean nothing and are never reported) or --lockstep-min-shared (the ablation of the collusion rule).
SETTINGS_OVERRIDES: dict[str, Any] = {}
SMOKE = {"retrain_train_size": 200, "retrain_epochs": 1.0, "retrain_eval_size": 100, "gate_eval_size": 300}

logger = logging.getLogger("bench.learning_loop")


def ensure_quickstart_model(path: Path, shared_dir: Path) -> Path:
    """The model `make run` trains first (same recipe), trained here when missing."""
    if (path / "config.json").is_file():
        return path
    from trainer import TrainConfig, train

    logger.info("training the quick-start model into %s", path)
    train(
        TrainConfig(
            output=path,
            base=str(shared_dir / "models" / "multilingual-e5-small-ko"),
            korpora_root=shared_dir / "korpora",
            train_size=2000,
            eval_size=500,
            epochs=1,
            max_length=128,
        )
    )
    return path


@dataclass
class Traffic:
    """What the users send: pattern reviews for the bot, ordinary reviews, and their true labels."""

    pattern: list[tuple[str, int]]
    ordinary: list[tuple[str, int]]
    truth: dict[str, int] = field(default_factory=dict)


def build_traffic(shared_dir: Path, seed: int) -> tuple[Traffic, Any]:
    frame = load_rated_reviews(shared_dir)
    bot_set, heldout = pattern_reviews(frame, seed=seed)
    others = frame.loc[~PATTERN.mask(frame["text"])].sample(ORDINARY_REVIEWS, random_state=seed)
    traffic = Traffic(
        pattern=list(zip(bot_set["text"], map(int, bot_set["label"]), strict=True)),
        ordinary=list(zip(others["text"], map(int, others["label"]), strict=True)),
    )
    traffic.truth = {text: label for text, label in traffic.pattern + traffic.ordinary}
    return traffic, heldout


def base_evaluation(settings, seed: int, size: int) -> tuple[list[str], list[int]]:
    """10,000 NSMC test reviews outside the gate's fixed set (never trained on, never used to decide)."""
    import pandas as pd

    from bot.retraining.dataset import gate_eval_set
    from trainer.data import load_nsmc, normalized_text

    gate = {normalized_text(text) for text in gate_eval_set(settings).texts}
    corpus = load_nsmc(settings.korpora_root)
    frame = pd.DataFrame({"text": list(corpus.test.texts), "label": list(corpus.test.labels)})
    frame = frame.loc[~frame["text"].map(normalized_text).isin(gate)]
    frame = frame.loc[frame["text"].str.strip().str.len() >= 6].sample(size, random_state=seed)
    return frame["text"].tolist(), [int(label) for label in frame["label"]]


def score(model_path: Path, settings, heldout, base_texts, base_labels, targets=()) -> dict[str, Any]:
    """Pattern error (overall, per class), base accuracy and, given the colluders' `targets` (text, true label),
    how many of those the model now gets wrong, as they asked; all as the bot serves the model."""
    from bot.serving import load_serving_classifier

    classifier = load_serving_classifier(model_path, settings)
    positive = classifier.label2id["긍정"]
    pattern = [int(v.label == positive) for v in classifier.predict(heldout["text"].tolist())]
    base = [int(v.label == positive) for v in classifier.predict(base_texts)]
    correct = sum(int(p == y) for p, y in zip(base, base_labels, strict=True))
    from scipy.stats import binomtest

    interval = binomtest(correct, len(base_labels)).proportion_ci(method="wilson")
    poisoned = [v.label for v in classifier.predict([text for text, _ in targets])] if targets else []
    return {
        "poison_targets_wrong": sum(int(p != label) for p, (_, label) in zip(poisoned, targets, strict=True)),
        "poison_targets": len(targets),
        "pattern": error_report(heldout["label"].tolist(), pattern),
        "base_accuracy": correct / len(base_labels),
        "base_ci95": [round(interval.low, 4), round(interval.high, 4)],
        "base_n": len(base_labels),
        "base_predictions": base,
    }


class BotUnderTest:
    """The real bot (Application + runner + retraining service) against the stand-in, in one work folder."""

    def __init__(self, workdir: Path, shared_dir: Path, model_dir: Path) -> None:
        self.workdir = workdir
        self.shared_dir = shared_dir
        self.model_dir = model_dir
        self.api = None
        self.runner = None
        self.moderation = None
        self.settings = None
        self.engine = None

    async def start(self) -> None:
        from fake_telegram import FakeBotApi

        from bot import storage, versions
        from bot.moderation import Moderation
        from bot.retraining import attach_retraining
        from bot.serving import MicroBatcher, ServingModel
        from bot.settings import Settings
        from bot.telegram.app import build_application
        from bot.telegram.runner import BotRunner

        self.api = FakeBotApi(token=TOKEN)
        await self.api.start()
        self.settings = Settings(  # the defaults, but for where things live and who the admin is
            _env_file=None,
            **SETTINGS_OVERRIDES,
            telegram_bot_token=TOKEN,
            telegram_base_url=self.api.base_url,
            database_url=f"sqlite+aiosqlite:///{self.workdir / 'moderator.db'}",
            model_dir=self.workdir / "models",
            runs_dir=self.workdir / "runs",
            korpora_root=self.shared_dir / "korpora",
            admin_ids=frozenset({ADMIN}),
            retrain_cron=None,
        )
        await asyncio.to_thread(storage.upgrade_database, self.settings.database_url)
        self.engine = storage.create_engine(self.settings.database_url)
        session_factory = storage.make_session_factory(self.engine)
        copy = self.settings.model_dir / "quickstart"
        if not copy.exists():
            shutil.copytree(self.model_dir, copy)
            await versions.register(session_factory, self.settings, path=copy, activate_it=True)
        active = await versions.load_active_or_fall_back(session_factory, self.settings)
        serving = ServingModel(active.classifier, active.version.id)
        self.moderation = Moderation(
            session_factory=session_factory,
            serving=serving,
            batcher=MicroBatcher(serving, window_ms=self.settings.batch_window_ms, max_batch=64),
            settings=self.settings,
        )
        application = build_application(self.settings, moderation=self.moderation, engine=self.engine)
        attach_retraining(application, settings=self.settings, moderation=self.moderation)
        self.runner = BotRunner(
            application, settings=self.settings, session_factory=session_factory, poll_timeout=1
        )
        await self.runner.start()

    async def stop(self) -> None:
        await self.runner.stop()
        await self.api.stop()

    @property
    def sessions(self):
        return self.moderation.session_factory

    async def send(self, reviews: list[tuple[str, int]], first_user: int) -> list[tuple[dict, dict, int]]:
        """Each review from its own user, in review groups of `GROUP_SIZE` (a group gets Telegram's 20 messages a
        minute), mentioning the bot; (message, the bot's reply, true label) each."""
        sent = []
        for index, (text, label) in enumerate(reviews):
            group = -(first_user * 10 + index // GROUP_SIZE)
            message = self.api.push_message(
                f"@review_mod_bot {text}", chat_id=group, chat_type="supergroup", user_id=first_user + index
            )
            sent.append((message, label))
        replies = []
        for message, label in sent:
            reply = await self.api.wait_for_reply(message, timeout=120)
            replies.append((message, reply, label))
        return replies

    async def press(self, reply: dict, action: str, user: int) -> str:
        verdict_id = _verdict_id(reply)
        before = len(self.api.calls("answerCallbackQuery"))
        self.api.push_callback(data=f"{action}:{verdict_id}", message=reply, user_id=user)
        await self.api.wait_until(lambda: len(self.api.calls("answerCallbackQuery")) > before, timeout=60)
        return self.api.calls("answerCallbackQuery")[before].params.get("text", "")

    async def admin_command(self, text: str) -> dict:
        message = self.api.push_message(text, chat_id=ADMIN, user_id=ADMIN)
        return await self.api.wait_for_reply(message, timeout=120)

    async def review(self, items: int, truth: dict[str, int]) -> list[dict]:
        """The admin works through the review queue, answering each item with its true label."""
        labelled = []
        item = await self.admin_command("/review")
        for _ in range(items):
            buttons = [b for row in (item.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]
            if not buttons:
                break
            text = item["text"].split("\n\n")[1]
            label = truth.get(text)
            choice = (
                next(b for b in buttons if b["callback_data"].endswith(f":{label}"))
                if label is not None
                else buttons[-1]
            )
            before = len(self.api.sent(chat_id=ADMIN))
            self.api.push_callback(data=choice["callback_data"], message=item, user_id=ADMIN)
            await self.api.wait_until(
                lambda before=before: len(self.api.sent(chat_id=ADMIN)) > before, timeout=60
            )
            labelled.append({"text": text, "label": label, "margin_rank": len(labelled)})
            item = self.api.sent(chat_id=ADMIN)[-1]
        return labelled

    async def retrain(self) -> dict[str, Any]:
        from bot import storage

        started = time.perf_counter()
        reply = await self.admin_command("/retrain")
        run_id = int(re.search(r"#(\d+)", reply["text"])[1])
        outcome = await self.moderation.retrainer.wait_for_run(run_id)
        wall = time.perf_counter() - started
        async with self.sessions() as session:
            run = await storage.get_training_run(session, run_id=run_id)
            version = (
                await storage.get_model_version(session, version_id=run.model_version_id)
                if run.model_version_id
                else None
            )
        return {
            "run_id": run_id,
            "status": str(outcome.status),
            "promoted": outcome.status.value == "succeeded",
            "wall_seconds": round(wall, 1),
            "reason": outcome.decision.reason if outcome.decision else outcome.error,
            "gate": outcome.gate,
            "model_path": version.path if version else None,
            "summary": outcome.summary,
        }


def _verdict_id(reply: dict) -> int:
    buttons = [b for row in reply["reply_markup"]["inline_keyboard"] for b in row]
    return int(buttons[0]["callback_data"].split(":")[1])


def _is_wrong(reply: dict, label: int) -> bool:
    return not reply["text"].startswith(("부정", "긍정")[label])


async def honest_traffic(bot: BotUnderTest, traffic: Traffic, rng: random.Random) -> dict[str, Any]:
    pattern_replies = await bot.send(traffic.pattern, first_user=10_000)
    ordinary_replies = await bot.send(traffic.ordinary, first_user=20_000)
    corrected = confirmed = 0
    for _, reply, label in pattern_replies:
        pair = rng.sample(CORRECTORS, 2)
        if _is_wrong(reply, label):
            for user in pair:
                await bot.press(reply, "wrong", user)
            corrected += 1
        elif rng.random() < CONFIRM_SHARE:
            for user in pair:
                await bot.press(reply, "ok", user)
            confirmed += 1
    reviewed = await bot.review(REVIEW_ITEMS, traffic.truth)
    return {
        "pattern_sent": len(pattern_replies),
        "ordinary_sent": len(ordinary_replies),
        "pattern_wrong_corrected": corrected,
        "pattern_right_confirmed": confirmed,
        "review_items_labelled": len(reviewed),
        "review_items_from_pattern": sum(
            1 for item in reviewed if re.search(PATTERN.regex, item["text"] or "")
        ),
        "ordinary_replies": ordinary_replies,
    }


async def poison(bot: BotUnderTest, ordinary_replies, used: set[int], targets: list[tuple[str, int]]) -> int:
    """Both colluders mark the same correct verdicts of ordinary reviews as wrong, up to the hourly limit; each
    review they flip is added to `targets` (its text and true label)."""
    from sqlalchemy import select

    from bot.storage import Feedback

    async with bot.sessions() as session, session.begin():  # an hour has passed since their last labels
        for row in await session.scalars(select(Feedback).where(Feedback.user_id.in_(COLLUDERS))):
            row.created_at -= timedelta(hours=1)
            row.updated_at -= timedelta(hours=1)
    poisoned = 0
    for message, reply, label in ordinary_replies:
        verdict_id = _verdict_id(reply)
        if poisoned == POISON_PER_RUN or verdict_id in used or _is_wrong(reply, label):
            continue
        answers = [await bot.press(reply, "wrong", user) for user in COLLUDERS]
        if all("기록했어요" in answer for answer in answers):
            poisoned += 1
            used.add(verdict_id)
            targets.append((message["text"].removeprefix("@review_mod_bot "), label))
    return poisoned


async def poisoned_labels_counted(bot: BotUnderTest, used: set[int]) -> int:
    """How many of the colluders' labels the next run trains on (with the bot's own export rule): their verdicts
    exported with a label other than the verdict (they flipped correct verdicts). A verdict a reviewer also labelled
    is exported with the reviewer's label, which wins, so it does not count."""
    from bot import storage
    from bot.retraining.dataset import human_label_rule

    async with bot.sessions() as session:
        labels = await storage.export_human_labels(session, **human_label_rule(bot.settings))
    return sum(1 for example in labels if example.verdict_id in used and example.label != example.predicted)


async def run_scenarios(args, traffic: Traffic, heldout, base_eval, before) -> dict[str, Any]:
    """One bot in production: the honest users' labels and a retraining; then the colluders attack the model that
    run produced, retraining after each hour of poisoning."""
    workdir = args.workdir / "bot"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    bot = BotUnderTest(workdir, args.shared_dir, args.model)
    await bot.start()
    rng = random.Random(args.seed)
    results: dict[str, Any] = {
        "honest": {"runs": []},
        "poison": {"runs": [], "poisoned_labels": [], "poisoned_labels_counted": []},
    }
    targets: list[tuple[str, int]] = []
    try:
        honest = await honest_traffic(bot, traffic, rng)
        ordinary_replies = honest.pop("ordinary_replies")
        results["honest"]["traffic"] = honest
        run = await bot.retrain()
        logger.info("honest run: %s (%s)", run["status"], run["reason"])
        results["honest"]["runs"].append(run)
        used: set[int] = set()
        for index in range(POISON_RUNS if args.scenario == "both" else 0):
            results["poison"]["poisoned_labels"].append(await poison(bot, ordinary_replies, used, targets))
            results["poison"]["poisoned_labels_counted"].append(await poisoned_labels_counted(bot, used))
            run = await bot.retrain()
            logger.info("poisoned run %d: %s (%s)", index + 1, run["status"], run["reason"])
            results["poison"]["runs"].append(run)
    finally:
        await bot.stop()
    for scenario in results.values():
        for run in scenario["runs"]:
            if run["model_path"]:
                after = await asyncio.to_thread(
                    score, Path(run["model_path"]), bot.settings, heldout, *base_eval, targets
                )
                run["after"] = _summarise(after, before)
    return results


def _summarise(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    from scipy.stats import binomtest

    gained = sum(
        1
        for a, b, y in zip(
            after["base_predictions"], before["base_predictions"], before["labels"], strict=True
        )
        if a == y != b
    )
    lost = sum(
        1
        for a, b, y in zip(
            after["base_predictions"], before["base_predictions"], before["labels"], strict=True
        )
        if b == y != a
    )
    p_value = binomtest(gained, gained + lost).pvalue if gained + lost else 1.0
    pattern_before = before["pattern"]["overall"]["error"]
    return {
        "pattern": after["pattern"],
        "pattern_error_change": after["pattern"]["overall"]["error"] - pattern_before,
        "pattern_error_reduction": 1 - after["pattern"]["overall"]["error"] / pattern_before,
        "per_class_error_change_points": {
            name: round(100 * (after["pattern"][name]["error"] - before["pattern"][name]["error"]), 2)
            for name in ("부정", "긍정")
        },
        "base_accuracy": after["base_accuracy"],
        "base_ci95": after["base_ci95"],
        "base_change_points": round(100 * (after["base_accuracy"] - before["base_accuracy"]), 2),
        "base_paired": {"gained": gained, "lost": lost, "mcnemar_p": round(p_value, 4)},
        "poison_targets_wrong": after["poison_targets_wrong"],
        "poison_targets": after["poison_targets"],
    }


async def main_async(args) -> dict[str, Any]:
    from bot.serving import prepare_model_version, serving_tag
    from bot.settings import Settings

    ensure_quickstart_model(args.model, args.shared_dir)
    traffic, heldout = build_traffic(args.shared_dir, args.seed)
    settings = Settings(
        _env_file=None,
        korpora_root=args.shared_dir / "korpora",
        runs_dir=args.workdir / "runs",
        **SETTINGS_OVERRIDES,
    )
    # The starting model as the bot serves it: prepared (fast-path artefact built) in a copy, like an import.
    starting_model = args.workdir / "quickstart"
    if not starting_model.exists():
        shutil.copytree(args.model, starting_model)
    await asyncio.to_thread(prepare_model_version, starting_model, settings)
    results_model = str(args.model)
    args.model = starting_model
    base_eval = await asyncio.to_thread(
        base_evaluation, settings, args.seed, 500 if args.smoke else BASE_EVAL_SIZE
    )
    before = await asyncio.to_thread(score, args.model, settings, heldout, *base_eval)
    before["labels"] = base_eval[1]
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPU cores",
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
        "model": results_model,
        "pattern": {"name": PATTERN.name, "regex": PATTERN.regex},
        "heldout_pattern_reviews": len(heldout),
        "before": {key: value for key, value in before.items() if key not in ("base_predictions", "labels")},
        "serving": serving_tag(settings),
    }
    results.update(await run_scenarios(args, traffic, heldout, base_eval, before))
    results["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenario", choices=("both", "honest"), default="both", help="honest only, or honest then poisoning"
    )
    parser.add_argument("--shared-dir", type=Path, default=SHARED_DIR)
    parser.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL_DIR, help="the quick-start model (trained if missing)"
    )
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "data" / "bench-learning-loop")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "learning_loop.json")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny runs to check the plumbing (figures meaningless)"
    )
    parser.add_argument(
        "--lockstep-min-shared",
        type=int,
        default=None,
        help="LOCKSTEP_MIN_SHARED_LABELS for the bot (0: the collusion rule off, the ablation)",
    )
    args = parser.parse_args(argv)
    if args.lockstep_min_shared is not None:
        SETTINGS_OVERRIDES["lockstep_min_shared_labels"] = args.lockstep_min_shared
    if args.smoke:
        SETTINGS_OVERRIDES.update(SMOKE)
        args.workdir = args.workdir / "smoke"
        args.output = args.workdir / "learning_loop_smoke.json"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "telegram", "apscheduler", "aiosqlite", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results = asyncio.run(main_async(args))
    args.output.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    print(json.dumps({k: v for k, v in results.items() if k in ("before",)}, ensure_ascii=False, indent=1))
    for name in ("honest", "poison"):
        for run in results.get(name, {}).get("runs", []):
            print(
                name,
                run["run_id"],
                run["status"],
                run["wall_seconds"],
                "s",
                json.dumps(run.get("after", {}), ensure_ascii=False)[:600],
            )


if __name__ == "__main__":
    main()
