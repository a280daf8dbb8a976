"""Each group's moderation policy (set with /settings by that group's admins). Functions flush; the caller
commits."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.errors import InvalidDataError
from bot.storage.models import ChatMode, ChatPolicy, ToxicAction, utcnow

MIN_THRESHOLD = 0.5
MAX_STRIKES = 100
MAX_MUTE_MINUTES = 366 * 24 * 60  # Telegram treats a restriction over 366 days as forever
MAX_WINDOW_HOURS = 24 * 90

# The policy a group has before its admins change anything: watch (decide and log, touch nothing).
DEFAULT_POLICY: dict[str, Any] = {
    "mode": ChatMode.WATCH,
    "toxicity_threshold": 0.9,
    "action": ToxicAction.DELETE,
    "mute_after_strikes": 3,
    "mute_minutes": 60,
    "ban_after_strikes": 0,
    "strike_window_hours": 24,
    "post_sentiment": False,
    "reports_to_act": 3,
    "log_chat_id": None,
}


async def get_chat_policy(session: AsyncSession, *, chat_id: int) -> ChatPolicy:
    """The group's policy; the default (not stored) when its admins never set one."""
    policy = await session.get(ChatPolicy, chat_id, populate_existing=True)
    return policy if policy is not None else ChatPolicy(chat_id=chat_id, **DEFAULT_POLICY)


async def update_chat_policy(
    session: AsyncSession, *, chat_id: int, updated_by: int | None, **changes: Any
) -> ChatPolicy:
    """Change some of the group's policy fields (validated: InvalidDataError, nothing written)."""
    unknown = set(changes) - set(DEFAULT_POLICY)
    if unknown:
        raise InvalidDataError(f"Unknown policy field(s): {', '.join(sorted(unknown))}.")
    _validate(changes)
    policy = await session.get(ChatPolicy, chat_id)
    if policy is None:
        policy = ChatPolicy(chat_id=chat_id, **DEFAULT_POLICY)
        session.add(policy)
    for name, value in changes.items():
        setattr(policy, name, value)
    policy.updated_by = updated_by
    policy.updated_at = utcnow()
    await session.flush()
    return policy


def _validate(changes: dict[str, Any]) -> None:
    if "mode" in changes:
        changes["mode"] = ChatMode(changes["mode"])
    if "action" in changes:
        changes["action"] = ToxicAction(changes["action"])
    threshold = changes.get("toxicity_threshold")
    if threshold is not None and not MIN_THRESHOLD <= float(threshold) < 1.0:
        raise InvalidDataError(f"The threshold must be at least {MIN_THRESHOLD} and below 1.")
    for name, limit in (
        ("mute_after_strikes", MAX_STRIKES),
        ("ban_after_strikes", MAX_STRIKES),
        ("mute_minutes", MAX_MUTE_MINUTES),
        ("strike_window_hours", MAX_WINDOW_HOURS),
        ("reports_to_act", MAX_STRIKES),
    ):
        value = changes.get(name)
        if value is not None and not (isinstance(value, int) and 0 <= value <= limit):
            raise InvalidDataError(f"{name} must be a whole number from 0 to {limit}.")
    if changes.get("mute_minutes") == 0:
        raise InvalidDataError("A mute lasts at least one minute.")
    if changes.get("strike_window_hours") == 0:
        raise InvalidDataError("The strike window is at least one hour.")
