"""`moderator train --task toxicity`: BEEP! train with its three labels, evaluation rows held out of train (dev is
never used), and a temperature fitted on three classes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer import TrainConfig
from trainer.cli import arguments_for, config_from_args
from trainer.config import TrainingError
from trainer.data import load_training_data
from trainer.toxicity import load_beep


def test_toxicity_data_is_beep_train_with_its_labels_and_dev_stays_unseen(korpora_root: Path, tmp_path: Path):
    config = TrainConfig(
        output=tmp_path / "v", task="toxicity", korpora_root=korpora_root, train_size=None, eval_size=400
    )
    data = load_training_data(config)
    assert data.id2label == {0: "정상", 1: "공격적", 2: "혐오"}
    # stratified by class, each class's share rounded: within a row or two of the size asked for
    assert abs(len(data.eval) - 400) <= 2 and set(data.eval.labels) == {0, 1, 2}
    beep_train = set(load_beep(korpora_root, "train").texts)
    dev = set(load_beep(korpora_root, "dev").texts)
    seen = set(data.train.texts) | set(data.eval.texts)
    assert seen <= beep_train and not seen & dev
    assert not set(data.train.texts) & set(data.eval.texts)
    with pytest.raises(TrainingError, match="--eval-data needs --data"):
        load_training_data(
            TrainConfig(
                output=tmp_path / "w",
                task="toxicity",
                korpora_root=korpora_root,
                eval_data=tmp_path / "x.csv",
            )
        )


def test_a_toxicity_version_carries_three_labels_and_a_temperature(
    toxicity_model_dir: Path, korpora_root: Path, tmp_path: Path
):
    import argparse

    from trainer.cli import add_train_arguments

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    config = TrainConfig(
        output=tmp_path / "toxicity",
        task="toxicity",
        base="scratch",
        korpora_root=korpora_root,
        eval_size=150,
    )
    # The CLI round trip keeps the task (a retraining run passes every field as a flag).
    assert config_from_args(parser.parse_args(arguments_for(config))) == config
    metrics = json.loads((toxicity_model_dir / "metrics.json").read_text(encoding="utf-8"))
    saved = json.loads((toxicity_model_dir / "config.json").read_text(encoding="utf-8"))
    assert saved["id2label"] == {"0": "정상", "1": "공격적", "2": "혐오"}
    assert metrics["labels"] == ["정상", "공격적", "혐오"] and len(metrics["confusion_matrix"]) == 3
    assert metrics["data"]["task"] == "toxicity" and metrics["data"]["source"] == "beep"
    assert (
        abs(metrics["calibration"]["fitted_on"] - 150) <= 2
        and metrics["calibration"]["nll_after"] <= metrics["calibration"]["nll_before"]
    )


def test_each_task_has_its_own_default_base_checkpoint(tmp_path: Path):
    import argparse

    from trainer.cli import add_train_arguments

    assert TrainConfig(output=tmp_path / "s").base == "kykim/bert-kor-base"
    assert TrainConfig(output=tmp_path / "t", task="toxicity").base == "beomi/KcELECTRA-base-v2022"
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    parsed = config_from_args(parser.parse_args(["--output", str(tmp_path / "u"), "--task", "toxicity"]))
    assert parsed.base == "beomi/KcELECTRA-base-v2022"
    with pytest.raises(TrainingError, match="unknown task"):
        TrainConfig(output=tmp_path / "v", task="spam")  # type: ignore[arg-type]
