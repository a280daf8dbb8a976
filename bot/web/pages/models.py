"""The models page (admins): each task's versions with their metrics, which one is active, and activation or
rollback, each behind a confirmation page. Both go through the use cases the bot and the CLI use
(`Moderation.activate_version` = `bot.versions.activate`, `Moderation.rollback` = `bot.versions.rollback`): the
version is loaded as served and trial-checked before the database changes, and this process serves it at once; a
bot in another process follows the database within a minute (its sync job)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bot import storage
from bot.storage import ModelStatus, Task
from bot.web import texts
from bot.web.auth import checked_form, require
from bot.web.rendering import render
from classifier.tasks import TASK_TITLES

VERSIONS_SHOWN = 200


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
    by_task = {task: [v for v in versions if v.task == task] for task in Task}
    return render(
        request,
        "models.html",
        {"by_task": by_task, "titles": TASK_TITLES, "ACTIVE": ModelStatus.ACTIVE},
    )


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
    Route("/models/{version_id:int}/activate", confirm_activate, methods=["GET"]),
    Route("/models/{version_id:int}/activate", activate, methods=["POST"]),
    Route("/models/rollback/{task}", confirm_rollback, methods=["GET"]),
    Route("/models/rollback/{task}", rollback, methods=["POST"]),
]
