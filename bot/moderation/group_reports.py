"""`/report`, sent as a reply in a group: a member's untrusted suggestion that a message is toxic.

A member reports a message once, and at most FEEDBACK_RATE_LIMIT_PER_HOUR messages an hour; nobody reports their
own message, and the messages of admins and of the bot are never acted on. A report is a label of the message's
toxicity verdict under the same trust rules as every correction (it counts once the reporter's record earned
it; until then it makes the verdict disputed, so it leads the review queue). When `reports_to_act` distinct
members reported a message, the policy decides about it as about a toxic one (act: deleted, a strike; watch:
logged).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from bot import storage
from bot.moderation import group_texts
from bot.moderation.classification import Judgement
from bot.moderation.group_policy import toxic_probability
from bot.moderation.group_watching import GroupMessage, GroupOutcome, GroupWatching
from bot.moderation.replies import Reply
from bot.storage import ChatMode, RateLimitedError, StorageError, Task
from classifier.errors import EmptyTextError
from classifier.tasks import CLEAN_LABEL

logger = logging.getLogger("bot.moderation")

REPORTED_LABEL = "공격적"  # what a report says when the model found the message clean


@dataclass(frozen=True)
class Report:
    reporter_id: int
    target: GroupMessage  # the reported message (its author, text and whether they administer the group)


class GroupReporting(GroupWatching):
    async def report(self, report: Report) -> GroupOutcome:
        target = report.target
        if target.user_id is None:
            return GroupOutcome(reply=Reply(group_texts.REPORT_USAGE))
        if target.user_id == report.reporter_id:
            return GroupOutcome(reply=Reply(group_texts.REPORT_OWN))
        if target.author_is_admin or target.user_id == target.bot_id:
            return GroupOutcome(reply=Reply(group_texts.REPORT_ADMIN))
        try:
            return await self._report(report)
        except RateLimitedError as error:
            return GroupOutcome(reply=Reply(group_texts.REPORT_RATE_LIMITED.format(limit=error.limit)))
        except (StorageError, SQLAlchemyError, OSError):
            logger.exception("could not record a report in chat %s", target.chat_id)
            return GroupOutcome()

    async def _report(self, report: Report) -> GroupOutcome:
        target = report.target
        policy = await self.group_policy(target.chat_id)
        if policy.mode is ChatMode.OFF:
            return GroupOutcome(reply=Reply(group_texts.REPORT_OFF))
        judgement = await self._judge_reported(target)
        async with self._transaction() as session:
            reporters, created = await storage.record_report(
                session,
                chat_id=target.chat_id,
                message_id=target.message_id,
                reporter_id=report.reporter_id,
                hourly_limit=self.settings.feedback_rate_limit_per_hour,
            )
            if created and judgement is not None and judgement.toxicity_row is not None:
                labels = self.labels(Task.TOXICITY)
                row = judgement.toxicity_row
                label = row.label if row.label_name != CLEAN_LABEL else _label_id(labels, REPORTED_LABEL)
                await storage.record_feedback(
                    session,
                    verdict_id=row.id,
                    user_id=report.reporter_id,
                    label=label,
                    num_labels=len(labels),
                    is_admin=self.settings.is_admin(report.reporter_id),
                )
        limit = policy.reports_to_act
        if not created:
            return GroupOutcome(
                reply=Reply(group_texts.REPORT_AGAIN.format(reporters=reporters, limit=limit))
            )
        logger.info(
            "chat %s message %s reported (%d reporter(s))", target.chat_id, target.message_id, reporters
        )
        if not limit:
            reply = Reply(group_texts.REPORT_RECORDED_NO_LIMIT)
        elif reporters > limit:
            reply = Reply(group_texts.REPORT_RECORDED_PAST_LIMIT.format(limit=limit))
        else:
            reply = Reply(group_texts.REPORT_RECORDED.format(reporters=reporters, limit=limit))
        if not limit or reporters < limit:
            return GroupOutcome(reply=reply)
        toxic = (
            toxic_probability(judgement.toxicity.probabilities) if judgement and judgement.toxicity else 0.0
        )
        outcome = await self._decide(policy, target, judgement, target.text, toxic=toxic, reporters=reporters)
        return GroupOutcome(reply=reply, action_ids=outcome.action_ids)

    async def _judge_reported(self, target: GroupMessage) -> Judgement | None:
        """The reported message's verdicts (judged now when it was not before); None when it is no review."""
        incoming = target.incoming()
        screened = self.screen(incoming)
        if isinstance(screened, Reply):
            return None
        try:
            return await self.judge(incoming, screened)
        except EmptyTextError:
            return None


def _label_id(labels: dict[int, str], name: str) -> int:
    return next(label for label, label_name in labels.items() if label_name == name)
