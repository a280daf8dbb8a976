"""The real bot in its own work folder, driven through the Bot API stand-in: the people the learning-loop,
toxicity-loop and group benchmarks play send reviews, press buttons, work `/review` and ask for runs here.

The real python-telegram-bot stack, the real runner (inbox, outbox), a real SQLite file and the real retraining
service, with the DEFAULT settings but for where things live and who the admin and the reviewer are
(`bench_settings`)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "bot"))  # the Bot API stand-in lives with the tests

from bench.learning_loop_data import LABEL_NAMES, PATTERN

TOKEN = "123456789:bench-learning-loop-0123456789abcdef"
ADMIN = 4242  # ADMIN_IDS
REVIEWER = 4343  # REVIEWER_IDS (not an admin)
GROUP_SIZE = 15  # reviews per review group (a group gets Telegram's 20 messages a minute)
SHARED_DIR = Path(os.environ.get("MODERATOR_SHARED_DIR", REPO_ROOT.parent / "shared"))
# Settings that differ from the defaults: only with --smoke (tiny runs that check the plumbing in minutes; their
# figures mean nothing and are never reported).
SETTINGS_OVERRIDES: dict[str, Any] = {}
SMOKE = {"retrain_train_size": 200, "retrain_epochs": 1.0, "retrain_eval_size": 100, "gate_eval_size": 300}
REPLY_TIMEOUT_S = 120
NEXT_ITEM_TIMEOUT_S = 20
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
    "retrain_fine_tuned_share",
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

logger = logging.getLogger("bench.bot_under_test")


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


# --- the bot's answers --------------------------------------------------------------------------------------


class AnswerKinds:
    """Names the bot's answers by the `texts` templates they were made of, e.g. "FEEDBACK_RECORDED +
    LABEL_WAITS_FOR_REVIEWER" (a label's receipt, then what becomes of it) or "FEEDBACK_RATE_LIMITED"."""

    def __init__(self) -> None:
        from bot.moderation import texts

        templates = []
        for name, value in vars(texts).items():
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
            review.verdict_id = verdict_id_of(review.reply) if review.reply else None
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

    async def press_button_named(self, message: dict, name: str, user: int) -> str | None:
        """`user` presses the button labelled `name` under `message`: the bot's answer, or None when there is none."""
        button = next((b for b in buttons_of(message) if b["text"] == name), None)
        return None if button is None else await self.press(message, button["callback_data"], user)

    async def label(self, review: Review, action: str, user: int, *, wait_out_limit: bool) -> tuple[str, str]:
        """`user` presses 맞아요 ("ok") or 틀렸어요 ("wrong") under the verdict; (answer kind, answer text).

        With `wait_out_limit`, a user the hourly limit stops waits an hour (all labels are aged an hour) and
        presses again."""
        data = f"{action}:{review.verdict_id}"
        answer = await self.press(review.reply, data, user)
        while wait_out_limit and rate_limited(self.kinds(answer), answer):
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

    async def untrusted_labels(self, verdict_id: int) -> list:
        """The verdict's live labels from users who are not trusted: what a reviewer's answer checks."""
        from sqlalchemy import select

        from bot.storage import Feedback

        async with self.sessions() as session:
            return list(
                await session.scalars(
                    select(Feedback).where(
                        Feedback.verdict_id == verdict_id,
                        Feedback.voided_at.is_(None),
                        Feedback.trusted.is_(False),
                    )
                )
            )

    async def work_review_queue(
        self, reviewer: int, bound: int, truth_of: dict[int, Review], roles: dict[int, str]
    ) -> dict[str, Any]:
        """`reviewer` works `/review` in a private chat, answering each disputed item with its true label, until
        `bound` answers are spent or the queue leads with an item nobody labelled (no disputed one is left)."""
        start = len(self.api.requests)
        item = await self.command("/review", reviewer)
        answers: list[dict[str, Any]] = []
        stop = "bound reached"
        first_item_text = item.get("text", "")
        while len(answers) < bound:
            verdict_id = review_item_verdict_id(item)
            if verdict_id is None:
                stop = f"no item ({self.kinds(item.get('text', ''))})"
                break
            labels = await self.untrusted_labels(verdict_id)
            flagged = self.kinds(item.get("text", "")).startswith("REVIEW_DISPUTED_NOTE")
            if not labels:
                stop = "no disputed item left" + (" (but the bot marked it disputed)" if flagged else "")
                break
            review = truth_of.get(verdict_id)
            if review is None:
                stop = f"verdict {verdict_id} is not one the bench sent"
                break
            truth = LABEL_NAMES[review.label]
            index = len(self.api.requests)
            answer = await self.press_button_named(item, truth, reviewer)
            if answer is None:
                stop = f"no button named {truth} in {[b['text'] for b in buttons_of(item)]}"
                break
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
            item = await self.next_queue_item(reviewer, index, verdict_id)
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

    async def next_queue_item(self, chat: int, since: int, current: int) -> dict | None:
        """The next queue item the bot showed in `chat` after request `since` (a new message or an edit)."""

        def find() -> dict | None:
            for request in reversed(self.api.requests[since:]):
                result = request.result
                if (
                    request.method in ("sendMessage", "editMessageText")
                    and isinstance(result, dict)
                    and result["chat"]["id"] == chat
                    and review_item_verdict_id(result) not in (None, current)
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


def rate_limited(kind: str, answer: str) -> bool:
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


def buttons_of(message: dict) -> list[dict]:
    return [b for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


def verdict_id_of(reply: dict) -> int | None:
    for button in buttons_of(reply):
        action, _, rest = button["callback_data"].partition(":")
        if action in ("ok", "wrong"):
            return int(rest.split(":")[0])
    return None


def review_item_verdict_id(message: dict) -> int | None:
    for button in buttons_of(message):
        parts = button["callback_data"].split(":")
        if parts[0] == "rv" and len(parts) == 3:
            return int(parts[1])
    return None


def plain(value: Any) -> Any:
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, Path):
        return str(value)
    return value
