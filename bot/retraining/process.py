"""Run the trainer as a child process without blocking the event loop.

The child's stdout carries the trainer's `--progress-json` lines; everything it prints (stdout and
stderr, including tqdm bars) is appended to a log file so a failed run can show its last lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[dict[str, Any]], Awaitable[None]]

# How long a terminated trainer gets to exit before it is killed.
TERMINATE_GRACE_SECONDS = 10.0
# How many log lines a failure message carries.
ERROR_TAIL_LINES = 15
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class TrainingProcessError(Exception):
    """The trainer process failed; the message says how and ends with the last lines of its log."""

    def __init__(self, message: str, *, returncode: int | None, log_tail: str) -> None:
        super().__init__(f"{message}\n{log_tail}".strip())
        self.returncode = returncode
        self.log_tail = log_tail


# A tqdm bar ("Map: 40%|████ | 4/10 [00:01<00:02, 3.1it/s]") or a --progress-json line: progress, not a cause.
_PROGRESS_LINE = re.compile(r"(\d+%\|)|(\d+(\.\d+)?\s*(it|s)/(s|it)\])|(^\{\"event\": )")


def log_tail(log_path: Path, *, lines: int = ERROR_TAIL_LINES, max_chars: int = 3000) -> str:
    """The last lines of a log that say something: tqdm redraws and progress lines are left out."""
    try:
        raw = log_path.read_bytes()[-64_000:].decode("utf-8", errors="replace")
    except OSError:
        return ""
    cleaned = [line.rsplit("\r", 1)[-1].rstrip() for line in raw.splitlines()]
    tail = "\n".join(line for line in cleaned if line and not _PROGRESS_LINE.search(line))
    tail = "\n".join(tail.splitlines()[-lines:])
    return tail[-max_chars:]


def describe_returncode(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = (
            " (by another process, or by the kernel's out-of-memory killer: `dmesg` tells which)"
            if -returncode == signal.SIGKILL
            else ""
        )
        return f"trainer process was killed by {name}{hint}"
    return f"trainer process exited with code {returncode}"


def default_threads() -> int:
    """The thread count a trainer child gets by default: this process's own torch threads (OMP_NUM_THREADS when
    it is set, else what torch chose), so the child trains as the caller would in-process."""
    import torch

    return torch.get_num_threads()


def thread_environment(threads: int) -> dict[str, str]:
    """Environment variables that pin a child's math libraries (and, through the trainer, torch) to `threads`."""
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    return {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def trainer_command(trainer_args: Sequence[str]) -> list[str]:
    """The command line that runs the trainer module with the bot's own interpreter."""
    return [sys.executable, "-m", "trainer", *trainer_args]


async def run_trainer_process(
    command: Sequence[str],
    *,
    log_path: Path,
    on_event: ProgressCallback | None = None,
    env: dict[str, str] | None = None,
    threads: int | None = None,
) -> dict[str, Any] | None:
    """Run `command`, append its output to `log_path` and pass each JSON event line to `on_event`.

    The child runs on `threads` CPU threads (default: `default_threads()`, this process's torch threads): it gets
    OMP_NUM_THREADS/MKL_NUM_THREADS, never the parent's unset defaults, because a CPU model trained on another
    number of threads is a different model. Entries of `env` override everything else.

    Returns the trainer's final `{"event": "done", ...}` event (or None if it printed none).
    Raises TrainingProcessError when the process exits non-zero or is killed by a signal.
    If the calling task is cancelled (bot shutdown), the child is terminated (killed after a grace
    period) before the cancellation propagates.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    threads = default_threads() if threads is None else threads
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **thread_environment(threads), **(env or {})}
    done_event: dict[str, Any] | None = None
    with open(log_path, "ab", buffering=0) as log_file:  # noqa: ASYNC230 - a local file, opened once
        pinned = " ".join(f"{name}={child_env[name]}" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"))
        log_file.write(f"$ {pinned} {' '.join(command)}\n".encode())
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file,  # straight to the log: tqdm redraws never pass through Python
            env=child_env,
            start_new_session=True,  # its own process group: a terminal Ctrl-C reaches us, not it
            preexec_fn=_die_with_parent,
            limit=1 << 20,
        )
        logger.info(
            "trainer started (pid %s, %s threads), log %s",
            process.pid,
            child_env["OMP_NUM_THREADS"],
            log_path,
        )
        try:
            assert process.stdout is not None
            while line := await process.stdout.readline():
                log_file.write(line)
                event = _parse_event(line)
                if event is None:
                    continue
                if event.get("event") == "done":
                    done_event = event
                if on_event is not None:
                    try:
                        await on_event(event)
                    except Exception:  # a reporting hiccup must not kill the training
                        logger.exception("progress callback failed")
            returncode = await process.wait()
        except BaseException:
            await _stop_process(process)
            raise
    if returncode != 0:
        raise TrainingProcessError(
            describe_returncode(returncode), returncode=returncode, log_tail=log_tail(log_path)
        )
    return done_event


def _die_with_parent() -> None:
    """In the child, before exec: be killed when the process that started it dies (Linux), so a SIGKILLed bot or
    `moderator retrain` never leaves a trainer running on its own (exactly one trainer runs at a time)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the run's heartbeat still marks it stale
        pass


def _parse_event(line: bytes) -> dict[str, Any] | None:
    text = line.strip()
    if not text.startswith(b"{"):
        return None
    try:
        event = json.loads(text)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


async def _stop_process(process: asyncio.subprocess.Process) -> None:
    """Terminate the child's process group, then kill it if it does not exit in time."""
    if process.returncode is not None:
        return
    logger.warning("stopping trainer process %s", process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(process.wait()), TERMINATE_GRACE_SECONDS)
    except (TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(asyncio.CancelledError):
            await process.wait()
