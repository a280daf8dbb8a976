"""Temperature scaling (Guo et al., 2017): one number T, fitted on held-out logits, so that softmax(logits / T)
gives probabilities that mean what they say. Dividing logits by T > 0 never changes which label wins.

T is baked into the version: the classification head's last linear layer is divided by T, so the saved weights
compute logits / T themselves. Every runtime (torch, the ONNX exports built from the weights, `pipeline()`)
applies it identically, at no cost. metrics.json records T and the fit (`calibration`).

A temperature cannot straighten bunched confidences, so a second step follows, fitted on the same held-out
verdicts: a monotone confidence map (`fit_confidence_map`; classifier/confidence_map.py), saved beside the weights
and applied by the classifier after the softmax, whatever the runtime.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from classifier.calibration import expected_calibration_error
from classifier.confidence_map import ConfidenceMap
from classifier.confidence_map import fit_confidence_map as fit_map_on_probabilities

# T is searched on a log scale within these bounds: wider than any sane model needs, and it keeps a degenerate
# fit (a held-out set the model gets wholly right) from sending the logits to infinity.
MIN_TEMPERATURE = 0.05
MAX_TEMPERATURE = 20.0


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    log_probabilities = _log_softmax(np.asarray(logits, dtype=np.float64) / temperature)
    return float(-log_probabilities[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T minimising the held-out negative log-likelihood of softmax(logits / T)."""
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2 or logits.shape[0] != labels.shape[0] or logits.shape[0] == 0:
        raise ValueError("fit_temperature needs logits of shape (n, classes) and n labels, n > 0")
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits, labels, math.exp(log_t)),
        bounds=(math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(math.exp(result.x))


def calibration_summary(logits: np.ndarray, labels: np.ndarray, temperature: float) -> dict:
    """What the fit did on the data it was fitted on: NLL and ECE before and after."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    correct = logits.argmax(axis=-1) == labels

    def ece(t: float) -> float:
        return expected_calibration_error(np.exp(_log_softmax(logits / t)).max(axis=-1), correct)

    return {
        "temperature": temperature,
        "method": "temperature scaling, fitted on the evaluation split (NLL), baked into the head",
        "fitted_on": len(labels),
        "nll_before": negative_log_likelihood(logits, labels),
        "nll_after": negative_log_likelihood(logits, labels, temperature),
        "ece_before": ece(1.0),
        "ece_after": ece(temperature),
    }


def fit_confidence_map(logits: np.ndarray, labels: np.ndarray, temperature: float) -> ConfidenceMap:
    """The second step (classifier/confidence_map.py): the isotonic map of each held-out verdict's correctness on
    its top probability after the temperature."""
    probabilities = np.exp(_log_softmax(np.asarray(logits, dtype=np.float64) / temperature))
    return fit_map_on_probabilities(probabilities, labels)


def confidence_map_summary(
    logits: np.ndarray, labels: np.ndarray, temperature: float, confidence_map: ConfidenceMap
) -> dict:
    """What the map did on the verdicts it was fitted on (in-sample, so optimistic: the benchmarks score it on
    reviews it never saw)."""
    probabilities = np.exp(_log_softmax(np.asarray(logits, dtype=np.float64) / temperature))
    correct = probabilities.argmax(axis=-1) == np.asarray(labels, dtype=np.int64)
    return {
        "fitted_on": confidence_map.fitted_on,
        "knots": len(confidence_map.confidence),
        "ece_after_map_in_sample": expected_calibration_error(
            confidence_map.apply(probabilities).max(axis=-1), correct
        ),
    }


def classification_head(model: torch.nn.Module) -> torch.nn.Linear:
    """The linear layer that computes the logits: the last one whose outputs are the labels (BERT's
    `classifier`, ELECTRA's and RoBERTa's `classifier.out_proj`)."""
    num_labels = model.config.num_labels
    heads = [
        module
        for module in model.modules()
        if isinstance(module, torch.nn.Linear) and module.out_features == num_labels
    ]
    if not heads:
        raise ValueError(f"{type(model).__name__} has no linear layer with {num_labels} outputs to scale")
    return heads[-1]


@torch.no_grad()
def bake_temperature(model: torch.nn.Module, temperature: float) -> None:
    """Divide the head's weights and bias by T: the model then outputs logits / T."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature}")
    head = classification_head(model)
    head.weight.div_(temperature)
    if head.bias is not None:
        head.bias.div_(temperature)


def undo_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """The probabilities of the model before `bake_temperature`: softmax(T * log p) = softmax(logits)."""
    raw = np.exp(temperature * np.log(np.clip(np.asarray(probabilities, dtype=np.float64), 1e-300, 1.0)))
    return raw / raw.sum(axis=-1, keepdims=True)
