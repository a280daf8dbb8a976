"""What a group's admins do: set the policy with /settings, and answer the log chat's entries.

Only an admin of the group (as Telegram says, through `ChatAdmins`) or one of the bot's ADMIN_IDS may change a
group's policy or press a log entry's buttons; the log chat may be any chat the admin administers too. An
answer in the log chat is a trusted toxicity label of the message (trained on through the gate, like every
label): 잘못 판정 labels it 정상, clears the strike and undoes a mute or ban; 맞아요 confirms the verdict; 추방
bans the author and confirms the verdict.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from bot import storage
from bot.moderation import group_texts
from bot.moderation.group_watching import ChatAdmins, GroupOutcome, GroupWatching
from bot.moderation.replies import Reply, parse_id
from bot.storage import ActionKind, ActionStatus, ChatMode, ChatPolicy, InvalidDataError, StorageError, Task
from classifier.tasks import CLEAN_LABEL

logger = logging.getLogger("bot.moderation")

ANSWERS = {"undo": "wrong", "ok": "right", "ban": "banned"}


@dataclass(frozen=True)
class BotRights:
    """What the bot may do in a group, as Telegram says."""

    can_delete_messages: bool
    can_restrict_members: bool
    reads_all_messages: bool  # privacy mode off, or the bot is an admin


class GroupAdministration(GroupWatching):
    async def _may_administer(self, admins: ChatAdmins, chat_id: int, user_id: int | None) -> bool:
        if user_id is None:
            return False
        return self.settings.is_admin(user_id) or await admins.is_admin(chat_id, user_id)

    # -- the log chat's buttons ---------------------------------------------------------------------------

    async def log_button(self, *, user_id: int | None, rest: str, admins: ChatAdmins) -> GroupOutcome:
        """A press of 잘못 판정 / 맞아요 / 추방 under a log entry (`gm:<undo|ok|ban>:<decision id>`); the reply is
        the toast."""
        what, _, raw_id = rest.partition(":")
        decision_id = parse_id(raw_id)
        if what not in ANSWERS or decision_id is None:
            return GroupOutcome(reply=Reply(group_texts.LOG_UNKNOWN))
        try:
            async with self._transaction() as session:
                decision = await storage.get_decision(session, decision_id=decision_id)
            if decision is None:
                return GroupOutcome(reply=Reply(group_texts.LOG_UNKNOWN))
            if not await self._may_administer(admins, decision.chat_id, user_id):
                return GroupOutcome(reply=Reply(group_texts.LOG_NOT_ADMIN))
            assert user_id is not None
            return await self._answer(decision_id, ANSWERS[what], user_id)
        except (StorageError, SQLAlchemyError, OSError):
            logger.exception("could not record an answer to decision %s", decision_id)
            return GroupOutcome(reply=Reply(group_texts.LOG_UNKNOWN))

    async def _answer(self, decision_id: int, answer: str, user_id: int) -> GroupOutcome:
        labels = self.labels(Task.TOXICITY)
        clean = next(label for label, name in labels.items() if name == CLEAN_LABEL)
        async with self._transaction() as session:
            decision = await storage.get_decision(session, decision_id=decision_id, for_update=True)
            assert decision is not None
            if decision.admin_decision is not None:  # answered already (another admin, a double tap)
                shown = group_texts.ADMIN_ANSWERS.get(decision.admin_decision, decision.admin_decision)
                return GroupOutcome(reply=Reply(group_texts.LOG_ALREADY.format(answer=shown)))
            await storage.record_admin_decision(session, decision=decision, answer=answer, admin_id=user_id)
            verdict = (
                await storage.get_verdict(session, verdict_id=decision.verdict_id)
                if decision.verdict_id is not None
                else None
            )
            if verdict is not None:
                await storage.record_feedback(
                    session,
                    verdict_id=verdict.id,
                    user_id=user_id,
                    label=clean if answer == "wrong" else verdict.label,
                    num_labels=len(labels),
                    is_admin=self.settings.is_admin(user_id),
                    trusted=True,  # an admin of the group where it was said
                )
            queued = []
            done_or_pending = {
                a.kind for a in decision.actions if a.status in (ActionStatus.DONE, ActionStatus.PENDING)
            }
            if answer == "wrong":
                for kind, undo in ((ActionKind.MUTE, ActionKind.UNMUTE), (ActionKind.BAN, ActionKind.UNBAN)):
                    if kind in done_or_pending:
                        queued.append((await storage.add_action(session, decision=decision, kind=undo))[0])
            elif answer == "banned":
                queued.append((await storage.add_action(session, decision=decision, kind=ActionKind.BAN))[0])
            await session.flush()
            action_ids = tuple(action.id for action in queued if action.status is ActionStatus.PENDING)
        toast = {"wrong": group_texts.LOG_UNDONE, "right": group_texts.LOG_CONFIRMED}.get(
            answer, group_texts.LOG_BANNED
        )
        return GroupOutcome(reply=Reply(toast), action_ids=action_ids)

    # -- /settings ----------------------------------------------------------------------------------------

    async def group_settings(
        self,
        *,
        chat_id: int,
        user_id: int | None,
        argument: str,
        admins: ChatAdmins,
        rights: BotRights,
    ) -> Reply:
        """Show the group's policy (anyone) or change it (its admins)."""
        try:
            words = argument.split()
            if not words:
                return Reply(self._view(await self.group_policy(chat_id), rights))
            if not await self._may_administer(admins, chat_id, user_id):
                return Reply(group_texts.SETTINGS_NOT_ADMIN)
            changes = parse_settings(words, chat_id=chat_id)
            if changes is None:
                return Reply(group_texts.SETTINGS_BAD.format(argument=" ".join(words)[:64]))
            log_chat = changes.get("log_chat_id")
            if (
                log_chat is not None
                and log_chat != chat_id
                and not await self._may_administer(admins, log_chat, user_id)
            ):
                return Reply(group_texts.SETTINGS_LOG_NOT_ADMIN.format(chat_id=log_chat))
            async with self._transaction() as session:
                policy = await storage.update_chat_policy(
                    session, chat_id=chat_id, updated_by=user_id, **changes
                )
            logger.info("chat %s: policy changed by %s: %s", chat_id, user_id, sorted(changes))
            return Reply(group_texts.SETTINGS_CHANGED.format(view=self._view(policy, rights)))
        except InvalidDataError as error:
            return Reply(group_texts.SETTINGS_BAD_VALUE.format(detail=error))
        except (StorageError, SQLAlchemyError, OSError):
            logger.exception("could not read or change the policy of chat %s", chat_id)
            return Reply(group_texts.SETTINGS_BAD_VALUE.format(detail="storage"))

    def _view(self, policy: ChatPolicy, rights: BotRights) -> str:
        def yes(value: bool) -> str:
            return group_texts.YES if value else group_texts.NO

        text = group_texts.SETTINGS_VIEW.format(
            mode=group_texts.MODE_NAMES[ChatMode(policy.mode)],
            threshold=100 * policy.toxicity_threshold,
            action=group_texts.TOXIC_ACTION_NAMES[policy.action],
            mute=(
                group_texts.MUTE_RULE.format(strikes=policy.mute_after_strikes, minutes=policy.mute_minutes)
                if policy.mute_after_strikes
                else group_texts.NEVER
            ),
            ban=(
                group_texts.BAN_RULE.format(strikes=policy.ban_after_strikes)
                if policy.ban_after_strikes
                else group_texts.NEVER
            ),
            window=policy.strike_window_hours,
            sentiment=yes(policy.post_sentiment),
            reports=(
                group_texts.REPORTS_RULE.format(reporters=policy.reports_to_act)
                if policy.reports_to_act
                else group_texts.NEVER
            ),
            log=policy.log_chat_id if policy.log_chat_id is not None else group_texts.NO_LOG_CHAT,
            rights=group_texts.RIGHTS_VIEW.format(
                delete=yes(rights.can_delete_messages),
                restrict=yes(rights.can_restrict_members),
                reads=yes(rights.reads_all_messages),
            ),
        )
        if not (rights.can_delete_messages and rights.can_restrict_members):
            text += group_texts.RIGHTS_MISSING
        if not rights.reads_all_messages:
            text += group_texts.READS_ONLY_MENTIONS
        return text


def parse_settings(words: list[str], *, chat_id: int) -> dict | None:
    """`/settings <key> <value...>` as policy changes, or None when it is not understood. Values are checked
    by the storage (InvalidDataError)."""
    key, values = words[0].casefold(), [w.casefold() for w in words[1:]]
    numbers = [parse_id(v) for v in values]
    if key in {"mode", "모드"} and len(values) == 1 and values[0] in group_texts.MODE_WORDS:
        return {"mode": group_texts.MODE_WORDS[values[0]]}
    if key in {"threshold", "기준"} and len(values) == 1:
        try:
            value = float(values[0].rstrip("%"))
        except ValueError:
            return None
        return {"toxicity_threshold": value / 100 if value > 1 else value}
    if key in {"action", "조치"} and len(values) == 1 and values[0] in group_texts.ACTION_WORDS:
        return {"action": group_texts.ACTION_WORDS[values[0]]}
    if key in {"mute", "제한"} and numbers and None not in numbers and len(numbers) <= 2:
        changes = {"mute_after_strikes": numbers[0]}
        if len(numbers) == 2:
            changes["mute_minutes"] = numbers[1]
        return changes
    if key in {"ban", "추방"} and len(numbers) == 1 and numbers[0] is not None:
        return {"ban_after_strikes": numbers[0]}
    if key in {"window", "기간"} and len(numbers) == 1 and numbers[0] is not None:
        return {"strike_window_hours": numbers[0]}
    if key in {"sentiment", "감성"} and len(values) == 1 and values[0] in group_texts.ON_WORDS:
        return {"post_sentiment": group_texts.ON_WORDS[values[0]]}
    if key in {"reports", "신고"} and len(numbers) == 1 and numbers[0] is not None:
        return {"reports_to_act": numbers[0]}
    if key in {"log", "기록"} and len(values) == 1:
        if values[0] in {"off", "끄기"}:
            return {"log_chat_id": None}
        if values[0] in {"here", "여기"}:
            return {"log_chat_id": chat_id}
        return {"log_chat_id": numbers[0]} if numbers[0] is not None else None
    return None
