"""The trainer child process runner with real child processes (small Python scripts standing in for the trainer)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from bot.retraining.process import TrainingProcessError, run_trainer_process


def script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "child.py"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return [sys.executable, str(path)]


async def test_events_are_parsed_and_everything_is_logged(tmp_path):
    command = script(
        tmp_path,
        """
        import json, sys
        print("not json")
        sys.stderr.write("progress bar\\r50%\\r100%\\n")
        for step in (1, 2):
            print(json.dumps({"event": "progress", "step": step, "total_steps": 2, "epoch": step / 2, "loss": 0.5}))
        print("{broken json")
        print(json.dumps({"event": "done", "output": "/models/x"}))
        """,
    )
    events = []

    async def on_event(event):
        events.append(event)

    log_path = tmp_path / "run" / "train.log"
    done = await run_trainer_process(command, log_path=log_path, on_event=on_event)
    assert done == {"event": "done", "output": "/models/x"}
    assert [event["event"] for event in events] == ["progress", "progress", "done"]
    assert events[1]["step"] == 2
    log = log_path.read_text(encoding="utf-8")
    assert "not json" in log and "progress bar" in log and '"event": "done"' in log


async def test_non_zero_exit_raises_with_the_last_log_lines(tmp_path):
    command = script(
        tmp_path,
        """
        import sys
        print("step 1 fine")
        sys.stderr.write("TrainingError: training loss became NaN at step 3\\n")
        sys.exit(2)
        """,
    )
    with pytest.raises(TrainingProcessError) as caught:
        await run_trainer_process(command, log_path=tmp_path / "train.log")
    assert caught.value.returncode == 2
    message = str(caught.value)
    assert "exited with code 2" in message and "loss became NaN" in message


async def test_a_killed_child_is_reported_as_killed(tmp_path):
    command = script(
        tmp_path,
        """
        import os, signal, time
        print("about to be killed", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(30)
        """,
    )
    with pytest.raises(TrainingProcessError) as caught:
        await run_trainer_process(command, log_path=tmp_path / "train.log")
    assert caught.value.returncode == -signal.SIGKILL
    assert "SIGKILL" in str(caught.value) and "about to be killed" in str(caught.value)
    assert "out of memory?" not in str(caught.value)  # no guess: it names the ways a SIGKILL happens


async def test_a_failure_message_carries_the_cause_not_progress_bars(tmp_path):
    command = script(
        tmp_path,
        """
        import json, sys
        for step in range(40):
            sys.stderr.write(f"\\r {step * 2}%|███       | {step}/50 [00:0{step % 10}<00:10,  3.{step}1it/s]")
            print(json.dumps({"event": "progress", "step": step, "total_steps": 50}))
        sys.stderr.write("\\nValueError: the real cause\\n")
        sys.exit(1)
        """,
    )
    with pytest.raises(TrainingProcessError) as caught:
        await run_trainer_process(command, log_path=tmp_path / "train.log")
    message = str(caught.value)
    assert "the real cause" in message
    assert "it/s" not in message and "%|" not in message and '"event"' not in message
    assert len(message.splitlines()) <= 3


async def test_a_failing_progress_callback_does_not_stop_training(tmp_path):
    command = script(
        tmp_path,
        'import json\nprint(json.dumps({"event": "progress", "step": 1}))\nprint(json.dumps({"event": "done", "output": "x"}))\n',
    )

    async def broken(event):
        raise RuntimeError("telegram is down")

    assert (await run_trainer_process(command, log_path=tmp_path / "train.log", on_event=broken))[
        "output"
    ] == "x"


async def test_cancelling_terminates_the_child(tmp_path):
    pid_file = tmp_path / "pid"
    command = script(
        tmp_path,
        f"""
        import os, time
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        print('{{"event": "progress", "step": 1}}', flush=True)
        time.sleep(60)
        """,
    )
    started = asyncio.Event()

    async def on_event(event):
        started.set()

    task = asyncio.create_task(
        run_trainer_process(command, log_path=tmp_path / "train.log", on_event=on_event)
    )
    await asyncio.wait_for(started.wait(), 30)
    pid = int(pid_file.read_text())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(ProcessLookupError):  # terminated and reaped
        os.kill(pid, 0)
