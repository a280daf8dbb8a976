"""A Bot API stand-in on 127.0.0.1 (tornado): queues updates for getUpdates, records every request,
answers sendMessage & co. like Telegram, and injects faults (429 with retry_after, 500, a hanging response, a
refused token or a conflict on chosen methods). It records which updates were confirmed (the getUpdates
offset) and when. Used by the tests and by bench/bench_bot.py, bench/bench_fuzz.py.

What a moderating bot meets in groups (members, rights, deleting, restricting, banning) is in
fake_telegram_members.py, mixed in.
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
from fake_telegram_members import BOT_USER, ApiError, ChatMembersApi, KnownMessage

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
class FakeBotApi(ChatMembersApi):
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

    def take_updates(self) -> list[dict[str, Any]]:
        """The queued updates, removed from the queue: a webhook test posts them to the bot itself."""
        updates = list(self._updates)
        self._updates.clear()
        return updates

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
