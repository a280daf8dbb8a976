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
        [--pattern-reviews 150]

`--pattern-reviews N` sends N pattern reviews instead of 150 (more mistakes for the people to correct); the
held-out pattern reviews are then the rest of the pattern's pool, fewer than 1,500 past N = 161.

`--scenario all` (the default) writes bench/results/learning_loop.json (a key per scenario); `--scenario x`
writes bench/results/learning_loop_x.json. Expect about 1.5 h on 2 quiet CPU cores for all (six e5 retraining
runs: a, three for c on top of a, b, d; each ~8-10 min, longer on a loaded machine, plus ~2 min of scoring per
model). `--smoke` runs tiny retrainings to check the plumbing (about 30 min for all on 2 shared cores, most of
it the six runs' fixed costs); its figures mean nothing and it writes only under the work folder.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import logging
import os
import platform
import random
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.bot_under_test import (
    ADMIN,
    REPO_ROOT,
    REVIEWER,
    SETTINGS_OVERRIDES,
    SETTINGS_REPORTED,
    SHARED_DIR,
    SMOKE,
    BotUnderTest,
    Review,
    bench_settings,
    ensure_quickstart_model,
    plain,
    rate_limited,
    review_item_verdict_id,
)
from bench.common import RESULTS_DIR
from bench.learning_loop_accounting import Ledger, account_run, labeller_records
from bench.learning_loop_data import (
    BOT_SIZE,
    DEFAULT_MODEL_DIR,
    DEFAULT_SEED,
    LABEL_NAMES,
    PATTERN,
    load_rated_reviews,
    pattern_reviews,
)
from bench.learning_loop_scoring import Evaluation, base_evaluation, learning_goal, score
from bot.reviews import is_review

PAIR = (7001, 7002)  # (a): the honest fixed pair
LONE_USERS = tuple(range(7100, 7112))  # (b): twelve users, each in their own private chat
COLLUDERS = (6661, 6662)  # (c)
ATTACKER_ACCOUNTS = tuple(range(6800, 6810))  # (d)
PATTERN_SENDERS, ORDINARY_SENDERS = 10_000, 20_000  # first user ids of the people who send reviews in groups
SCENARIOS = ("a", "b", "c", "d")

CONFIRM_SHARE = 0.3  # honest users confirm this share of the right verdicts they see
ORDINARY_REVIEWS = 200
REVIEW_BOUND = {"a": 20, "b": 40, "c": 10, "d": 40}  # reviewer answers (c: per run)
POISON_PER_RUN = 30  # the default FEEDBACK_RATE_LIMIT_PER_HOUR
POISON_RUNS = 3
ATTACK_LABELS_PER_ACCOUNT = 24  # (d): under the hourly limit
ATTACK_FLIP_EVERY = 4  # (d): every 4th label of an account is a flip
BASE_EVAL_SIZE = 10_000
SMOKE_BASE_EVAL_SIZE = 500

logger = logging.getLogger("bench.learning_loop")


# --- traffic -----------------------------------------------------------------------------------------------


@dataclass
class Traffic:
    """What users send: pattern reviews (the bot set) and ordinary reviews, with their true labels (0 부정,
    1 긍정), and how many of each the bench left out because the bot would not classify them."""

    pattern: list[tuple[str, int]]
    ordinary: list[tuple[str, int]]
    not_reviews: dict[str, int]


def build_traffic(shared_dir: Path, seed: int, pattern_sent: int = BOT_SIZE) -> tuple[Traffic, Any]:
    """The reviews users send (`pattern_sent` pattern reviews and the ordinary ones) and the held-out pattern
    reviews, the rest of the pattern's pool (at most 1,500), which are never sent."""
    frame = load_rated_reviews(shared_dir)
    bot_set, heldout = pattern_reviews(frame, seed=seed, bot_size=pattern_sent)
    others = frame.loc[~PATTERN.mask(frame["text"])].sample(ORDINARY_REVIEWS, random_state=seed)
    drawn = {"pattern": bot_set, "ordinary": others}
    sent = {
        kind: [
            (text, int(label))
            for text, label in zip(rows["text"], rows["label"], strict=True)
            if is_review(text)
        ]
        for kind, rows in drawn.items()
    }
    not_reviews = {kind: len(drawn[kind]) - len(sent[kind]) for kind in drawn}
    return Traffic(pattern=sent["pattern"], ordinary=sent["ordinary"], not_reviews=not_reviews), heldout


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
        return rate_limited(kind, answer)

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
            "shows_an_item": review_item_verdict_id(in_group) is not None,
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
    report["goal"] = learning_goal(run)
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
    report["goal"] = learning_goal(run)
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


# --- main -------------------------------------------------------------------------------------------------


async def main_async(args) -> dict[str, Any]:
    from bot.retraining.dataset import calibration_texts
    from bot.serving import prepare_model_version, serving_tag

    started = time.perf_counter()
    load_at_start = [round(value, 2) for value in os.getloadavg()]
    ensure_quickstart_model(args.model, args.shared_dir)
    traffic, heldout = build_traffic(args.shared_dir, args.seed, args.pattern_reviews)
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
        "settings": {key: plain(getattr(settings, key, None)) for key in SETTINGS_REPORTED},
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
            "pattern_reviews_sent": args.pattern_reviews,
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
        "--pattern-reviews",
        type=int,
        default=BOT_SIZE,
        help="pattern reviews sent to the bot; the held-out ones are the rest of the pattern's pool",
    )
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
