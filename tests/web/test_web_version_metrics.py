"""The numbers a model version's page computes from its stored metrics (`bot.web.pages.models`)."""

from __future__ import annotations

import pytest

from bot.web.pages.models import _curves, per_class


def test_per_class_numbers_come_from_the_confusion_matrix_rows_true_columns_answered():
    rows = per_class({"labels": ["부정", "긍정"], "confusion_matrix": [[8, 2], [4, 6]]})
    negative, positive = rows
    assert negative["precision"] == pytest.approx(8 / 12) and negative["recall"] == pytest.approx(8 / 10)
    assert positive["precision"] == pytest.approx(6 / 8) and positive["recall"] == pytest.approx(6 / 10)
    assert negative["f1"] == pytest.approx(2 * (8 / 12) * (8 / 10) / ((8 / 12) + (8 / 10)))
    assert [row["support"] for row in rows] == [10, 10]
    never_answered = per_class({"labels": ["a", "b"], "confusion_matrix": [[0, 3], [0, 3]]})[0]
    assert never_answered["precision"] is None and never_answered["recall"] == 0.0


@pytest.mark.parametrize(
    "metrics",
    [
        {},
        {"labels": ["a"], "confusion_matrix": [[1, 2]]},  # not square
        {"labels": ["a", "b"], "confusion_matrix": [[1, "2"], [0, 3]]},
        {"labels": "ab", "confusion_matrix": [[1, 0], [0, 1]]},
    ],
)
def test_malformed_metrics_give_no_per_class_rows(metrics):
    assert per_class(metrics) == []


def test_curves_survive_missing_epochs_and_values():
    curves = _curves([{"epoch": None, "train_loss": "n/a"}, {"epoch": 2.0, "eval_loss": 0.4}])
    assert "epoch 2 검증 손실: 0.4" in curves["loss"]  # the second epoch's value, named by its epoch
    assert "epoch 1 학습 손실" not in curves["loss"]  # a value that is no number is left out, not drawn as 0
