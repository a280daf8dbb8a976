"""Classifier.load + predict on the real e5 checkpoint with a 2-label head."""

from __future__ import annotations

import dataclasses
import math
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from classifier_helpers import ID2LABEL, REVIEWS

from classifier import Classifier, EmptyTextError, Verdict


def probability_rows(verdicts: list[Verdict]) -> list[list[float]]:
    return [list(verdict.probabilities.values()) for verdict in verdicts]


def assert_rows_close(actual: list[list[float]], expected: list[list[float]], *, tolerance: float) -> None:
    assert len(actual) == len(expected)
    for index, (row, expected_row) in enumerate(zip(actual, expected, strict=True)):
        assert row == pytest.approx(expected_row, abs=tolerance), f"input {index}"


def test_loaded_classifier_describes_itself(e5_classifier: Classifier, e5_classifier_dir) -> None:
    assert e5_classifier.id2label == ID2LABEL
    assert e5_classifier.path == e5_classifier_dir
    assert e5_classifier.device == torch.device("cpu")
    assert e5_classifier.quantized is False
    assert e5_classifier.metrics is None  # no metrics.json written for this directory
    assert e5_classifier.max_length == 512


def test_verdict_fields_and_json(e5_classifier: Classifier) -> None:
    [verdict] = e5_classifier.predict(["정말 재밌어요"])
    assert list(verdict.probabilities) == ["부정", "긍정"]  # label-id order
    assert math.isclose(sum(verdict.probabilities.values()), 1.0, abs_tol=1e-6)
    assert verdict.confidence == max(verdict.probabilities.values())
    assert verdict.label_name == ID2LABEL[verdict.label]
    assert verdict.probabilities[verdict.label_name] == verdict.confidence
    assert verdict.truncated is False
    assert verdict.to_json_dict("정말 재밌어요") == {
        "text": "정말 재밌어요",
        "label": verdict.label,
        "label_name": verdict.label_name,
        "confidence": verdict.confidence,
        "probabilities": verdict.probabilities,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.label = 0  # type: ignore[misc]


def test_round_trip_gives_identical_probabilities(
    e5_classifier: Classifier, e5_classifier_dir, tmp_path
) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    # Reference: the saved files evaluated one text at a time without any of the classifier's machinery.
    model = AutoModelForSequenceClassification.from_pretrained(
        e5_classifier_dir, local_files_only=True
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(e5_classifier_dir, local_files_only=True)
    with torch.no_grad():
        expected = [
            torch.softmax(model(**tokenizer(text, return_tensors="pt")).logits, dim=-1)[0].tolist()
            for text in REVIEWS
        ]
    predicted = probability_rows(e5_classifier.predict(REVIEWS))
    assert_rows_close(predicted, expected, tolerance=1e-5)

    # Saving the loaded model again and reloading it gives identical probabilities.
    e5_classifier.model.save_pretrained(tmp_path / "again")
    e5_classifier.tokenizer.save_pretrained(tmp_path / "again")
    reloaded = Classifier.load(tmp_path / "again", device="cpu")
    assert probability_rows(reloaded.predict(REVIEWS)) == predicted


def test_transformers_pipeline_agrees(e5_classifier: Classifier, e5_classifier_dir) -> None:
    from transformers import pipeline

    text_classifier = pipeline("text-classification", model=str(e5_classifier_dir), device="cpu", top_k=None)
    for text, entries, verdict in zip(
        REVIEWS, text_classifier(REVIEWS), e5_classifier.predict(REVIEWS), strict=True
    ):
        scores = {entry["label"]: entry["score"] for entry in entries}
        assert scores == pytest.approx(verdict.probabilities, abs=1e-5), text


def test_mixed_lengths_come_back_in_input_order(scratch_classifier: Classifier) -> None:
    # Lengths deliberately out of order so that sorting for batching changes the order.
    texts = [REVIEWS[index] * repeat for index, repeat in zip(range(10), [3, 1, 2, 1, 4, 6, 1, 2, 1, 5])]
    # Keep texts whose probabilities differ by more than twice the comparison tolerance, so that a mix-up in
    # the output order cannot go unnoticed (two reviews can land within 1e-5 of each other by chance).
    distinct: list[tuple[str, dict[str, float]]] = []
    for text in texts:
        probability = scratch_classifier.predict([text])[0].probabilities
        if all(abs(probability["부정"] - p["부정"]) > 2e-5 for _, p in distinct):
            distinct.append((text, probability))
    assert len(distinct) >= 6, "the scratch model gives too many reviews the same probabilities"
    texts = [text for text, _ in distinct]
    one_by_one = [scratch_classifier.predict([text])[0] for text in texts]
    rows = probability_rows(one_by_one)

    for batch_size in (3, 4, 32):
        batched = scratch_classifier.predict(texts, batch_size=batch_size)
        assert_rows_close(probability_rows(batched), rows, tolerance=1e-5)
        assert [verdict.label for verdict in batched] == [verdict.label for verdict in one_by_one]


def test_threads_get_the_same_results_as_sequential_calls(scratch_classifier: Classifier) -> None:
    jobs = [REVIEWS[index:] + REVIEWS[:index] for index in range(8)]
    sequential = [probability_rows(scratch_classifier.predict(texts, batch_size=4)) for texts in jobs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(
            pool.map(lambda texts: probability_rows(scratch_classifier.predict(texts, batch_size=4)), jobs)
        )
    for expected, actual in zip(sequential, threaded, strict=True):
        assert_rows_close(actual, expected, tolerance=1e-5)


@pytest.mark.parametrize("blank", ["", "   ", "\n\t ", "\u200b\u200b", "\x00\x01"])
def test_blank_text_is_rejected_with_its_index(e5_classifier: Classifier, blank: str) -> None:
    with pytest.raises(EmptyTextError, match="index 2") as raised:
        e5_classifier.predict(["좋아요", "싫어요", blank])
    assert raised.value.index == 2


def test_wrong_input_types_get_a_clear_error(e5_classifier: Classifier) -> None:
    with pytest.raises(TypeError, match="not a single str"):
        e5_classifier.predict("좋아요")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="index 1 is int"):
        e5_classifier.predict(["좋아요", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="batch_size"):
        e5_classifier.predict(["좋아요"], batch_size=0)
    assert e5_classifier.predict([]) == []


def test_long_text_is_truncated_and_flagged(e5_classifier: Classifier) -> None:
    long_text = ("배우들 연기가 훌륭했다 " * 800)[:10_000]
    assert len(long_text) == 10_000
    verdicts = e5_classifier.predict(["짧은 리뷰", long_text, "또 짧은 리뷰"])
    assert [verdict.truncated for verdict in verdicts] == [False, True, False]
    assert math.isclose(sum(verdicts[1].probabilities.values()), 1.0, abs_tol=1e-6)


def test_max_length_option_truncates_earlier(e5_classifier_dir) -> None:
    short_window = Classifier.load(e5_classifier_dir, device="cpu", max_length=8)
    assert short_window.max_length == 8
    same_start = REVIEWS[2] + " 그리고 음악도 좋았다"
    short, cut, cut_too = short_window.predict(["좋다", REVIEWS[2], same_start])
    assert [short.truncated, cut.truncated, cut_too.truncated] == [False, True, True]
    # Truncation keeps the first tokens: two texts that only differ after them get the same verdict.
    assert cut.probabilities == cut_too.probabilities
    with pytest.raises(ValueError, match="max_length"):
        Classifier.load(e5_classifier_dir, device="cpu", max_length=100_000)


@pytest.mark.parametrize(
    "text",
    [
        "😀😀😀",
        "👍",
        "This movie was absolutely wonderful",
        "この映画は本当に面白かった",
        "재밌\u200b어요\u200d",  # zero-width space and joiner inside Korean
        "최고\x07의\x1b 영화\r\n",  # control characters
        "<b>좋아요</b> &amp; http://example.com",
    ],
)
def test_unusual_text_is_classified_normally(e5_classifier: Classifier, text: str) -> None:
    [verdict] = e5_classifier.predict([text])
    assert verdict.label in ID2LABEL
    assert verdict.truncated is False
    assert math.isclose(sum(verdict.probabilities.values()), 1.0, abs_tol=1e-6)
    assert 0.5 <= verdict.confidence <= 1.0
