"""The models page (admins): each task's versions with their metrics, which one is active, the activation history,
and activation or rollback, each behind a confirmation page. A version's own page (`/models/{id}`) shows its
metrics with per-class numbers from its confusion matrix, its training curves (per epoch, from its metrics), its
calibration, the gate record of the run that trained it, and its activation history. Activation and rollback go
through the use cases the bot and the CLI use (`Moderation.activate_version` = `bot.versions.activate`, `Moderation.rollback` = `bot.versions.rollback`): the
version is loaded as served and trial-checked before the database changes, and this process serves it at once; a
bot in another process follows the database within a minute (its sync job)."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bot import storage
from bot.storage import ModelStatus, Task
from bot.web import texts
from bot.web.auth import checked_form, require
from bot.web.charts import chart
from bot.web.pages.runs import describe
from bot.web.rendering import render
from classifier.tasks import TASK_TITLES

VERSIONS_SHOWN = 200
ACTIVATIONS_SHOWN = 30
ACTIVATION_REASONS = {
    "import": "가져오기",
    "manual": "직접 선택",
    "promotion": "재학습 통과",
    "rollback": "되돌리기",
    "fallback": "시작할 때 대체",
}


def _task(request: Request) -> Task:
    try:
        return Task(request.path_params["task"])
    except ValueError:
        raise HTTPException(404, texts.NOT_FOUND) from None


async def _version(request: Request):
    async with request.app.state.session_factory() as session:
        version = await storage.get_model_version(session, version_id=request.path_params["version_id"])
    if version is None:
        raise HTTPException(404, texts.NOT_FOUND)
    return version


async def models_page(request: Request) -> Response:
    require(request, admin=True)
    async with request.app.state.session_factory() as session:
        versions = await storage.list_model_versions(session, limit=VERSIONS_SHOWN)
        activations = await storage.list_activations(session, limit=ACTIVATIONS_SHOWN)
    by_task = {task: [v for v in versions if v.task == task] for task in Task}
    return render(
        request,
        "models.html",
        {
            "by_task": by_task,
            "titles": TASK_TITLES,
            "ACTIVE": ModelStatus.ACTIVE,
            "activations": [_activation_row(a) for a in activations],
        },
    )


async def version_page(request: Request) -> Response:
    require(request, admin=True)
    version = await _version(request)
    async with request.app.state.session_factory() as session:
        runs = await storage.list_training_runs(session, limit=1, model_version_id=version.id)
        activations = await storage.list_activations(session, limit=ACTIVATIONS_SHOWN, version_id=version.id)
    metrics = version.metrics or {}
    history = [row for row in metrics.get("history") or [] if isinstance(row, dict)]
    return render(
        request,
        "model.html",
        {
            "version": version,
            "title": TASK_TITLES.get(str(version.task), str(version.task)),
            "ACTIVE": ModelStatus.ACTIVE,
            "metrics": metrics,
            "per_class": per_class(metrics),
            "calibration": metrics.get("calibration")
            if isinstance(metrics.get("calibration"), dict)
            else None,
            "data": metrics.get("data") if isinstance(metrics.get("data"), dict) else {},
            "curves": _curves(history) if history else None,
            "run": describe(runs[0]) if runs else None,
            "activations": [_activation_row(a) for a in activations],
        },
    )


def per_class(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support per class from the confusion matrix (rows: true class; columns: the
    model's answer), as the trainer writes it; [] when the metrics have none."""
    labels, matrix = metrics.get("labels"), metrics.get("confusion_matrix")
    square = (
        isinstance(labels, list)
        and isinstance(matrix, list)
        and len(matrix) == len(labels)
        and all(
            isinstance(row, list)
            and len(row) == len(labels)
            and all(isinstance(n, int) and not isinstance(n, bool) for n in row)
            for row in matrix
        )
    )
    if not square:
        return []
    rows = []
    for index, name in enumerate(labels):
        right = matrix[index][index]
        actual = sum(matrix[index])
        answered = sum(row[index] for row in matrix)
        precision = right / answered if answered else None
        recall = right / actual if actual else None
        f1 = (
            2 * precision * recall / (precision + recall)
            if precision is not None and recall is not None and precision + recall > 0
            else None
        )
        rows.append({"name": name, "precision": precision, "recall": recall, "f1": f1, "support": actual})
    return rows


def _curves(history: list[dict[str, Any]]) -> dict[str, Any]:
    epochs = [
        f"{row['epoch'] if isinstance(row.get('epoch'), int | float) else index + 1:g}"
        for index, row in enumerate(history)
    ]
    names = [f"epoch {epoch}" for epoch in epochs]

    def values(key: str) -> list[float | None]:
        return [row.get(key) if isinstance(row.get(key), int | float) else None for row in history]

    return {
        "loss": chart(
            epochs,
            names,
            {"학습 손실": values("train_loss"), "검증 손실": values("eval_loss")},
            title="에폭별 손실",
            lines=True,
        ),
        "quality": chart(
            epochs,
            names,
            {"검증 정확도": values("eval_accuracy"), "검증 macro-F1": values("eval_macro_f1")},
            title="에폭별 검증 정확도와 macro-F1",
            lines=True,
            percent=True,
        ),
    }


def _activation_row(activation: Any) -> dict[str, Any]:
    return {
        "when": activation.created_at.strftime("%Y-%m-%d %H:%M") if activation.created_at else "-",
        "previous": activation.previous_version_id,
        "version": activation.version_id,
        "reason": ACTIVATION_REASONS.get(activation.reason.value, activation.reason.value),
        "actor": activation.actor,
        "note": activation.note,
    }


async def confirm_activate(request: Request) -> Response:
    require(request, admin=True)
    version = await _version(request)
    return render(
        request,
        "confirm.html",
        {
            "title": f"#{version.id} 모델 사용하기",
            "question": (
                f"{TASK_TITLES[str(version.task)]} 모델을 #{version.id}(으)로 바꿀까요? "
                "먼저 불러와서 시험 예측을 한 뒤에 바꿔요."
            ),
            "action": f"/models/{version.id}/activate",
            "button": "사용하기",
        },
    )


async def activate(request: Request) -> Response:
    user = require(request, admin=True)
    await checked_form(request)
    version = await _version(request)
    reply = await request.app.state.moderation.activate_version(actor=user.actor, version_id=version.id)
    request.session["flash"] = reply.text
    return RedirectResponse("/models", status_code=303)


async def confirm_rollback(request: Request) -> Response:
    require(request, admin=True)
    task = _task(request)
    return render(
        request,
        "confirm.html",
        {
            "title": "모델 되돌리기",
            "question": (
                f"{TASK_TITLES[task]} 모델을 이전에 쓰던 버전으로 되돌릴까요? 지금 버전은 탈락으로 표시돼요."
            ),
            "action": f"/models/rollback/{task.value}",
            "button": "되돌리기",
        },
    )


async def rollback(request: Request) -> Response:
    user = require(request, admin=True)
    await checked_form(request)
    task = _task(request)
    reply = await request.app.state.moderation.rollback(actor=user.actor, argument=task.value)
    request.session["flash"] = reply.text
    return RedirectResponse("/models", status_code=303)


ROUTES = [
    Route("/models", models_page, methods=["GET"]),
    Route("/models/{version_id:int}", version_page, methods=["GET"]),
    Route("/models/{version_id:int}/activate", confirm_activate, methods=["GET"]),
    Route("/models/{version_id:int}/activate", activate, methods=["POST"]),
    Route("/models/rollback/{task}", confirm_rollback, methods=["GET"]),
    Route("/models/rollback/{task}", rollback, methods=["POST"]),
]
