"""The learning loop: scheduled and admin-triggered retraining on corrected labels, a promotion gate,
hot swap into serving, and rollback.

Public API (imported lazily, so `moderator --help` stays instant)::

    from bot.retraining import RetrainingService, RunReporter, RunOutcome, RollbackError, attach, attach_retraining
    from bot.retraining.gate import ModelScores, GateDecision, decide_promotion
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RetrainingService": "bot.retraining.service",
    "RollbackError": "bot.retraining.service",
    "RunOutcome": "bot.retraining.service",
    "RunReporter": "bot.retraining.service",
    "attach": "bot.retraining.wiring",
    "attach_retraining": "bot.retraining.wiring",
    "GateDecision": "bot.retraining.gate",
    "ModelScores": "bot.retraining.gate",
    "decide_promotion": "bot.retraining.gate",
}

__all__ = [
    "GateDecision",
    "ModelScores",
    "RetrainingService",
    "RollbackError",
    "RunOutcome",
    "RunReporter",
    "attach",
    "attach_retraining",
    "decide_promotion",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bot.retraining' has no attribute {name!r}")
