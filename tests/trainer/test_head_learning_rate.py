"""`head_learning_rate`: the layers a base checkpoint lacks learn at their own rate, the encoder at its own."""

from __future__ import annotations

from pathlib import Path

from transformers import TrainingArguments

from trainer.config import TrainConfig
from trainer.training import _load_pretrained, _Trainer


def optimizer_groups(model, tmp_path: Path, head_learning_rate: float | None):
    args = TrainingArguments(
        output_dir=str(tmp_path), learning_rate=5e-5, weight_decay=0.01, report_to="none"
    )
    trainer = _Trainer(model=model, args=args, head_learning_rate=head_learning_rate)
    optimizer = trainer.create_optimizer()
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    return [
        ({names[id(parameter)] for parameter in group["params"]}, group["lr"], group["weight_decay"])
        for group in optimizer.param_groups
    ]


def test_the_new_head_learns_at_its_own_rate_and_the_encoder_at_the_base_rate(scratch_model_dir, tmp_path):
    # A trained two-label version used as the base of a three-label task: its head does not fit, so it is new.
    config = TrainConfig(output=tmp_path / "unused", base=str(scratch_model_dir), task="toxicity")
    _, model = _load_pretrained(config, {0: "정상", 1: "공격적", 2: "혐오"})
    assert model.newly_initialised == {"classifier.weight", "classifier.bias"}

    groups = optimizer_groups(model, tmp_path, head_learning_rate=1e-3)
    head = [(lr, decay) for names, lr, decay in groups if names & model.newly_initialised]
    assert sorted(head) == [(1e-3, 0.0), (1e-3, 0.01)]  # weight decays, bias does not
    for names, lr, _ in groups:
        assert (lr == 1e-3) == bool(names & model.newly_initialised)
        assert not (names & model.newly_initialised) or names <= model.newly_initialised
    every = {name for name, _ in model.named_parameters()}
    assert set().union(*(names for names, _, _ in groups)) == every  # nothing left out of training

    default = optimizer_groups(model, tmp_path, head_learning_rate=None)
    assert {lr for _, lr, _ in default} == {5e-5}  # without it, HF Trainer's own optimizer
