"""What the bot under test stored and answered: read back from its database and the Bot API stand-in."""

from __future__ import annotations

import asyncio
import re

from sqlalchemy import func, select

from bot import storage
from bot.storage import Verdict

VERDICT_RE = re.compile(r"^(부정|긍정) 리뷰 \(\d{1,3}\.\d%\)")


async def verdict_for(bot, message, task: storage.Task = storage.Task.SENTIMENT) -> Verdict | None:
    async with bot.session() as session:
        return await storage.find_verdict_by_message(
            session, chat_id=message["chat"]["id"], message_id=message["message_id"], task=task
        )


async def stored_reply_id(bot, message) -> int | None:
    """The verdict's reply message id, once stored (the bot stores it right after Telegram answers)."""
    for _ in range(100):
        verdict = await verdict_for(bot, message)
        if verdict is not None and verdict.reply_message_id is not None:
            return verdict.reply_message_id
        await asyncio.sleep(0.05)
    return None


async def count(bot, model) -> int:
    async with bot.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)))


async def callback_answers(bot, n: int) -> list[str]:
    await bot.api.wait_until(lambda: len(bot.api.calls("answerCallbackQuery")) >= n)
    return [r.params.get("text", "") for r in bot.api.calls("answerCallbackQuery")]
