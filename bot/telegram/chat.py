"""`moderator chat`: the moderation service in a terminal (chat 0, user 0, admin commands allowed)."""

from __future__ import annotations

import asyncio
from typing import TextIO

from bot import storage
from bot.moderation import (
    REVIEW_SKIP,
    Actor,
    IncomingText,
    Moderation,
    Reply,
    echo,
    parse_id,
    parse_label,
    texts,
)
from bot.storage import RunTrigger

TERMINAL_CHAT_ID = 0
TERMINAL_USER_ID = 0
TERMINAL_ACTOR = Actor(user_id=TERMINAL_USER_ID, is_admin=True)


class TerminalRunReporter:
    def __init__(self, output: TextIO) -> None:
        self._output = output

    async def progress(self, run_id: int, text: str) -> None:
        print(texts.RETRAIN_PROGRESS.format(run_id=run_id, text=text), file=self._output, flush=True)

    async def finished(self, run_id: int, text: str) -> None:
        await self.progress(run_id, text)


class TerminalChat:
    """Turns terminal lines into moderation calls. Message ids continue after the last stored verdict of
    chat 0, so verdicts of earlier sessions are not mistaken for new ones (verdicts are idempotent per id)."""

    def __init__(self, moderation: Moderation, *, output: TextIO) -> None:
        self._moderation = moderation
        self._output = output
        self._next_message_id: int | None = None
        self._review_verdict_id: int | None = None  # the review item on screen, answered by `/review <label>`
        self._review_labels: dict[int, str] = {}  # that item's labels, id -> name

    async def _message_id(self) -> int:
        if self._next_message_id is None:
            async with self._moderation.session_factory.begin() as session:
                latest = await storage.latest_verdict_for_user(
                    session, chat_id=TERMINAL_CHAT_ID, user_id=TERMINAL_USER_ID
                )
            self._next_message_id = (latest.message_id + 1) if latest else 1
        message_id = self._next_message_id
        self._next_message_id += 1
        return message_id

    async def handle(self, line: str) -> Reply | None:
        line = line.rstrip("\r\n")
        if not line.strip():
            return None
        moderation = self._moderation
        if not line.startswith("/"):
            return await moderation.classify(await self._incoming(line))
        command, _, argument = line[1:].partition(" ")
        command = command.split("@", 1)[0].lower()
        if command in {"start", "help"}:
            return Reply(texts.HELP)
        if command == "predict":
            if not argument.strip():
                return Reply(texts.PREDICT_USAGE)
            return await moderation.classify(await self._incoming(argument), show_probabilities=True)
        if command == "feedback":
            return await moderation.feedback(
                actor=TERMINAL_ACTOR, chat_id=TERMINAL_CHAT_ID, target_message_id=None, argument=argument
            )
        if command == "stats":
            return await moderation.stats()
        if command == "model":
            return await moderation.model_info()
        if command == "runs":
            return await moderation.runs(actor=TERMINAL_ACTOR)
        if command == "review":
            return await self._review(argument)
        if command == "rollback":
            return await moderation.rollback(actor=TERMINAL_ACTOR, argument=argument)
        if command == "void":
            return await moderation.void(actor=TERMINAL_ACTOR, argument=argument)
        if command == "retrain":
            return await moderation.retrain(
                actor=TERMINAL_ACTOR,
                trigger=RunTrigger.CLI,
                reporter=TerminalRunReporter(self._output),
                argument=argument,
            )
        return Reply(texts.CHAT_UNKNOWN_COMMAND)

    async def _review(self, argument: str) -> Reply:
        """`/review` shows the next item; `/review <label>` or `/review skip` answers the one on screen."""
        moderation = self._moderation
        answer = argument.strip()
        if answer and self._review_verdict_id is not None:
            if answer.casefold() in {REVIEW_SKIP, texts.BUTTON_SKIP}:
                label = None
            else:
                label = parse_label(answer, self._review_labels)
                if label is None:
                    return Reply(
                        texts.FEEDBACK_UNKNOWN_LABEL.format(
                            given=echo(answer), labels=", ".join(self._review_labels.values())
                        )
                    )
            reply = await moderation.answer_review_item(
                actor=TERMINAL_ACTOR, verdict_id=self._review_verdict_id, label=label
            )
        else:
            reply = await moderation.review(actor=TERMINAL_ACTOR)
        self._review_verdict_id = next(
            (parse_id(b.data.split(":")[1]) for b in reply.buttons if b.data.startswith("rv:")), None
        )
        # The item's task's labels, as its buttons offer them (`rv:<verdict id>:<label id>`).
        self._review_labels = {
            label_id: button.text
            for button in reply.buttons
            if button.data.startswith("rv:")
            and (label_id := parse_id(button.data.split(":")[-1])) is not None
        }
        if reply.toast and reply.toast != reply.text:
            return Reply(f"{reply.toast}\n\n{reply.text}", buttons=reply.buttons)
        return reply

    async def _incoming(self, text: str) -> IncomingText:
        return IncomingText(
            chat_id=TERMINAL_CHAT_ID, message_id=await self._message_id(), user_id=TERMINAL_USER_ID, text=text
        )

    def show(self, reply: Reply) -> None:
        print(reply.text, file=self._output)
        if reply.verdict_id is not None:
            print(texts.CHAT_BUTTONS_HINT, file=self._output)
        elif any(button.data.startswith("rv:") for button in reply.buttons):  # a review item
            print("  ".join(f"/review {button.text}" for button in reply.buttons), file=self._output)
        elif reply.buttons:  # a choice of labels
            print("  ".join(f"/feedback {button.text}" for button in reply.buttons), file=self._output)
        self._output.flush()

    async def run(self, input_stream: TextIO) -> None:
        print(texts.CHAT_WELCOME, file=self._output, flush=True)
        while True:
            line = await asyncio.to_thread(input_stream.readline)
            if not line:  # end of input
                return
            reply = await self.handle(line)
            if reply is not None:
                self.show(reply)
