"""`balanced_class_weights`: each class's loss weighed by rows / (classes x its rows), so the classes count alike."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import TrainingArguments

from trainer.config import TrainConfig
from trainer.training import _load_pretrained, _Trainer, balanced_class_weights


def test_weights_by_hand():
    # 6 rows: four of class 0, two of class 1, none of class 2.
    assert balanced_class_weights([0, 0, 0, 0, 1, 1], 3) == pytest.approx([6 / 12, 6 / 6, 0.0])
    # Balanced data: every weight is 1.
    assert balanced_class_weights([0, 1, 2, 2, 1, 0], 3) == pytest.approx([1.0, 1.0, 1.0])


def test_the_trainer_loss_weighs_each_row_by_its_class(scratch_model_dir, tmp_path: Path):
    config = TrainConfig(output=tmp_path / "unused", base=str(scratch_model_dir), task="toxicity")
    tokenizer, model = _load_pretrained(config, {0: "정상", 1: "공격적", 2: "혐오"})
    model.eval()
    batch = tokenizer(["정말 재밌어요", "이 새끼 진짜", "시간 낭비였다"], padding=True, return_tensors="pt")
    labels = torch.tensor([0, 1, 2])
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none")
    weights = [0.5, 1.0, 3.0]

    def loss(class_weights):
        trainer = _Trainer(model=model, args=args, head_learning_rate=None, class_weights=class_weights)
        with torch.no_grad():
            return float(trainer.compute_loss(model, {**batch, "labels": labels.clone()}))

    with torch.no_grad():
        logits = model(**batch).logits
    per_row = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    assert loss(None) == pytest.approx(float(per_row.mean()), rel=1e-5)
    weighed = torch.tensor(weights)
    expected = float((per_row * weighed).sum() / weighed.sum())  # a weighted mean over the batch
    assert loss(weights) == pytest.approx(expected, rel=1e-5)
    assert abs(loss(weights) - loss(None)) > 1e-4


def test_the_cli_passes_the_switch(tmp_path: Path):
    import argparse

    from trainer.cli import add_train_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    off = config_from_args(parser.parse_args(["--output", str(tmp_path / "v")]))
    on = config_from_args(parser.parse_args(["--output", str(tmp_path / "v"), "--balanced-class-weights"]))
    assert (off.balanced_class_weights, on.balanced_class_weights) == (False, True)
