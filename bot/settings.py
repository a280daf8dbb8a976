"""The one settings object, read from the environment and `.env` (see .env.example)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from classifier.tasks import TOXICITY
from trainer.config import DEFAULT_BASES, BestMetric  # no heavy imports


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Telegram
    telegram_bot_token: SecretStr | None = None
    telegram_base_url: str = "https://api.telegram.org/bot"
    telegram_base_file_url: str = "https://api.telegram.org/file/bot"
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    # Users (besides admins) who may label items in the /review queue; their labels count as trusted.
    reviewer_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    webhook_url: str | None = None  # set to switch from long polling to a webhook
    webhook_secret: SecretStr | None = None
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = 8443
    # several bot processes on one host share the port (SO_REUSEPORT: the kernel spreads the connections)
    webhook_reuse_port: bool = False
    telegram_timeout_seconds: float = Field(10.0, gt=0)  # each Bot API request (connect/read/write/pool)
    telegram_send_attempts: int = Field(4, ge=1)  # tries per request on 429, 5xx and timeouts

    # Storage
    database_url: str = "sqlite+aiosqlite:///data/moderator.db"
    max_text_length: int = 4096  # Telegram's own message limit
    retention_days: int | None = None  # purge raw text older than this; None keeps it

    # Models and data
    model_dir: Path = Path("models")
    # Unset: MODEL_DIR is a shared volume. Set (an fsspec URL such as s3://bucket/models): versions are published
    # there and each host copies what it needs into its own MODEL_DIR (bot/model_store.py).
    model_store_url: str | None = None
    base_model: str = DEFAULT_BASES["sentiment"]
    # The toxicity task's base: an encoder pretrained on Korean online comments.
    toxicity_base_model: str = DEFAULT_BASES["toxicity"]
    korpora_root: Path | None = None  # None: Korpora's default (~/Korpora)
    base_data: Path | None = None  # CSV/TSV used instead of NSMC for retraining
    base_eval_data: Path | None = (
        None  # fixed evaluation CSV/TSV for retraining (default: held out of base_data)
    )
    # The CPU fast path, the same one `moderator predict --quantize` selects: static int8 in ONNX Runtime, built once
    # per version when it is imported or promoted (without it a version is served in torch fp32). Deterministic (a
    # text's probabilities never depend on its batchmates), no accuracy lost on 10,000 NSMC test reviews, about 1.7x
    # the batch throughput of torch fp32 on one thread; 3-4% of verdicts differ from fp32 ones, and the promotion
    # gate scores candidates this way too (docs/benchmarks.md). Env FAST_INFERENCE, or its old name QUANTIZE.
    fast_inference: bool = Field(True, validation_alias=AliasChoices("fast_inference", "quantize"))

    # Serving
    batch_window_ms: float = 5.0
    max_batch_size: int = 64

    # Retraining
    retrain_cron: str | None = "0 4 * * *"  # crontab; empty disables
    retrain_interval_seconds: float | None = None  # overrides the cron when set
    retrain_min_new_feedback: int = Field(20, ge=0)
    retrain_from: Literal["active", "base"] = "active"
    # A third epoch gave the learning-loop benchmark's best-balanced candidate (docs/benchmarks.md, its steps).
    retrain_epochs: float = 3.0
    # The epoch a run keeps: the lowest held-out loss ("loss"), or the highest held-out accuracy ("accuracy"). By
    # accuracy, runs kept their third epoch and fixed no more of the corrected pattern over three runs, with more
    # of the 부정 reviews that name 1점 lost (docs/benchmarks.md, the learning loop's steps).
    retrain_best_metric: BestMetric = "loss"
    # A candidate keeps this share of its fine-tuned weights and the rest of its starting model's (WiSE-FT,
    # trainer/weight_mix.py): on the learning loop's runs, part of the way back gave back more of what the
    # corrections broke (the 부정 reviews naming 1점) than it lost of what they fixed (docs/benchmarks.md). 1: off.
    retrain_fine_tuned_share: float = Field(0.7, gt=0.0, le=1.0)
    retrain_train_size: int = 4000
    # Held out of the run's base rows: the trainer fits the candidate's temperature and confidence map on them.
    # Two maps of one model fitted on different draws of 2,000 differ in ECE by more than the gate's 1-point
    # calibration tolerance 15 % of the time, of 5,000 2.5 % (bench/results/calibration_fit_size.json), so at 2,000
    # the gate rejected a better candidate for an unlucky draw (docs/benchmarks.md, scenario (a)).
    retrain_eval_size: int = 5000
    # Human labels are oversampled: this many rows each (on average, with CORRECTION_BALANCE=classes). 8 taught
    # the benchmark's shortcut again ("1점 -> 긍정": the 부정 pattern error +17 points), and with 300 labels 4
    # outweighed their neighbours (at most half of RETRAIN_TRAIN_SIZE) and taught it too (docs/benchmarks.md).
    correction_weight: int = Field(2, ge=1)
    # "prior": every label gets CORRECTION_WEIGHT rows, and the trainer draws the run's random base rows so the
    # whole training set keeps the base data's class mix: what people corrected is learned, the prior is not
    # shifted. "classes": the labels' rows split evenly between the classes (one class's rows at most 4x the
    # average); a few confirmations of one class then outweigh many corrections of the other (docs/benchmarks.md).
    # "none": CORRECTION_WEIGHT rows per label and a plain sample of base rows (an ablation).
    correction_balance: Literal["prior", "classes", "none"] = "prior"
    correction_holdout_fraction: float = Field(0.2, ge=0.0, lt=1.0)  # human labels held out for the gate
    # A correction also brings this many of the base data's most similar labelled rows (trainer/neighbours.py),
    # inside RETRAIN_TRAIN_SIZE: the run learns the mistake's neighbourhood, with the corpus's own labels. Half
    # are rows the starting model gets wrong, half rows it gets right, so the words they share are not the answer.
    correction_neighbours: int = Field(20, ge=0)
    # The gate: accuracy points a candidate may lose against the active and the reference version on the
    # fixed evaluation set before the loss counts (it must also be significant, see docs/learning-loop.md).
    promotion_tolerance: float = Field(0.5, ge=0.0)
    # ... and on the set's examples of one class (a significant loss beyond this rejects): a run must not trade
    # one class's examples for what it learned.
    promotion_class_tolerance: float = Field(10.0, ge=0.0)
    # Fixed base evaluation examples (never trained on): 20,000 paired reviews put the 95% interval of an accuracy
    # difference at about +-0.5 points, so the tolerance is resolved (5,000 gave +-1 point).
    gate_eval_size: int = Field(20000, ge=100)
    gate_confidence: float = Field(0.95, gt=0.5, lt=1.0)  # of the gate's intervals and tests
    # Points of expected calibration error a candidate may lose against the active model (a significant loss
    # beyond this rejects it): moderation thresholds read probabilities.
    calibration_tolerance: float = Field(1.0, ge=0.0)
    runs_dir: Path = Path("runs")
    run_heartbeat_seconds: float = Field(5.0, gt=0)  # a running run's owner writes a heartbeat this often
    run_stale_seconds: float = Field(90.0, gt=0)  # ... and a run without one for this long is abandoned
    # Where runs train (docs/cluster.md). "local": a child process of the bot, as on one machine. "worker": a job on
    # PostgreSQL's `training` queue, taken by `moderator worker` on any host (the GPU host); the bot only starts
    # and follows runs. Needs PostgreSQL; a run no worker takes within RUN_STALE_SECONDS fails.
    training_executor: Literal["local", "worker"] = "local"
    # How often the bot sweeps abandoned runs and looks for a version another process activated (a worker's
    # promotion, `moderator model activate`) to swap in: the delay before every bot serves a new version.
    model_sync_seconds: float = Field(30.0, gt=0)
    keep_rejected_versions: int = Field(3, ge=0)  # rejected candidates whose files are kept
    # Each run draws its base rows with a fresh seed (random; recorded with the run). Set it to make runs
    # reproducible: run N then uses RETRAIN_SEED + N, still a new sample every run.
    retrain_seed: int | None = None
    retrain_batch_size: int = Field(16, ge=1)
    retrain_learning_rate: float | None = None  # None: the trainer's default for the base
    retrain_max_length: int | None = None  # None: the model's maximum

    # Feedback guard
    feedback_rate_limit_per_hour: int = Field(30, ge=1)
    # Whose labels count (docs/learning-loop.md): admins' and review-queue labels always; another user's once
    # reviewers' blind spot checks of their labels earned them trust: at least SPOT_CHECKS_REQUIRED checks and an
    # accuracy of LABELLER_MIN_ACCURACY ((agreed + 1) / (checks + 2)). Until then their labels wait for a reviewer.
    trust_feedback: bool = False  # count every label without checks (a private bot whose users you trust)
    spot_checks_required: int = Field(3, ge=1)
    labeller_min_accuracy: float = Field(0.8, gt=0.5, lt=1.0)
    spot_check_rate: float = Field(0.1, ge=0.0, le=1.0)  # share of trusted labellers' labels checked still

    # Review queue
    review_window_days: float = Field(14.0, gt=0)  # /review draws from verdicts this recent

    # Delivery: the inbox/outbox runner of `moderator run` (bot/telegram/runner.py)
    shutdown_timeout_seconds: float = Field(8.0, gt=0)  # stop to exit; unsent replies wait in the outbox
    telegram_auth_retry_seconds: float = Field(60.0, ge=0)  # token refused (401/404): retry, then exit 1
    telegram_poll_timeout_seconds: int = Field(10, ge=0)  # getUpdates long-polling timeout
    inbox_max_attempts: int = Field(3, ge=1)  # processing never finished: skip the update
    inbox_retention_hours: float = Field(24.0, gt=0)  # processed updates and sent replies are kept this long
    outbox_flush_interval_seconds: float = Field(5.0, gt=0)  # how often unsent replies are retried
    outbox_max_attempts: int = Field(20, ge=1)  # sends of one reply before it is given up

    # The operator web app (bot/web, docs/web.md): off unless WEB_PORT is set. `/web` in a private chat sends an
    # admin or reviewer a one-time login link under WEB_BASE_URL (default http://127.0.0.1:WEB_PORT).
    web_port: int | None = Field(None, ge=0, le=65535)
    web_host: str = "127.0.0.1"
    web_base_url: str | None = None  # the public address people open (behind your TLS proxy)
    # Signs the session cookie; unset, a random one per process (sessions then end at every restart).
    web_session_secret: SecretStr | None = None
    # A bcrypt hash: HTTP basic auth as user "admin" (headless set-ups, the models page only).
    web_basic_auth_hash: SecretStr | None = None

    @field_validator("admin_ids", "reviewer_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(int(part) for part in value.replace(";", ",").split(",") if part.strip())
        if isinstance(value, int):
            return frozenset({value})
        return value

    @field_validator("retrain_cron", mode="before")
    @classmethod
    def _empty_cron_disables(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("web_port", "web_base_url", "web_session_secret", "web_basic_auth_hash", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def quantize(self) -> bool:
        """The old name of `fast_inference` (QUANTIZE still sets it)."""
        return self.fast_inference

    def base_model_of(self, task: str) -> str:
        """The checkpoint a task's models start from (BASE_MODEL, or TOXICITY_BASE_MODEL for toxicity)."""
        return self.toxicity_base_model if task == TOXICITY else self.base_model

    @property
    def web_public_url(self) -> str:
        """Where people open the web app (login links start with it), without a trailing slash."""
        if self.web_base_url:
            return self.web_base_url.rstrip("/")
        return f"http://127.0.0.1:{self.web_port if self.web_port is not None else 8080}"

    def is_admin(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.admin_ids

    def is_reviewer(self, user_id: int | None) -> bool:
        return self.is_admin(user_id) or (user_id is not None and user_id in self.reviewer_ids)


@lru_cache
def get_settings() -> Settings:
    return Settings()
