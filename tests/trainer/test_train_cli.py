"""`python -m trainer` / `moderator train`: options, JSON progress lines, exit codes, NaN abort."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

TINY_SCRATCH = [
    "--base",
    "scratch",
    "--scratch-hidden",
    "32",
    "--scratch-layers",
    "1",
    "--max-length",
    "32",
    "--scratch-vocab-size",
    "2000",
]


def run_trainer(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainer", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_register_adds_the_train_subcommand_with_the_same_options(tmp_path: Path):
    from trainer.cli import config_from_args, register, run_train

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "train",
            "--output",
            str(tmp_path / "v"),
            "--base",
            "scratch",
            "--train-size",
            "all",
            "--epochs",
            "1.5",
            "--extra-weight",
            "3",
            "--task",
            "toxicity",
            "--kmhas-rows",
            "250",
        ]
    )
    assert args.func is run_train
    config = config_from_args(args)
    assert (
        config.base == "scratch"
        and config.train_size is None
        and config.epochs == 1.5
        and config.extra_weight == 3
        and config.kmhas_rows == 250
        and config.task == "toxicity"
    )
    assert config.effective_learning_rate == 1e-3


def test_csv_training_with_extra_examples_and_json_progress(write_review_csv, tmp_path: Path):
    data = write_review_csv("reviews.tsv", size=300, label_names={0: "bad", 1: "good"})
    extra = tmp_path / "extra.csv"
    pd.DataFrame(
        {"text": ["배우들 연기가 정말 훌륭했다", "시간 낭비였던 지루한 영화"], "label": ["good", "bad"]}
    ).to_csv(extra, index=False)
    output = tmp_path / "version"
    result = run_trainer(
        "--output",
        output,
        "--data",
        data,
        "--eval-size",
        "60",
        "--train-size",
        "all",
        "--extra",
        extra,
        "--extra-weight",
        "5",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--progress-json",
        *TINY_SCRATCH,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    events = [json.loads(line) for line in result.stdout.splitlines()]  # stdout holds JSON lines only
    kinds = [event["event"] for event in events]
    assert "progress" in kinds and kinds.count("eval") >= 1 and kinds[-1] == "done"
    progress = next(event for event in events if event["event"] == "progress")
    assert {"step", "total_steps", "epoch", "loss"} <= progress.keys() and progress["total_steps"] > 0
    evaluation = next(event for event in events if event["event"] == "eval")
    assert 0 <= evaluation["eval_accuracy"] <= 1 and evaluation["eval_loss"] > 0
    assert events[-1]["output"] == str(output)
    assert "SCRATCH model" in result.stderr

    metrics = json.loads((output / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["labels"] == ["bad", "good"]
    assert metrics["data"]["extra_size"] == 2 and metrics["data"]["extra_weight"] == 5
    assert metrics["data"]["extra_oversampled"] == 10
    usable = int(
        (pd.read_csv(data, sep="\t")["text"].str.strip().str.len() >= 6).sum()
    )  # every row, by default
    assert metrics["data"]["train_size"] == usable - 60 + 10
    assert metrics["data"]["eval_size"] == 60
    from transformers import pipeline

    verdicts = pipeline("text-classification", model=str(output), device=-1)(["정말 재밌어요", "별로였어요"])
    assert {verdict["label"] for verdict in verdicts} <= {"bad", "good"}


def test_errors_exit_2_with_a_message_and_no_traceback(tmp_path: Path):
    result = run_trainer("--output", tmp_path / "v", "--data", tmp_path / "missing.csv", "--base", "scratch")
    assert result.returncode == 2
    assert "error: Data file not found" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "v").exists()


def test_nan_loss_aborts_with_exit_2_and_leaves_no_version(korpora_root: Path, tmp_path: Path):
    output = tmp_path / "version"
    result = run_trainer(
        "--output",
        output,
        "--korpora-root",
        korpora_root,
        "--train-size",
        "200",
        "--eval-size",
        "50",
        "--epochs",
        "2",
        "--learning-rate",
        "1e6",
        *TINY_SCRATCH,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "loss became nan" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # neither the version nor a half-written staging folder


def test_abort_callback_rejects_infinite_losses():
    import math

    import pytest
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from trainer.callbacks import AbortOnNonFiniteLoss
    from trainer.config import TrainingError

    callback, state = AbortOnNonFiniteLoss(), TrainerState(global_step=7, epoch=0.5)
    callback.on_log(
        TrainingArguments("unused", report_to="none"), state, TrainerControl(), logs={"loss": 0.3}
    )
    with pytest.raises(TrainingError, match="eval_loss became inf at step 7"):
        callback.on_log(
            TrainingArguments("unused", report_to="none"),
            state,
            TrainerControl(),
            logs={"eval_loss": math.inf},
        )


def test_the_best_metric_decides_which_epochs_checkpoint_the_trainer_keeps(tmp_path: Path):
    from trainer import TrainConfig
    from trainer.training import _training_arguments

    def kept_by(best_metric: str):
        config = TrainConfig(output=tmp_path / "out", base="scratch", best_metric=best_metric)
        arguments = _training_arguments(config, str(tmp_path / "checkpoints"), steps_per_epoch=10)
        assert (
            arguments.load_best_model_at_end and arguments.eval_strategy == arguments.save_strategy == "epoch"
        )
        return arguments.metric_for_best_model, arguments.greater_is_better

    assert kept_by("loss") == ("eval_loss", False)
    assert kept_by("accuracy") == ("eval_accuracy", True)
