"""Rendering pages: Jinja2 templates with the session's CSRF token and a nonce for our one inline script, and the
headers every page gets (no caching, no referrer: a login URL carries its token)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from bot.web.auth import csrf_token, current_user

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    has_session = "session" in request.scope  # not on the 500 page, rendered outside the session middleware
    values = {
        "csrf_token": csrf_token(request) if has_session else "",
        "user": current_user(request) if has_session else None,
        "nonce": nonce,
        "flash": request.session.pop("flash", None) if has_session else None,
        **(context or {}),
    }
    response = TEMPLATES.TemplateResponse(request, template, values, status_code=status)
    protect(response, nonce=nonce)
    return response


def protect(response: Any, *, nonce: str | None = None) -> None:
    script = f"'nonce-{nonce}'" if nonce else "'none'"
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'unsafe-inline'; script-src {script}; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return render(request, "error.html", {"status": status, "message": message}, status=status)
