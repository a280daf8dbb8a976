"""Operations endpoints, open like any Prometheus target (they show counts and version ids, no texts):
`/healthz` (the process lives), `/readyz` (the models are loaded and the database answers) and `/metrics`."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot import metrics, storage
from bot.storage import Task

logger = logging.getLogger("bot.web")

DATABASE_TIMEOUT_S = 2.0


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


async def readyz(request: Request) -> Response:
    moderation = request.app.state.moderation
    problems = []
    if not moderation.serving.is_loaded:
        problems.append("no sentiment model is loaded")
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT_S):
            async with request.app.state.session_factory() as session:
                await session.execute(text("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - whatever it is, the database does not answer
        problems.append(f"the database does not answer ({type(error).__name__})")
    if problems:
        return PlainTextResponse("not ready: " + "; ".join(problems) + "\n", status_code=503)
    return PlainTextResponse("ready\n")


async def metrics_endpoint(request: Request) -> Response:
    state = request.app.state
    snapshot: metrics.ScrapeSnapshot = state.scrape_snapshot
    moderation = state.moderation
    served = {
        Task.SENTIMENT.value: moderation.serving.active.version_id if moderation.serving.is_loaded else None
    }
    toxicity = moderation.toxicity.serving if moderation.toxicity is not None else None
    served[Task.TOXICITY.value] = (
        toxicity.active.version_id if toxicity is not None and toxicity.is_loaded else None
    )
    since = datetime.now(UTC) - timedelta(days=state.settings.review_window_days)
    depth: dict[str, int] = {}
    runs: dict[tuple[str, str], int] = {}
    try:
        depths = await storage.review_queue_depths(
            state.session_factory, since=since, rule=moderation.label_rule
        )
        depth = {task.value: count for task, count in depths.items()}
        async with state.session_factory() as session:
            runs = await storage.training_run_counts(session)
    except Exception as error:  # noqa: BLE001 - the counters are still worth serving
        logger.warning("metrics: could not read the queue and runs (%s)", type(error).__name__)
    # Set and generated with no await in between: concurrent scrapes cannot mix their values.
    snapshot.queue_depth, snapshot.served, snapshot.runs = depth, served, runs
    return Response(generate_latest(state.metrics_registry), media_type=CONTENT_TYPE_LATEST)


ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics_endpoint, methods=["GET"]),
]
