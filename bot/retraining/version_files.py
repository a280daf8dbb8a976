"""Files of a model version directory that retraining reads and writes: metrics.json and the label names."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def write_metrics(version_dir: Path, metrics: dict[str, Any]) -> None:
    """metrics.json with the gate's full record added (atomically replaced)."""
    partial = version_dir / "metrics.json.partial"
    partial.write_text(json.dumps(json_safe(metrics), ensure_ascii=False, indent=2), encoding="utf-8")
    partial.replace(version_dir / "metrics.json")


def read_id2label(path: Path) -> dict[int, str] | None:
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        return {int(key): str(value) for key, value in config["id2label"].items()}
    except (OSError, ValueError, KeyError):
        return None


def task_of_directory(path: str | Path) -> str:
    """The task a model version directory judges (its metrics.json, else its labels; `classifier.tasks`)."""
    from classifier.tasks import task_of_model

    try:
        metrics = json.loads((Path(path) / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        metrics = None
    return task_of_model(read_id2label(Path(path)) or {}, metrics if isinstance(metrics, dict) else None)


def json_safe(value: Any) -> Any:
    """NaN/inf are not JSON; store them as None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value
