"""The session's scratch model (tests/conftest.py `scratch_model_dir`): it learns, and its version directory is complete."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_scratch_model_beats_070_on_unseen_nsmc_test_reviews(
    scratch_model_dir: Path, nsmc_test_frame: pd.DataFrame
):
    from transformers import pipeline

    # Independent of the trainer's own evaluation: another sample of the test split, scored through pipeline().
    reviews = nsmc_test_frame.sample(n=1000, random_state=2024)
    classify = pipeline("text-classification", model=str(scratch_model_dir), device=-1)
    verdicts = classify(reviews["document"].tolist(), batch_size=64, truncation=True)
    name_to_label = {"부정": 0, "긍정": 1}
    predicted = [name_to_label[verdict["label"]] for verdict in verdicts]
    accuracy = sum(int(p == t) for p, t in zip(predicted, reviews["label"])) / len(reviews)
    assert accuracy >= 0.70, f"held-out accuracy {accuracy:.3f}"


def test_version_directory_holds_model_tokenizer_metrics_and_curves(scratch_model_dir: Path):
    from transformers import AutoConfig, AutoTokenizer

    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (scratch_model_dir / name).is_file(), name
    config = AutoConfig.from_pretrained(scratch_model_dir)
    assert config.id2label == {0: "부정", 1: "긍정"}
    assert config.label2id == {"부정": 0, "긍정": 1}
    tokenizer = AutoTokenizer.from_pretrained(scratch_model_dir)
    # Hangul survives tokenisation (no accent stripping into jamo) and is mostly in the learnt vocabulary.
    tokens = tokenizer.tokenize("정말 재미있는 영화였어요")
    assert tokens and tokenizer.unk_token not in tokens
    assert tokenizer.model_max_length == 48

    metrics = json.loads((scratch_model_dir / "metrics.json").read_text(encoding="utf-8"))
    required = {
        "accuracy",
        "macro_f1",
        "loss",
        "confusion_matrix",
        "labels",
        "history",
        "best_epoch",
        "data",
        "base_checkpoint",
        "wall_time_seconds",
        "train_samples_per_second",
        "seed",
        "device",
        "created_at",
    }
    assert required <= metrics.keys()
    assert metrics["labels"] == ["부정", "긍정"]
    assert metrics["base_checkpoint"] == "scratch" and metrics["seed"] == 42 and metrics["device"] == "cpu"
    assert metrics["data"]["train_size"] == 6000 and metrics["data"]["eval_size"] == 500
    assert 0.70 <= metrics["accuracy"] <= 1.0 and 0.0 < metrics["macro_f1"] <= 1.0
    confusion = metrics["confusion_matrix"]
    assert sum(map(sum, confusion)) == 500
    assert sum(confusion[i][i] for i in range(2)) / 500 == metrics["accuracy"]
    assert [row["epoch"] for row in metrics["history"]] == [1.0, 2.0]
    for row in metrics["history"]:
        assert row["train_loss"] > 0 and row["eval_loss"] > 0 and 0 <= row["eval_accuracy"] <= 1
    # The kept model is the epoch with the lowest validation loss, and the reported loss is that epoch's.
    best = min(metrics["history"], key=lambda row: row["eval_loss"])
    assert metrics["best_epoch"] == best["epoch"]
    assert abs(metrics["loss"] - best["eval_loss"]) < 1e-3
    assert metrics["train_samples_per_second"] > 0 and metrics["wall_time_seconds"] > 0

    curves = scratch_model_dir / "training_curves.png"
    assert curves.read_bytes()[:8] == PNG_SIGNATURE and curves.stat().st_size > 10_000
    # Built in a sibling staging folder and renamed: nothing half-written is left beside it.
    assert [path.name for path in scratch_model_dir.parent.iterdir()] == [scratch_model_dir.name]


def test_probabilities_are_calibrated_on_unseen_reviews(
    scratch_model_dir: Path, nsmc_test_frame: pd.DataFrame
):
    """The trainer fits a temperature on its evaluation split and bakes it into the head (trainer/temperature.py):
    on 2,000 other test reviews the served probabilities score at least as well as the raw ones (negative
    log-likelihood, a proper score, far less noisy than ECE on 2,000 reviews), and the verdicts are the same.
    The ECE goal itself is measured on 10,000 reviews (bench/bench_calibration.py)."""
    import numpy as np

    from classifier import Classifier
    from classifier.calibration import expected_calibration_error
    from trainer.temperature import undo_temperature

    calibration = json.loads((scratch_model_dir / "metrics.json").read_text(encoding="utf-8"))["calibration"]
    temperature = calibration["temperature"]
    assert 0.05 <= temperature <= 20 and calibration["fitted_on"] == 500
    assert calibration["nll_after"] <= calibration["nll_before"]

    reviews = nsmc_test_frame.sample(n=2000, random_state=77)
    classifier = Classifier.load(scratch_model_dir, backend="torch")
    verdicts = classifier.predict(reviews["document"].tolist())
    served = np.array(
        [[verdict.probabilities["부정"], verdict.probabilities["긍정"]] for verdict in verdicts]
    )
    raw = undo_temperature(served, temperature)  # the head computes logits / T
    truth = reviews["label"].to_numpy()
    assert (raw.argmax(axis=1) == served.argmax(axis=1)).all()

    def nll(probabilities: np.ndarray) -> float:
        return float(-np.log(probabilities[np.arange(len(truth)), truth]).mean())

    assert nll(served) <= nll(raw) + 0.002, (nll(served), nll(raw))
    correct = served.argmax(axis=1) == truth
    assert expected_calibration_error(served.max(axis=1), correct) <= 0.07
