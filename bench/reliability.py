"""The results file behind docs/reliability.md: the kill, stop, refused-token, run-recovery and model-version tests
record what they measured with `record(key, ...)`.

Without `RELIABILITY_RESULTS` a record is only a `RELIABILITY key k=v ...` line on stdout (seen with `pytest -s`).
With `RELIABILITY_RESULTS=path` (`make bench` sets it) it is also merged into that JSON file under
`figures.<key>`, with when it was taken and the machine's load average then; the file's `environment` names the
machine. `make bench` writes `bench/results/reliability.json.partial` and renames it when every test passed, so
the file always holds one complete run.

    RELIABILITY_RESULTS=bench/results/reliability.json RELIABILITY_KILL_AFTER=1,20,100,190 \\
        .venv/bin/python -m pytest tests/bot/test_process_signals.py tests/retraining/test_run_recovery.py \\
        tests/bot/test_versions.py tests/retraining/test_training_worker.py  # the last with TEST_POSTGRES_URL
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ENV_VAR = "RELIABILITY_RESULTS"


def record(key: str, **values: Any) -> None:
    """Print `RELIABILITY key k=v ...` and, when RELIABILITY_RESULTS is set, store the values under `key`."""
    print(f"RELIABILITY {key} " + " ".join(f"{name}={_shown(value)}" for name, value in values.items()))
    target = os.environ.get(ENV_VAR)
    if not target:
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = {**values, "recorded_at": _now(), "load_average": [round(v, 2) for v in os.getloadavg()]}
    with _locked(path.parent):
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            results = {}
        if not results.get("figures"):
            results = {
                "benchmark": "reliability",
                "source": "tests/bot/test_process_signals.py, tests/retraining/test_run_recovery.py, "
                "tests/bot/test_versions.py, tests/retraining/test_training_worker.py (bench/reliability.py; "
                "make bench)",
                "created_at": figure["recorded_at"],
                "environment": environment(),
                "figures": {},
            }
        results["figures"][key] = figure
        results["updated_at"] = figure["recorded_at"]
        partial = path.with_name(path.name + ".tmp")
        partial.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        partial.replace(path)


def environment() -> dict[str, Any]:
    """The machine the figures were taken on."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
    }


def _shown(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextlib.contextmanager
def _locked(folder: Path):
    """The results folder locked against a concurrent writer (flock on the directory: no lock file left)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _proc_field(path: str, name: str) -> str | None:
    try:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    except OSError:
        pass
    return None


def _memory_gib() -> float | None:
    total = _proc_field("/proc/meminfo", "MemTotal")  # "24576000 kB"
    try:
        return round(int(total.split()[0]) / 2**20, 1) if total else None
    except ValueError:
        return None
