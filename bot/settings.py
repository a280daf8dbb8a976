"""The one settings object, read from the environment and `.env` (see .env.example)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Telegram
    telegram_bot_token: SecretStr | None = None
    telegram_base_url: str = "https://api.telegram.org/bot"
    telegram_base_file_url: str = "https://api.telegram.org/file/bot"
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    webhook_url: str | None = None  # set to switch from long polling to a webhook
    webhook_secret: SecretStr | None = None
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = 8443
    telegram_timeout_seconds: float = Field(10.0, gt=0)  # each Bot API request (connect/read/write/pool)
    telegram_send_attempts: int = Field(4, ge=1)  # tries per request on 429, 5xx and timeouts

    # Storage
    database_url: str = "sqlite+aiosqlite:///data/moderator.db"
    max_text_length: int = 4096  # Telegram's own message limit
    retention_days: int | None = None  # purge raw text older than this; None keeps it

    # Models and data
    model_dir: Path = Path("models")
    base_model: str = "kykim/bert-kor-base"
    korpora_root: Path | None = None  # None: Korpora's default (~/Korpora)
    base_data: Path | None = None  # CSV/TSV used instead of NSMC for retraining
    base_eval_data: Path | None = (
        None  # fixed evaluation CSV/TSV for retraining (default: held out of base_data)
    )
    quantize: bool = (
        True  # dynamic int8 for CPU serving: ~5x faster, -0.2 accuracy points (docs/benchmarks.md)
    )

    # Serving
    batch_window_ms: float = 5.0
    max_batch_size: int = 64

    # Retraining
    retrain_cron: str | None = "0 4 * * *"  # crontab; empty disables
    retrain_interval_seconds: float | None = None  # overrides the cron when set
    retrain_min_new_feedback: int = Field(20, ge=0)
    retrain_from: Literal["active", "base"] = "active"
    retrain_epochs: float = 2.0
    retrain_train_size: int = 4000
    retrain_eval_size: int = 1000
    correction_weight: int = Field(4, ge=1)  # each correction is oversampled this many times
    correction_holdout_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    promotion_tolerance: float = 0.5  # accuracy points the candidate may lose on the base evaluation set
    runs_dir: Path = Path("runs")
    retrain_batch_size: int = Field(16, ge=1)
    retrain_learning_rate: float | None = None  # None: the trainer's default for the base
    retrain_max_length: int | None = None  # None: the model's maximum

    # Feedback guard
    feedback_rate_limit_per_hour: int = Field(30, ge=1)
    trust_feedback: bool = False  # count a lone non-admin correction without a second opinion

    @field_validator("admin_ids", mode="before")
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

    def is_admin(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.admin_ids


@lru_cache
def get_settings() -> Settings:
    return Settings()
