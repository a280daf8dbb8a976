"""ServingModel and MicroBatcher with the real classifier."""

from __future__ import annotations

import asyncio
import threading

import pytest

from bot.serving import MicroBatcher, NoActiveModelError, ServingModel
from classifier.errors import EmptyTextError

REVIEWS = [f"리뷰 {i}: {'재밌어요' if i % 2 else '지루해요'}" for i in range(24)]


class CountingClassifier:
    """The real classifier, counting predict calls; `gate` (when set) holds predictions until released."""

    def __init__(self, inner, gate: threading.Event | None = None) -> None:
        self.inner = inner
        self.id2label = inner.id2label
        self.path = inner.path
        self.batches: list[int] = []
        self.gate = gate
        self.started = threading.Event()

    def predict(self, texts, *, batch_size=32):
        self.batches.append(len(texts))
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(30)
        return self.inner.predict(texts, batch_size=batch_size)


async def test_concurrent_texts_are_predicted_in_few_batches_with_the_same_results(bot_classifier):
    counting = CountingClassifier(bot_classifier)
    batcher = MicroBatcher(ServingModel(counting, 7), window_ms=20, max_batch=64)
    try:
        results = await asyncio.gather(*(batcher.classify(text) for text in REVIEWS))
    finally:
        await batcher.aclose()
    assert sum(counting.batches) == len(REVIEWS) and len(counting.batches) < len(REVIEWS) // 2
    alone = bot_classifier.predict(REVIEWS)
    for (verdict, version), expected in zip(results, alone, strict=True):
        assert version == 7
        assert verdict.label == expected.label
        assert verdict.confidence == pytest.approx(expected.confidence, abs=1e-4)


async def test_batching_off_predicts_each_text_alone(bot_classifier):
    counting = CountingClassifier(bot_classifier)
    batcher = MicroBatcher(ServingModel(counting, 1), window_ms=0, max_batch=64)
    await asyncio.gather(*(batcher.classify(text) for text in REVIEWS[:6]))
    await batcher.aclose()
    assert counting.batches == [1] * 6


async def test_max_batch_bounds_every_batch(bot_classifier):
    counting = CountingClassifier(bot_classifier)
    batcher = MicroBatcher(ServingModel(counting, 1), window_ms=50, max_batch=4)
    await asyncio.gather(*(batcher.classify(text) for text in REVIEWS[:10]))
    await batcher.aclose()
    assert max(counting.batches) <= 4 and sum(counting.batches) == 10


async def test_swap_lets_in_flight_batches_finish_on_the_old_model(bot_classifier):
    gate = threading.Event()
    old = CountingClassifier(bot_classifier, gate=gate)
    new = CountingClassifier(bot_classifier)
    serving = ServingModel(old, 1)
    batcher = MicroBatcher(serving, window_ms=1, max_batch=8)
    in_flight = asyncio.gather(*(batcher.classify(text) for text in REVIEWS[:3]))
    assert await asyncio.to_thread(old.started.wait, 10)
    serving.swap(new, 2)
    gate.set()
    old_results = await in_flight
    new_result = await batcher.classify("새 모델이 답해요")
    await batcher.aclose()
    assert [version for _, version in old_results] == [1, 1, 1]
    assert new_result[1] == 2 and new.batches == [1]


async def test_a_bad_text_fails_alone_and_empty_or_unloaded_is_refused(bot_classifier):
    batcher = MicroBatcher(ServingModel(bot_classifier, 1), window_ms=20, max_batch=8)
    good, bad = await asyncio.gather(
        batcher.classify("좋은 영화"), batcher.classify("\u200b\u200b"), return_exceptions=True
    )
    assert isinstance(bad, EmptyTextError) and good[1] == 1
    with pytest.raises(EmptyTextError):
        await batcher.classify("   ")
    await batcher.aclose()
    empty = MicroBatcher(ServingModel(), window_ms=5, max_batch=8)
    with pytest.raises(NoActiveModelError):
        await empty.classify("모델이 없어요")
    await empty.aclose()


async def test_an_invisible_text_is_refused_at_the_edge_and_never_fails_its_batchmates(
    bot_classifier, caplog
):
    """Zero-width characters only: the batcher applies the classifier's own emptiness rule before batching, so the
    batch it would have joined is predicted in one go, not retried text by text."""
    counting = CountingClassifier(bot_classifier)
    batcher = MicroBatcher(ServingModel(counting, 3), window_ms=30, max_batch=64)
    invisible = "\u200b\u200c\u200d\ufeff\u2060"
    try:
        results = await asyncio.gather(
            *(batcher.classify(text) for text in [*REVIEWS[:8], invisible, *REVIEWS[8:16]]),
            return_exceptions=True,
        )
    finally:
        await batcher.aclose()
    assert isinstance(results[8], EmptyTextError)
    assert all(not isinstance(result, BaseException) for index, result in enumerate(results) if index != 8)
    assert sum(counting.batches) == 16 and 1 not in counting.batches  # no one-by-one retries
    assert "failed; retrying texts one by one" not in caplog.text


class CyclicModel:
    """A stand-in for a model whose objects form a reference cycle (only the cyclic collector frees it)."""

    def __init__(self) -> None:
        self.path = "cyclic"
        self.itself = self


def test_a_swap_freezes_the_served_heap_and_still_frees_the_swapped_out_models_cycles():
    import gc
    import weakref

    serving = ServingModel()
    first = CyclicModel()
    first_alive = weakref.ref(first)
    serving.swap(first, 1)  # type: ignore[arg-type]
    del first
    assert gc.get_freeze_count() > 0  # the collector no longer walks the long-lived heap
    assert first_alive() is not None  # still served
    serving.swap(CyclicModel(), 2)  # type: ignore[arg-type]
    assert first_alive() is None, "the swapped-out model's cycle was frozen forever"
    gc.unfreeze()
