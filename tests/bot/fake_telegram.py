"""A Bot API stand-in on 127.0.0.1 (tornado): queues updates for getUpdates, records every request,
answers sendMessage & co. like Telegram, and injects faults (429 with retry_after, 500, a hanging response, a
refused token or a conflict on chosen methods). It records which updates were confirmed (the getUpdates
offset) and when. Used by the tests and by bench/bench_bot.py, bench/bench_fuzz.py.

It also keeps what a moderating bot meets in groups: every chat member's status and rights (getChatMember,
getChatAdministrators; set with set_member / set_bot_rights / push_my_chat_member), the messages it has seen or
sent, and answers deleteMessage, restrictChatMember, banChatMember and unbanChatMember with Telegram's own checks,
in Telegram's order, and its exact error descriptions (the telegram-bot-api server's Client.cpp and TDLib's
DialogParticipantManager, which produce them).
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import json
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import tornado.httpserver
import tornado.netutil
import tornado.web

BOT_USER = {"id": 999000, "is_bot": True, "first_name": "Moderator", "username": "review_mod_bot"}
JSON_FIELDS = {
    "reply_markup",
    "reply_parameters",
    "commands",
    "allowed_updates",
    "entities",
    "link_preview_options",
    "permissions",
}
INT_FIELDS = {
    "chat_id",
    "message_id",
    "offset",
    "limit",
    "timeout",
    "reply_to_message_id",
    "user_id",
    "until_date",
}
LONG_POLL_CAP_S = 1.0  # never hold a getUpdates longer than this, whatever the client asks

BOT_ID: int = BOT_USER["id"]
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


class Fault(enum.Enum):
    RATE_LIMIT = "429"
    SERVER_ERROR = "500"
    HANG = "hang"


@dataclass
class RecordedRequest:
    method: str
    params: dict[str, Any]
    at: float
    fault: Fault | None = None
    result: Any = None
    error: str | None = None  # the description of a Bot API error answered (deleteMessage & co.), else None


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


@dataclass
class FakeBotApi:
    token: str
    retry_after_s: int = 1
    hang_s: float = 30.0
    requests: list[RecordedRequest] = field(default_factory=list)
    delivered_at: dict[int, float] = field(default_factory=dict)  # update_id -> first getUpdates delivery
    confirmed_at: dict[int, float] = field(default_factory=dict)  # update_id -> confirmed by an offset
    port: int = 0
    reads_all_group_messages: bool = (
        False  # getMe's can_read_all_group_messages (False: privacy mode, the default)
    )
    deleted: list[tuple[int, int]] = field(
        default_factory=list
    )  # (chat_id, message_id) deleted by deleteMessage

    def __post_init__(self) -> None:
        self._updates: deque[dict[str, Any]] = deque()
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(500_000)
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._changed: asyncio.Condition | None = None
        self._release = asyncio.Event()
        self._server: tornado.httpserver.HTTPServer | None = None
        self.chat_types: dict[int, str] = {}
        self.update_of_message: dict[tuple[int, int], int] = {}  # (chat, message) -> update_id
        self.refusals: dict[
            str, int
        ] = {}  # method ("*": every method) -> HTTP status answered, until cleared
        self.webhook: dict[str, Any] | None = None  # the last setWebhook parameters
        self.on_confirm: Callable[[int], None] | None = None  # called with each update id as it is confirmed
        self.wrong_token_calls: list[tuple[str, float]] = []  # (method, when) of calls with another token
        self.messages: dict[
            tuple[int, int], KnownMessage
        ] = {}  # (chat, message) -> seen or sent, not deleted
        # (chat, user) -> the ChatMember JSON without "user"; absent: a plain member (the bot too)
        self._members: dict[tuple[int, int], dict[str, Any]] = {}

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._changed = asyncio.Condition()
        app = tornado.web.Application([(r"/bot([^/]+)/(\w+)", _Handler, {"api": self})])
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self._server = tornado.httpserver.HTTPServer(app)
        self._server.add_sockets(sockets)

    async def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.stop()
            await asyncio.wait_for(self._server.close_all_connections(), 5)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    # -- test controls --------------------------------------------------------------------------

    def inject(self, method: str, *faults: Fault) -> None:
        """The next calls of `method` fail with these faults, in order."""
        self._faults[method].extend(faults)

    def refuse(self, method: str, status: int | None) -> None:
        """Answer every call of `method` ("*": of every method) with this HTTP error (401 or 404: a refused
        token, 409: a conflict with another poller), until called again with None."""
        if status is None:
            self.refusals.pop(method, None)
        else:
            self.refusals[method] = status

    @property
    def confirmed_offset(self) -> int:
        """Updates below this id are confirmed (Telegram forgets them)."""
        return max(self.confirmed_at, default=0) + 1 if self.confirmed_at else 0

    def duplicates(self, messages: list[dict[str, Any]]) -> int:
        """How many of these messages got more than one reply."""
        return sum(1 for message in messages if len(self.replies_to(message)) > 1)

    def push(self, update: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), **update}
        message = update.get("message") or update.get("edited_message") or update.get("channel_post")
        if message:
            self.chat_types[message["chat"]["id"]] = message["chat"]["type"]
            self.update_of_message[(message["chat"]["id"], message["message_id"])] = update["update_id"]
            self._remember(message)
        self._updates.append(update)
        self._notify()
        return update

    def push_message(
        self,
        text: str | None = None,
        *,
        chat_id: int = 1001,
        user_id: int = 1001,
        chat_type: str = "private",
        reply_to: dict[str, Any] | None = None,
        kind: str = "message",
        **extra: Any,
    ) -> dict[str, Any]:
        """Queue a message update; returns the message dict."""
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = f"user{user_id}"
        else:
            chat["title"] = f"chat{chat_id}"
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
        }
        if kind != "channel_post":
            message["from"] = {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}
        if text is not None:
            message["text"] = text
            if text.startswith("/"):
                command = text.split()[0] if text.split() else text
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        message.update(extra)
        self.push({kind: message})
        return message

    def push_callback(self, *, data: str, message: dict[str, Any], user_id: int = 1001) -> None:
        self.push(
            {
                "callback_query": {
                    "id": f"cq{next(self._update_ids)}",
                    "from": {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"},
                    "chat_instance": "ci",
                    "data": data,
                    "message": message,
                }
            }
        )

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

    def calls(self, method: str, *, ok_only: bool = True) -> list[RecordedRequest]:
        """The calls of `method`; with ok_only, those answered with a result (no fault, no Bot API error)."""
        return [
            r
            for r in self.requests
            if r.method == method and ((r.fault is None and r.error is None) or not ok_only)
        ]

    def sent(self, *, chat_id: int | None = None) -> list[dict[str, Any]]:
        """Messages the bot sent successfully, as Telegram returned them."""
        return [
            r.result
            for r in self.calls("sendMessage")
            if chat_id is None or r.result["chat"]["id"] == chat_id
        ]

    def replies_to(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            m
            for m in self.sent(chat_id=message["chat"]["id"])
            if m.get("reply_to_message", {}).get("message_id") == message["message_id"]
        ]

    async def wait_until(self, predicate: Callable[[], bool], *, timeout: float = 20.0) -> None:
        assert self._changed is not None
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def wait_for_reply(self, message: dict[str, Any], *, timeout: float = 20.0) -> dict[str, Any]:
        await self.wait_until(lambda: bool(self.replies_to(message)), timeout=timeout)
        return self.replies_to(message)[-1]

    def _notify(self) -> None:
        if self._changed is None:
            return

        async def notify() -> None:
            assert self._changed is not None
            async with self._changed:
                self._changed.notify_all()

        asyncio.get_running_loop().create_task(notify())

    # -- Bot API --------------------------------------------------------------------------------

    async def handle(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        record = RecordedRequest(method, params, time.monotonic())
        self.requests.append(record)
        refusal = self.refusals.get(method) or self.refusals.get("*")
        if refusal is not None:
            descriptions = {
                401: "Unauthorized",
                404: "Not Found",
                409: "Conflict: terminated by other getUpdates",
            }
            return refusal, {
                "ok": False,
                "error_code": refusal,
                "description": descriptions.get(refusal, "Error"),
            }
        faults = self._faults.get(method)
        if faults:
            record.fault = faults.popleft()
            self._notify()
            if record.fault is Fault.RATE_LIMIT:
                return 429, {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {self.retry_after_s}",
                    "parameters": {"retry_after": self.retry_after_s},
                }
            if record.fault is Fault.SERVER_ERROR:
                return 500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}
            try:  # hang until the client gives up (or the server stops)
                await asyncio.wait_for(self._release.wait(), self.hang_s)
            except TimeoutError:
                pass
            return 500, {"ok": False, "error_code": 500, "description": "hung"}
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return 400, {
                "ok": False,
                "error_code": 400,
                "description": f"Bad Request: unknown method {method}",
            }
        try:
            result = await handler(params)
        except ApiError as error:
            record.error = error.description
            self._notify()
            return error.error_code, {
                "ok": False,
                "error_code": error.error_code,
                "description": error.description,
            }
        record.result = result
        self._notify()
        return 200, {"ok": True, "result": result}

    async def _api_getMe(self, params: dict[str, Any]) -> Any:
        return {
            **BOT_USER,
            "can_join_groups": True,
            "can_read_all_group_messages": self.reads_all_group_messages,
            "supports_inline_queries": False,
        }

    async def _api_deleteWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = None
        return True

    async def _api_setWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = params
        return True

    async def _api_setMyCommands(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_answerCallbackQuery(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_getUpdates(self, params: dict[str, Any]) -> Any:
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        now = time.monotonic()
        while self._updates and self._updates[0]["update_id"] < offset:
            confirmed = self._updates.popleft()  # confirmed by the offset
            self.confirmed_at.setdefault(confirmed["update_id"], now)
            if self.on_confirm is not None:
                self.on_confirm(confirmed["update_id"])
        if not self._updates:
            wait_s = min(float(params.get("timeout") or 0), LONG_POLL_CAP_S)
            assert self._changed is not None
            try:
                async with self._changed:
                    await asyncio.wait_for(self._changed.wait_for(lambda: bool(self._updates)), wait_s)
            except TimeoutError:
                pass
        batch = list(itertools.islice(self._updates, limit))
        now = time.monotonic()
        if self.refusals.get("getUpdates") or self.refusals.get("*"):
            return []  # refused while waiting
        for update in batch:
            self.delivered_at.setdefault(update["update_id"], now)
        return batch

    def _bot_message(self, params: dict[str, Any], message_id: int | None = None) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        message: dict[str, Any] = {
            "message_id": message_id or next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": self.chat_types.get(chat_id, "private")},
            "from": BOT_USER,
            "text": params.get("text", ""),
        }
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        reply_to = (params.get("reply_parameters") or {}).get("message_id") or params.get(
            "reply_to_message_id"
        )
        if reply_to:
            message["reply_to_message"] = {
                "message_id": int(reply_to),
                "date": int(time.time()),
                "chat": message["chat"],
            }
        return message

    async def _api_sendMessage(self, params: dict[str, Any]) -> Any:
        message = self._bot_message(params)
        self._remember(message)
        return message

    async def _api_editMessageText(self, params: dict[str, Any]) -> Any:
        return self._bot_message(params, message_id=int(params["message_id"]))

    async def _api_editMessageReplyMarkup(self, params: dict[str, Any]) -> Any:
        return self._bot_message(params, message_id=int(params["message_id"]))

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


class _Handler(tornado.web.RequestHandler):
    def initialize(self, api: FakeBotApi) -> None:
        self.api = api

    async def post(self, token: str, method: str) -> None:
        if token != self.api.token:
            self.api.wrong_token_calls.append((method, time.monotonic()))
            self.set_status(404)
            self.finish({"ok": False, "error_code": 404, "description": "Not Found"})
            return
        status, body = await self.api.handle(method, _parse_params(self.request))
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body, ensure_ascii=False))

    get = post


def _parse_params(request: tornado.httputil.HTTPServerRequest) -> dict[str, Any]:
    content_type = request.headers.get("Content-Type", "")
    if not request.body:
        raw: dict[str, Any] = {}
    elif "json" in content_type:
        raw = json.loads(request.body)
    elif "multipart" in content_type:
        raw = {key: values[0].decode() for key, values in request.body_arguments.items()}
    else:
        raw = {
            key: values[0] for key, values in parse_qs(request.body.decode(), keep_blank_values=True).items()
        }
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if key in JSON_FIELDS and isinstance(value, str):
            value = json.loads(value)
        elif key in INT_FIELDS and isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        params[key] = value
    return params
