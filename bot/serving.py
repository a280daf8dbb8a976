"""Serving: the active classifier (hot-swappable) and a micro-batcher in front of it.

Inference is CPU-bound, so it always runs in a worker thread; the event loop only queues texts
and hands out results.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from classifier.errors import EmptyTextError
from classifier.text import has_visible_text

if TYPE_CHECKING:
    from bot.settings import Settings
    from classifier import Classifier, Verdict

logger = logging.getLogger(__name__)


class NoActiveModelError(RuntimeError):
    """Serving was asked to classify before any model was loaded."""


@dataclass(frozen=True)
class ActiveModel:
    classifier: Classifier
    version_id: int | None


class ServingModel:
    """Holds the active classifier and the id of the model version it was loaded from.

    `swap` replaces both in one assignment, so a batch that already took the old pair finishes on it.
    """

    def __init__(self, classifier: Classifier | None = None, version_id: int | None = None) -> None:
        self._active: ActiveModel | None = None if classifier is None else ActiveModel(classifier, version_id)

    @property
    def active(self) -> ActiveModel:
        active = self._active
        if active is None:
            raise NoActiveModelError("no model is loaded")
        return active

    @property
    def is_loaded(self) -> bool:
        return self._active is not None

    def swap(self, classifier: Classifier, version_id: int | None) -> None:
        self._active = ActiveModel(classifier, version_id)
        logger.info("serving model version %s from %s", version_id, classifier.path)
        freeze_long_lived_objects()


def freeze_long_lived_objects() -> None:
    """Keep the cyclic garbage collector off the served models and the libraries behind them.

    They are a heap of long-lived objects that every full collection walked again: in the web app, every third
    page or so paused ~200 ms for it (bench/bench_web.py). Frozen (`gc.freeze`), collections skip them. The
    objects frozen before are thawed and collected first, so a swapped-out model's cycles are still freed."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def load_serving_classifier(path: str | Path, settings: Settings) -> Classifier:
    """The classifier exactly as the bot serves it. Blocking.

    Every place that predicts for users or judges a model (the bot, `moderator predict`, the promotion gate,
    rollback) loads through here, so they all see the same numbers.
    """
    from bot.model_store import local_version_path
    from classifier import Classifier

    # The same switch as `moderator predict --quantize`: both load through Classifier.load(quantize=...).
    return Classifier.load(local_version_path(path, settings), quantize=settings.fast_inference)


# The calibration sample of the static int8 fast path, as the caller passes it: the texts, or a function that reads
# `count` of them (called only when the fast path has to be built), or None (no data: served in torch fp32).
CalibrationTexts = Sequence[str] | Callable[[int], Sequence[str] | None] | None


def prepare_model_version(
    path: str | Path, settings: Settings, *, calibration_texts: CalibrationTexts
) -> Classifier:
    """Make a model version directory ready to serve, then prove it can: blocking, run once per version when it
    is imported or promoted (never at every start-up).

    Builds whatever the serving path needs beyond the trainer's files (with FAST_INFERENCE, the static int8 ONNX
    file, calibrated on `calibration_texts`: the caller knows the data, e.g.
    `functools.partial(bot.retraining.dataset.calibration_texts, settings)`), loads the version as it will be
    served and runs a trial prediction. Raises `ModelDirError` (nothing changed elsewhere) when it cannot serve.
    A version published to MODEL_STORE_URL and not on this host is copied here first (bot/model_store.py).
    """
    from bot.model_store import local_version_path

    path = local_version_path(path, settings)
    if settings.fast_inference:
        from classifier import fastpath

        try:
            up_to_date, _ = fastpath.fast_path_status(Path(path), fastpath.FAST_BACKEND)
            if not up_to_date:  # an up-to-date artefact is reused, never rebuilt
                texts = (
                    calibration_texts(fastpath.CALIBRATION_SIZE)
                    if callable(calibration_texts)
                    else calibration_texts
                )
                fastpath.build_fast_path(Path(path), calibration_texts=texts)
        except fastpath.FastPathError as error:
            # The version still serves (torch fp32, which load_serving_classifier logs); do not refuse it.
            logger.warning(
                "could not build the fast path of %s (%s); it is served in torch fp32", path, error
            )
    classifier = load_serving_classifier(path, settings)
    classifier.self_check()
    return classifier


def serving_tag(settings: Settings) -> str:
    """A short name for how models are served (the gate caches each version's answers per tag)."""
    from classifier.fastpath import FAST_BACKEND

    return FAST_BACKEND if settings.fast_inference else "torch"


async def load_classifier(path: str | Path, *, settings: Settings) -> Classifier:
    """`load_serving_classifier` off the event loop."""
    return await asyncio.to_thread(load_serving_classifier, path, settings)


@dataclass(frozen=True)
class TaskServing:
    """One task's served model and the micro-batcher in front of it."""

    serving: ServingModel
    batcher: MicroBatcher


@dataclass
class _Pending:
    text: str
    future: asyncio.Future[tuple[Verdict, int | None]]


class MicroBatcher:
    """Collects concurrent `classify` calls for up to `window_ms` and predicts them as one batch.

    One worker thread runs the batches one after another: while a batch is being predicted, new
    texts queue up and form the next batch, so throughput grows with load. `window_ms=0` turns
    batching off: every text is predicted alone (the baseline for the benchmark).
    """

    def __init__(self, serving: ServingModel, *, window_ms: float, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._serving = serving
        self._window_s = max(window_ms, 0.0) / 1000.0
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")

    @property
    def batching(self) -> bool:
        return self._window_s > 0 and self._max_batch > 1

    async def classify(self, text: str) -> tuple[Verdict, int | None]:
        """The verdict for `text` and the id of the model version that produced it."""
        if not has_visible_text(text):  # the classifier's own emptiness rule, checked before batching
            raise EmptyTextError(0)
        if not self.batching:
            active = self._serving.active
            (verdict,) = await self._run_in_worker(active.classifier, [text])
            return verdict, active.version_id
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._batch_loop(), name="micro-batcher")
        assert self._queue is not None
        future: asyncio.Future[tuple[Verdict, int | None]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(text, future))
        return await future

    async def aclose(self) -> None:
        """Stop the batch loop; texts still waiting get a RuntimeError instead of hanging."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None
        if self._queue is not None:
            while not self._queue.empty():
                pending = self._queue.get_nowait()
                if not pending.future.done():
                    pending.future.set_exception(RuntimeError("the classifier is shutting down"))
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run_in_worker(self, classifier: Classifier, texts: list[str]) -> list[Verdict]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: classifier.predict(texts))

    async def _batch_loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self._window_s
            while len(batch) < self._max_batch:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            # Whatever else arrived meanwhile rides along, up to the batch limit.
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._predict_batch(batch)

    async def _predict_batch(self, batch: list[_Pending]) -> None:
        batch = [pending for pending in batch if not pending.future.done()]  # skip cancelled callers
        if not batch:
            return
        try:
            active = self._serving.active  # taken once: the whole batch runs on one model version
        except NoActiveModelError as exc:
            for pending in batch:
                pending.future.set_exception(exc)
            return
        try:
            verdicts = await self._run_in_worker(active.classifier, [pending.text for pending in batch])
        except Exception as exc:
            if len(batch) == 1:
                if not batch[0].future.done():
                    batch[0].future.set_exception(exc)
                return
            # One bad text must not fail its neighbours: retry them one by one.
            logger.warning("batch of %d failed; retrying texts one by one", len(batch), exc_info=True)
            for pending in batch:
                await self._predict_batch([pending])
            return
        for pending, verdict in zip(batch, verdicts, strict=True):
            if not pending.future.done():
                pending.future.set_result((verdict, active.version_id))
