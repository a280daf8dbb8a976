"""The held-out logits a version's temperature, confidence map and reported metrics are fitted on are those of the
checkpoint it is saved from (the best epoch's), taken from that epoch's evaluation rather than a second pass."""

from __future__ import annotations

from pathlib import Path

import transformers

from classifier import Classifier
from classifier.confidence_map import read_calibration_set
from trainer import TrainConfig, train


def test_held_out_logits_are_the_best_epochs_evaluation_and_the_saved_models(
    write_review_csv, tmp_path: Path, monkeypatch
):
    data = write_review_csv("reviews.csv", size=400)
    second_passes = []
    predict = transformers.Trainer.predict

    def counted_predict(self, *args, **kwargs):
        second_passes.append(args)
        return predict(self, *args, **kwargs)

    monkeypatch.setattr(transformers.Trainer, "predict", counted_predict)
    output = tmp_path / "version"
    metrics = train(
        TrainConfig(
            output=output,
            data=data,
            base="scratch",
            train_size=None,
            eval_size=80,
            epochs=3,
            batch_size=32,
            max_length=32,
            scratch_hidden=32,
            scratch_layers=1,
            scratch_vocab_size=2000,
            early_stopping_patience=0,
            seed=5,
        )
    )

    assert second_passes == []  # the held-out rows were predicted once an epoch, during training
    best = min(metrics["history"], key=lambda row: row["eval_loss"])
    assert len(metrics["history"]) == 3 and metrics["loss"] == best["eval_loss"]
    assert metrics["accuracy"] == best["eval_accuracy"]
    # ... and they are the saved model's: it gets the same held-out rows right (argmax: the temperature and the
    # map do not move it).
    texts, labels = read_calibration_set(output)
    classifier = Classifier.load(output, device="cpu", apply_confidence_map=False)
    verdicts = classifier.predict(texts)
    right = sum(verdict.label == label for verdict, label in zip(verdicts, labels, strict=True))
    assert len(texts) == 80 and right / len(texts) == metrics["accuracy"]
