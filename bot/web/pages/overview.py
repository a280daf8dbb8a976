"""The overview (`/` for admins): per task, over the last `days` days (all chats or `chat`): verdicts per day by
label, people's labels per day by kind, the served model's agreement with those labels per day (the accuracy its
users see), the review queue's depth, actions per group, and the active models. Charts are inline SVG
(`bot.web.charts`); every number comes from `bot.storage.overview`, grouped by day in SQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from bot import storage
from bot.moderation import parse_id
from bot.storage import Task
from bot.web import texts
from bot.web.auth import require
from bot.web.charts import daily_chart
from bot.web.rendering import render
from classifier.tasks import TASK_TITLES

DEFAULT_DAYS = 30
MAX_DAYS = 90
KIND_NAMES = {
    storage.overview.CORRECTION: "정정",
    storage.overview.CONFIRMATION: "확인",
    storage.overview.REVIEW: "검토",
    storage.overview.ADMIN_DECISION: "관리자 판단",
    storage.overview.REPORT: "신고",
}
ACTION_NAMES = {"delete": "삭제", "mute": "제한", "ban": "추방", "unmute": "제한 해제", "unban": "추방 해제"}
STATUS_NAMES = {"pending": "대기", "done": "완료", "failed": "실패"}


def window(request: Request) -> tuple[int, int | None]:
    """(days, chat id or None) from the query string; 400 for anything else."""
    raw_days = request.query_params.get("days") or str(DEFAULT_DAYS)
    days = parse_id(raw_days)
    if days is None or not 1 <= days <= MAX_DAYS:
        raise HTTPException(400, texts.BAD_REQUEST)
    raw_chat = (request.query_params.get("chat") or "").strip()
    if not raw_chat:
        return days, None
    try:
        return days, int(raw_chat)
    except ValueError:
        raise HTTPException(400, texts.BAD_REQUEST) from None


def day_range(days: int, today: date) -> list[date]:
    return [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]


async def overview_page(request: Request) -> Response:
    require(request, admin=True)
    days, chat_id = window(request)
    now = datetime.now(UTC)
    shown_days = day_range(days, now.date())
    since = datetime.combine(shown_days[0], datetime.min.time(), tzinfo=UTC)
    moderation = request.app.state.moderation
    review_since = now - timedelta(days=request.app.state.settings.review_window_days)
    sessions = request.app.state.session_factory

    # The queue's depth is the costliest read (its window's labels and verdicts): it runs on connections of its
    # own while the per-day counts are read on another.
    depths_read = asyncio.create_task(
        storage.review_queue_depths(sessions, since=review_since, rule=moderation.label_rule)
    )
    try:
        counts = []
        async with sessions() as session:
            for task in Task:
                verdicts = await storage.verdicts_per_day(session, task=task, since=since, chat_id=chat_id)
                labels = await storage.labels_per_day(session, task=task, since=since, chat_id=chat_id)
                active = await storage.get_active_model_version(session, task=task)
                counts.append((task, verdicts, labels, active))
            actions = await storage.actions_per_chat(session, since=since, chat_id=chat_id)
            groups = await storage.known_group_ids(session)
        depths = await depths_read
    finally:
        depths_read.cancel()  # a no-op once it finished; stops it when the page failed
    sections = [
        _section(task, shown_days, verdicts, labels, depths[task], active)
        for task, verdicts, labels, active in counts
    ]
    return render(
        request,
        "overview.html",
        {
            "days": days,
            "chat": chat_id,
            "groups": groups,
            "sections": sections,
            "actions": _action_rows(actions),
            "since": shown_days[0],
        },
    )


def _section(task: Task, shown_days, verdicts, labels, depth, active) -> dict:
    label_names = sorted({name for counts in verdicts.values() for name in counts})
    kinds = [kind for kind in storage.LABEL_KINDS if any(kind in day.by_kind for day in labels.values())]
    total_labels = sum(day.total for day in labels.values())
    total_agreed = sum(day.agreed for day in labels.values())
    return {
        "task": task.value,
        "title": TASK_TITLES[task],
        "verdict_total": sum(sum(counts.values()) for counts in verdicts.values()),
        "label_total": total_labels,
        "agreement": total_agreed / total_labels if total_labels else None,
        "depth": depth,
        "active": active,
        "verdict_chart": daily_chart(
            shown_days,
            {name: [verdicts.get(day, {}).get(name, 0) for day in shown_days] for name in label_names},
            title=f"{TASK_TITLES[task]}: 날짜별 판정 수 (라벨별)",
        ),
        "label_chart": daily_chart(
            shown_days,
            {
                KIND_NAMES[kind]: [
                    labels[day].by_kind.get(kind, 0) if day in labels else 0 for day in shown_days
                ]
                for kind in kinds
            },
            title=f"{TASK_TITLES[task]}: 날짜별 사람 라벨 수 (종류별)",
        ),
        "agreement_chart": daily_chart(
            shown_days,
            {
                "모델과 사람 라벨 일치율": [
                    labels[day].agreement if day in labels else None for day in shown_days
                ]
            },
            title=f"{TASK_TITLES[task]}: 날짜별 모델-사람 일치율",
            lines=True,
            percent=True,
        ),
    }


def _action_rows(actions: dict[int, dict[str, int]]) -> list[dict]:
    rows = []
    for chat_id, counts in sorted(actions.items()):
        parts = []
        for key, count in sorted(counts.items()):
            kind, _, status = key.partition("/")
            parts.append(f"{ACTION_NAMES.get(kind, kind)} {STATUS_NAMES.get(status, status)} {count}")
        rows.append({"chat_id": chat_id, "total": sum(counts.values()), "parts": ", ".join(parts)})
    return rows
