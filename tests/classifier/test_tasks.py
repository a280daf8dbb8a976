"""Which task a model or a label belongs to (classifier.tasks)."""

from __future__ import annotations

import pytest

from classifier.tasks import SENTIMENT, TASK_ID2LABEL, TOXICITY, parse_task, task_of_label, task_of_model


def test_label_names_are_unique_across_tasks():
    names = [name for id2label in TASK_ID2LABEL.values() for name in id2label.values()]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("label", "task"),
    [("부정", SENTIMENT), ("긍정", SENTIMENT), ("정상", TOXICITY), ("공격적", TOXICITY), ("혐오", TOXICITY)],
)
def test_a_label_name_says_its_task(label, task):
    assert task_of_label(label) == task


def test_a_word_no_task_has_belongs_to_none():
    assert task_of_label("wrong") is None and task_of_label("") is None


def test_the_recorded_task_wins_then_the_labels_decide():
    toxicity_labels = TASK_ID2LABEL[TOXICITY]
    assert task_of_model(toxicity_labels, {"data": {"task": "toxicity"}}) == TOXICITY
    assert task_of_model(toxicity_labels, None) == TOXICITY  # an older version without the record
    assert task_of_model(TASK_ID2LABEL[SENTIMENT], {"data": {"task": "sentiment"}}) == SENTIMENT
    # a model trained on a CSV with labels of its own is a sentiment model, the tutorial's task
    assert task_of_model({0: "neg", 1: "pos"}, {"data": {"source": "reviews.csv"}}) == SENTIMENT
    assert task_of_model({0: "neg", 1: "pos"}, {"data": {"task": "nonsense"}}) == SENTIMENT


@pytest.mark.parametrize(
    ("text", "task"),
    [
        ("toxicity", TOXICITY),
        ("표현", TOXICITY),
        ("표현(정상/공격적/혐오)", TOXICITY),
        ("혐오", TOXICITY),
        (" 감성 ", SENTIMENT),
        ("Sentiment", SENTIMENT),
        ("긍정", SENTIMENT),
        ("아무거나", None),
        ("", None),
    ],
)
def test_a_task_is_named_by_its_id_its_title_or_a_label(text, task):
    assert parse_task(text) == task
