"""The review queue in a browser: the same items, rules and trusted labels as the bot's `/review`
(`bot.moderation.reviewing`), one item at a time, with keys 1/2/3 (labels), S (skip) and U (undo the last label),
filtered by task and by chat (`?task=`, `?chat=`: the known groups are offered, any chat id is taken).

Every answer is a POST and a redirect back (`303`), so a reload never answers twice; a reload of the page shows
the same unanswered item again (`resume`)."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bot import storage
from bot.moderation import parse_id
from bot.moderation.replies import NotAllowedError
from bot.moderation.reviewing import REVIEW_TEXT_LIMIT
from bot.storage import Task
from bot.textclip import clip
from bot.web import texts
from bot.web.auth import checked_form, require
from bot.web.rendering import render
from classifier.tasks import TASK_TITLES

ALL_TASKS = "all"
ALL_CHATS = "all"


def _task_filter(value: str | None) -> Task | None:
    if not value or value == ALL_TASKS:
        return None
    try:
        return Task(value)
    except ValueError:
        raise HTTPException(400, texts.BAD_REQUEST) from None


def _chat_filter(value: str | None) -> int | None:
    value = (value or "").strip()
    if not value or value == ALL_CHATS:
        return None
    try:
        return int(value)
    except ValueError:
        raise HTTPException(400, texts.BAD_REQUEST) from None


def _back(task: Task | None, chat_id: int | None) -> RedirectResponse:
    query = urlencode(
        {"task": task.value if task else ALL_TASKS, "chat": ALL_CHATS if chat_id is None else chat_id}
    )
    return RedirectResponse(f"/queue?{query}", status_code=303)


async def queue_page(request: Request) -> Response:
    user = require(request, telegram_user=True)
    task = _task_filter(request.query_params.get("task"))
    chat_id = _chat_filter(request.query_params.get("chat"))
    moderation = request.app.state.moderation
    try:
        item = await moderation.review_item(actor=user.actor, task=task, chat_id=chat_id, resume=True)
    except NotAllowedError as error:
        raise HTTPException(403, str(error)) from None
    async with request.app.state.session_factory() as session:
        groups = await storage.known_group_ids(session)
    context: dict = {
        "task": task.value if task else ALL_TASKS,
        "tasks": TASK_TITLES,
        "chat": ALL_CHATS if chat_id is None else str(chat_id),
        "groups": [str(group) for group in groups],
        "item": None,
    }
    if item is not None:
        verdict = item.verdict
        labels = moderation.labels(verdict.task)
        context.update(
            item=item,
            text=clip(verdict.text or "", REVIEW_TEXT_LIMIT),
            verdict=verdict,
            task_title=TASK_TITLES.get(str(verdict.task), str(verdict.task)),
            labels=list(labels.items())[:9],  # keys 1-9
            probabilities=sorted(
                (verdict.probabilities or {}).items(), key=lambda pair: pair[1], reverse=True
            ),
        )
    return render(request, "queue.html", context)


async def answer(request: Request) -> Response:
    user = require(request, telegram_user=True)
    form = await checked_form(request)
    task = _task_filter(str(form.get("task") or ""))
    chat_id = _chat_filter(str(form.get("chat") or ""))
    verdict_id = parse_id(str(form.get("verdict_id") or ""))
    choice = str(form.get("label") or "")
    label = None if choice == "skip" else parse_id(choice)
    if verdict_id is None or (choice != "skip" and label is None):
        raise HTTPException(400, texts.BAD_REQUEST)
    try:
        result = await request.app.state.moderation.review_answer(
            actor=user.actor, verdict_id=verdict_id, label=label
        )
    except NotAllowedError as error:
        raise HTTPException(403, str(error)) from None
    request.session["flash"] = result.text
    return _back(task, chat_id)


async def undo(request: Request) -> Response:
    user = require(request, telegram_user=True)
    form = await checked_form(request)
    task = _task_filter(str(form.get("task") or ""))
    chat_id = _chat_filter(str(form.get("chat") or ""))
    try:
        request.session["flash"] = await request.app.state.moderation.undo_review(actor=user.actor)
    except NotAllowedError as error:
        raise HTTPException(403, str(error)) from None
    return _back(task, chat_id)


ROUTES = [
    Route("/queue", queue_page, methods=["GET"]),
    Route("/queue/answer", answer, methods=["POST"]),
    Route("/queue/undo", undo, methods=["POST"]),
]
