"""`make run`: the main job on a fresh machine.

Migrates the database, trains and imports a first model of each task (sentiment, toxicity) when none is active,
predicts a few sample reviews in the tutorial's style, then starts the bot (or the terminal chat when there is no
Telegram token).
Every step goes through the `moderator` commands, so this file only decides what to run.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path

from bot.cli import main as moderator
from bot.settings import get_settings

logger = logging.getLogger("quickstart")

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_ENCODER = SHARED_DIR / "models" / "multilingual-e5-small-ko"
SHARED_KORPORA = SHARED_DIR / "korpora"
FIRST_MODEL_DIR = Path("models") / "first"
FIRST_TOXICITY_MODEL_DIR = Path("models") / "first-toxicity"
# The first models' recipes: small enough to train in minutes on 2 CPU cores. The benchmarks train the same
# recipes (bench/), so their figures describe the models `make run` serves. The held-out reviews fit the
# calibration (a temperature, then the confidence map, which wants a few thousand verdicts to be steady).
FIRST_MODEL_RECIPE = {"train_size": 2000, "eval_size": 2000, "epochs": 1, "max_length": 128}
# The toxicity head (and e5's pooler, which the checkpoint lacks) start from random weights: they learn at a
# larger rate than the pretrained encoder (docs/benchmarks.md, Toxicity).
FIRST_TOXICITY_RECIPE = {
    "train_size": 3000,
    "eval_size": 1000,
    "epochs": 1,
    "max_length": 64,
    "head_learning_rate": 1e-3,
}
SAMPLE_REVIEWS = (
    "배우들 연기가 정말 좋았고 마지막 장면은 잊을 수가 없네요",
    "돈이 아깝다. 두 시간 내내 지루했음",
    "그냥 볼만했어요",
    "감독 이 새끼 죽여버리고 싶네",  # the toxicity model's case: harsh words, not only a bad review
)


def hub_answers(timeout_seconds: float = 3.0) -> bool:
    """Whether the model hub's host (HF_ENDPOINT) takes a TCP connection. Offline, huggingface_hub retries each
    file for about 23 s before it gives up; this probe decides in at most `timeout_seconds`."""
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    endpoint = urlsplit(constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout_seconds):
            return True
    except OSError:  # no name resolution, refused, unreachable or timed out
        return False


def _checkpoint_loads(name: str) -> bool:
    from transformers import AutoConfig

    try:
        # Without the hub, a checkpoint already in the local cache still loads.
        AutoConfig.from_pretrained(name, local_files_only=not hub_answers())
    except OSError:
        return False
    return True


def choose_base(configured: str) -> str:
    """The configured checkpoint where it loads; offline, the shared pretrained encoder, else a scratch BERT."""
    if Path(configured).exists() or _checkpoint_loads(configured):
        return configured
    if SHARED_ENCODER.exists():
        print(f"{configured} is not reachable (no model hub here); fine-tuning {SHARED_ENCODER} instead.")
        return str(SHARED_ENCODER)
    print(
        f"{configured} is not reachable and {SHARED_ENCODER} is absent; training a small BERT from scratch."
    )
    return "scratch"


def train_first_model(settings, task: str = "sentiment") -> int:
    """Train (unless trained already) and import the task's first model."""
    sentiment = task == "sentiment"
    base = choose_base(settings.base_model_of(task))
    korpora_root = settings.korpora_root or (SHARED_KORPORA if SHARED_KORPORA.exists() else None)
    output = FIRST_MODEL_DIR if sentiment else FIRST_TOXICITY_MODEL_DIR
    if not (output / "config.json").exists():
        args = ["train", "--task", task, "--base", base, "--output", str(output)]
        for name, value in (FIRST_MODEL_RECIPE if sentiment else FIRST_TOXICITY_RECIPE).items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        if korpora_root is not None:
            args += ["--korpora-root", str(korpora_root)]
        print(f"Training a first {task} model:", "moderator", " ".join(args))
        if code := moderator(args):
            return code
    return moderator(["model", "import", str(output)])


def active_model_path(settings, task: str = "sentiment") -> str | None:
    """Migrate the database, then return the task's active model version's directory (None when there is
    none)."""
    import asyncio

    from bot import storage

    async def path() -> str | None:
        await asyncio.to_thread(storage.upgrade_database, settings.database_url)
        engine = storage.create_engine(settings.database_url)
        try:
            async with storage.make_session_factory(engine).begin() as session:
                active = await storage.get_active_model_version(session, task=storage.Task(task))
                return None if active is None else active.path
        finally:
            await engine.dispose()

    return asyncio.run(path())


def main() -> int:
    if not os.environ.get("KORPORA_ROOT") and SHARED_KORPORA.exists():
        # Retraining draws base rows from NSMC, and the fast path calibrates on it: point the bot at the shared copy.
        os.environ["KORPORA_ROOT"] = str(SHARED_KORPORA)
    settings = get_settings()
    fast = ["--quantize"] if settings.fast_inference else []
    models_only = "--models-only" in sys.argv[1:]  # deploy/cluster.sh: the models, then its own processes
    for task in ("sentiment", "toxicity"):
        model_path = active_model_path(settings, task)
        if model_path is None:
            if code := train_first_model(settings, task):
                return code
            model_path = active_model_path(settings, task)
        if models_only:
            continue
        print(f"\nSample predictions with the active {task} model, as the bot serves it:")
        if code := moderator(["predict", "--model", model_path, *fast, *SAMPLE_REVIEWS]):
            return code
    if models_only:
        return 0
    if settings.web_port is not None:
        print(
            f"\nOperator web app: {settings.web_public_url} (log in with /web in a private chat with the bot)"
        )
    else:
        print("\nOperator web app: off; set WEB_PORT (e.g. 8080) and `moderator run` serves it (docs/web.md)")
    token = settings.telegram_bot_token
    if token is not None and token.get_secret_value().strip():
        return moderator(["run"])
    print("\nTELEGRAM_BOT_TOKEN is not set (see .env.example), so the bot is not connected to Telegram.")
    if sys.stdin.isatty():
        print("Starting the terminal chat instead (the same handlers; Ctrl-D quits).\n")
        return moderator(["chat"])
    print("Talk to the moderator in the terminal with: .venv/bin/moderator chat")
    return 0


if __name__ == "__main__":
    sys.exit(main())
