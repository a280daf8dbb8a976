"""Hot swap under traffic: every message gets exactly one verdict, recorded with the version that produced it."""

from __future__ import annotations

import asyncio

import pytest
from retraining_helpers import activate_version, make_settings, wait_for
from sqlalchemy import func, select
from version_copies import copy_with_head

from bot import versions
from bot.serving import MicroBatcher, ServingModel
from bot.storage import Verdict, add_verdict, get_active_model_version


def shifted_copy(source, target, *, bias_shift: float):
    """A second, visibly different model: the same weights with the classifier bias moved."""

    def shift(weights: dict) -> None:
        weights["classifier.bias"] = weights["classifier.bias"] + weights["classifier.bias"].new_tensor(
            [bias_shift, -bias_shift]
        )

    return copy_with_head(source, target, shift)


async def test_swap_while_messages_keep_arriving(tmp_path, session_factory, scratch_model_dir):
    from classifier import Classifier

    shifted_dir = shifted_copy(scratch_model_dir, tmp_path / "shifted", bias_shift=0.7)
    shifted_version = await activate_version(session_factory, shifted_dir)
    original_version = await activate_version(
        session_factory, scratch_model_dir
    )  # previous = the shifted one
    models = {
        original_version: Classifier.load(scratch_model_dir),
        shifted_version: Classifier.load(shifted_dir),
    }

    serving = ServingModel(models[original_version], original_version)
    batcher = MicroBatcher(serving, window_ms=5, max_batch=16)
    settings = make_settings(tmp_path)
    sent: list[tuple[int, str]] = []
    stop = asyncio.Event()

    async def user(user_id: int) -> None:
        message_id = user_id * 100_000
        while not stop.is_set():
            message_id += 1
            text = f"배우 연기가 {message_id % 97}점 정도였던 영화"
            sent.append((message_id, text))
            verdict, version_id = await batcher.classify(text)
            async with session_factory() as session, session.begin():
                await add_verdict(
                    session,
                    chat_id=7,
                    message_id=message_id,
                    user_id=user_id,
                    text=text,
                    label=verdict.label,
                    label_name=verdict.label_name,
                    confidence=verdict.confidence,
                    probabilities=verdict.probabilities,
                    model_version_id=version_id,
                )

    async def verdicts_of(version_id: int) -> int:
        async with session_factory() as session:
            return await session.scalar(
                select(func.count()).select_from(Verdict).where(Verdict.model_version_id == version_id)
            )

    users = [asyncio.create_task(user(user_id)) for user_id in (1, 2, 3, 4)]
    try:
        await wait_for(lambda: _at_least(verdicts_of(original_version), 20))
        rolled_back = await versions.rollback(session_factory, settings, actor=1)
        serving.swap(rolled_back.classifier, rolled_back.version.id)  # while the users keep writing
        assert rolled_back.version.id == shifted_version
        await wait_for(lambda: _at_least(verdicts_of(shifted_version), 20))
    finally:
        stop.set()
        await asyncio.gather(*users)
        await batcher.aclose()

    async with session_factory() as session:
        rows = (await session.scalars(select(Verdict).where(Verdict.chat_id == 7))).all()
        active = await get_active_model_version(session)
    assert active.id == shifted_version and serving.active.version_id == shifted_version
    # Exactly one verdict per message, none lost, none doubled.
    assert sorted(row.message_id for row in rows) == sorted(message_id for message_id, _ in sent)
    texts = [row.text for row in rows]
    expected = {version: model.predict(texts) for version, model in models.items()}
    for index, row in enumerate(rows):
        produced = expected[row.model_version_id][index].probabilities
        other = expected[shifted_version if row.model_version_id == original_version else original_version][
            index
        ].probabilities
        for name, probability in row.probabilities.items():
            assert probability == pytest.approx(produced[name], abs=1e-4), (
                row.message_id,
                row.model_version_id,
            )
        assert any(abs(row.probabilities[name] - other[name]) > 1e-3 for name in other)


async def _at_least(count_coroutine, minimum: int) -> bool:
    return await count_coroutine >= minimum


async def test_rollback_without_a_previous_version_is_refused(tmp_path, session_factory, scratch_model_dir):
    await activate_version(session_factory, scratch_model_dir)
    with pytest.raises(versions.VersionError, match="no earlier model version"):
        await versions.rollback(session_factory, make_settings(tmp_path), actor=1)
