"""Aggregate numbers for /stats."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import Feedback, Verdict


@dataclass(frozen=True)
class Stats:
    verdicts: int
    corrections: int  # live (not voided) corrections
    corrected_verdicts: int  # verdicts with at least one live correction
    corrected_share: float  # corrected_verdicts / verdicts (0.0 without verdicts)
    verdicts_by_label: dict[str, int] = field(default_factory=dict)


async def get_stats(session: AsyncSession) -> Stats:
    verdict_count = int(await session.scalar(select(func.count()).select_from(Verdict)) or 0)
    live_feedback = Feedback.voided_at.is_(None)
    correction_count = int(
        await session.scalar(select(func.count()).select_from(Feedback).where(live_feedback)) or 0
    )
    corrected_verdicts = int(
        await session.scalar(select(func.count(distinct(Feedback.verdict_id))).where(live_feedback)) or 0
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
    )
