"""Helpers shared by the storage tests (imported as a plain module, like the other test folders do)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.storage import add_verdict
from bot.storage.models import Verdict

PROBABILITIES = {"부정": 0.2, "긍정": 0.8}


def verdict_fields(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments of a valid `add_verdict` call."""
    fields: dict[str, Any] = {
        "chat_id": -1001234567890,  # supergroup ids do not fit in 32 bits
        "message_id": 1,
        "user_id": 42,
        "text": "배우들 연기가 정말 좋았어요",
        "label": 1,
        "label_name": "긍정",
        "confidence": 0.8,
        "probabilities": dict(PROBABILITIES),
        "model_version_id": None,
    }
    fields.update(overrides)
    return fields


async def insert_verdict(session_factory: async_sessionmaker[AsyncSession], **overrides: Any) -> Verdict:
    async with session_factory() as session, session.begin():
        return await add_verdict(session, **verdict_fields(**overrides))


async def count_rows(session_factory: async_sessionmaker[AsyncSession], model: type) -> int:
    async with session_factory() as session:
        return int(await session.scalar(select(func.count()).select_from(model)))
