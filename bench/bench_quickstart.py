"""The quick start, timed as a new user meets it: `python -m bot.quickstart` (what `make run` runs once its
environment is installed) in an empty folder, with no model, no database and no Telegram token.

It migrates a fresh SQLite database, trains and imports the first sentiment and toxicity models (each with its
static int8 fast path), and predicts the four sample reviews with each, then stops (no token, no terminal). The
child gets the environment a user has: the benchmarks' own offline switches (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE)
are removed, so the model-hub check runs as it does for them. The issue's goal: both first models, trained and
imported, in at most 7 minutes on 2 quiet cores.

    python -m bench.bench_quickstart     # ~7 min on 2 cores

Writes bench/results/quickstart.json: the wall time of each step (read from the quick start's own output lines,
timestamped as they arrive), the sample predictions as printed, the machine, the date and the load average.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, machine_record, write_result

NAME = "quickstart"
GOAL_SECONDS = 7 * 60
# The quick start's lines that open each step (bot/quickstart.py), in order.
STEP_MARKERS = (
    ("train and import the sentiment model", "Training a first sentiment model"),
    ("sentiment samples", "Sample predictions with the active sentiment model"),
    ("train and import the toxicity model", "Training a first toxicity model"),
    ("toxicity samples", "Sample predictions with the active toxicity model"),
)
OFFLINE_SWITCHES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
# A sample prediction in the tutorial's format, as `moderator predict` prints it.
SAMPLE_LINE = re.compile(r"^\[.+ 입니다\.\] 확률은: ")
logger = logging.getLogger(__name__)


def child_environment() -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if key not in OFFLINE_SWITCHES}
    for key in ("TELEGRAM_BOT_TOKEN", "KORPORA_ROOT", "DATABASE_URL", "MODEL_DIR", "WEB_PORT"):
        environment.pop(key, None)  # a new user's defaults, relative to the empty folder
    return environment


def run_quickstart(workdir: Path) -> tuple[int, list[tuple[float, str]], float]:
    """(exit code, [(seconds since start, line)], total seconds) of one quick start in `workdir`."""
    lines: list[tuple[float, str]] = []
    start = time.perf_counter()
    with subprocess.Popen(
        [sys.executable, "-m", "bot.quickstart"],
        cwd=workdir,
        env={**child_environment(), "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
    ) as child:
        assert child.stdout is not None
        for line in child.stdout:
            lines.append((time.perf_counter() - start, line.rstrip("\n")))
            print(line, end="", flush=True)
        code = child.wait()
    return code, lines, time.perf_counter() - start


def steps(lines: list[tuple[float, str]], total: float) -> list[dict[str, Any]]:
    """Each step's start and duration, from the first line that opens it to the next step's (or the end)."""
    starts: list[tuple[str, float]] = []
    for step, marker in STEP_MARKERS:
        at = next((seconds for seconds, line in lines if marker in line), None)
        if at is not None:
            starts.append((step, at))
    result = []
    for index, (step, at) in enumerate(starts):
        end = starts[index + 1][1] if index + 1 < len(starts) else total
        result.append({"step": step, "starts_at_s": round(at, 1), "seconds": round(end - at, 1)})
    return result


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "data" / "bench-quickstart")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    load_at_start = [round(value, 2) for value in os.getloadavg()]
    code, lines, total = run_quickstart(args.workdir)
    if code != 0:
        raise SystemExit(f"the quick start exited with {code}; its output is above")
    samples = [line for _, line in lines if SAMPLE_LINE.match(line)]
    result = {
        "command": "python -m bench.bench_quickstart",
        "what": "python -m bot.quickstart in an empty folder: a fresh SQLite database, both first models trained "
        "and imported (int8 fast path), the sample predictions; no Telegram token, stdin not a terminal",
        "machine": machine_record(load_at_start),
        "total_seconds": round(total, 1),
        "goal_seconds": GOAL_SECONDS,
        "goal_met": total <= GOAL_SECONDS,
        "steps": steps(lines, total),
        "hub_fallback_lines": [line for _, line in lines if "is not reachable" in line],
        "sample_predictions": samples,
    }
    path = write_result(NAME, result, args.output)
    logger.info("quick start: %.0f s (goal %d s); wrote %s", total, GOAL_SECONDS, path)


if __name__ == "__main__":
    main()
