"""A seeded fuzzer of Telegram updates, and a run of it through the real bot (runner, PTB, stand-in).

Shared by tests/bot/test_fuzz_updates.py (400 updates in CI) and bench/bench_fuzz.py (10,000).

The updates are well-formed Bot API objects with hostile contents: commands with odd arguments ('²', '--5',
25- and 58-digit numbers, full-width and Arabic-Indic digits, zero-width characters, NUL, 4,080 characters),
5,000-character texts, callbacks with random or forged data (also without a message, or for another chat),
edited messages, channel posts, inline queries, chat-member updates, photos, stickers, service messages,
group messages with and without a mention, replies to the bot's real and forged messages.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import dataclass, field
from typing import Any

from fake_telegram import BOT_USER, FakeBotApi

ADMIN_ID = 4242
USERS = [1001, 1002, 1003, 31337, ADMIN_ID]
GROUP_ID = -1001234567890
LIMITS = {"text": 4096, "callback": 200, "callback_data_bytes": 64}

REVIEWS = [
    "이 영화 정말 재밌어요 배우 연기가 최고",
    "스토리가 엉망이고 지루했다",
    "돈이 아까운 영화",
    "연출이 아쉬웠지만 음악은 좋았다",
    "최고의 영화 🎬 강추",
]
ODD_NUMBERS = [
    "²",
    "--5",
    "--1",
    "-0",
    "+7",
    "1" * 25,
    "9" * 58,
    "１２３",  # full-width digits
    "٣٤",  # Arabic-Indic digits
    "0x10",
    "1e5",
    "1_000",
    "5\u200b",
    "\u200b",
    "",
    " ",
    "NaN",
    "-9223372036854775809",
    "9223372036854775807",
]
ODD_WORDS = [
    "wrong",
    "틀렸어요",
    "부정",
    "긍정",
    "중립",
    "WRONG",
    "x",
    "\x00",
    "\u202e역방향",
    "🤖" * 40,
    "a" * 4080,
    "가" * 5000,
    "\n\n\n",
    "<b>bold</b>",
    "`code`",
]
COMMANDS = [
    "predict",
    "feedback",
    "void",
    "stats",
    "model",
    "help",
    "start",
    "runs",
    "rollback",
    "review",
    "unknown",
]
TEXTS = [
    *REVIEWS,
    "",
    "   \n\t ",
    "\u200b\u200c\u200d\ufeff",
    "가" * 5000,
    "\x01\x02\x1b[31m리뷰\x7f\x00끝",
    "좋\u200b아\u200d요",
    "\u202eمرحبا 영화 좋아요\u202c",
    "😀👍🏽🇰🇷" * 700,
    "ㅎㅏㄴ글 e\u0301\u0301\u0301",
    "@review_mod_bot 이 영화 최악이에요",
    "@other_bot 광고",
]


@dataclass
class FuzzReport:
    updates: int = 0
    handler_exceptions: list[str] = field(default_factory=list)
    callbacks: int = 0
    callbacks_answered: int = 0
    unanswered_callbacks: list[str] = field(default_factory=list)
    replies: int = 0
    over_limit: list[str] = field(default_factory=list)
    private_messages: int = 0
    private_messages_not_answered_once: list[int] = field(default_factory=list)
    not_processed: list[int] = field(default_factory=list)
    seconds: float = 0.0


class UpdateFuzzer:
    """Generates update bodies (without update_id) for `FakeBotApi.push`, from a seed."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.message_ids = itertools.count(1_000_000)
        self.callback_ids = itertools.count(1)
        self.bot_replies: list[dict[str, Any]] = []  # real bot messages, to press their buttons

    def _user(self) -> dict[str, Any]:
        user_id = self.random.choice(USERS)
        return {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}

    def _chat(self, user: dict[str, Any]) -> dict[str, Any]:
        if self.random.random() < 0.8:
            return {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        return {"id": GROUP_ID, "type": "supergroup", "title": "그룹"}

    def _message(self, **extra: Any) -> dict[str, Any]:
        user = self._user()
        message = {
            "message_id": next(self.message_ids),
            "date": int(time.time()),
            "chat": self._chat(user),
            "from": user,
        }
        message.update(extra)
        return message

    def _text(self) -> str:
        r = self.random.random()
        if r < 0.45:
            return self.random.choice(TEXTS)
        if r < 0.9:
            command = self.random.choice(COMMANDS)
            suffix = self.random.choice(["", "", "", "@review_mod_bot", "@other_bot"])
            argument = self.random.choice(ODD_NUMBERS + ODD_WORDS + [""])
            return f"/{command}{suffix} {argument}".rstrip(" ") if argument else f"/{command}{suffix}"
        alphabet = "가나다abc123²٣ \u200b\n😀-:"
        return "".join(self.random.choice(alphabet) for _ in range(self.random.randint(0, 300)))

    def _text_message(self) -> dict[str, Any]:
        text = self._text()
        message = self._message(text=text)
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        r = self.random.random()
        if r < 0.15 and self.bot_replies:
            message["reply_to_message"] = self.random.choice(self.bot_replies)
        elif r < 0.25:
            message["reply_to_message"] = self._forged_bot_message(message["chat"])
        elif r < 0.3:
            message["reply_to_message"] = self._message(text=self.random.choice(REVIEWS))
        return message

    def _forged_bot_message(self, chat: dict[str, Any]) -> dict[str, Any]:
        data = self._callback_data()
        return {
            "message_id": next(self.message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": BOT_USER,
            "text": "긍정 리뷰 (90.0%)",
            "reply_markup": {"inline_keyboard": [[{"text": "틀렸어요", "callback_data": data}]]},
        }

    def _callback_data(self) -> str:
        action = self.random.choice(["ok", "wrong", "label", "", "nope", "ok:1:2:3"])
        parts = [
            self.random.choice(ODD_NUMBERS + ["1", "2", "3", "0", "-1"])
            for _ in range(self.random.randint(1, 3))
        ]
        data = f"{action}:{':'.join(parts)}"
        return data.encode()[:64].decode(errors="ignore")

    def _callback(self) -> dict[str, Any]:
        user = self._user()
        query: dict[str, Any] = {
            "id": f"fuzz-cq-{next(self.callback_ids)}",
            "from": user,
            "chat_instance": "ci",
        }
        r = self.random.random()
        if r < 0.5 and self.bot_replies:  # a real verdict message, its own or forged data
            message = self.random.choice(self.bot_replies)
            buttons = [
                b for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row
            ]
            query["message"] = message
            query["data"] = (
                self.random.choice(buttons)["callback_data"]
                if buttons and self.random.random() < 0.7
                else self._callback_data()
            )
        elif r < 0.65:  # a button under an inline message: no message at all
            query["inline_message_id"] = f"inline-{self.random.randint(1, 10**6)}"
            query["data"] = self._callback_data()
        elif r < 0.75:  # an inaccessible (old) message
            query["message"] = {"chat": self._chat(user), "message_id": next(self.message_ids), "date": 0}
            query["data"] = self._callback_data()
        elif r < 0.8:  # a game button: no data
            query["message"] = self._forged_bot_message(self._chat(user))
            query["game_short_name"] = "game"
        else:
            query["message"] = self._forged_bot_message(self._chat(user))
            query["data"] = self._callback_data()
        return {"callback_query": query}

    def next_update(self) -> dict[str, Any]:
        r = self.random.random()
        if r < 0.55:
            return {"message": self._text_message()}
        if r < 0.75:
            return self._callback()
        if r < 0.8:
            return {"edited_message": {**self._text_message(), "edit_date": int(time.time())}}
        if r < 0.84:
            post = self._message(text=self.random.choice(TEXTS) or "채널")
            post.pop("from")
            post["chat"] = {"id": -1009876543210, "type": "channel", "title": "채널"}
            return {self.random.choice(["channel_post", "edited_channel_post"]): post}
        if r < 0.87:
            return {
                "inline_query": {"id": "iq", "from": self._user(), "query": self._text()[:256], "offset": ""}
            }
        if r < 0.9:
            user = self._user()
            member = {"status": "member", "user": BOT_USER}
            return {
                "my_chat_member": {
                    "chat": self._chat(user),
                    "from": user,
                    "date": int(time.time()),
                    "old_chat_member": {"status": "left", "user": BOT_USER},
                    "new_chat_member": member,
                }
            }
        photo = [{"file_id": "p", "file_unique_id": "pu", "width": 90, "height": 90}]
        sticker = {
            "file_id": "s",
            "file_unique_id": "su",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "type": "regular",
        }
        choice = self.random.random()
        if choice < 0.4:
            return {"message": self._message(photo=photo, caption=self.random.choice(TEXTS)[:1024] or "사진")}
        if choice < 0.7:
            return {"message": self._message(sticker=sticker)}
        return {"message": self._message(new_chat_members=[self._user()])}


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


async def run_fuzz(
    bot: Any, *, count: int, seed: int, chunk: int = 100, timeout: float = 600.0
) -> FuzzReport:
    """Push `count` fuzzed updates through a running bot (tests/bot/conftest.py's RunningBot), chunk by chunk,
    and check what came out. Handler exceptions are counted by an extra error handler."""
    from sqlalchemy import select

    from bot.storage import InboxStatus, TelegramUpdate

    api: FakeBotApi = bot.api
    report = FuzzReport()
    errors = report.handler_exceptions

    async def count_errors(update: object, context: Any) -> None:
        errors.append(f"{type(context.error).__name__}: {context.error}"[:300])

    bot.application.add_error_handler(count_errors)
    fuzzer = UpdateFuzzer(seed)
    pushed: list[dict[str, Any]] = []
    started = time.monotonic()
    for first in range(0, count, chunk):
        batch = [api.push(fuzzer.next_update()) for _ in range(min(chunk, count - first))]
        pushed += batch
        ids = [update["update_id"] for update in batch]
        deadline = time.monotonic() + timeout
        while True:  # every update of the chunk processed to the end
            async with bot.session() as session:
                done = set(
                    await session.scalars(
                        select(TelegramUpdate.update_id).where(
                            TelegramUpdate.update_id.in_(ids), TelegramUpdate.status != InboxStatus.PENDING
                        )
                    )
                )
            if len(done) == len(ids) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        fuzzer.bot_replies = sorted(
            (m for m in api.sent() if m.get("reply_markup")), key=lambda m: m["message_id"]
        )[-50:]
    report.seconds = time.monotonic() - started
    report.updates = len(pushed)

    async with bot.session() as session:
        rows = {
            update_id: status
            for update_id, status in await session.execute(
                select(TelegramUpdate.update_id, TelegramUpdate.status)
            )
        }
    report.not_processed = [u["update_id"] for u in pushed if rows.get(u["update_id"]) != InboxStatus.DONE]

    answered = {r.params.get("callback_query_id") for r in api.calls("answerCallbackQuery")}
    callbacks = [u["callback_query"]["id"] for u in pushed if "callback_query" in u]
    report.callbacks = len(callbacks)
    report.unanswered_callbacks = [c for c in callbacks if c not in answered]
    report.callbacks_answered = report.callbacks - len(report.unanswered_callbacks)

    for record in api.calls("sendMessage"):
        report.replies += 1
        text = record.params.get("text", "")
        if utf16_length(text) > LIMITS["text"]:
            report.over_limit.append(f"sendMessage text of {utf16_length(text)} UTF-16 units")
        markup = record.params.get("reply_markup") or {}
        for row in markup.get("inline_keyboard", []):
            for button in row:
                if len(button.get("callback_data", "").encode()) > LIMITS["callback_data_bytes"]:
                    report.over_limit.append(f"callback data {button['callback_data']!r}")
    for record in api.calls("answerCallbackQuery"):
        text = record.params.get("text", "")
        if utf16_length(text) > LIMITS["callback"]:
            report.over_limit.append(f"callback answer of {utf16_length(text)} UTF-16 units")

    for update in pushed:
        message = update.get("message")
        if message and message["chat"]["type"] == "private" and not message.get("new_chat_members"):
            report.private_messages += 1
            if len(api.replies_to(message)) != 1:
                report.private_messages_not_answered_once.append(update["update_id"])
    return report
