"""Whose labels count: each untrusted labeller's record, measured by reviewers' spot checks.

A label is *trusted* when an admin gave it, or a reviewer in the `/review` queue. Every other label is
untrusted, and its author earns a record the way crowdsourcing quality control does it (Dawid & Skene 1979,
in its "one-coin" form: one accuracy per labeller, estimated from gold answers):

- A **spot check** is an untrusted label on a verdict that also has a trusted label: the reviewer's answer is
  the gold answer. The queue draws them on purpose (`bot.storage.review_queue`), blind: the reviewer is never
  shown what the user said.
- A labeller's accuracy is the posterior mean of a uniform Beta prior after `agreed` of `checks`:
  (agreed + 1) / (checks + 2). It has **earned** trust with at least `spot_checks_required` checks and an
  accuracy of at least `min_accuracy`; it is **failing** with as many checks and less; **unproven** before.
- Earned labellers' labels count; several earned labellers who disagree are weighed by the log-odds of their
  accuracies (the one-coin model's optimal vote). Unproven labellers' labels wait for a reviewer: their
  verdicts are *disputed* and lead the review queue. Failing labellers' labels do not count, though a sample
  keeps being checked, so a record can recover (and an earned one can fall: records are recomputed every time).

Why not agreement between users: honest people agree on clear cases, so agreement alone cannot tell colluders
from two friends who both care (the same pair correcting together looked like collusion and taught nothing).
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.storage.models import Feedback


@dataclass(frozen=True)
class LabelRule:
    """Settings that decide which untrusted labels count (see the module's docstring)."""

    trust_everyone: bool = False  # TRUST_FEEDBACK: every label counts, the majority wins (no checks)
    spot_checks_required: int = 3
    min_accuracy: float = 0.8
    spot_check_rate: float = 0.1  # share of earned or failing labellers' labels drawn for checks

    @classmethod
    def from_settings(cls, settings: Any) -> LabelRule:
        """From `bot.settings.Settings` (TRUST_FEEDBACK, SPOT_CHECKS_REQUIRED, LABELLER_MIN_ACCURACY,
        SPOT_CHECK_RATE)."""
        return cls(
            trust_everyone=settings.trust_feedback,
            spot_checks_required=settings.spot_checks_required,
            min_accuracy=settings.labeller_min_accuracy,
            spot_check_rate=settings.spot_check_rate,
        )


class Standing(enum.StrEnum):
    EARNED = "earned"
    UNPROVEN = "unproven"
    FAILING = "failing"


@dataclass(frozen=True)
class LabellerRecord:
    user_id: int
    checks: int = 0
    agreed: int = 0

    @property
    def accuracy(self) -> float:
        """Posterior mean under a uniform prior: never exactly 0 or 1, so the vote weights stay finite."""
        return (self.agreed + 1) / (self.checks + 2)

    def standing(self, rule: LabelRule) -> Standing:
        if self.checks < rule.spot_checks_required:
            return Standing.UNPROVEN
        return Standing.EARNED if self.accuracy >= rule.min_accuracy else Standing.FAILING


def _recency(feedback: Feedback) -> tuple[datetime, int]:
    return feedback.updated_at, feedback.id


async def labeller_records(
    session: AsyncSession, *, user_ids: Collection[int] | None = None
) -> dict[int, LabellerRecord]:
    """Records of untrusted labellers (all, or those in `user_ids`), from live labels on checked verdicts: a
    check is a live untrusted label on a verdict with a live trusted label, and the gold answer is the most recent
    trusted label (by `updated_at`, then id). One grouped query; only verdicts with a trusted label are read, and
    reviewers' capacity bounds how many there are."""
    recency = func.row_number().over(
        partition_by=Feedback.verdict_id, order_by=(Feedback.updated_at.desc(), Feedback.id.desc())
    )
    ranked = (
        select(Feedback.verdict_id, Feedback.label, recency.label("recency"))
        .where(Feedback.trusted.is_(True), Feedback.voided_at.is_(None))
        .subquery()
    )
    labelled = aliased(Feedback)
    query = (
        select(
            labelled.user_id,
            func.count(),
            func.sum(case((labelled.label == ranked.c.label, 1), else_=0)),
        )
        .join(ranked, and_(ranked.c.verdict_id == labelled.verdict_id, ranked.c.recency == 1))
        .where(labelled.trusted.is_(False), labelled.voided_at.is_(None))
        .group_by(labelled.user_id)
    )
    if user_ids is not None:
        query = query.where(labelled.user_id.in_(list(user_ids)))
    return {
        int(user): LabellerRecord(int(user), int(checks), int(agreed or 0))
        for user, checks, agreed in await session.execute(query)
    }


def record_of(records: dict[int, LabellerRecord], user_id: int) -> LabellerRecord:
    return records.get(user_id) or LabellerRecord(user_id)


def spot_check_draw(feedback_id: int) -> float:
    """A label's draw in [0, 1): a stable hash of its id, which its author cannot predict. It decides both whether
    a checked user's label is sampled and in which order an unproven user's labels are checked: by age, an attacker
    could label old verdicts honestly and flip new ones without a flip ever being checked."""
    digest = hashlib.sha256(f"spot-check:{feedback_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_spot_check_sample(feedback_id: int, rate: float) -> bool:
    """Whether a label is drawn for a spot check (`spot_check_draw` below `rate`)."""
    return rate > 0 and spot_check_draw(feedback_id) < rate


class LabelKey(Protocol):
    """What `needs_check` reads of a label: a `Feedback`, or a row of those columns."""

    id: int
    user_id: int
    trusted: bool


def needs_check(feedback: LabelKey, records: dict[int, LabellerRecord], rule: LabelRule) -> bool:
    """Whether a reviewer should answer this untrusted label's verdict: its author is unproven, or it is in the
    sample that keeps every record current."""
    if feedback.trusted or rule.trust_everyone:
        return False
    if record_of(records, feedback.user_id).standing(rule) is Standing.UNPROVEN:
        return True
    return is_spot_check_sample(feedback.id, rule.spot_check_rate)


def settle(
    feedback_rows: Sequence[Feedback], records: dict[int, LabellerRecord], rule: LabelRule
) -> int | None:
    """The label one verdict's live labels (one per user) settle on, or None while nothing counts.

    - The most recent trusted label wins.
    - With `trust_everyone`, the majority wins and a tie goes to the most recent label.
    - Otherwise only earned labellers' labels count, weighed by the log-odds of their accuracy (ties go to the
      most recent label).
    """
    if not feedback_rows:
        return None
    trusted = [feedback for feedback in feedback_rows if feedback.trusted]
    if trusted:
        return max(trusted, key=_recency).label
    if rule.trust_everyone:
        counting, weight = list(feedback_rows), dict.fromkeys((f.user_id for f in feedback_rows), 1.0)
    else:
        counting = [
            feedback
            for feedback in feedback_rows
            if record_of(records, feedback.user_id).standing(rule) is Standing.EARNED
        ]
        weight = {
            feedback.user_id: math.log(
                records[feedback.user_id].accuracy / (1 - records[feedback.user_id].accuracy)
            )
            for feedback in counting
        }
    if not counting:
        return None
    score: defaultdict[int, float] = defaultdict(float)
    for feedback in counting:
        score[feedback.label] += weight[feedback.user_id]
    best = max(score.values())
    tied = {label for label, value in score.items() if math.isclose(value, best)}
    return max((feedback for feedback in counting if feedback.label in tied), key=_recency).label
