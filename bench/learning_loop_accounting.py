"""What the learning-loop benchmark's people gave and what each run counted: every label by role with the bot's
answer, the labels a run trained on and held out (from its files), the poisoned ones, and each labeller's record."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from bench.bot_under_test import BotUnderTest, Review, rate_limited
from bench.learning_loop_data import LABEL_NAMES

ATTACKER_ROLES = ("colluder", "attacker")


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
                "refused": rate_limited(kind, answer),
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
    verdict that also has a trusted label, the most recent of which is the answer), beside the bot's own standing
    (`bot.storage.label_trust`): the two should agree."""
    from sqlalchemy import select

    from bot.storage import Feedback, label_trust

    required = bot.settings.spot_checks_required
    min_accuracy = bot.settings.labeller_min_accuracy
    rule = label_trust.LabelRule.from_settings(bot.settings)
    async with bot.sessions() as session:
        rows = list(await session.scalars(select(Feedback).where(Feedback.voided_at.is_(None))))
        bot_view = {
            user: str(record.standing(rule))
            for user, record in (await label_trust.labeller_records(session)).items()
        }
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
            "bot_standing": bot_view.get(user, "unproven"),
        }
    by_role: dict[str, Counter] = defaultdict(Counter)
    for record in users.values():
        by_role[record["role"]][record["standing"]] += 1
    mismatches = [user for user, record in users.items() if record["standing"] != record["bot_standing"]]
    return {
        "by_role": {role: dict(counts) for role, counts in sorted(by_role.items())},
        "standing_differs_from_bot": mismatches,
        "users": users,
    }
