"""Where a training run reports to: `RunReporter` (the Telegram layer edits one message; the CLI prints) and the
throttle in front of it."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bot.retraining import texts

logger = logging.getLogger("bot.retraining.service")


class RunReporter(Protocol):
    """Where a run's progress and result go (the Telegram layer edits one message; the CLI prints)."""

    async def progress(self, run_id: int, text: str) -> None: ...

    async def finished(self, run_id: int, text: str) -> None: ...


class ProgressThrottle:
    """Throttles progress: the database row and the reporter hear at most one update per interval."""

    def __init__(
        self,
        update: Callable[[int, str, RunReporter | None], Awaitable[None]],
        run_id: int,
        reporter: RunReporter | None,
        interval: float,
    ):
        self._update = update
        self._run_id = run_id
        self._reporter = reporter
        self._interval = interval
        self._last_sent = -math.inf

    async def report(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_sent < self._interval:
            return
        self._last_sent = now
        try:
            await self._update(self._run_id, text, self._reporter)
        except Exception:  # progress is best effort; the run goes on
            logger.exception("progress update for run %s failed", self._run_id)

    async def on_event(self, event: dict[str, Any]) -> None:
        text = texts.progress_text(event)
        if text is not None:
            await self.report(text, force=event.get("event") == "eval")
