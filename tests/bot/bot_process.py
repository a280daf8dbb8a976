"""A `moderator ...` process (`python -m bot.cli ARGS`) with its output collected: started, signalled and waited
for with bounds. Used by the process tests and by bench/bench_cluster.py."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from bot import storage

START_TIMEOUT_S = 240.0  # importing torch and loading the model, on 2 shared cores


class BotProcess:
    """`python -m bot.cli ARGS` with its stdout and stderr collected."""

    def __init__(self, env: dict[str, str], cwd: Path, *args: str) -> None:
        self.env, self.cwd, self.args = env, cwd, args
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.started_at = 0.0

    async def start(self, stdin: bytes | None = None) -> BotProcess:
        self.started_at = time.monotonic()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            *self.args,
            cwd=self.cwd,
            env=self.env,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        if stdin is not None:
            self.process.stdin.write(stdin)
            self.process.stdin.close()
        self._readers = [
            asyncio.create_task(self._read(self.process.stdout, self.stdout)),
            asyncio.create_task(self._read(self.process.stderr, self.stderr)),
        ]
        return self

    @staticmethod
    async def _read(stream: asyncio.StreamReader, lines: list[str]) -> None:
        async for line in stream:
            lines.append(line.decode(errors="replace"))

    async def wait(self, timeout: float) -> int:
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise AssertionError(f"the bot did not exit within {timeout} s:\n{self.output[-3000:]}") from None
        await asyncio.gather(*self._readers)
        return code

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    @property
    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)

    async def ensure_stopped(self) -> None:
        if getattr(self, "process", None) is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def register_active_model(database_url: str, model_dir: Path) -> None:
    """Migrate the database and make `model_dir` its active sentiment version, as `moderator model import` would."""
    await asyncio.to_thread(storage.upgrade_database, database_url)
    engine = storage.create_engine(database_url)
    try:
        async with storage.make_session_factory(engine).begin() as session:
            version = await storage.register_model_version(
                session, path=str(model_dir), base_checkpoint="test", metrics={"accuracy": 0.5}
            )
            await storage.activate_model_version(session, version_id=version.id)
    finally:
        await engine.dispose()


def bot_environment(database_url: str, api: Any, workdir: Path, **settings: str) -> dict[str, str]:
    """The environment of a `moderator run` process against the Bot API stand-in `api` (cwd: `workdir`, so no
    .env is read): this process's environment without its bot settings, then these, then `settings`."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TELEGRAM_", "WEBHOOK_", "DATABASE_", "SHUTDOWN_", "INBOX_", "OUTBOX_"))
    }
    environment.update(
        {
            "DATABASE_URL": database_url,
            "MODEL_DIR": str(workdir / "models"),
            "RUNS_DIR": str(workdir / "runs"),
            "TELEGRAM_BOT_TOKEN": api.token,
            "TELEGRAM_BASE_URL": api.base_url,
            "TELEGRAM_BASE_FILE_URL": api.base_url.replace("/bot", "/file/bot"),
            "TELEGRAM_TIMEOUT_SECONDS": "5",
            "OUTBOX_FLUSH_INTERVAL_SECONDS": "0.5",
            "RETRAIN_CRON": "",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
            **settings,
        }
    )
    return environment
