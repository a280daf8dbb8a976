"""`evaluate`: accuracy, macro-F1 and the confusion matrix of a classifier on labelled texts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from classifier.model import Classifier


def evaluate(
    classifier: Classifier,
    texts: Sequence[str],
    labels: Sequence[int | str],
    *,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Score `classifier` on `texts`; `labels` are label ids or label names.

    Returns accuracy, macro_f1 (over every label the model knows), confusion_matrix
    (rows = true label, columns = predicted, in label-id order) and n.
    """
    if len(texts) != len(labels):
        raise ValueError(f"got {len(texts)} texts but {len(labels)} labels")
    if not texts:
        raise ValueError("cannot evaluate on zero examples")
    true_ids = [_label_id(classifier, label, index) for index, label in enumerate(labels)]
    predicted_ids = [verdict.label for verdict in classifier.predict(texts, batch_size=batch_size)]

    label_ids = sorted(classifier.id2label)
    position = {label: row for row, label in enumerate(label_ids)}
    matrix = [[0] * len(label_ids) for _ in label_ids]
    for true, predicted in zip(true_ids, predicted_ids, strict=True):
        matrix[position[true]][position[predicted]] += 1

    f1_scores = []
    for row, _ in enumerate(label_ids):
        true_positives = matrix[row][row]
        predicted_count = sum(matrix[other][row] for other in range(len(label_ids)))
        actual_count = sum(matrix[row])
        denominator = predicted_count + actual_count
        f1_scores.append(2 * true_positives / denominator if denominator else 0.0)

    correct = sum(matrix[row][row] for row in range(len(label_ids)))
    return {
        "accuracy": correct / len(true_ids),
        "macro_f1": sum(f1_scores) / len(f1_scores),
        "confusion_matrix": matrix,
        "n": len(true_ids),
    }


def _label_id(classifier: Classifier, label: int | str, index: int) -> int:
    if isinstance(label, str):
        if label in classifier.label2id:
            return classifier.label2id[label]
        if label.strip().lstrip("-").isdigit():
            label = int(label)
        else:
            raise ValueError(f"label {label!r} at index {index} is not one of {sorted(classifier.label2id)}")
    label = int(label)  # accepts numpy integers too
    if label not in classifier.id2label:
        raise ValueError(
            f"label {label} at index {index} is not a label id of this model {sorted(classifier.id2label)}"
        )
    return label
