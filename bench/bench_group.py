"""Benchmark: moderating two groups at once through the real bot (Application, runner, SQLite, on their fast
path: the first sentiment model of `make run` and bench_toxicity's toxicity model, the best one the trainer's
recipe makes) and the Bot API stand-in on 127.0.0.1.

- The load: per group MESSAGES messages from USERS members at RATE a second: comments of the toxicity task's
  fixed evaluation set (BEEP! dev and K-MHaS's held-out fifth: gold labels, never trained on), ordinary movie
  reviews and short chatter. Group A runs `act` (delete; mute after 3 strikes in 24 h); group B, at the same
  time, `watch` at the default threshold.
- Group A's threshold is chosen the way an admin would, before the load, on comments the load never sends: one
  evaluation comment in three (by a hash of its text) is set aside, scored by the served model, and the
  threshold is the lowest whole percent at which at most TUNING_CLEAN_SHARE of its clean comments would go.
- Figures: in `act`, precision and recall of deletions against gold (toxic = 공격적 or 혐오), the share of clean
  comments deleted (Wilson interval), p50/p95 from the update's delivery to its deleteMessage, strikes and
  mutes checked against the policy; in `watch`, Telegram actions (0 expected) and would-be actions logged.
- Then: 30 admin taps of 잘못 판정 in A's log chat (trusted 정상 labels, exported for the next toxicity run),
  a non-admin's taps and /settings (refused), a self-report, and 10 accounts mass-reporting one clean message.
  The SIGKILL-mid-burst figure of group actions is recorded by tests/bot/test_process_signals.py in
  bench/results/reliability.json (`group_actions_sigkill`).

    .venv/bin/python -m bench.bench_group [--messages 2000] [--rate 10] [--smoke]
Writes bench/results/group.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import random
import shutil
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.bot_under_test import REPO_ROOT, SHARED_DIR, BotUnderTest, ensure_quickstart_model
from bench.common import machine_record, nsmc_file
from bench.learning_loop_data import DEFAULT_MODEL_DIR, wilson_ci

logger = logging.getLogger("bench.group")

RESULTS = REPO_ROOT / "bench" / "results" / "group.json"
GROUP_A, LOG_A = -1001000000001, -1001000000002
GROUP_B, LOG_B = -1002000000001, -1002000000002
ADMIN_A, ADMIN_B = 8101, 8201
USERS = 50
SEED = 20261206
CHATTER = [
    "ㅋㅋㅋㅋ",
    "안녕하세요",
    "오늘 날씨 좋네요 다들 뭐하세요",
    "ㅇㅇ",
    "저녁 뭐 먹지",
    "ㅎㅎ 그러게요",
]
CHATTER_SHARE = 0.1
REVIEW_SHARE = 0.2  # ordinary movie reviews (no gold toxicity label: left out of precision and recall)
THRESHOLD_B = 90  # the default: group B watches as a group that just added the bot would
TUNING_PARTS = 3  # one evaluation comment in three picks group A's threshold; the load sends the others
TUNING_CLEAN_SHARE = 0.005  # at most this share of the set-aside clean comments above group A's threshold


def policy_a(threshold: int) -> tuple[str, ...]:
    return (
        "/settings mode act",
        f"/settings log {LOG_A}",
        "/settings mute 3 60",
        f"/settings threshold {threshold}",
    )


def policy_b(threshold: int) -> tuple[str, ...]:
    return (f"/settings log {LOG_B}", f"/settings threshold {threshold}")


TAPS = 30


def set_aside(text: str) -> bool:
    """Whether an evaluation comment picks the threshold (never sent by the load)."""
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) % TUNING_PARTS == 0


def gold_comments(settings, *, tuning: bool) -> list[tuple[str, str]]:
    """(text, "toxic"/"clean") for the toxicity evaluation set's comments on one side of the split."""
    from bot.retraining.dataset import gate_eval_set
    from classifier.tasks import CLEAN_LABEL

    evaluation = gate_eval_set(settings, "toxicity")
    return [
        (text, "clean" if label == CLEAN_LABEL else "toxic")
        for text, label in zip(evaluation.texts, evaluation.labels, strict=True)
        if set_aside(text) == tuning
    ]


def tuned_threshold(bot: BotUnderTest) -> dict[str, Any]:
    """Group A's threshold: the lowest whole percent at which at most TUNING_CLEAN_SHARE of the set-aside clean
    comments would be deleted, by the toxicity model the bot serves (its fast path, its confidence map)."""
    from classifier.tasks import CLEAN_LABEL

    comments = gold_comments(bot.settings, tuning=True)
    classifier = bot.moderation.toxicity.serving.active.classifier
    verdicts = classifier.predict([text for text, _ in comments])
    scored = [
        (1.0 - v.probabilities[CLEAN_LABEL], gold) for v, (_, gold) in zip(verdicts, comments, strict=True)
    ]
    clean = sum(1 for _, gold in scored if gold == "clean")
    toxic = len(scored) - clean
    for percent in range(50, 100):
        flagged = [gold for score, gold in scored if score >= percent / 100]
        if flagged.count("clean") <= TUNING_CLEAN_SHARE * clean:
            break
    return {
        "threshold_percent": percent,
        "set_aside_comments": len(scored),
        "set_aside_clean": clean,
        "clean_above": flagged.count("clean"),
        "recall_on_set_aside": round(flagged.count("toxic") / toxic, 4) if toxic else None,
        "rule": f"lowest whole percent with at most {TUNING_CLEAN_SHARE:.1%} of the set-aside clean comments above it",
    }


def traffic(shared_dir: Path, settings, count: int, seed: int) -> list[tuple[str, str | None]]:
    """(text, gold) per message: gold "toxic"/"clean" for the evaluation set's comments (those not set aside)
    and chatter, None for ordinary reviews."""
    rng = random.Random(seed)
    comments = gold_comments(settings, tuning=False)
    lines = nsmc_file(shared_dir, "test").read_text(encoding="utf-8").splitlines()[1:]
    reviews = [
        line.split("\t")[1] for line in lines if line.count("\t") == 2 and len(line.split("\t")[1]) >= 10
    ]
    chatter_n, review_n = int(count * CHATTER_SHARE), int(count * REVIEW_SHARE)
    messages = rng.sample(comments, count - chatter_n - review_n)
    messages += [(rng.choice(CHATTER), "clean") for _ in range(chatter_n)]
    messages += [(text, None) for text in rng.sample(reviews, review_n)]
    rng.shuffle(messages)
    return messages


async def configure(bot: BotUnderTest, group: int, admin: int, log_chat: int, commands) -> None:
    bot.api.set_member(group, admin, "administrator", can_delete_messages=True, can_restrict_members=True)
    bot.api.set_member(log_chat, admin, "creator")
    for command in commands:
        message = bot.api.push_message(command, chat_id=group, chat_type="supergroup", user_id=admin)
        reply = await bot.api.wait_for_reply(message, timeout=60)
        if not reply["text"].startswith("✅"):
            raise RuntimeError(f"{command}: {reply['text']}")


async def send(
    bot: BotUnderTest, group: int, first_user: int, messages, rate: float, seed: int
) -> list[dict]:
    rng = random.Random(seed)
    sent = []
    for text, gold in messages:
        user = first_user + rng.randrange(USERS)
        sent.append((bot.api.push_message(text, chat_id=group, chat_type="supergroup", user_id=user), gold))
        await asyncio.sleep(1.0 / rate)
    return sent


async def drained(bot: BotUnderTest, timeout: float = 600) -> None:
    """Every update confirmed and processed, and no moderation action left pending."""
    from sqlalchemy import func, select

    from bot.storage import ActionStatus, InboxStatus, ModerationAction, TelegramUpdate

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with bot.sessions() as session:
            updates = await session.scalar(
                select(func.count())
                .select_from(TelegramUpdate)
                .where(TelegramUpdate.status == InboxStatus.PENDING)
            )
            actions = await session.scalar(
                select(func.count())
                .select_from(ModerationAction)
                .where(ModerationAction.status == ActionStatus.PENDING)
            )
        if not bot.api._updates and not updates and not actions and not bot.runner._inflight:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError("the bot did not finish the load")


def act_figures(bot: BotUnderTest, sent, decisions) -> dict[str, Any]:
    api = bot.api
    deleted = {message_id for chat, message_id in api.deleted if chat == GROUP_A}
    gold = [(m, g) for m, g in sent if g is not None]
    toxic = [m for m, g in gold if g == "toxic"]
    clean = [m for m, g in gold if g == "clean"]
    true_positive = sum(1 for m in toxic if m["message_id"] in deleted)
    deleted_gold = sum(1 for m, _ in gold if m["message_id"] in deleted)
    clean_deleted = sum(1 for m in clean if m["message_id"] in deleted)
    reviews_deleted = sum(1 for m, g in sent if g is None and m["message_id"] in deleted)
    delete_at = {
        int(r.params["message_id"]): r.at
        for r in api.calls("deleteMessage")
        if int(r.params["chat_id"]) == GROUP_A
    }
    latencies = sorted(
        delete_at[m["message_id"]] - api.delivered_at[api.update_of_message[(GROUP_A, m["message_id"])]]
        for m, _ in sent
        if m["message_id"] in delete_at
    )
    low, high = wilson_ci(clean_deleted, len(clean)) or (0.0, 0.0)
    return {
        "messages": len(sent),
        "gold_toxic": len(toxic),
        "gold_clean": len(clean),
        "ordinary_reviews": sum(1 for _, g in sent if g is None),
        "deleted": len(deleted),
        "deleted_twice": len(api.deleted) - len(set(api.deleted)),
        "precision": round(true_positive / deleted_gold, 4) if deleted_gold else None,
        "recall": round(true_positive / len(toxic), 4) if toxic else None,
        "clean_deleted": clean_deleted,
        "clean_deleted_share": round(clean_deleted / len(clean), 4) if clean else None,
        "clean_deleted_ci95": [round(low, 4), round(high, 4)],
        "ordinary_reviews_deleted": reviews_deleted,
        "seconds_to_delete": {
            "n": len(latencies),
            "p50": round(statistics.median(latencies), 3) if latencies else None,
            "p95": round(latencies[int(0.95 * (len(latencies) - 1))], 3) if latencies else None,
            "max": round(latencies[-1], 3) if latencies else None,
        },
        "policy": policy_check(api, decisions),
    }


def policy_check(api, decisions) -> dict[str, Any]:
    """Strikes and mutes as the policy says: per member, strikes 1, 2, 3, ... in the order decided, and a mute
    (one restrictChatMember) for each decision from the third strike on."""
    by_user: dict[int, list] = {}
    for decision in sorted(decisions, key=lambda d: d.id):
        by_user.setdefault(decision.user_id, []).append(decision)
    strike_errors = sum(
        1
        for rows in by_user.values()
        for index, decision in enumerate(rows, start=1)
        if decision.strikes != index
    )
    expected_mutes = sum(1 for d in decisions if d.strikes >= 3)
    mutes = [r for r in api.calls("restrictChatMember") if int(r.params["chat_id"]) == GROUP_A]
    return {
        "members_with_strikes": len(by_user),
        "decisions": len(decisions),
        "strike_count_errors": strike_errors,
        "mutes_expected": expected_mutes,
        "mutes_applied": len(mutes),
        "bans": len([r for r in api.calls("banChatMember") if int(r.params["chat_id"]) == GROUP_A]),
    }


async def decisions_of(bot: BotUnderTest, chat_id: int) -> list:
    from sqlalchemy import select

    from bot.storage import ModerationDecision

    async with bot.sessions() as session:
        return list(
            (
                await session.scalars(select(ModerationDecision).where(ModerationDecision.chat_id == chat_id))
            ).all()
        )


async def logged(bot: BotUnderTest, log_chat: int) -> dict[str, int]:
    from sqlalchemy import func, select

    from bot.storage import OutboxMessage, OutboxStatus

    async with bot.sessions() as session:
        rows = await session.execute(
            select(OutboxMessage.status, func.count())
            .where(OutboxMessage.chat_id == log_chat)
            .group_by(OutboxMessage.status)
        )
        counts = {str(status): int(n) for status, n in rows}
    return {"stored": sum(counts.values()), "sent": counts.get(OutboxStatus.SENT, 0)}


async def threshold_curve(bot: BotUnderTest, sent) -> list[dict[str, Any]]:
    """What other thresholds would have deleted, from the toxicity verdicts stored for both groups' gold
    messages: precision, recall and the share of clean messages deleted, per threshold."""
    from sqlalchemy import select

    from bot.storage import Task, Verdict
    from classifier.tasks import CLEAN_LABEL

    gold = {(m["chat"]["id"], m["message_id"]): g for m, g in sent if g is not None}
    async with bot.sessions() as session:
        rows = (
            await session.execute(
                select(Verdict.chat_id, Verdict.message_id, Verdict.probabilities).where(
                    Verdict.task == Task.TOXICITY
                )
            )
        ).all()
    scored = [(1.0 - float(p[CLEAN_LABEL]), gold[(c, m)]) for c, m, p in rows if (c, m) in gold]
    curve = []
    for threshold in (0.5, 0.7, 0.8, 0.9, 0.93, 0.95, 0.96, 0.97, 0.98, 0.99):
        flagged = [g for score, g in scored if score >= threshold]
        toxic = sum(1 for _, g in scored if g == "toxic")
        clean = sum(1 for _, g in scored if g == "clean")
        hits = flagged.count("toxic")
        curve.append(
            {
                "threshold": threshold,
                "flagged": len(flagged),
                "precision": round(hits / len(flagged), 4) if flagged else None,
                "recall": round(hits / toxic, 4) if toxic else None,
                "clean_flagged_share": round(flagged.count("clean") / clean, 4) if clean else None,
            }
        )
    return curve


async def admin_taps(bot: BotUnderTest, decisions) -> dict[str, Any]:
    """TAPS presses of 잘못 판정 by A's admin, after a member and B's admin pressed the first one (refused)."""
    from bot import storage
    from bot.moderation import group_texts
    from bot.storage import LabelRule, Task

    entry = {"message_id": 1, "chat": {"id": LOG_A, "type": "supergroup"}, "date": int(time.time())}
    chosen = sorted(decisions, key=lambda d: d.id)[:TAPS]
    mutes_undone = sum(1 for d in chosen for a in d.actions if a.kind.value == "mute")
    refused = []
    for user in (5000, ADMIN_B):
        refused.append(await bot.press(entry, f"gm:undo:{chosen[0].id}", user) == group_texts.LOG_NOT_ADMIN)
    answers = [await bot.press(entry, f"gm:undo:{d.id}", ADMIN_A) for d in chosen]
    async with bot.sessions() as session:
        labels = await storage.export_human_labels(
            session, rule=LabelRule.from_settings(bot.settings), task=Task.TOXICITY
        )
    mine = [label for label in labels if label.verdict_id in {d.verdict_id for d in chosen}]
    return {
        "taps": len(chosen),
        "answered_undone": sum(1 for a in answers if a == group_texts.LOG_UNDONE),
        "non_admin_taps_refused": sum(refused),
        "non_admin_taps": len(refused),
        "trusted_labels_exported_for_the_next_run": len(mine),
        "their_label_ids": sorted({label.label for label in mine}),  # 0: 정상
        "mutes_of_the_tapped_decisions": mutes_undone,
        "unmutes": len(
            [
                r
                for r in bot.api.calls("restrictChatMember")
                if r.params.get("permissions", {}).get("can_send_messages")
            ]
        ),
    }


async def adversarial(bot: BotUnderTest) -> dict[str, Any]:
    from bot.moderation import group_texts

    api = bot.api
    out: dict[str, Any] = {}
    settings = api.push_message("/settings mode off", chat_id=GROUP_A, chat_type="supergroup", user_id=5001)
    out["non_admin_settings_refused"] = (await api.wait_for_reply(settings, timeout=60))[
        "text"
    ] == group_texts.SETTINGS_NOT_ADMIN
    target = api.push_message(
        "오늘 모임 장소는 강남역 2번 출구 앞이에요", chat_id=GROUP_A, chat_type="supergroup", user_id=5002
    )
    own = api.push_message("/report", chat_id=GROUP_A, chat_type="supergroup", user_id=5002, reply_to=target)
    out["self_report_refused"] = (await api.wait_for_reply(own, timeout=60))["text"] == group_texts.REPORT_OWN
    before = len(api.deleted)
    answers = []
    for account in range(9001, 9011):
        report = api.push_message(
            "/report", chat_id=GROUP_A, chat_type="supergroup", user_id=account, reply_to=target
        )
        answers.append((await api.wait_for_reply(report, timeout=60))["text"])
    await drained(bot)
    out["mass_report"] = {
        "accounts": 10,
        "rule": "reports_to_act = 3 (the default): the policy decides at the third distinct reporter",
        "message_deleted": (GROUP_A, target["message_id"]) in api.deleted,
        "deletions": len(api.deleted) - before,
        "answers": answers[:4],
    }
    return out


async def main_async(args) -> dict[str, Any]:
    from bench.bench_toxicity import e5_config, fine_tuned_e5

    started = time.perf_counter()
    load_at_start = [round(v, 2) for v in os.getloadavg()]
    ensure_quickstart_model(args.model, args.shared_dir)
    # bench_toxicity's model (it runs before this in `make bench`; trained here when missing, ~30 min)
    toxicity_model = fine_tuned_e5(e5_config(args.shared_dir, args.toxicity_workdir, args.toxicity_seed))
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True)
    bot = BotUnderTest(args.workdir, args.shared_dir, args.model, toxicity_model_dir=toxicity_model)
    await bot.start()
    try:
        for group in (GROUP_A, GROUP_B):
            bot.api.set_bot_rights(group, can_delete_messages=True, can_restrict_members=True)
        tuning = await asyncio.to_thread(tuned_threshold, bot)
        threshold_a = args.threshold_a or tuning["threshold_percent"]
        await configure(bot, GROUP_A, ADMIN_A, LOG_A, policy_a(threshold_a))
        await configure(bot, GROUP_B, ADMIN_B, LOG_B, policy_b(args.threshold_b))
        load_a = traffic(args.shared_dir, bot.settings, args.messages, SEED)
        load_b = traffic(args.shared_dir, bot.settings, args.messages, SEED + 1)
        load_started = time.perf_counter()
        sent_a, sent_b = await asyncio.gather(
            send(bot, GROUP_A, 5000, load_a, args.rate, SEED),
            send(bot, GROUP_B, 6000, load_b, args.rate, SEED + 1),
        )
        await drained(bot)
        load_seconds = time.perf_counter() - load_started
        decisions_a = await decisions_of(bot, GROUP_A)
        decisions_b = await decisions_of(bot, GROUP_B)
        act = act_figures(bot, sent_a, decisions_a)
        watch = {
            "messages": len(sent_b),
            "telegram_actions": sum(
                1
                for method in ("deleteMessage", "restrictChatMember", "banChatMember")
                for r in bot.api.calls(method, ok_only=False)
                if int(r.params["chat_id"]) == GROUP_B
            ),
            "would_be_actions": len(decisions_b),
            "log_entries": await logged(bot, LOG_B),
        }
        act["log_entries"] = await logged(bot, LOG_A)
        curve = await threshold_curve(bot, sent_a + sent_b)
        print(json.dumps({"act": act, "watch": watch}, ensure_ascii=False, default=str))
        taps = await admin_taps(bot, decisions_a) if decisions_a else {"taps": 0}
        attacks = await adversarial(bot)
    finally:
        await bot.stop()
    return {
        "benchmark": "group",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.bench_group" + (" --smoke" if args.smoke else ""),
        "smoke": args.smoke,
        "machine": machine_record(load_at_start),
        "load": {
            "groups": 2,
            "messages_per_group": args.messages,
            "rate_per_group": args.rate,
            "members_per_group": USERS,
            "mix": {
                "evaluation_set_comments": 1 - CHATTER_SHARE - REVIEW_SHARE,
                "chatter": CHATTER_SHARE,
                "ordinary_reviews": REVIEW_SHARE,
            },
            "seconds": round(load_seconds, 1),
        },
        "toxicity_model": {
            "path": str(
                toxicity_model.relative_to(REPO_ROOT)
                if toxicity_model.is_relative_to(REPO_ROOT)
                else toxicity_model
            ),
            "metrics": {
                k: v
                for k, v in json.loads((toxicity_model / "metrics.json").read_text()).items()
                if k in ("macro_f1", "accuracy", "base_checkpoint", "epochs_trained", "created_at")
            },
        },
        "threshold_a_tuning": tuning,
        "policies": {"A": list(policy_a(threshold_a)), "B": list(policy_b(args.threshold_b))},
        "act": act,
        "watch": watch,
        "threshold_curve": {
            "what": "both groups' gold messages (comments of the evaluation set and chatter), judged by the served toxicity model",
            "points": curve,
        },
        "admin_taps": taps,
        "adversarial": attacks,
        "sigkill": "bench/results/reliability.json: figures.group_actions_sigkill",
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages per group")
    parser.add_argument("--rate", type=float, default=10.0, help="messages a second per group")
    parser.add_argument(
        "--threshold-a",
        type=float,
        default=None,
        help="group A's threshold, percent (default: tuned, see above)",
    )
    parser.add_argument("--threshold-b", type=int, default=THRESHOLD_B, help="group B's threshold, percent")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR, help="the sentiment model")
    parser.add_argument(
        "--toxicity-workdir",
        type=Path,
        default=REPO_ROOT / "data" / "bench-toxicity",
        help="bench_toxicity's work folder, holding its e5-toxicity model",
    )
    parser.add_argument(
        "--toxicity-seed", type=int, default=0, help="bench_toxicity's seed, if it must train"
    )
    parser.add_argument("--shared-dir", type=Path, default=SHARED_DIR)
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "data" / "bench-group")
    parser.add_argument(
        "--smoke", action="store_true", help="200 messages a group (plumbing; figures meaningless)"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.messages = 200
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    results = asyncio.run(main_async(args))
    target = RESULTS.with_name("group-smoke.json") if args.smoke else RESULTS
    target.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(
        json.dumps(
            {k: results[k] for k in ("load", "act", "watch", "admin_taps", "adversarial")},
            ensure_ascii=False,
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
