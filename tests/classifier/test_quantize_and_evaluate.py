"""Torch dynamic int8 (the old fast path, kept for the benchmarks) and `evaluate`, on the suite's trained tiny
model and held-out NSMC reviews. The serving fast path is tested in test_fastpath.py."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from classifier import Classifier, evaluate


@pytest.fixture(scope="module")
def held_out_reviews(korpora_root: Path) -> tuple[list[str], list[int]]:
    """300 NSMC test reviews (the scratch model trains on ratings_train.txt only)."""
    frame = pd.read_csv(korpora_root / "nsmc" / "ratings_test.txt", sep="\t", quoting=3, nrows=2000)
    frame = frame.dropna(subset=["document"])
    frame = frame[frame["document"].str.strip() != ""].sample(300, random_state=1)
    return frame["document"].tolist(), frame["label"].astype(int).tolist()


def test_quantized_model_is_int8_and_agrees_with_fp32(
    scratch_model_dir: Path, scratch_classifier: Classifier, held_out_reviews
) -> None:
    texts, _ = held_out_reviews
    quantized = Classifier.load(scratch_model_dir, device="cpu", backend="torch-int8")
    assert quantized.quantized is True
    assert quantized.backend == "torch-int8"
    modules = list(quantized.model.modules())
    assert not any(isinstance(module, torch.nn.Linear) for module in modules)  # every Linear replaced
    assert any(isinstance(module, torch.ao.nn.quantized.dynamic.Linear) for module in modules)

    fp32 = scratch_classifier.predict(texts)
    int8 = quantized.predict(texts)
    agreement = sum(a.label == b.label for a, b in zip(fp32, int8, strict=True)) / len(texts)
    largest_gap = max(
        abs(a.confidence - b.probabilities[a.label_name]) for a, b in zip(fp32, int8, strict=True)
    )
    assert agreement >= 0.95
    assert largest_gap < 0.15


def test_quantize_is_ignored_with_a_warning_off_cpu(e5_classifier_dir: Path) -> None:
    # "meta" stands in for a GPU here: any non-CPU device takes the same path.
    with pytest.warns(RuntimeWarning, match="CPU-only"):
        classifier = Classifier.load(e5_classifier_dir, device="meta", quantize=True)
    assert classifier.quantized is False
    assert classifier.device == torch.device("meta")


def test_evaluate_scores_a_trained_model_above_chance(
    scratch_classifier: Classifier, held_out_reviews
) -> None:
    texts, labels = held_out_reviews
    report = evaluate(scratch_classifier, texts, labels)
    assert report["n"] == 300
    assert report["accuracy"] >= 0.65  # the scratch model reaches about 0.74
    assert 0.6 <= report["macro_f1"] <= 1.0
    matrix = report["confusion_matrix"]
    assert sum(map(sum, matrix)) == 300
    assert [sum(row) for row in matrix] == [labels.count(0), labels.count(1)]  # rows are the true labels
    assert report["accuracy"] == pytest.approx((matrix[0][0] + matrix[1][1]) / 300)


def test_evaluate_exact_cases_and_label_names(scratch_classifier: Classifier) -> None:
    texts = ["정말 최고의 영화", "너무 지루하고 최악", "배우 연기가 좋았다", "돈 아깝다"]
    predicted = [verdict.label for verdict in scratch_classifier.predict(texts)]
    assert evaluate(scratch_classifier, texts, predicted)["accuracy"] == 1.0
    flipped = [1 - label for label in predicted]
    report = evaluate(scratch_classifier, texts, flipped)
    assert report["accuracy"] == 0.0
    assert report["macro_f1"] == 0.0
    by_name = [scratch_classifier.id2label[label] for label in predicted]
    assert evaluate(scratch_classifier, texts, by_name) == evaluate(scratch_classifier, texts, predicted)


def test_evaluate_rejects_bad_labels(scratch_classifier: Classifier) -> None:
    with pytest.raises(ValueError, match="2 texts but 1 labels"):
        evaluate(scratch_classifier, ["좋다", "싫다"], [1])
    with pytest.raises(ValueError, match="'중립' at index 1"):
        evaluate(scratch_classifier, ["좋다", "싫다"], [1, "중립"])
    with pytest.raises(ValueError, match="label 7 at index 0"):
        evaluate(scratch_classifier, ["좋다"], [7])
    with pytest.raises(ValueError, match="zero examples"):
        evaluate(scratch_classifier, [], [])
