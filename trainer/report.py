"""Evaluation numbers and the training-curve plot written next to a model version."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def classification_metrics(predictions: np.ndarray, labels: np.ndarray, num_labels: int) -> dict:
    """Accuracy, macro F1 (over the classes present in labels or predictions) and the confusion matrix."""
    confusion = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    true_positives = np.diag(confusion).astype(float)
    predicted = confusion.sum(axis=0).astype(float)
    actual = confusion.sum(axis=1).astype(float)
    present = (predicted + actual) > 0
    f1 = np.divide(2 * true_positives, predicted + actual, out=np.zeros(num_labels), where=present)
    return {
        "accuracy": float(true_positives.sum() / max(1, confusion.sum())),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "confusion_matrix": confusion.tolist(),
    }


def epoch_history(log_history: list[dict]) -> list[dict]:
    """Per-epoch rows (epoch, train_loss, eval_loss, eval_accuracy, eval_macro_f1) from `Trainer.state.log_history`.

    train_loss is the mean of the training losses logged during that epoch.
    """
    history: list[dict] = []
    pending_losses: list[float] = []
    for entry in log_history:
        if "loss" in entry:
            pending_losses.append(float(entry["loss"]))
        elif "eval_loss" in entry:
            history.append(
                {
                    "epoch": round(float(entry.get("epoch", len(history) + 1)), 4),
                    "train_loss": float(np.mean(pending_losses)) if pending_losses else None,
                    "eval_loss": float(entry["eval_loss"]),
                    "eval_accuracy": entry.get("eval_accuracy"),
                    "eval_macro_f1": entry.get("eval_macro_f1"),
                }
            )
            pending_losses = []
    return history


def plot_training_curves(history: list[dict], path: Path, *, title: str) -> None:
    """Losses and evaluation accuracy per epoch as a PNG (matplotlib's Agg canvas, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    train_rows = [(row["epoch"], row["train_loss"]) for row in history if row["train_loss"] is not None]
    if train_rows:
        loss_axes.plot(*zip(*train_rows), marker="o", label="train loss")
    loss_axes.plot(epochs, [row["eval_loss"] for row in history], marker="o", label="eval loss")
    loss_axes.set_xlabel("epoch")
    loss_axes.set_ylabel("loss")
    loss_axes.legend()
    accuracy_axes.plot(
        epochs, [row["eval_accuracy"] for row in history], marker="o", color="tab:green", label="accuracy"
    )
    accuracy_axes.plot(
        epochs, [row["eval_macro_f1"] for row in history], marker="x", color="tab:purple", label="macro F1"
    )
    accuracy_axes.set_xlabel("epoch")
    accuracy_axes.set_ylabel("evaluation")
    accuracy_axes.legend()
    figure.suptitle(title)
    figure.savefig(path, dpi=100)
