"""Aggregate numbers for /stats."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import Feedback, FeedbackSource, Verdict


@dataclass(frozen=True)
class Stats:
    verdicts: int
    corrections: int  # live (not voided) labels that differ from the verdict
    corrected_verdicts: int  # verdicts with at least one live correction
    corrected_share: float  # corrected_verdicts / verdicts (0.0 without verdicts)
    verdicts_by_label: dict[str, int] = field(default_factory=dict)
    confirmations: int = 0  # live labels equal to the verdict (맞아요, /feedback right)
    review_labels: int = 0  # live labels given in the review queue (counted in the two above as well)


async def get_stats(session: AsyncSession) -> Stats:
    verdict_count = int(await session.scalar(select(func.count()).select_from(Verdict)) or 0)
    live = (
        select(Feedback).join(Verdict, Feedback.verdict_id == Verdict.id).where(Feedback.voided_at.is_(None))
    )
    corrections = live.where(Feedback.label != Verdict.label).subquery()
    confirmations = live.where(Feedback.label == Verdict.label).subquery()
    correction_count = int(await session.scalar(select(func.count()).select_from(corrections)) or 0)
    confirmation_count = int(await session.scalar(select(func.count()).select_from(confirmations)) or 0)
    corrected_verdicts = int(
        await session.scalar(select(func.count(distinct(corrections.c.verdict_id)))) or 0
    )
    review_labels = int(
        await session.scalar(
            select(func.count())
            .select_from(Feedback)
            .where(Feedback.voided_at.is_(None), Feedback.source == FeedbackSource.REVIEW)
        )
        or 0
    )
    by_label = await session.execute(
        select(Verdict.label_name, func.count()).group_by(Verdict.label_name).order_by(Verdict.label_name)
    )
    return Stats(
        verdicts=verdict_count,
        corrections=correction_count,
        corrected_verdicts=corrected_verdicts,
        corrected_share=corrected_verdicts / verdict_count if verdict_count else 0.0,
        verdicts_by_label={label_name: int(count) for label_name, count in by_label.all()},
        confirmations=confirmation_count,
        review_labels=review_labels,
    )
