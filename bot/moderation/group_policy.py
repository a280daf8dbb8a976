"""What a group's policy does with a message judged toxic: pure rules (no Telegram, no database).

A message is toxic when its calibrated probability of 공격적 or 혐오 together reaches the policy's threshold, or
when `reports_to_act` distinct members reported it. In
`act` each toxic message is deleted and is a strike against its author; strikes within the window lead to a
mute after `mute_after_strikes` and a ban after `ban_after_strikes` (the ban wins when both are due). `watch`
decides the same way, counting its own would-be strikes, and acts on nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.moderation import group_texts
from bot.storage import ActionKind, ChatMode, ChatPolicy, PlannedAction, ToxicAction
from classifier.tasks import CLEAN_LABEL


@dataclass(frozen=True)
class GroupDecision:
    rule: str  # the rule that fired, in words (shown in the log chat)
    strikes: int  # the author's strikes in the window, this one included
    warn: bool  # post a warning in the group
    actions: tuple[PlannedAction, ...]  # what is done (act) or would be done (watch)


def toxic_probability(probabilities: Mapping[str, float]) -> float:
    """The probability that a message is 공격적 or 혐오."""
    return min(1.0, max(0.0, sum(float(p) for name, p in probabilities.items() if name != CLEAN_LABEL)))


def decide(
    policy: ChatPolicy, *, toxic: float, prior_strikes: int, now: datetime, reporters: int = 0
) -> GroupDecision | None:
    """The decision about a message with toxic probability `toxic`, reported by `reporters` members, whose author
    has `prior_strikes` strikes in the window; None when the policy does nothing about it."""
    if policy.mode is ChatMode.OFF:
        return None
    if toxic >= policy.toxicity_threshold:
        rule = group_texts.RULE_TOXIC.format(threshold=100 * policy.toxicity_threshold)
    elif policy.reports_to_act and reporters >= policy.reports_to_act:
        rule = group_texts.RULE_REPORTS.format(reporters=reporters, limit=policy.reports_to_act)
    else:
        return None
    strikes = prior_strikes + 1
    actions = [PlannedAction(ActionKind.DELETE)]
    if policy.ban_after_strikes and strikes >= policy.ban_after_strikes:
        actions.append(PlannedAction(ActionKind.BAN))
        rule += group_texts.RULE_BAN.format(strikes=strikes, limit=policy.ban_after_strikes)
    elif policy.mute_after_strikes and strikes >= policy.mute_after_strikes:
        actions.append(PlannedAction(ActionKind.MUTE, until=now + timedelta(minutes=policy.mute_minutes)))
        rule += group_texts.RULE_MUTE.format(
            strikes=strikes, limit=policy.mute_after_strikes, minutes=policy.mute_minutes
        )
    else:
        rule += group_texts.RULE_STRIKE.format(strikes=strikes, hours=policy.strike_window_hours)
    return GroupDecision(
        rule=rule,
        strikes=strikes,
        warn=policy.action is ToxicAction.WARN,
        actions=tuple(actions),
    )
