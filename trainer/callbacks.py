"""Trainer callbacks: JSON progress lines for the retraining service, and an abort on a NaN/inf loss."""

from __future__ import annotations

import json
import math
from typing import TextIO

from transformers import TrainerCallback

from trainer.config import TrainingError


class JsonProgressCallback(TrainerCallback):
    """One JSON line per event on `stream`: progress (every logging step), eval (every evaluation)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def emit(self, event: dict) -> None:
        self.stream.write(json.dumps(event, ensure_ascii=False) + "\n")
        self.stream.flush()

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" in logs:
            self.emit(
                {
                    "event": "progress",
                    "step": state.global_step,
                    "total_steps": state.max_steps,
                    "epoch": round(state.epoch or 0.0, 4),
                    "loss": logs["loss"],
                }
            )

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        metrics = metrics or {}
        self.emit(
            {
                "event": "eval",
                "epoch": round(state.epoch or 0.0, 4),
                "eval_loss": metrics.get("eval_loss"),
                "eval_accuracy": metrics.get("eval_accuracy"),
            }
        )


class NonFiniteLossError(TrainingError):
    pass


class AbortOnNonFiniteLoss(TrainerCallback):
    """Stop at the first NaN/inf training or evaluation loss instead of saving a broken model."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in ("loss", "eval_loss"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(value):
                raise NonFiniteLossError(
                    f"{key} became {value} at step {state.global_step} (epoch {state.epoch or 0:.2f}); training "
                    "diverged. Try a lower --learning-rate."
                )
