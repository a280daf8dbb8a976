"""The runs page (admins): each training run's status, progress, duration, label mix, seed and the gate's checks
with their intervals (all from the run's row, `bot.storage.training_runs`, and its gate record), and a button that
asks for a run through the same use case as `/retrain` (`Moderation.retrain`: its rules, its replies)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bot import storage
from bot.moderation import texts as bot_texts
from bot.retraining.texts import pattern_terms_text
from bot.storage import RunTrigger, Task
from bot.storage.models import LIVE_RUN_STATUSES
from bot.web import texts
from bot.web.auth import checked_form, require
from bot.web.rendering import render
from classifier.tasks import TASK_TITLES

RUNS_SHOWN = 50


async def runs_page(request: Request) -> Response:
    require(request, admin=True)
    async with request.app.state.session_factory() as session:
        runs = await storage.list_training_runs(session, limit=RUNS_SHOWN)
    return render(
        request,
        "runs.html",
        {"runs": [describe(run) for run in runs], "tasks": TASK_TITLES},
    )


def describe(run: Any) -> dict[str, Any]:
    gate = run.gate or {}
    mix = (gate.get("human_labels") or {}).get("train") or {}
    pattern = gate.get("pattern") or {}
    return {
        "id": run.id,
        "task": TASK_TITLES.get(str(run.task), str(run.task)),
        "status": bot_texts.RUN_STATUS.get(run.status.value, run.status.value),
        "live": run.status in LIVE_RUN_STATUSES,
        "trigger": bot_texts.RUN_TRIGGER.get(run.trigger.value, run.trigger.value),
        "requested_by": run.requested_by,
        "created": _when(run.created_at),
        "duration": _duration(run.started_at, run.finished_at),
        "progress": run.progress,
        "error": (run.error or "").splitlines()[0][:300] if run.error else None,
        "examples": run.example_count,
        "corrections": run.correction_count,
        "mix": [
            (name, entry.get("examples"), entry.get("confirmations"), entry.get("share"))
            for name, entry in mix.items()
            if isinstance(entry, dict)
        ],
        "seed": run.seed if run.seed is not None else gate.get("seed"),
        "version": run.model_version_id,
        "promote": gate.get("promote"),
        "reason": gate.get("reason"),
        "confidence": gate.get("confidence"),
        "checks": [check for check in gate.get("checks", []) if isinstance(check, dict)],
        # What the run's corrections shared, and how many fixed-set examples hold it (the pattern_class checks).
        "pattern_terms": pattern_terms_text(pattern.get("terms") or []),
        "pattern_rows": pattern.get("rows"),
    }


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def _duration(started: datetime | None, finished: datetime | None) -> str:
    if started is None:
        return "-"
    seconds = int(((finished or datetime.now(started.tzinfo)) - started).total_seconds())
    text = (
        f"{seconds // 3600}시간 {seconds % 3600 // 60}분"
        if seconds >= 3600
        else f"{seconds // 60}분 {seconds % 60}초"
    )
    return text if finished else text + " (진행 중)"


async def start_run(request: Request) -> Response:
    user = require(request, admin=True)
    form = await checked_form(request)
    task = str(form.get("task") or "")
    if task not in {t.value for t in Task}:
        raise HTTPException(400, texts.BAD_REQUEST)
    reply = await request.app.state.moderation.retrain(
        actor=user.actor, trigger=RunTrigger.ADMIN, reporter=None, argument=task
    )
    request.session["flash"] = reply.text
    return RedirectResponse("/runs", status_code=303)


ROUTES = [
    Route("/runs", runs_page, methods=["GET"]),
    Route("/runs/start", start_run, methods=["POST"]),
]
