"""Verdicts: recording, idempotency, lookups, and rejection of bad data without partial rows."""

from __future__ import annotations

from datetime import UTC

import pytest
from storage_helpers import count_rows, insert_verdict, verdict_fields

from bot.storage import (
    InvalidDataError,
    add_verdict,
    find_verdict_by_message,
    latest_verdict_for_user,
    register_model_version,
    set_reply_message_id,
)
from bot.storage.models import Verdict


async def test_add_verdict_stores_every_field(session_factory):
    async with session_factory() as session, session.begin():
        version = await register_model_version(
            session, path="models/v1", base_checkpoint="base", metrics=None
        )
    verdict = await insert_verdict(session_factory, model_version_id=version.id, user_id=7)

    async with session_factory() as session:
        stored = await session.get(Verdict, verdict.id)
    assert stored.chat_id == -1001234567890
    assert stored.user_id == 7
    assert stored.text == "배우들 연기가 정말 좋았어요"
    assert stored.text_length == len("배우들 연기가 정말 좋았어요")
    assert (stored.label, stored.label_name) == (1, "긍정")
    assert stored.confidence == pytest.approx(0.8)
    assert stored.probabilities == {"부정": pytest.approx(0.2), "긍정": pytest.approx(0.8)}
    assert stored.model_version_id == version.id
    assert stored.created_at.tzinfo is not None and stored.created_at.utcoffset() == UTC.utcoffset(None)
    assert stored.text_purged_at is None


async def test_add_verdict_is_idempotent_per_chat_message(session_factory):
    first = await insert_verdict(session_factory, message_id=5, label=1, label_name="긍정")
    again = await insert_verdict(session_factory, message_id=5, label=0, label_name="부정", text="다른 글")
    other_chat = await insert_verdict(session_factory, message_id=5, chat_id=99)

    assert again.id == first.id
    assert again.label == 1 and again.text == first.text  # the existing row, unchanged
    assert other_chat.id != first.id
    assert await count_rows(session_factory, Verdict) == 2


@pytest.mark.parametrize(
    ("overrides", "message_part"),
    [
        ({"text": "가" * 101}, "limit is 100"),
        ({"label": 2}, "Unknown label 2"),
        ({"label": -1}, "Unknown label -1"),
        ({"label_name": "중립"}, "Unknown label name"),
        ({"confidence": 1.5}, "Confidence must be between 0 and 1"),
        ({"confidence": float("nan")}, "Confidence must be between 0 and 1"),
        ({"probabilities": {}}, "probability of every label"),
    ],
)
async def test_bad_verdicts_are_rejected_without_partial_rows(session_factory, overrides, message_part):
    with pytest.raises(InvalidDataError, match=message_part):
        async with session_factory() as session, session.begin():
            await add_verdict(session, **verdict_fields(**overrides), max_text_length=100)
    assert await count_rows(session_factory, Verdict) == 0


async def test_text_at_the_limit_is_accepted(session_factory):
    async with session_factory() as session, session.begin():
        verdict = await add_verdict(session, **verdict_fields(text="가" * 100), max_text_length=100)
    assert verdict.text_length == 100


async def test_a_rejected_verdict_leaves_the_callers_other_writes_intact(session_factory):
    async with session_factory() as session, session.begin():
        await add_verdict(session, **verdict_fields(message_id=1))
        with pytest.raises(InvalidDataError):
            await add_verdict(session, **verdict_fields(message_id=2, label=9))
        await add_verdict(session, **verdict_fields(message_id=3))
    assert await count_rows(session_factory, Verdict) == 2


async def test_find_verdict_by_message_or_by_the_bots_reply(session_factory):
    verdict = await insert_verdict(session_factory, message_id=10)
    async with session_factory() as session, session.begin():
        await set_reply_message_id(session, verdict_id=verdict.id, reply_message_id=11)

    async with session_factory() as session:
        by_message = await find_verdict_by_message(session, chat_id=verdict.chat_id, message_id=10)
        by_reply = await find_verdict_by_message(session, chat_id=verdict.chat_id, message_id=11)
        other_chat = await find_verdict_by_message(session, chat_id=1, message_id=10)
        unknown = await find_verdict_by_message(session, chat_id=verdict.chat_id, message_id=12)
    assert by_message.id == verdict.id
    assert by_reply.id == verdict.id and by_reply.reply_message_id == 11
    assert other_chat is None and unknown is None


async def test_set_reply_message_id_on_a_missing_verdict_is_a_clear_error(session_factory):
    with pytest.raises(InvalidDataError, match="Verdict 999 does not exist"):
        async with session_factory() as session, session.begin():
            await set_reply_message_id(session, verdict_id=999, reply_message_id=1)


async def test_latest_verdict_for_user(session_factory):
    await insert_verdict(session_factory, message_id=1, user_id=5)
    newest = await insert_verdict(session_factory, message_id=2, user_id=5)
    await insert_verdict(session_factory, message_id=3, user_id=6)
    await insert_verdict(session_factory, message_id=4, user_id=5, chat_id=77)

    async with session_factory() as session:
        latest = await latest_verdict_for_user(session, chat_id=newest.chat_id, user_id=5)
        nobody = await latest_verdict_for_user(session, chat_id=newest.chat_id, user_id=8)
    assert latest.id == newest.id
    assert nobody is None
