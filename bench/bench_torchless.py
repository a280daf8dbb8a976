"""A bot without torch: does a process that serves versions on their ONNX fast path run with torch not installed,
and how much smaller is its environment?

1. A second virtual environment, `pip install -e .` with no extra: the serving dependencies only (pyproject.toml);
   the `train` extra (torch, accelerate, onnx, onnxscript, matplotlib) stays out. `import torch` must fail there.
2. Both environments' sizes on disk (site-packages), the number of distributions in each, and the largest of those
   only the full one has (it is `make`'s environment: the train and dev extras).
3. The first sentiment and toxicity models `make run` trains are imported with the full environment (`moderator
   model import`, which builds their static int8 fast path) into a SQLite database.
4. `moderator run` from each environment, in turn, against the Bot API stand-in on 127.0.0.1: a burst of reviews,
   every one answered; the replies of the two processes compared text for text (same verdicts, same rounded
   probabilities), and each process's resident memory after the burst.

    python -m bench.bench_torchless            # ~4 min on 2 cores, the first time (pip downloads); models from
                                               # data/bench-two-tasks (trained when missing, as bench_two_tasks)

Writes bench/results/torchless.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, base_parser, environment, write_result

NAME = "torchless"
TOKEN = "123456789:torchless-token-0123456789abcdefgh"
REVIEWS = 100
logger = logging.getLogger(__name__)

sys.path.insert(0, str(REPO_ROOT / "tests" / "bot"))


def size_mb(path: Path) -> float:
    total = sum(item.stat().st_size for item in path.rglob("*") if item.is_file() and not item.is_symlink())
    return round(total / 2**20, 1)


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def distributions(venv: Path) -> dict[str, float]:
    """Each distribution installed in `venv`, with the MB its files take."""
    from importlib.metadata import distributions as installed

    sizes: dict[str, float] = {}
    for dist in installed(path=[str(site_packages(venv))]):
        total = 0
        for file in dist.files or ():
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                total += path.stat().st_size
        sizes[dist.metadata["Name"].lower()] = round(total / 2**20, 1)
    return sizes


def build_venv(venv: Path) -> None:
    """The serving environment: the project without extras (editable, so it runs this checkout's code)."""
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", str(REPO_ROOT)], check=True)


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


async def serve_burst(python: Path, url: str, workdir: Path, label: str) -> dict[str, Any]:
    """`moderator run` from `python`'s environment (polling the stand-in), REVIEWS reviews, all answered."""
    from bot_process import START_TIMEOUT_S
    from fake_telegram import FakeBotApi

    api = FakeBotApi(token=TOKEN)
    await api.start()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TELEGRAM_", "WEBHOOK_", "DATABASE_", "VIRTUAL_ENV"))
    }
    env.update(
        {
            "DATABASE_URL": url,
            "MODEL_DIR": str(workdir / "models"),
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_BASE_URL": api.base_url,
            "TELEGRAM_BASE_FILE_URL": api.base_url.replace("/bot", "/file/bot"),
            "TELEGRAM_POLL_TIMEOUT_SECONDS": "1",
            "TRAINING_EXECUTOR": "local",
            "RETRAIN_CRON": "",
            "FEEDBACK_RATE_LIMIT_PER_HOUR": "1000000",
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    log = (workdir / f"{label}.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        str(python), "-m", "bot.cli", "run", cwd=workdir, env=env, stdout=log, stderr=log
    )
    try:
        await api.wait_until(lambda: bool(api.calls("getUpdates")), timeout=START_TIMEOUT_S)
        messages = [
            api.push_message(
                f"리뷰 {i}: {'정말 재밌고 감동적' if i % 2 else '지루하고 시간 아까운'} 영화",
                chat_id=9000 + i,
            )
            for i in range(REVIEWS)
        ]
        await api.wait_until(lambda: all(api.replies_to(m) for m in messages), timeout=300)
        memory = resident_mb(process.pid)
        replies = [api.replies_to(m)[0]["text"] for m in messages]
    finally:
        process.terminate()
        await process.wait()
        log.close()
        await api.stop()
    output = (workdir / f"{label}.log").read_text(errors="replace")
    return {
        "answered": len(replies),
        "resident_mb_after_burst": memory,
        "torch_warning_logged": "torch is not installed" in output,
        "replies": replies,
    }


def prepare(args) -> tuple[Path, str, bool]:
    """The lean environment, and a SQLite database with both first models imported (fast paths built with torch).
    Returns (the lean python, the database URL, whether torch imports in the lean environment)."""
    from bench.bench_two_tasks import first_model
    from bot import storage

    run_dir = args.workdir / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    venv = args.workdir / "venv"
    build_venv(venv)
    lean_python = venv / "bin" / "python"
    probe = subprocess.run([str(lean_python), "-c", "import torch"], capture_output=True, check=False)
    url = f"sqlite+aiosqlite:///{run_dir / 'moderator.db'}"
    storage.upgrade_database(url)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "MODEL_DIR": str(run_dir / "models"),
        "KORPORA_ROOT": str((args.shared_dir / "korpora").resolve()),  # the fast path's calibration texts
        "HF_HUB_OFFLINE": "1",
    }
    for task in ("sentiment", "toxicity"):  # with torch: exports and quantizes the fast path
        model = first_model(task, args.shared_dir, args.models_dir, args.seed)
        command = [sys.executable, "-m", "bot.cli", "model", "import", str(model)]
        imported = subprocess.run(command, env=env, cwd=run_dir, check=True, capture_output=True, text=True)
        if "could not build the fast path" in imported.stderr:
            raise SystemExit(f"the fast path of {model} was not built:\n{imported.stderr[-2000:]}")
    return lean_python, url, probe.returncode == 0


def database_copy(url: str, label: str) -> str:
    """A copy of the prepared database for one bot (each starts from the same state: the updates of one are new to
    the other), made with SQLite's backup API."""
    source = Path(url.removeprefix("sqlite+aiosqlite:///"))
    target = source.with_name(f"{label}.db")
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)
    return f"sqlite+aiosqlite:///{target}"


async def measure(args, lean_python: Path, url: str) -> dict[str, Any]:
    run_dir = args.workdir / "run"
    with_torch = await serve_burst(
        Path(sys.executable), database_copy(url, "with-torch"), run_dir, "with-torch"
    )
    without_torch = await serve_burst(
        lean_python, database_copy(url, "without-torch"), run_dir, "without-torch"
    )
    same = sum(a == b for a, b in zip(with_torch.pop("replies"), without_torch.pop("replies"), strict=True))
    return {"bot_with_torch": with_torch, "bot_without_torch": without_torch, "identical_replies": same}


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__ or NAME)
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "data" / "bench-torchless")
    parser.add_argument(
        "--models-dir", type=Path, default=REPO_ROOT / "data" / "bench-two-tasks", help="the first models"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import torch

    lean_python, url, torch_importable = prepare(args)
    result = asyncio.run(measure(args, lean_python, url))
    full_venv, lean_venv = Path(sys.prefix), args.workdir / "venv"
    full_mb, lean_mb = size_mb(site_packages(full_venv)), size_mb(site_packages(lean_venv))
    full, lean = distributions(full_venv), distributions(lean_venv)
    result = {
        "torch_importable_in_lean_environment": torch_importable,
        "site_packages_mb": {"with_torch": full_mb, "without_torch": lean_mb},
        "lean_over_full": round(lean_mb / full_mb, 3),
        "distributions": {"with_torch": len(full), "without_torch": len(lean)},
        # what only the full environment (`make`'s: the train and dev extras) has, largest first
        "only_with_torch_mb": dict(
            sorted(((name, mb) for name, mb in full.items() if name not in lean), key=lambda item: -item[1])[
                :12
            ]
        ),
        "reviews": REVIEWS,
        **result,
    }
    result["environment"] = environment(torch.device("cpu"))
    path = write_result(NAME, result, args.output)
    sizes = result["site_packages_mb"]
    print(
        f"torch importable without the train extra: {result['torch_importable_in_lean_environment']}; "
        f"site-packages {sizes['without_torch']} MB against {sizes['with_torch']} MB (x{result['lean_over_full']}); "
        f"answered {result['bot_without_torch']['answered']}/{REVIEWS} without torch, "
        f"{result['identical_replies']} replies identical to the bot with torch; resident memory "
        f"{result['bot_without_torch']['resident_mb_after_burst']} MB against "
        f"{result['bot_with_torch']['resident_mb_after_burst']} MB; wrote {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
