"""What a run is made of as it goes from step to step (`RunExecutor`, bot.retraining.run), what it ends with
(`RunOutcome`), and who owns it (`new_owner`)."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.retraining.dataset import EvalSet, HumanLabelSplit
from bot.retraining.gate import GateDecision
from bot.retraining.reporting import ProgressThrottle
from bot.storage import RunStatus, Task

if TYPE_CHECKING:
    from classifier import Classifier

# (summary, id of the admin who requested the run or None): tells the admins about a finished run.
AdminNotifier = Callable[[str, int | None], Awaitable[None]]


def new_owner() -> str:
    """A run owner's id, "host:pid:nonce": the host and pid let a sweep on the same host see that it is gone."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class RunOutcome:
    run_id: int
    status: RunStatus
    summary: str  # what the reporter's `finished` received
    model_version_id: int | None = None
    decision: GateDecision | None = None
    error: str | None = None
    gate: dict[str, Any] | None = None  # the decision's full record, as in metrics.json


@dataclass
class RunState:
    """One run as it goes from step to step. The failure paths read `candidate_dir` and `version_id`: what there
    is to clean up."""

    id: int
    task: Task
    progress: ProgressThrottle  # where its progress goes (the database row and the reporter)
    dir: Path
    seed: int = 0
    candidate_dir: Path | None = None  # set when training starts
    version_id: int | None = None  # set when the candidate is registered

    @property
    def log_path(self) -> Path:
        return self.dir / "train.log"

    @property
    def checkpoint_dir(self) -> Path:
        return self.dir / "checkpoints"


@dataclass(frozen=True)
class RunData:
    """What a run trains on and is judged on, read when it starts."""

    active: Any  # the active ModelVersion, or None
    served: list[Any]  # every version that ever served (the drift guard's candidates for the reference)
    id2label: dict[int, str] | None
    split: HumanLabelSplit
    mix: dict[str, Any]  # the training labels' class mix, as recorded with the run
    extra: Path | None  # the human labels' training file, when there are any
    eval_set: EvalSet


@dataclass(frozen=True)
class Judged:
    candidate: Classifier  # loaded as the bot serves it
    decision: GateDecision
    gate: dict[str, Any]  # the decision's full record
    metrics: dict[str, Any]  # the candidate's metrics.json, gate included
