"""Benchmark: does the learning loop learn the right lesson from the right people? The real bot, through the stand-in.

Setting (issue 10): the quick-start model (`make run`'s first model: multilingual-e5-small-ko fine-tuned on 2,000
NSMC reviews) errs systematically on reviews that name a low score (`bench.learning_loop_data.PATTERN`: ~45%
error, mostly positive reviews called negative). Through the real python-telegram-bot stack, the real runner
(inbox, outbox), a real SQLite file and the real retraining service, with the DEFAULT settings (only where things
live and who the admin and the reviewer are, and no scheduled runs; `--smoke` shrinks the runs), four scenarios,
each from the quick-start model and a fresh database:

(a) **An honest fixed pair in a group.** 150 pattern reviews and 200 ordinary reviews (rated Naver reviews outside
    NSMC) arrive in review groups, each from its own user. The same two members correct every wrong pattern
    verdict (틀렸어요) and confirm ~30% of the right ones (맞아요); when the hourly limit stops them, an hour passes
    (their labels are aged an hour). The admin works `/review` in a private chat, answering each item with its
    true label, until the queue shows no more disputed items or 20 answers are spent, then sends `/retrain`.
    Goal: their labels are trained on, and in one run the pattern's error falls >= 50% with neither class's
    error rising more than 10 points.
(b) **Lone users in private chats.** The same 350 reviews, dealt to 12 users who each send theirs in a private
    chat, correct every wrong verdict on them and confirm ~30% of the right ones. A reviewer (REVIEWER_IDS, not
    an admin) works `/review` (at most 40 answers, stopping when no disputed item is left); the admin retrains.
    Same goal as (a).
(c) **Colluders.** On top of (a) (its database and its model; with `--scenario c` alone, (a)'s honest phase runs
    first), each hour two colluding accounts at the hourly limit both mark the same 30 right verdicts of
    ordinary reviews as wrong, the reviewer answers at most 10 queue items, and the admin retrains: three runs,
    an hour apart (all labels are aged an hour between runs, which is what the rate limit counts).
    Goal: 0 poisoned labels trained on.
(d) **An attacker with 10 accounts that also label honestly.** The reviews of (a) arrive in groups; each account
    gives 24 labels, one in four a flip of a right verdict of an ordinary review and the rest honest (corrections
    of wrong verdicts first, then confirmations of right pattern verdicts); the accounts take turns, label by
    label. The flips fall on ordinary reviews, which arrive after the pattern reviews (newer verdicts). The
    reviewer answers at most 40 queue items; the admin retrains once. Reported: poisoned labels trained on.

A *poisoned label* is an attacker's label (colluder or attacker account) that differs from the true label. It
is *trained on* by a run when the run used it (`feedback.used_by_run_id` set, by this run or an earlier one) and
the run's `human_labels_train.csv` holds its review with the attacker's label.

Reported per scenario: the labels given (corrections, confirmations, flips, by role, with how the bot answered
each: counts now / waits for a reviewer / cannot count), the reviewer's answers (which labellers each one
checked), the labellers' records (spot checks, agreed, standing; computed here from the labels and, when the
bot exposes it, the bot's own), `/stats` before the run, and per run: promoted or not with the gate's record,
the labels counted (trained on and held out, by role and from the run's files), poisoned labels trained on,
pattern error before/after (overall and per class, 95% Wilson intervals) on 1,500 held-out pattern reviews
never sent to the bot, base accuracy on 10,000 NSMC test reviews outside the gate's set (paired against the
starting model), and wall times. Models are scored as the bot serves them.

    .venv/bin/python -m bench.bench_learning_loop [--scenario a|b|c|d|all] [--workdir DIR] [--smoke]

`--scenario all` (the default) writes bench/results/learning_loop.json (a key per scenario); `--scenario x`
writes bench/results/learning_loop_x.json. Expect about 1.5 h on 2 quiet CPU cores for all (six e5 retraining
runs: a, three for c on top of a, b, d; each ~8-10 min, longer on a loaded machine, plus ~2 min of scoring per
model). `--smoke` runs tiny retrainings to check the plumbing (about 30 min for all on 2 shared cores, most of
it the six runs' fixed costs); its figures mean nothing and it writes only under the work folder.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import functools
import itertools
import json
import logging
import os
import platform
import random
import re
import shutil
import sys
import time
import unicodedata
from collections import Counter, defaultdict
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
    LABEL_NAMES,
    PATTERN,
    error_report,
    load_rated_reviews,
    pattern_reviews,
)

TOKEN = "123456789:bench-learning-loop-0123456789abcdef"
ADMIN = 4242  # ADMIN_IDS
REVIEWER = 4343  # REVIEWER_IDS (not an admin)
PAIR = (7001, 7002)  # (a): the honest fixed pair
LONE_USERS = tuple(range(7100, 7112))  # (b): twelve users, each in their own private chat
COLLUDERS = (6661, 6662)  # (c)
ATTACKER_ACCOUNTS = tuple(range(6800, 6810))  # (d)
PATTERN_SENDERS, ORDINARY_SENDERS = 10_000, 20_000  # first user ids of the people who send reviews in groups
SCENARIOS = ("a", "b", "c", "d")

GROUP_SIZE = 15  # reviews per review group (a group gets Telegram's 20 messages a minute)
CONFIRM_SHARE = 0.3  # honest users confirm this share of the right verdicts they see
ORDINARY_REVIEWS = 200
REVIEW_BOUND = {"a": 20, "b": 40, "c": 10, "d": 40}  # reviewer answers (c: per run)
POISON_PER_RUN = 30  # the default FEEDBACK_RATE_LIMIT_PER_HOUR
POISON_RUNS = 3
ATTACK_LABELS_PER_ACCOUNT = 24  # (d): under the hourly limit
ATTACK_FLIP_EVERY = 4  # (d): every 4th label of an account is a flip
BASE_EVAL_SIZE = 10_000
SHARED_DIR = Path(os.environ.get("MODERATOR_SHARED_DIR", REPO_ROOT.parent / "shared"))
# Settings that differ from the defaults: only with --smoke (tiny runs that check the plumbing in minutes; their
# figures mean nothing and are never reported).
SETTINGS_OVERRIDES: dict[str, Any] = {}
SMOKE = {"retrain_train_size": 200, "retrain_epochs": 1.0, "retrain_eval_size": 100, "gate_eval_size": 300}
SMOKE_BASE_EVAL_SIZE = 500
REPLY_TIMEOUT_S = 120
NEXT_ITEM_TIMEOUT_S = 20
ATTACKER_ROLES = ("colluder", "attacker")
SETTINGS_REPORTED = (
    "feedback_rate_limit_per_hour",
    "spot_checks_required",
    "labeller_min_accuracy",
    "spot_check_rate",
    "trust_feedback",
    "correction_weight",
    "correction_balance",
    "correction_holdout_fraction",
    "correction_neighbours",
    "retrain_from",
    "retrain_epochs",
    "retrain_best_metric",
    "retrain_train_size",
    "retrain_eval_size",
    "retrain_batch_size",
    "retrain_learning_rate",
    "retrain_max_length",
    "retrain_seed",
    "gate_eval_size",
    "gate_confidence",
    "promotion_tolerance",
    "review_window_days",
    "fast_inference",
    "retrain_cron",
)

logger = logging.getLogger("bench.learning_loop")


def ensure_quickstart_model(path: Path, shared_dir: Path, task: str = "sentiment") -> Path:
    """The task's model `make run` trains first (same recipe), trained here when missing."""
    if (path / "config.json").is_file():
        return path
    from bot.quickstart import FIRST_MODEL_RECIPE, FIRST_TOXICITY_RECIPE
    from trainer import TrainConfig, train

    logger.info("training the quick-start %s model into %s", task, path)
    train(
        TrainConfig(
            output=path,
            task=task,
            base=str(shared_dir / "models" / "multilingual-e5-small-ko"),
            korpora_root=shared_dir / "korpora",
            **(FIRST_MODEL_RECIPE if task == "sentiment" else FIRST_TOXICITY_RECIPE),
        )
    )
    return path


# --- traffic -----------------------------------------------------------------------------------------------


def _is_review(text: str) -> bool:
    """What the bot classifies and stores (>= 6 visible characters, one of them a letter or a digit): the bot's
    own rule when it has one, else the same rule written here."""
    try:
        from bot.reviews import is_review
    except ImportError:
        visible = sum(1 for c in text if not c.isspace() and unicodedata.category(c)[0] not in "CZ")
        return visible >= 6 and any(c.isalnum() for c in text)
    return is_review(text)


@dataclass
class Traffic:
    """What users send: pattern reviews (the bot set), ordinary reviews, and their true labels (0 부정, 1 긍정)."""

    pattern: list[tuple[str, int]]
    ordinary: list[tuple[str, int]]
    not_reviews: dict[str, int] = field(default_factory=dict)  # dropped: the bot would not classify them
    truth: dict[str, int] = field(default_factory=dict)


def build_traffic(shared_dir: Path, seed: int) -> tuple[Traffic, Any]:
    frame = load_rated_reviews(shared_dir)
    bot_set, heldout = pattern_reviews(frame, seed=seed)
    others = frame.loc[~PATTERN.mask(frame["text"])].sample(ORDINARY_REVIEWS, random_state=seed)
    pattern = list(zip(bot_set["text"], map(int, bot_set["label"]), strict=True))
    ordinary = list(zip(others["text"], map(int, others["label"]), strict=True))
    traffic = Traffic(
        pattern=[(text, label) for text, label in pattern if _is_review(text)],
        ordinary=[(text, label) for text, label in ordinary if _is_review(text)],
        not_reviews={
            "pattern": sum(1 for text, _ in pattern if not _is_review(text)),
            "ordinary": sum(1 for text, _ in ordinary if not _is_review(text)),
        },
    )
    traffic.truth = {text: label for text, label in traffic.pattern + traffic.ordinary}
    return traffic, heldout


@dataclass
class Review:
    """One review as sent to the bot, with the bot's verdict on it."""

    text: str
    label: int  # the true label
    pattern: bool
    sender: int
    message: dict
    reply: dict | None = None  # the bot's verdict message (with its 맞아요 / 틀렸어요 buttons)
    verdict_id: int | None = None
    predicted: int | None = None  # the bot's verdict, as a LABEL_NAMES index

    @property
    def wrong(self) -> bool:
        return self.predicted != self.label


# --- scoring ----------------------------------------------------------------------------------------------


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
    """Pattern error (overall, per class), base accuracy and, given the attackers' `targets` (text, true label),
    how many of those the model now gets wrong, as they asked; all as the bot serves the model."""
    from scipy.stats import binomtest

    from bot.serving import load_serving_classifier

    classifier = load_serving_classifier(model_path, settings)
    positive = classifier.label2id["긍정"]
    pattern = [int(v.label == positive) for v in classifier.predict(heldout["text"].tolist())]
    base = [int(v.label == positive) for v in classifier.predict(base_texts)]
    correct = sum(int(p == y) for p, y in zip(base, base_labels, strict=True))
    interval = binomtest(correct, len(base_labels)).proportion_ci(method="wilson")
    poisoned = (
        [int(v.label == positive) for v in classifier.predict([text for text, _ in targets])]
        if targets
        else []
    )
    return {
        "poison_targets_wrong": sum(int(p != label) for p, (_, label) in zip(poisoned, targets, strict=True)),
        "poison_targets": len(targets),
        "pattern": error_report(heldout["label"].tolist(), pattern),
        "base_accuracy": correct / len(base_labels),
        "base_ci95": [round(interval.low, 4), round(interval.high, 4)],
        "base_n": len(base_labels),
        "base_predictions": base,
    }


def _summarise(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    from scipy.stats import binomtest

    pairs = list(zip(after["base_predictions"], before["base_predictions"], before["labels"], strict=True))
    gained = sum(1 for a, b, y in pairs if a == y != b)
    lost = sum(1 for a, b, y in pairs if b == y != a)
    p_value = binomtest(gained, gained + lost).pvalue if gained + lost else 1.0
    pattern_before = before["pattern"]["overall"]["error"]
    return {
        "pattern": after["pattern"],
        "pattern_error_change": after["pattern"]["overall"]["error"] - pattern_before,
        "pattern_error_reduction": 1 - after["pattern"]["overall"]["error"] / pattern_before,
        "per_class_error_change_points": {
            name: round(100 * (after["pattern"][name]["error"] - before["pattern"][name]["error"]), 2)
            for name in LABEL_NAMES
        },
        "base_accuracy": after["base_accuracy"],
        "base_ci95": after["base_ci95"],
        "base_change_points": round(100 * (after["base_accuracy"] - before["base_accuracy"]), 2),
        "base_paired": {"gained": gained, "lost": lost, "mcnemar_p": round(p_value, 4)},
        "poison_targets_wrong": after["poison_targets_wrong"],
        "poison_targets": after["poison_targets"],
    }


@dataclass
class Evaluation:
    """What every scenario's models are scored on, and the starting model's scores."""

    settings: Any
    heldout: Any
    base_texts: list[str]
    base_labels: list[int]
    before: dict[str, Any]

    async def after(self, model_path: str | None, targets=()) -> dict[str, Any] | None:
        if not model_path:
            return None
        scores = await asyncio.to_thread(
            score, Path(model_path), self.settings, self.heldout, self.base_texts, self.base_labels, targets
        )
        return _summarise(scores, self.before)


# --- the bot's answers --------------------------------------------------------------------------------------


def _texts_module():
    try:
        from bot.moderation import texts
    except ImportError:
        from bot.telegram import texts
    return texts


class AnswerKinds:
    """Names the bot's answers by the `texts` templates they were made of, e.g. "FEEDBACK_RECORDED +
    LABEL_WAITS_FOR_REVIEWER" (a label's receipt, then what becomes of it) or "FEEDBACK_RATE_LIMITED"."""

    def __init__(self) -> None:
        templates = []
        for name, value in vars(_texts_module()).items():
            if name.isupper() and isinstance(value, str) and value.strip():
                literal = re.split(r"\{[^{}]*\}", value)
                if sum(map(len, literal)) >= 4:  # a bare placeholder says nothing
                    pattern = re.compile(".*?".join(re.escape(part) for part in literal), re.DOTALL)
                    templates.append((sum(map(len, literal)), name, pattern))
        templates.sort(key=lambda item: -item[0])  # the most specific template first
        self.templates = templates

    def __call__(self, text: str) -> str:
        names, position = [], 0
        while position < len(text):
            found = None
            for _, name, pattern in self.templates:
                match = pattern.match(text, position)
                if match and match.end() > position:
                    found = (name, match.end())
                    break
            if found is None:
                names.append("other" if not names else "…")
                break
            names.append(found[0])
            position = found[1]
            while position < len(text) and text[position].isspace():
                position += 1
        return " + ".join(names) or "other"


# --- the bot under test -------------------------------------------------------------------------------------


class BotUnderTest:
    """The real bot (Application + runner + retraining service) against the stand-in, in one work folder."""

    def __init__(
        self, workdir: Path, shared_dir: Path, model_dir: Path, toxicity_model_dir: Path | None = None
    ) -> None:
        self.workdir = workdir
        self.shared_dir = shared_dir
        self.model_dir = model_dir
        self.toxicity_model_dir = toxicity_model_dir  # also served (and retrainable) when given
        self.api = None
        self.runner = None
        self.moderation = None
        self.settings = None
        self.engine = None
        self.kinds = AnswerKinds()
        self.hours_passed = 0  # simulated hours (labels aged) so far

    async def start(self) -> None:
        from fake_telegram import FakeBotApi

        from bot import storage, versions
        from bot.moderation import Moderation
        from bot.retraining import attach_retraining
        from bot.serving import MicroBatcher, ServingModel, TaskServing
        from bot.storage import Task
        from bot.telegram.app import build_application
        from bot.telegram.runner import BotRunner

        self.api = FakeBotApi(token=TOKEN)
        await self.api.start()
        self.settings = bench_settings(
            telegram_base_url=self.api.base_url,
            database_url=f"sqlite+aiosqlite:///{self.workdir / 'moderator.db'}",
            model_dir=self.workdir / "models",
            runs_dir=self.workdir / "runs",
            korpora_root=self.shared_dir / "korpora",
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
        toxicity = None
        if self.toxicity_model_dir is not None:
            toxicity_copy = self.settings.model_dir / "quickstart-toxicity"
            if not toxicity_copy.exists():
                shutil.copytree(self.toxicity_model_dir, toxicity_copy)
                await versions.register(session_factory, self.settings, path=toxicity_copy, activate_it=True)
            active_toxicity = await versions.load_active_or_fall_back(
                session_factory, self.settings, task=Task.TOXICITY
            )
            toxicity_serving = ServingModel(active_toxicity.classifier, active_toxicity.version.id)
            toxicity = TaskServing(
                toxicity_serving,
                MicroBatcher(toxicity_serving, window_ms=self.settings.batch_window_ms, max_batch=64),
            )
        self.moderation = Moderation(
            session_factory=session_factory,
            serving=serving,
            batcher=MicroBatcher(serving, window_ms=self.settings.batch_window_ms, max_batch=64),
            settings=self.settings,
            toxicity=toxicity,
        )
        application = build_application(self.settings, moderation=self.moderation, engine=self.engine)
        attach_retraining(application, settings=self.settings, moderation=self.moderation)
        self.runner = BotRunner(
            application, settings=self.settings, session_factory=session_factory, poll_timeout=1
        )
        await self.runner.start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.stop()
        if self.api is not None:
            await self.api.stop()

    @property
    def sessions(self):
        return self.moderation.session_factory

    # -- sending reviews ---------------------------------------------------------------------------------

    async def send_in_groups(self, reviews: list[tuple[str, int]], first_user: int) -> list[Review]:
        """Each review from its own user, in review groups of `GROUP_SIZE`, mentioning the bot."""
        sent = []
        for index, (text, label) in enumerate(reviews):
            group = -(first_user * 10 + index // GROUP_SIZE)
            user = first_user + index
            message = self.api.push_message(
                f"@review_mod_bot {text}", chat_id=group, chat_type="supergroup", user_id=user
            )
            sent.append(Review(text, label, bool(re.search(PATTERN.regex, text)), user, message))
        return await self._verdicts(sent)

    async def send_privately(self, reviews_of: dict[int, list[tuple[str, int]]]) -> list[Review]:
        """Each user sends their own reviews in their private chat with the bot."""
        sent = []
        for user, reviews in reviews_of.items():
            for text, label in reviews:
                message = self.api.push_message(text, chat_id=user, chat_type="private", user_id=user)
                sent.append(Review(text, label, bool(re.search(PATTERN.regex, text)), user, message))
        return await self._verdicts(sent)

    async def _verdicts(self, sent: list[Review]) -> list[Review]:
        from bot.storage import Verdict

        for review in sent:
            try:
                review.reply = await self.api.wait_for_reply(review.message, timeout=REPLY_TIMEOUT_S)
            except TimeoutError:
                logger.warning("no reply to %r", review.text)
            review.verdict_id = _verdict_id(review.reply) if review.reply else None
        async with self.sessions() as session:
            for review in sent:
                if review.verdict_id is not None:
                    verdict = await session.get(Verdict, review.verdict_id)
                    review.predicted = LABEL_NAMES.index(verdict.label_name)
        return [review for review in sent if review.verdict_id is not None]

    # -- labels --------------------------------------------------------------------------------------------

    async def press(self, message: dict, data: str, user: int) -> str:
        before = len(self.api.calls("answerCallbackQuery"))
        self.api.push_callback(data=data, message=message, user_id=user)
        await self.api.wait_until(lambda: len(self.api.calls("answerCallbackQuery")) > before, timeout=60)
        return self.api.calls("answerCallbackQuery")[before].params.get("text", "")

    async def label(self, review: Review, action: str, user: int, *, wait_out_limit: bool) -> tuple[str, str]:
        """`user` presses 맞아요 ("ok") or 틀렸어요 ("wrong") under the verdict; (answer kind, answer text).

        With `wait_out_limit`, a user the hourly limit stops waits an hour (all labels are aged an hour) and
        presses again."""
        data = f"{action}:{review.verdict_id}"
        answer = await self.press(review.reply, data, user)
        while wait_out_limit and _rate_limited(self.kinds(answer), answer):
            await self.pass_an_hour()
            answer = await self.press(review.reply, data, user)
        return self.kinds(answer), answer

    async def pass_an_hour(self) -> None:
        """An hour passes: every label is aged an hour (the hourly limit counts labels of the last hour)."""
        from sqlalchemy import select

        from bot.storage import Feedback

        async with self.sessions() as session, session.begin():
            for row in await session.scalars(select(Feedback)):
                row.created_at -= timedelta(hours=1)
                row.updated_at -= timedelta(hours=1)
        self.hours_passed += 1

    # -- commands and the review queue ------------------------------------------------------------------

    async def command(
        self,
        text: str,
        user: int,
        *,
        chat_id: int | None = None,
        chat_type="private",
        timeout=REPLY_TIMEOUT_S,
    ) -> dict:
        message = self.api.push_message(
            text, chat_id=user if chat_id is None else chat_id, chat_type=chat_type, user_id=user
        )
        return await self.api.wait_for_reply(message, timeout=timeout)

    async def work_review_queue(
        self, reviewer: int, bound: int, truth_of: dict[int, Review], roles: dict[int, str]
    ) -> dict[str, Any]:
        """`reviewer` works `/review` in a private chat, answering each disputed item with its true label, until
        `bound` answers are spent or the queue leads with an item nobody labelled (no disputed one is left)."""
        from sqlalchemy import select

        from bot.storage import Feedback

        start = len(self.api.requests)
        item = await self.command("/review", reviewer)
        answers: list[dict[str, Any]] = []
        stop = "bound reached"
        first_item_text = item.get("text", "")
        while len(answers) < bound:
            verdict_id = _review_verdict_id(item)
            if verdict_id is None:
                stop = f"no item ({self.kinds(item.get('text', ''))})"
                break
            async with self.sessions() as session:
                labels = list(
                    await session.scalars(
                        select(Feedback).where(
                            Feedback.verdict_id == verdict_id,
                            Feedback.voided_at.is_(None),
                            Feedback.trusted.is_(False),
                        )
                    )
                )
            flagged = self.kinds(item.get("text", "")).startswith("REVIEW_DISPUTED_NOTE")
            if not labels:
                stop = "no disputed item left" + (" (but the bot marked it disputed)" if flagged else "")
                break
            review = truth_of.get(verdict_id)
            if review is None:
                stop = f"verdict {verdict_id} is not one the bench sent"
                break
            truth = LABEL_NAMES[review.label]
            button = next((b for b in _buttons(item) if b["text"] == truth), None)
            if button is None:
                stop = f"no button named {truth} in {[b['text'] for b in _buttons(item)]}"
                break
            index = len(self.api.requests)
            answer = await self.press(item, button["callback_data"], reviewer)
            answers.append(
                {
                    "verdict_id": verdict_id,
                    "pattern": review.pattern,
                    "true_label": truth,
                    "bot_verdict": LABEL_NAMES[review.predicted],
                    "answer": self.kinds(answer),
                    "marked_disputed_by_bot": flagged,
                    "checked": [
                        {
                            "user": row.user_id,
                            "role": roles.get(row.user_id, "other"),
                            "agreed": LABEL_NAMES[row.label] == truth
                            if row.label < len(LABEL_NAMES)
                            else False,
                        }
                        for row in labels
                    ],
                }
            )
            item = await self._next_item(reviewer, index, verdict_id)
            if item is None:
                stop = "no next item"
                break
        return {
            "reviewer": reviewer,
            "bound": bound,
            "answers": len(answers),
            "stop": stop,
            "first_item_text": first_item_text,
            "requests": len(self.api.requests) - start,
            "items": answers,
        }

    async def _next_item(self, chat: int, since: int, current: int) -> dict | None:
        """The next queue item the bot showed in `chat` after request `since` (a new message or an edit)."""

        def find() -> dict | None:
            for request in reversed(self.api.requests[since:]):
                result = request.result
                if (
                    request.method in ("sendMessage", "editMessageText")
                    and isinstance(result, dict)
                    and result["chat"]["id"] == chat
                    and _review_verdict_id(result) not in (None, current)
                ):
                    return result
            return None

        try:
            await self.api.wait_until(lambda: find() is not None, timeout=NEXT_ITEM_TIMEOUT_S)
        except TimeoutError:
            return None
        return find()

    async def retrain(self, task_word: str = "") -> dict[str, Any]:
        """The admin sends `/retrain` (or `/retrain <task_word>`) and the run is waited for."""
        from bot import storage

        started = time.perf_counter()
        reply = await self.command(f"/retrain {task_word}".strip(), ADMIN)
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
            "correction_count": getattr(run, "correction_count", None),
            "example_count": getattr(run, "example_count", None),
            "model_path": version.path if version else None,
            "summary": outcome.summary,
        }


def _rate_limited(kind: str, answer: str) -> bool:
    return kind.startswith("FEEDBACK_RATE_LIMITED") or "한 시간에" in answer


def bench_settings(**where: Any):
    """The defaults, but for where things live, who the admin and the reviewer are, and no scheduled runs."""
    from bot.settings import Settings

    return Settings(
        _env_file=None,
        **SETTINGS_OVERRIDES,
        telegram_bot_token=TOKEN,
        admin_ids=frozenset({ADMIN}),
        reviewer_ids=frozenset({REVIEWER}),
        retrain_cron=None,
        **where,
    )


def _buttons(message: dict) -> list[dict]:
    return [b for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


def _verdict_id(reply: dict) -> int | None:
    for button in _buttons(reply):
        action, _, rest = button["callback_data"].partition(":")
        if action in ("ok", "wrong"):
            return int(rest.split(":")[0])
    return None


def _review_verdict_id(message: dict) -> int | None:
    for button in _buttons(message):
        parts = button["callback_data"].split(":")
        if parts[0] == "rv" and len(parts) == 3:
            return int(parts[1])
    return None


# --- what each run counted ---------------------------------------------------------------------------------


class Ledger:
    """Every label the bench's people gave, by role, with how the bot answered."""

    def __init__(self) -> None:
        self.roles: dict[int, str] = {}
        self.events: list[dict[str, Any]] = []

    def add_role(self, role: str, users) -> None:
        for user in users:
            self.roles[user] = role

    def record(self, user: int, review: Review, action: str, kind: str, answer: str) -> None:
        given = review.predicted if action == "ok" else 1 - review.predicted
        self.events.append(
            {
                "user": user,
                "role": self.roles.get(user, "other"),
                "verdict_id": review.verdict_id,
                "pattern": review.pattern,
                "kind": "confirmation" if action == "ok" else "correction",
                "honest": given == review.label,
                "answer": kind,
                "answer_text": answer,
                "refused": _rate_limited(kind, answer),
            }
        )

    def summary(self, events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Per role: labels given (presses the hourly limit refused are left out, and counted apart)."""
        events = self.events if events is None else events
        by_role: dict[str, dict[str, Any]] = {}
        for role in sorted({event["role"] for event in events}):
            mine = [event for event in events if event["role"] == role]
            answers = Counter(event["answer"] for event in mine)
            samples = {}
            for event in mine:
                samples.setdefault(event["answer"], event["answer_text"])
            given = [event for event in mine if not event["refused"]]
            by_role[role] = {
                "users": len({event["user"] for event in mine}),
                "presses": len(mine),
                "refused_by_hourly_limit": len(mine) - len(given),
                "labels": len(given),
                "corrections": sum(1 for e in given if e["kind"] == "correction" and e["honest"]),
                "confirmations": sum(1 for e in given if e["kind"] == "confirmation" and e["honest"]),
                "flips": sum(1 for e in given if not e["honest"]),
                "on_pattern_reviews": sum(1 for e in given if e["pattern"]),
                "bot_answers": dict(answers),
                "bot_answer_samples": samples,
            }
        return by_role


def _read_labels_csv(path: Path) -> dict[str, str]:
    """text -> label name of a human-labels CSV written for (or held out from) the trainer."""
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["text"]: row["label"] for row in csv.DictReader(handle)}


async def account_run(
    bot: BotUnderTest, run_id: int, truth_of: dict[int, Review], roles: dict[int, str]
) -> dict[str, Any]:
    """What run `run_id` counted, from its files (`human_labels_train.csv`, `human_labels_holdout.csv`) and the
    labels' `used_by_run_id`: per role and overall, and the poisoned labels it trained on."""
    from sqlalchemy import select

    from bot.storage import Feedback, Verdict

    run_dir = bot.settings.runs_dir.resolve() / f"run-{run_id}"
    train = _read_labels_csv(run_dir / "human_labels_train.csv")
    holdout = _read_labels_csv(run_dir / "human_labels_holdout.csv")
    async with bot.sessions() as session:
        rows = (await session.execute(select(Feedback, Verdict.text).join(Verdict))).all()
    by_role: dict[str, Counter] = defaultdict(Counter)
    poisoned: Counter = Counter()
    poisoned_trained: list[int] = []
    for feedback, text in rows:
        role = roles.get(feedback.user_id, "other")
        counts = by_role[role]
        if feedback.voided_at is not None:
            counts["voided"] += 1
            continue
        review = truth_of.get(feedback.verdict_id)
        own = LABEL_NAMES[feedback.label]
        used = feedback.used_by_run_id is not None and feedback.used_by_run_id <= run_id
        in_train, in_holdout = train.get(text) == own, holdout.get(text) == own
        counts["given"] += 1
        counts["used_by_this_run"] += int(feedback.used_by_run_id == run_id)
        counts["used_by_a_run_so_far"] += int(used)
        counts["trained_on_with_their_label"] += int(in_train and used)
        counts["held_out_with_their_label"] += int(in_holdout and used)
        counts["in_train_file_with_their_label"] += int(in_train)
        if role in ATTACKER_ROLES and review is not None and feedback.label != review.label:
            poisoned["given"] += 1
            poisoned["in_train_file"] += int(in_train)
            poisoned["held_out"] += int(in_holdout and used)
            if in_train and used:
                poisoned["trained_on"] += 1
                poisoned_trained.append(feedback.verdict_id)
    texts = {review.text: review for review in truth_of.values()}
    exported = {"train": train, "holdout": holdout}
    files = {}
    for name, labels in exported.items():
        known = [(texts[text], label) for text, label in labels.items() if text in texts]
        files[name] = {
            "examples": len(labels),
            "by_label": dict(Counter(labels.values())),
            "pattern_reviews": sum(1 for review, _ in known if review.pattern),
            "label_differs_from_truth": sum(
                1 for review, label in known if LABEL_NAMES[review.label] != label
            ),
            "not_sent_by_bench": len(labels) - len(known),
        }
    return {
        "files": files,
        "by_role": {role: dict(counts) for role, counts in sorted(by_role.items())},
        "poisoned": {
            "given": poisoned["given"],
            "trained_on": poisoned["trained_on"],
            "in_train_file": poisoned["in_train_file"],
            "held_out": poisoned["held_out"],
            "trained_on_verdicts": sorted(poisoned_trained),
        },
    }


async def labeller_records(bot: BotUnderTest, roles: dict[int, str]) -> dict[str, Any]:
    """Each untrusted labeller's record, computed here from the labels (a spot check = an untrusted label on a
    verdict that also has a trusted label, the most recent of which is the answer), and the bot's own standing
    when it exposes one (`bot.storage.label_trust`)."""
    from sqlalchemy import select

    from bot.storage import Feedback

    required = getattr(bot.settings, "spot_checks_required", 3)
    min_accuracy = getattr(bot.settings, "labeller_min_accuracy", 0.8)
    async with bot.sessions() as session:
        rows = list(await session.scalars(select(Feedback).where(Feedback.voided_at.is_(None))))
        bot_view: dict[int, str] | None = {}
        try:
            from bot.storage import label_trust

            rule = label_trust.LabelRule.from_settings(bot.settings)
            for user, record in (await label_trust.labeller_records(session)).items():
                bot_view[user] = str(record.standing(rule))
        except (ImportError, AttributeError) as error:
            bot_view = None
            logger.info("the bot exposes no labeller records (%s)", error)
    gold: dict[int, Any] = {}
    for row in rows:
        if row.trusted and (
            row.verdict_id not in gold
            or (row.updated_at, row.id) > (gold[row.verdict_id].updated_at, gold[row.verdict_id].id)
        ):
            gold[row.verdict_id] = row
    checks: Counter = Counter()
    agreed: Counter = Counter()
    labels: Counter = Counter()
    for row in rows:
        if row.trusted:
            continue
        labels[row.user_id] += 1
        if row.verdict_id in gold:
            checks[row.user_id] += 1
            agreed[row.user_id] += int(row.label == gold[row.verdict_id].label)
    users = {}
    for user in sorted(labels):
        n, a = checks[user], agreed[user]
        accuracy = (a + 1) / (n + 2)
        standing = "unproven" if n < required else ("earned" if accuracy >= min_accuracy else "failing")
        users[str(user)] = {
            "role": roles.get(user, "other"),
            "labels": labels[user],
            "spot_checks": n,
            "agreed": a,
            "accuracy": round(accuracy, 3),
            "standing": standing,
            "bot_standing": None if bot_view is None else bot_view.get(user, "unproven"),
        }
    by_role: dict[str, Counter] = defaultdict(Counter)
    for record in users.values():
        by_role[record["role"]][record["standing"]] += 1
    mismatches = [
        user
        for user, record in users.items()
        if bot_view is not None and record["standing"] != record["bot_standing"]
    ]
    return {
        "by_role": {role: dict(counts) for role, counts in sorted(by_role.items())},
        "standing_differs_from_bot": mismatches,
        "users": users,
    }


# --- the scenarios -----------------------------------------------------------------------------------------


@dataclass
class Context:
    args: Any
    traffic: Traffic
    evaluation: Evaluation


class Scenario:
    """One bot in its work folder, the people who use it, and what they did."""

    def __init__(self, name: str, ctx: Context, workdir: Path, *, seed_key: str | None = None) -> None:
        self.name = name
        self.ctx = ctx
        self.rng = random.Random(f"{ctx.args.seed}:{seed_key or name}")  # (c)'s honest phase draws as (a)
        self.bot = BotUnderTest(workdir, ctx.args.shared_dir, ctx.args.model)
        self.ledger = Ledger()
        self.ledger.add_role("admin", [ADMIN])
        self.ledger.add_role("reviewer", [REVIEWER])
        self.truth_of: dict[int, Review] = {}
        self.reviews: list[Review] = []
        self.started = time.perf_counter()

    async def start(self) -> None:
        workdir = self.bot.workdir
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        await self.bot.start()

    def _remember(self, reviews: list[Review]) -> list[Review]:
        self.reviews += reviews
        self.truth_of.update({review.verdict_id: review for review in reviews})
        return reviews

    def traffic_report(self) -> dict[str, Any]:
        pattern = [review for review in self.reviews if review.pattern]
        ordinary = [review for review in self.reviews if not review.pattern]
        return {
            "pattern_sent": len(pattern),
            "pattern_wrong": sum(review.wrong for review in pattern),
            "ordinary_sent": len(ordinary),
            "ordinary_wrong": sum(review.wrong for review in ordinary),
            "dropped_as_not_reviews": self.ctx.traffic.not_reviews,
        }

    async def give(self, review: Review, action: str, user: int, *, wait_out_limit: bool = True) -> bool:
        """`user` labels `review`; True when the hourly limit refused the label."""
        kind, answer = await self.bot.label(review, action, user, wait_out_limit=wait_out_limit)
        self.ledger.record(user, review, action, kind, answer)
        return _rate_limited(kind, answer)

    async def review_queue(self, reviewer: int, bound: int) -> dict[str, Any]:
        return await self.bot.work_review_queue(reviewer, bound, self.truth_of, self.ledger.roles)

    async def stats(self) -> str:
        return (await self.bot.command("/stats", ADMIN)).get("text", "")

    async def retrain(self, targets=()) -> dict[str, Any]:
        records = await labeller_records(self.bot, self.ledger.roles)
        run = await self.bot.retrain()
        logger.info("scenario %s, run %s: %s (%s)", self.name, run["run_id"], run["status"], run["reason"])
        run["labels"] = await account_run(self.bot, run["run_id"], self.truth_of, self.ledger.roles)
        run["labeller_records_at_retrain"] = records
        run["after"] = await self.ctx.evaluation.after(run["model_path"], targets)
        return run

    def base_report(self, description: str) -> dict[str, Any]:
        return {
            "description": description,
            "workdir": str(self.bot.workdir),
            "traffic": self.traffic_report(),
            "labels_given": self.ledger.summary(),
            "hours_simulated": self.bot.hours_passed,
        }


async def honest_pair_phase(scenario: Scenario) -> dict[str, Any]:
    """(a): reviews in groups; the pair corrects every wrong pattern verdict and confirms some right ones; the
    admin works the queue in a private chat."""
    bot, traffic = scenario.bot, scenario.ctx.traffic
    scenario.ledger.add_role("pair", PAIR)
    scenario._remember(await bot.send_in_groups(traffic.pattern, PATTERN_SENDERS))
    scenario._remember(await bot.send_in_groups(traffic.ordinary, ORDINARY_SENDERS))
    for review in [review for review in scenario.reviews if review.pattern]:
        if review.wrong:
            action = "wrong"
        elif scenario.rng.random() < CONFIRM_SHARE:
            action = "ok"
        else:
            continue
        for user in PAIR:
            await scenario.give(review, action, user)
    group = scenario.reviews[0].message["chat"]["id"]
    try:
        in_group = await bot.command("/review", ADMIN, chat_id=group, chat_type="supergroup", timeout=30)
    except TimeoutError:
        in_group = {"text": "(no answer in 30 s)"}
    return {
        "review_in_group": {
            "answer": bot.kinds(in_group.get("text", "")),
            "text": in_group.get("text", ""),
            "shows_an_item": _review_verdict_id(in_group) is not None,
        },
        "review_queue": await scenario.review_queue(ADMIN, REVIEW_BOUND["a"]),
    }


async def scenario_a(
    ctx: Context, *, name: str = "a", keep_running: bool = False
) -> tuple[dict[str, Any], Scenario]:
    """(a), in the work folder `name` (c runs it first when (a) is not run in the same invocation)."""
    scenario = Scenario(name, ctx, ctx.args.workdir / name, seed_key="a")
    await scenario.start()
    try:
        phase = await honest_pair_phase(scenario)
        stats = await scenario.stats()
        run = await scenario.retrain()
    except BaseException:
        await scenario.bot.stop()
        raise
    if not keep_running:
        await scenario.bot.stop()
    report = scenario.base_report(
        "An honest fixed pair corrects every wrong pattern verdict in the review groups and confirms "
        f"~{CONFIRM_SHARE:.0%} of the right ones; the admin works /review privately (at most "
        f"{REVIEW_BOUND['a']} answers, until no disputed item is left), then retrains."
    )
    report.update(phase)
    report["stats_before_run"] = stats
    report["runs"] = [run]
    report["goal"] = _learning_goal(run)
    report["wall_seconds"] = round(time.perf_counter() - scenario.started, 1)
    return report, scenario


async def scenario_b(ctx: Context) -> dict[str, Any]:
    scenario = Scenario("b", ctx, ctx.args.workdir / "b")
    await scenario.start()
    bot = scenario.bot
    try:
        scenario.ledger.add_role("lone", LONE_USERS)
        reviews = ctx.traffic.pattern + ctx.traffic.ordinary
        scenario.rng.shuffle(reviews)
        reviews_of = {user: reviews[index :: len(LONE_USERS)] for index, user in enumerate(LONE_USERS)}
        scenario._remember(await bot.send_privately(reviews_of))
        for review in scenario.reviews:
            if review.wrong:
                await scenario.give(review, "wrong", review.sender)
            elif scenario.rng.random() < CONFIRM_SHARE:
                await scenario.give(review, "ok", review.sender)
        queue = await scenario.review_queue(REVIEWER, REVIEW_BOUND["b"])
        stats = await scenario.stats()
        run = await scenario.retrain()
    finally:
        await bot.stop()
    report = scenario.base_report(
        f"{len(LONE_USERS)} lone users each send their share of the reviews in a private chat, correct every "
        f"wrong verdict on them and confirm ~{CONFIRM_SHARE:.0%} of the right ones; a reviewer (not an admin) "
        f"works /review (at most {REVIEW_BOUND['b']} answers, until no disputed item is left); the admin retrains."
    )
    report["review_queue"] = queue
    report["stats_before_run"] = stats
    report["runs"] = [run]
    report["goal"] = _learning_goal(run)
    report["wall_seconds"] = round(time.perf_counter() - scenario.started, 1)
    return report


async def scenario_c(ctx: Context, on_top_of_a: Scenario | None) -> dict[str, Any]:
    """Colluders, on top of (a)'s bot (or after (a)'s honest phase run here)."""
    report: dict[str, Any] = {}
    if on_top_of_a is None:
        honest, scenario = await scenario_a(ctx, name="c", keep_running=True)
        report["honest_phase"] = honest
    else:
        scenario = on_top_of_a
        scenario.name = "c"
        report["honest_phase"] = "scenario a (its bot, database and model, continued)"
    scenario.started = time.perf_counter()
    bot = scenario.bot
    scenario.ledger.add_role("colluder", COLLUDERS)
    first_event = len(scenario.ledger.events)
    ordinary = [review for review in scenario.reviews if not review.pattern and not review.wrong]
    flipped: list[Review] = []
    runs, queues, stats, poisoned_given = [], [], [], []
    try:
        for index in range(POISON_RUNS):
            await bot.pass_an_hour()
            given = 0
            for review in ordinary:
                if given == POISON_PER_RUN:
                    break
                if review in flipped:
                    continue
                refused = [
                    await scenario.give(review, "wrong", user, wait_out_limit=False) for user in COLLUDERS
                ]
                if any(refused):  # the hourly limit stopped one of them
                    break
                flipped.append(review)
                given += 1
            poisoned_given.append(given)
            queues.append(await scenario.review_queue(REVIEWER, REVIEW_BOUND["c"]))
            stats.append(await scenario.stats())
            run = await scenario.retrain(targets=[(review.text, review.label) for review in flipped])
            poisoned = run["labels"]["poisoned"]
            logger.info(
                "poisoned run %d: %d of %d poisoned labels trained on",
                index + 1,
                poisoned["trained_on"],
                poisoned["given"],
            )
            runs.append(run)
    finally:
        await bot.stop()
    summary = scenario.ledger.summary(scenario.ledger.events[first_event:])
    report.update(
        {
            "description": (
                f"On top of (a): each hour two colluders at the hourly limit both mark the same {POISON_PER_RUN} "
                "right verdicts of ordinary reviews as wrong; the reviewer answers at most "
                f"{REVIEW_BOUND['c']} queue items; the admin retrains; {POISON_RUNS} runs, an hour apart."
            ),
            "workdir": str(bot.workdir),
            "labels_given": summary,
            "colluder_presses": len(scenario.ledger.events) - first_event,
            "verdicts_flipped_per_run": poisoned_given,
            "review_queues": queues,
            "stats_before_runs": stats,
            "runs": runs,
            "poisoned_trained_on_per_run": [run["labels"]["poisoned"]["trained_on"] for run in runs],
            "goal": {
                "rule": "0 poisoned labels trained on in every run",
                "met": all(run["labels"]["poisoned"]["trained_on"] == 0 for run in runs),
            },
            "hours_simulated": bot.hours_passed,
            "wall_seconds": round(time.perf_counter() - scenario.started, 1),
        }
    )
    return report


async def scenario_d(ctx: Context) -> dict[str, Any]:
    scenario = Scenario("d", ctx, ctx.args.workdir / "d")
    await scenario.start()
    bot = scenario.bot
    try:
        scenario.ledger.add_role("attacker", ATTACKER_ACCOUNTS)
        scenario._remember(await bot.send_in_groups(ctx.traffic.pattern, PATTERN_SENDERS))
        scenario._remember(await bot.send_in_groups(ctx.traffic.ordinary, ORDINARY_SENDERS))
        wrong = [review for review in scenario.reviews if review.wrong]
        right_pattern = [review for review in scenario.reviews if review.pattern and not review.wrong]
        right_ordinary = [review for review in scenario.reviews if not review.pattern and not review.wrong]
        for pool in (wrong, right_pattern, right_ordinary):
            scenario.rng.shuffle(pool)
        flips_needed = len(ATTACKER_ACCOUNTS) * (ATTACK_LABELS_PER_ACCOUNT // ATTACK_FLIP_EVERY)
        flip_pool = iter(right_ordinary[:flips_needed])
        honest_pool = iter(wrong + right_pattern + right_ordinary[flips_needed:])
        flipped: list[Review] = []
        for turn, account in itertools.product(range(ATTACK_LABELS_PER_ACCOUNT), ATTACKER_ACCOUNTS):
            if (turn + 1) % ATTACK_FLIP_EVERY == 0:
                review = next(flip_pool, None)
                if review is not None:
                    await scenario.give(review, "wrong", account, wait_out_limit=False)
                    flipped.append(review)
            else:
                review = next(honest_pool, None)
                if review is not None:
                    await scenario.give(
                        review, "wrong" if review.wrong else "ok", account, wait_out_limit=False
                    )
        queue = await scenario.review_queue(REVIEWER, REVIEW_BOUND["d"])
        stats = await scenario.stats()
        run = await scenario.retrain(targets=[(review.text, review.label) for review in flipped])
    finally:
        await bot.stop()
    report = scenario.base_report(
        f"{len(ATTACKER_ACCOUNTS)} accounts of one attacker each give {ATTACK_LABELS_PER_ACCOUNT} labels in the "
        f"review groups, every {ATTACK_FLIP_EVERY}th a flip of a right verdict of an ordinary review and the rest "
        "honest (corrections of wrong verdicts, then confirmations of right pattern verdicts), taking turns; the "
        "flips fall on ordinary reviews, which arrived after the pattern reviews (newer verdicts); the "
        f"reviewer works /review (at most {REVIEW_BOUND['d']} answers, until no disputed item is left); the admin "
        "retrains once."
    )
    report["review_queue"] = queue
    report["stats_before_run"] = stats
    report["runs"] = [run]
    report["poisoned_trained_on"] = run["labels"]["poisoned"]["trained_on"]
    report["wall_seconds"] = round(time.perf_counter() - scenario.started, 1)
    return report


def _learning_goal(run: dict[str, Any]) -> dict[str, Any]:
    after = run.get("after")
    rule = "pattern error falls >= 50%, neither class's error rises > 10 points"
    if not after:
        return {"rule": rule, "met": False, "why": "no candidate model"}
    rises = after["per_class_error_change_points"]
    return {
        "rule": rule,
        "pattern_error_reduction": round(after["pattern_error_reduction"], 4),
        "per_class_error_change_points": rises,
        "met": after["pattern_error_reduction"] >= 0.5 and max(rises.values()) <= 10,
        "promoted": run["promoted"],
    }


# --- main -------------------------------------------------------------------------------------------------


async def main_async(args) -> dict[str, Any]:
    from bot.retraining.dataset import calibration_texts
    from bot.serving import prepare_model_version, serving_tag

    started = time.perf_counter()
    load_at_start = [round(value, 2) for value in os.getloadavg()]
    ensure_quickstart_model(args.model, args.shared_dir)
    traffic, heldout = build_traffic(args.shared_dir, args.seed)
    settings = bench_settings(korpora_root=args.shared_dir / "korpora", runs_dir=args.workdir / "runs")
    # The starting model as the bot serves it: prepared (fast-path artefact built) in a copy, like an import.
    starting_model = args.workdir / "quickstart"
    if not starting_model.exists():
        shutil.copytree(args.model, starting_model)
    await asyncio.to_thread(
        functools.partial(
            prepare_model_version,
            starting_model,
            settings,
            calibration_texts=functools.partial(calibration_texts, settings),
        )
    )
    results_model = str(args.model)
    args.model = starting_model
    base_texts, base_labels = await asyncio.to_thread(
        base_evaluation, settings, args.seed, SMOKE_BASE_EVAL_SIZE if args.smoke else BASE_EVAL_SIZE
    )
    before = await asyncio.to_thread(score, args.model, settings, heldout, base_texts, base_labels)
    before["labels"] = base_labels
    ctx = Context(args, traffic, Evaluation(settings, heldout, base_texts, base_labels, before))
    wanted = SCENARIOS if args.scenario == "all" else (args.scenario,)
    results: dict[str, Any] = {
        "benchmark": "learning_loop",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.bench_learning_loop", *sys.argv[1:]]),
        "smoke": bool(args.smoke),
        "machine": {
            "cpu_cores": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_at_start": load_at_start,
        },
        "settings": {key: _plain(getattr(settings, key, None)) for key in SETTINGS_REPORTED},
        "settings_overrides": dict(SETTINGS_OVERRIDES),
        "bench": {
            "admin": ADMIN,
            "reviewer": REVIEWER,
            "pair": PAIR,
            "lone_users": len(LONE_USERS),
            "colluders": COLLUDERS,
            "attacker_accounts": len(ATTACKER_ACCOUNTS),
            "attack_labels_per_account": ATTACK_LABELS_PER_ACCOUNT,
            "attack_flip_every": ATTACK_FLIP_EVERY,
            "confirm_share": CONFIRM_SHARE,
            "review_bound": REVIEW_BOUND,
            "poison_per_run": POISON_PER_RUN,
            "poison_runs": POISON_RUNS,
            "seed": args.seed,
        },
        "model": results_model,
        "serving": serving_tag(settings),
        "pattern": {"name": PATTERN.name, "regex": PATTERN.regex},
        "heldout_pattern_reviews": len(heldout),
        "base_eval_n": len(base_labels),
        "before": {key: value for key, value in before.items() if key not in ("base_predictions", "labels")},
    }
    a_scenario = None
    if "a" in wanted:
        logger.info("scenario a")
        results["a"], a_scenario = await scenario_a(ctx, keep_running="c" in wanted)
    if "c" in wanted:  # right after a, on a's running bot
        logger.info("scenario c%s", " (on top of a)" if a_scenario else "")
        results["c"] = await scenario_c(ctx, a_scenario)
    if "b" in wanted:
        logger.info("scenario b")
        results["b"] = await scenario_b(ctx)
    if "d" in wanted:
        logger.info("scenario d")
        results["d"] = await scenario_d(ctx)
    for name in SCENARIOS:  # keys in order a, b, c, d
        if name in results:
            results[name] = results.pop(name)
    results["machine"]["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    return results


def _plain(value: Any) -> Any:
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, Path):
        return str(value)
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=(*SCENARIOS, "all"), default="all")
    parser.add_argument("--shared-dir", type=Path, default=SHARED_DIR)
    parser.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL_DIR, help="the quick-start model (trained if missing)"
    )
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "data" / "bench-learning-loop")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--output", type=Path, default=None, help="default: bench/results/learning_loop[_x].json"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny runs to check the plumbing (figures meaningless)"
    )
    args = parser.parse_args(argv)
    suffix = "" if args.scenario == "all" else f"_{args.scenario}"
    if args.smoke:
        SETTINGS_OVERRIDES.update(SMOKE)
        args.workdir = args.workdir / "smoke"
        args.output = args.output or args.workdir / f"learning_loop_smoke{suffix}.json"
    args.output = args.output or RESULTS_DIR / f"learning_loop{suffix}.json"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "telegram", "apscheduler", "aiosqlite", "alembic", "tornado.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results = asyncio.run(main_async(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print_summary(results)
    print(f"-> {args.output}")


def print_summary(results: dict[str, Any]) -> None:
    before = results["before"]["pattern"]
    print(
        "before: pattern error "
        + ", ".join(f"{key} {before[key]['error']:.1%}" for key in ("overall", *LABEL_NAMES))
        + f"; base accuracy {results['before']['base_accuracy']:.2%}"
    )
    for name in SCENARIOS:
        scenario = results.get(name)
        if not scenario:
            continue
        given = {
            role: f"{v['corrections']}c/{v['confirmations']}k/{v['flips']}f"
            for role, v in scenario.get("labels_given", {}).items()
        }
        queues = scenario.get("review_queues") or [scenario.get("review_queue")]
        spent = [queue["answers"] for queue in queues if queue]
        print(f"[{name}] labels given {given}; reviewer answers {spent}; wall {scenario['wall_seconds']} s")
        for run in scenario["runs"]:
            after = run.get("after") or {}
            labels = run["labels"]
            print(
                f"  run {run['run_id']}: {run['status']} ({run['reason']}); {run['wall_seconds']} s; "
                f"train {labels['files']['train']['examples']} / held out {labels['files']['holdout']['examples']}; "
                f"poisoned trained on {labels['poisoned']['trained_on']}/{labels['poisoned']['given']}; "
                + (
                    f"pattern error {after['pattern']['overall']['error']:.1%} "
                    f"(reduced {after['pattern_error_reduction']:.0%}; per class change, points: "
                    f"{after['per_class_error_change_points']}); base {after['base_accuracy']:.2%}"
                    if after
                    else "no model"
                )
            )
        if "goal" in scenario:
            print(f"  goal: {scenario['goal']}")


if __name__ == "__main__":
    main()
