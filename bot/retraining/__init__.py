"""The learning loop: scheduled and admin-triggered retraining on human labels, a statistical promotion gate and
hot swap into serving (rollback lives in `bot.versions`).

Public API (imported lazily, so `moderator --help` stays instant)::

    from bot.retraining import RetrainingService, RunReporter, RunOutcome, attach, attach_retraining
    from bot.retraining.gate import GateDecision, Scores, compare, decide
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RetrainingService": "bot.retraining.service",
    "RunOutcome": "bot.retraining.run_state",
    "RunReporter": "bot.retraining.reporting",
    "attach": "bot.retraining.wiring",
    "attach_retraining": "bot.retraining.wiring",
    "GateDecision": "bot.retraining.gate",
    "Scores": "bot.retraining.gate",
    "compare": "bot.retraining.gate",
    "decide": "bot.retraining.gate",
}

__all__ = [
    "GateDecision",
    "RetrainingService",
    "RunOutcome",
    "RunReporter",
    "Scores",
    "attach",
    "attach_retraining",
    "compare",
    "decide",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bot.retraining' has no attribute {name!r}")
