"""Temperature scaling (trainer/temperature.py): the fit finds the temperature that made logits overconfident,
and baking it into the head makes the model itself output logits / T."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    ElectraConfig,
    ElectraForSequenceClassification,
)

from classifier.calibration import expected_calibration_error
from trainer.temperature import (
    bake_temperature,
    calibration_summary,
    classification_head,
    fit_temperature,
    negative_log_likelihood,
)


def _calibrated_logits(rng: np.random.Generator, size: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax is the true label distribution (labels drawn from it)."""
    logits = rng.normal(0.0, 2.0, (size, classes))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(classes, p=row) for row in probabilities])
    return logits, labels


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("true_temperature", [0.5, 2.5])
def test_fit_recovers_the_temperature_that_distorted_calibrated_logits(classes: int, true_temperature: float):
    logits, labels = _calibrated_logits(np.random.default_rng(classes), 8000, classes)
    distorted = logits * true_temperature  # T > 1 -> overconfident; T < 1 -> underconfident
    fitted = fit_temperature(distorted, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.08)
    summary = calibration_summary(distorted, labels, fitted)
    assert summary["nll_after"] < summary["nll_before"]
    assert summary["ece_after"] < 0.02 < summary["ece_before"]
    # Dividing by T keeps every argmax: accuracy is untouched.
    assert (np.argmax(distorted / fitted, axis=1) == np.argmax(distorted, axis=1)).all()


def test_fit_stays_within_bounds_when_every_example_is_right():
    logits = np.array([[5.0, -5.0], [-4.0, 4.0], [3.0, -3.0]])
    fitted = fit_temperature(logits, np.array([0, 1, 0]))
    # Sharper is always better on such data; the search stops at the bound or where the loss is flat, finite.
    assert 0.05 <= fitted < 0.5
    assert np.isfinite(negative_log_likelihood(logits, np.array([0, 1, 0]), fitted))


def test_fit_refuses_mismatched_input():
    with pytest.raises(ValueError, match="shape"):
        fit_temperature(np.zeros((3, 2)), np.zeros(2, dtype=int))


def _tiny_bert(num_labels: int) -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=num_labels,
    )
    return BertForSequenceClassification(config).eval()


@pytest.mark.parametrize("temperature", [0.4, 3.0])
def test_baked_model_outputs_logits_divided_by_the_temperature(temperature: float):
    model = _tiny_bert(3)
    inputs = {
        "input_ids": torch.tensor([[1, 5, 7, 2], [1, 9, 2, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]),
    }
    with torch.no_grad():
        before = model(**inputs).logits
        bake_temperature(model, temperature)
        after = model(**inputs).logits
    torch.testing.assert_close(after, before / temperature, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="positive"):
        bake_temperature(model, 0.0)


def test_the_head_is_found_in_bert_and_electra():
    bert = _tiny_bert(2)
    assert classification_head(bert) is bert.classifier
    electra = ElectraForSequenceClassification(
        ElectraConfig(
            vocab_size=50,
            embedding_size=16,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            num_labels=3,
        )
    )
    assert classification_head(electra) is electra.classifier.out_proj


def test_ece_after_the_fit_on_held_out_data_beats_the_raw_logits():
    # Fit on one half of overconfident logits, measure on the other: what the trainer does with its eval split.
    logits, labels = _calibrated_logits(np.random.default_rng(7), 10000, 2)
    distorted = logits * 2.0
    fitted = fit_temperature(distorted[:2000], labels[:2000])
    held_out, held_labels = distorted[2000:], labels[2000:]
    correct = held_out.argmax(axis=1) == held_labels

    def confidence(values: np.ndarray) -> np.ndarray:
        exp = np.exp(values - values.max(axis=1, keepdims=True))
        return (exp / exp.sum(axis=1, keepdims=True)).max(axis=1)

    assert expected_calibration_error(confidence(held_out / fitted), correct) < 0.02
    assert expected_calibration_error(confidence(held_out), correct) > 0.05
