"""The labellers page (admins): per person who labelled, their live, voided and trusted labels, and their record of
reviewers' spot checks (`bot.storage.label_trust`: checks, agreed, accuracy, standing), 50 a page, the busiest first
(`?page=`), each page's records in one grouped query; a button voids a person's
labels through the same use case as `/void`. Beside the record: how often the person's labels match other people's
on the same verdicts, and who they move in lockstep with (`bot.storage.overview.labeller_agreement`): shown for the
operator to look at; the label rule does not silence such pairs, since honest regulars label together too."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bot import storage
from bot.moderation import parse_id
from bot.storage.label_trust import record_of
from bot.web import texts
from bot.web.auth import checked_form, require
from bot.web.rendering import render

USERS_PER_PAGE = 50
STANDING_NAMES = {"earned": "신뢰", "unproven": "확인 전", "failing": "불합격"}


def _page(request: Request) -> int:
    page = parse_id(request.query_params.get("page") or "1")
    if page is None or page < 1:
        raise HTTPException(400, texts.BAD_REQUEST)
    return page


async def users_page(request: Request) -> Response:
    require(request, admin=True)
    page = _page(request)
    rule = request.app.state.moderation.label_rule
    async with request.app.state.session_factory() as session:
        # one more than a page: whether a next page exists
        totals = await storage.labeller_totals(
            session, limit=USERS_PER_PAGE + 1, offset=(page - 1) * USERS_PER_PAGE
        )
        more, totals = len(totals) > USERS_PER_PAGE, totals[:USERS_PER_PAGE]
        records = await storage.labeller_records(session, user_ids=[t.user_id for t in totals])
        agreement = await storage.labeller_agreement(session, user_ids=[t.user_id for t in totals])
    settings = request.app.state.settings
    rows = []
    for total in totals:
        record = record_of(records, total.user_id)
        staff = settings.is_admin(total.user_id) or settings.is_reviewer(total.user_id)
        rows.append(
            {
                "totals": total,
                "record": record,
                "agreement": agreement[total.user_id],
                "standing": "관리자/검토자" if staff else STANDING_NAMES[record.standing(rule).value],
            }
        )
    return render(
        request,
        "users.html",
        {
            "rows": rows,
            "rule": rule,
            "page": page,
            "more": more,
            "first": (page - 1) * USERS_PER_PAGE + 1,
            "lockstep_min_shared": storage.overview.LOCKSTEP_MIN_SHARED,
            "lockstep_min_same": storage.overview.LOCKSTEP_MIN_SAME,
        },
    )


async def void(request: Request) -> Response:
    user = require(request, admin=True)
    await checked_form(request)
    raw = str(request.path_params["user_id"])
    if not raw.isdecimal():
        raise HTTPException(404, texts.NOT_FOUND)
    reply = await request.app.state.moderation.void(actor=user.actor, argument=raw)
    request.session["flash"] = reply.text
    return RedirectResponse("/users", status_code=303)


ROUTES = [
    Route("/users", users_page, methods=["GET"]),
    Route("/users/{user_id}/void", void, methods=["POST"]),
]
