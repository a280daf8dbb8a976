"""The part of the Bot API stand-in (fake_telegram.FakeBotApi) a moderating bot meets in groups: every chat
member's status and rights (getChatMember, getChatAdministrators; set with set_member / set_bot_rights /
push_my_chat_member), the messages seen or sent, and deleteMessage, restrictChatMember, banChatMember and
unbanChatMember with Telegram's own checks, in Telegram's order, and its exact error descriptions (the
telegram-bot-api server's Client.cpp and TDLib's DialogParticipantManager, which produce them).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

BOT_USER = {"id": 999000, "is_bot": True, "first_name": "Moderator", "username": "review_mod_bot"}
BOT_ID = BOT_USER["id"]

DELETE_WINDOW_S = 48 * 3600  # "a message can only be deleted if it was sent less than 48 hours ago"
# until_date closer than 30 s or further than 366 days means "forever" (stored and answered as 0), as in Telegram
UNTIL_MIN_S, UNTIL_MAX_S = 30, 366 * 86400

# Telegram's descriptions, as the Bot API answers them (HTTP 400). PTB's BadRequest drops "Bad Request: " and
# capitalizes the first letter: str(exc) == "Message to delete not found".
MESSAGE_TO_DELETE_NOT_FOUND = "Bad Request: message to delete not found"
MESSAGE_CANT_BE_DELETED = "Bad Request: message can't be deleted"  # groups, supergroups, channels
MESSAGE_CANT_BE_DELETED_FOR_EVERYONE = "Bad Request: message can't be deleted for everyone"  # private chats
ONLY_FOR_SUPERGROUPS = "Bad Request: method is available only for supergroups"  # restrictChatMember
ONLY_FOR_SUPERGROUPS_AND_CHANNELS = (  # unbanChatMember in a private chat or a basic group
    "Bad Request: method is available for supergroup and channel chats only"
)
CANT_BAN_IN_PRIVATE_CHATS = "Bad Request: can't ban members in private chats"  # banChatMember (TDLib)
NOT_ENOUGH_RIGHTS_TO_RESTRICT = "Bad Request: not enough rights to restrict/unrestrict chat member"
CANT_REMOVE_CHAT_OWNER = "Bad Request: can't remove chat owner"
USER_IS_ADMINISTRATOR = "Bad Request: user is an administrator of the chat"  # USER_ADMIN_INVALID
CANT_RESTRICT_SELF = "Bad Request: can't restrict self"  # restrict or ban the bot itself (TDLib)
NO_ADMINISTRATORS_IN_PRIVATE_CHAT = "Bad Request: there are no administrators in the private chat"

MEMBER_STATUSES = ("creator", "administrator", "member", "restricted", "left", "kicked")
# ChatMemberAdministrator's required rights (the order Telegram sends them)
ADMIN_RIGHTS = (
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_promote_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
)
ADMIN_OPTIONAL_RIGHTS = (
    "can_post_messages",
    "can_edit_messages",
    "can_pin_messages",
    "can_manage_topics",
    "can_manage_direct_messages",
    "can_manage_tags",
)
# ChatPermissions; ChatMemberRestricted carries all of them (PTB 22.8 requires every one, can_edit_tag and
# can_react_to_messages included)
PERMISSIONS = (
    "can_send_messages",
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
    "can_send_polls",
    "can_send_other_messages",
    "can_add_web_page_previews",
    "can_react_to_messages",
    "can_edit_tag",
    "can_change_info",
    "can_invite_users",
    "can_pin_messages",
    "can_manage_topics",
)
MEDIA_PERMISSIONS = (
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
)


@dataclass
class KnownMessage:
    """A message the stand-in has seen (queued in an update) or sent (sendMessage)."""

    chat_id: int
    message_id: int
    date: int
    from_id: int | None  # None: a channel post, sent on behalf of the chat


class ApiError(Exception):
    """Raised by an `_api_*` method: answered as {"ok": false, "error_code", "description"}."""

    def __init__(self, description: str, error_code: int = 400) -> None:
        super().__init__(description)
        self.description = description
        self.error_code = error_code


class ChatMembersApi:
    """Mixed into FakeBotApi, which provides `push`, `chat_types`, `messages`, `deleted` and `_members`."""

    chat_types: dict[int, str]
    messages: dict[tuple[int, int], KnownMessage]
    deleted: list[tuple[int, int]]
    _members: dict[tuple[int, int], dict[str, Any]]
    reads_all_group_messages: bool

    # -- chat members -------------------------------------------------------------------------------

    def set_member(self, chat_id: int, user_id: int, status: str, **rights: Any) -> None:
        """Give `user_id` this status in `chat_id`: "creator", "administrator", "member", "restricted", "left" or
        "kicked". Rights and fields by keyword, as Telegram names them: an administrator's can_* rights (missing
        ones False, can_manage_chat True), custom_title, is_anonymous, can_be_edited; a restricted member's can_*
        permissions (missing ones False), is_member (True) and until_date (0: forever); a kicked one's
        until_date."""
        if status not in MEMBER_STATUSES:
            raise ValueError(f"unknown chat member status {status!r}")
        allowed: set[str] = {
            "creator": {"is_anonymous", "custom_title"},
            "administrator": {
                *ADMIN_RIGHTS,
                *ADMIN_OPTIONAL_RIGHTS,
                "is_anonymous",
                "custom_title",
                "can_be_edited",
            },
            "member": {"until_date"},
            "restricted": {*PERMISSIONS, "is_member", "until_date", "tag"},
            "left": set(),
            "kicked": {"until_date"},
        }[status]
        unknown = set(rights) - allowed
        if unknown:
            raise ValueError(f"{status} takes no {sorted(unknown)}")
        member: dict[str, Any] = {"status": status}
        if status == "creator":
            member["is_anonymous"] = bool(rights.pop("is_anonymous", False))
        elif status == "administrator":
            member["can_be_edited"] = bool(rights.pop("can_be_edited", False))
            member["is_anonymous"] = bool(rights.pop("is_anonymous", False))
            member.update(
                {right: bool(rights.pop(right, right == "can_manage_chat")) for right in ADMIN_RIGHTS}
            )
        elif status == "restricted":
            member["is_member"] = bool(rights.pop("is_member", True))
            member.update({permission: bool(rights.pop(permission, False)) for permission in PERMISSIONS})
            member["until_date"] = int(rights.pop("until_date", 0))
        elif status == "kicked":
            member["until_date"] = int(rights.pop("until_date", 0))
        member.update(rights)
        self._members[(chat_id, user_id)] = member

    def set_bot_rights(
        self, chat_id: int, *, can_delete_messages: bool = False, can_restrict_members: bool = False
    ) -> None:
        """Make the bot an administrator of `chat_id` with these rights (the others False)."""
        self.set_member(
            chat_id,
            BOT_ID,
            "administrator",
            can_delete_messages=can_delete_messages,
            can_restrict_members=can_restrict_members,
        )

    def member_status(self, chat_id: int, user_id: int) -> str:
        """The user's status in the chat, as getChatMember would answer it ("member" unless set otherwise)."""
        return self._member(chat_id, user_id)["status"]

    def chat_member(self, chat_id: int, user_id: int) -> dict[str, Any]:
        """The ChatMember JSON getChatMember answers for this user."""
        return {**self._member(chat_id, user_id), "user": _user(user_id)}

    def push_my_chat_member(
        self,
        chat_id: int,
        *,
        chat_type: str = "supergroup",
        old_status: str = "left",
        new_status: str = "member",
        from_user_id: int = 1001,
        **rights: Any,
    ) -> dict[str, Any]:
        """Queue a my_chat_member update (the bot's own status changed, by `from_user_id`) and give the bot its
        new status (with `rights`, as set_member takes them); returns the update."""
        self.chat_types[chat_id] = chat_type
        if self.member_status(chat_id, BOT_ID) != old_status:  # else the stored one, rights and all
            self.set_member(chat_id, BOT_ID, old_status)
        old_member = self.chat_member(chat_id, BOT_ID)
        self.set_member(chat_id, BOT_ID, new_status, **rights)
        return self.push(
            {
                "my_chat_member": {
                    "chat": self._chat(chat_id),
                    "from": _user(from_user_id),
                    "date": int(time.time()),
                    "old_chat_member": old_member,
                    "new_chat_member": self.chat_member(chat_id, BOT_ID),
                }
            }
        )

    def _member(self, chat_id: int, user_id: int) -> dict[str, Any]:
        return self._members.get((chat_id, user_id)) or {"status": "member"}

    def _has_right(self, chat_id: int, user_id: int, right: str) -> bool:
        member = self._member(chat_id, user_id)
        return member["status"] == "creator" or (
            member["status"] == "administrator" and bool(member.get(right))
        )

    def _chat_type(self, chat_id: int) -> str:
        """The chat's type as last seen; else told by its id, as Telegram numbers them (users > 0, supergroups
        and channels -100…, basic groups other negative ids)."""
        if chat_id in self.chat_types:
            return self.chat_types[chat_id]
        if chat_id > 0:
            return "private"
        return "supergroup" if chat_id <= -1_000_000_000_000 else "group"

    def _chat(self, chat_id: int) -> dict[str, Any]:
        chat_type = self._chat_type(chat_id)
        if chat_type == "private":
            return {"id": chat_id, "type": chat_type, "first_name": f"user{chat_id}"}
        return {"id": chat_id, "type": chat_type, "title": f"chat{chat_id}"}

    def _remember(self, message: dict[str, Any]) -> None:
        key = (message["chat"]["id"], message["message_id"])
        if key in self.deleted:
            return  # an edit of a deleted message: still gone
        sender = message.get("from")
        self.messages[key] = KnownMessage(
            chat_id=key[0],
            message_id=key[1],
            date=int(message.get("date") or time.time()),
            from_id=sender["id"] if sender else None,
        )

    # -- moderation: Telegram's checks in Telegram's order (Client.cpp, then TDLib) ---------------------

    async def _api_getChatMember(self, params: dict[str, Any]) -> Any:
        return self.chat_member(int(params["chat_id"]), int(params["user_id"]))

    async def _api_getChatAdministrators(self, params: dict[str, Any]) -> Any:
        chat_id = int(params["chat_id"])
        if self._chat_type(chat_id) == "private":
            raise ApiError(NO_ADMINISTRATORS_IN_PRIVATE_CHAT)
        order = {"creator": 0, "administrator": 1}
        admins = [
            (order[member["status"]], user_id)
            for (chat, user_id), member in self._members.items()
            if chat == chat_id and member["status"] in order
        ]
        return [self.chat_member(chat_id, user_id) for _, user_id in sorted(admins)]

    async def _api_deleteMessage(self, params: dict[str, Any]) -> Any:
        chat_id, message_id = int(params["chat_id"]), int(params["message_id"])
        message = self.messages.get((chat_id, message_id))
        if message is None:
            raise ApiError(MESSAGE_TO_DELETE_NOT_FOUND)
        private = self._chat_type(chat_id) == "private"
        if time.time() - message.date >= DELETE_WINDOW_S:
            raise ApiError(MESSAGE_CANT_BE_DELETED_FOR_EVERYONE if private else MESSAGE_CANT_BE_DELETED)
        # in private chats a bot deletes its own messages and incoming ones; elsewhere another sender's message
        # needs can_delete_messages (also asked of basic-group administrators here, a simplification)
        if (
            not private
            and message.from_id != BOT_ID
            and not self._has_right(chat_id, BOT_ID, "can_delete_messages")
        ):
            raise ApiError(MESSAGE_CANT_BE_DELETED)
        del self.messages[(chat_id, message_id)]
        self.deleted.append((chat_id, message_id))
        return True

    async def _api_restrictChatMember(self, params: dict[str, Any]) -> Any:
        chat_id, user_id = int(params["chat_id"]), int(params["user_id"])
        if self._chat_type(chat_id) != "supergroup":  # private chats, basic groups and channels alike
            raise ApiError(ONLY_FOR_SUPERGROUPS)
        permissions = _chat_permissions(
            params.get("permissions") or {}, _flag(params.get("use_independent_chat_permissions"))
        )
        old = self._member(chat_id, user_id)
        is_member = old["status"] in ("creator", "administrator", "member") or bool(old.get("is_member"))
        if all(permissions.values()):  # TDLib: restricted with every right is no restriction at all
            new: dict[str, Any] = {"status": "member" if is_member else "left"}
        else:
            until_date = _until(params.get("until_date"))
            new = {"status": "restricted", "is_member": is_member, **permissions, "until_date": until_date}
        self._change_member(chat_id, user_id, new)
        return True

    async def _api_banChatMember(self, params: dict[str, Any]) -> Any:
        chat_id, user_id = int(params["chat_id"]), int(params["user_id"])
        if self._chat_type(chat_id) == "private":
            raise ApiError(CANT_BAN_IN_PRIVATE_CHATS)
        # basic groups take the supergroup rules here (a simplification); revoke_messages changes nothing the
        # stand-in keeps (it is about what the removed user still sees)
        self._change_member(
            chat_id, user_id, {"status": "kicked", "until_date": _until(params.get("until_date"))}
        )
        return True

    async def _api_unbanChatMember(self, params: dict[str, Any]) -> Any:
        chat_id, user_id = int(params["chat_id"]), int(params["user_id"])
        if self._chat_type(chat_id) not in ("supergroup", "channel"):
            raise ApiError(ONLY_FOR_SUPERGROUPS_AND_CHANNELS)
        if _flag(params.get("only_if_banned")) and self.member_status(chat_id, user_id) != "kicked":
            return True  # Client.cpp answers true at once, without asking for any right
        # without only_if_banned the user ends "left" whatever they were: a member is removed from the chat
        # (Telegram's documented behaviour), and the bot itself leaves
        self._change_member(chat_id, user_id, {"status": "left"})
        return True

    def _change_member(self, chat_id: int, user_id: int, new: dict[str, Any]) -> None:
        """Set a member's status as TDLib's set_channel_participant_status does: nothing to do when unchanged,
        then the owner, self, rights and administrator checks, in that order."""
        old = self._member(chat_id, user_id)
        if old == new and old["status"] != "creator":
            return
        if old["status"] == "creator":
            raise ApiError(CANT_REMOVE_CHAT_OWNER)
        if user_id == BOT_ID:
            if new["status"] in ("restricted", "kicked"):
                raise ApiError(CANT_RESTRICT_SELF)
            self._members[(chat_id, user_id)] = new  # "left": the bot leaves the chat
            return
        if not self._has_right(chat_id, BOT_ID, "can_restrict_members"):
            raise ApiError(NOT_ENOUGH_RIGHTS_TO_RESTRICT)
        if old["status"] == "administrator":  # the server's USER_ADMIN_INVALID
            raise ApiError(USER_IS_ADMINISTRATOR)
        self._members[(chat_id, user_id)] = new


def _user(user_id: int) -> dict[str, Any]:
    return (
        dict(BOT_USER)
        if user_id == BOT_ID
        else {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}
    )


def _flag(value: Any) -> bool:
    """A boolean parameter as the Bot API reads it: JSON true, or "true"/"1" in a form."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return bool(value)


def _until(value: Any) -> int:
    """until_date as Telegram keeps it: 0 (forever) when missing, under 30 s away or over 366 days away."""
    until = int(value or 0)
    now = time.time()
    return until if now + UNTIL_MIN_S <= until <= now + UNTIL_MAX_S else 0


def _chat_permissions(raw: Any, independent: bool) -> dict[str, bool]:
    """ChatPermissions as the Bot API server reads them (Client::get_chat_permissions): missing ones False,
    except can_manage_topics and can_edit_tag (default: can_pin_messages) and can_react_to_messages (default:
    can_send_messages); the legacy can_send_media_messages stands for the six media ones; and, unless
    use_independent_chat_permissions, media/other/previews imply sending messages, as polls do."""
    if isinstance(raw, str):
        raw = json.loads(raw)
    given = {key: _flag(value) for key, value in dict(raw).items()}
    permissions = {permission: given.get(permission, False) for permission in PERMISSIONS}
    permissions["can_manage_topics"] = given.get("can_manage_topics", permissions["can_pin_messages"])
    permissions["can_edit_tag"] = given.get("can_edit_tag", permissions["can_pin_messages"])
    if not any(permission in given for permission in MEDIA_PERMISSIONS):
        media = given.get("can_send_media_messages", False)
        permissions.update(dict.fromkeys(MEDIA_PERMISSIONS, media))
        if media and not independent:
            permissions["can_send_messages"] = True
    permissions["can_react_to_messages"] = given.get(
        "can_react_to_messages", permissions["can_send_messages"]
    )
    if not independent:
        if permissions["can_send_other_messages"] or permissions["can_add_web_page_previews"]:
            permissions.update(dict.fromkeys((*MEDIA_PERMISSIONS, "can_send_messages"), True))
        if permissions["can_send_polls"]:
            permissions["can_send_messages"] = True
    return permissions
