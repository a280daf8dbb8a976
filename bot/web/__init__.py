"""The operator web app (docs/web.md): the review queue and the models page in a browser, plus /healthz, /readyz and
/metrics. Server-rendered HTML with plain forms (Starlette + Jinja2, served by uvicorn), over the same storage
functions and use cases as the bot (`bot.storage`, `bot.moderation`).

- `app`: `create_app`, the one place that wires middleware, routes and error pages;
- `auth`: login by a one-time link from `/web`, the signed session cookie, roles, CSRF, the login throttle;
- `pages/queue.py`, `pages/models.py`: the pages; `ops`: health and metrics;
- `serve`: uvicorn in the bot's event loop (`moderator run` with WEB_PORT) or alone (`moderator web`, `cli`).
"""
