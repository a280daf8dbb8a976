"""Toxicity beside sentiment, through the real python-telegram-bot stack and the stand-in: every review gets both
verdicts, a toxic one is said and can be confirmed or corrected, and each task's labels stay apart."""

from __future__ import annotations

from bot_records import callback_answers, stored_reply_id, verdict_for
from sqlalchemy import select

from bot import storage
from bot.moderation import texts
from bot.storage import Feedback, LabelRule, Task

USER = 1001


def buttons_of(message) -> list[tuple[str, str]]:
    return [
        (b["text"], b["callback_data"]) for row in message["reply_markup"]["inline_keyboard"] for b in row
    ]


async def test_a_toxic_review_is_flagged_and_its_verdict_confirmed_or_corrected(
    start_bot, toxic_everywhere_model_dir
):
    bot = await start_bot(toxicity_model=toxic_everywhere_model_dir)
    message = bot.api.push_message("감독 이 새끼 진짜 죽여버리고 싶네")
    reply = await bot.api.wait_for_reply(message)
    sentiment = await verdict_for(bot, message)
    toxicity = await verdict_for(bot, message, Task.TOXICITY)

    assert toxicity.label_name == "공격적" and toxicity.task is Task.TOXICITY
    assert reply["text"] == (
        texts.VERDICT.format(label=sentiment.label_name, confidence=100.0 * sentiment.confidence)
        + "\n"
        + texts.TOXICITY_LINE.format(label="공격적", confidence=100.0 * toxicity.confidence)
    )
    assert "⚠️ 공격적 표현 (90.9%)" in reply["text"]
    assert buttons_of(reply) == [
        (texts.BUTTON_RIGHT, f"ok:{sentiment.id}"),
        (texts.BUTTON_WRONG, f"wrong:{sentiment.id}"),
        (texts.BUTTON_TOXIC_RIGHT, f"ok:{toxicity.id}"),
        (texts.BUTTON_TOXIC_WRONG, f"wrong:{toxicity.id}"),
    ]
    await stored_reply_id(bot, message)
    assert (await verdict_for(bot, message, Task.TOXICITY)).reply_message_id == reply["message_id"]

    # "⚠️ 아니에요": three labels, so the bot asks which one is right, offering the two others.
    bot.api.push_callback(data=f"wrong:{toxicity.id}", message=reply)
    assert (await callback_answers(bot, 1))[-1] == texts.FEEDBACK_CHOOSE
    await bot.api.wait_until(lambda: len(bot.api.sent(chat_id=USER)) >= 2)
    choice = bot.api.sent(chat_id=USER)[-1]
    assert buttons_of(choice) == [("정상", f"label:{toxicity.id}:0"), ("혐오", f"label:{toxicity.id}:2")]
    bot.api.push_callback(data=f"label:{toxicity.id}:0", message=choice)
    assert (await callback_answers(bot, 2))[-1].startswith(texts.FEEDBACK_RECORDED.format(label="정상"))

    # `/feedback 혐오` names a toxicity label: it labels the toxicity verdict, replying to the one bot message.
    command = bot.api.push_message("/feedback 혐오", reply_to=reply)
    answer = await bot.api.wait_for_reply(command)
    assert answer["text"].startswith(texts.FEEDBACK_RECORDED.format(label="혐오"))
    # `/feedback wrong` is about the review's sentiment, as always.
    wrong = bot.api.push_message("/feedback wrong", reply_to=reply)
    other = {"부정": "긍정", "긍정": "부정"}[sentiment.label_name]
    assert (await bot.api.wait_for_reply(wrong))["text"].startswith(
        texts.FEEDBACK_RECORDED.format(label=other)
    )

    async with bot.session() as session:
        rows = (await session.scalars(select(Feedback).order_by(Feedback.id))).all()
        everyone = LabelRule(trust_everyone=True)
        sentiment_labels = await storage.export_human_labels(session, rule=everyone)
        toxicity_labels = await storage.export_human_labels(session, rule=everyone, task=Task.TOXICITY)
    assert [(row.verdict_id, row.label) for row in rows] == [
        (toxicity.id, 2),
        (sentiment.id, 1 - sentiment.label),
    ]
    assert [(label.verdict_id, label.label) for label in sentiment_labels] == [
        (sentiment.id, 1 - sentiment.label)
    ]
    assert [(label.verdict_id, label.label) for label in toxicity_labels] == [(toxicity.id, 2)]

    # The toxicity "⚠️ 맞아요" confirms 공격적 (the same user's label is replaced, not added).
    bot.api.push_callback(data=f"ok:{toxicity.id}", message=reply)
    assert (await callback_answers(bot, 3))[-1].startswith(texts.FEEDBACK_CONFIRMED.format(label="공격적"))


async def test_a_clean_review_gets_no_warning_and_predict_shows_every_class_of_both_tasks(
    start_bot, clean_everywhere_model_dir
):
    bot = await start_bot(toxicity_model=clean_everywhere_model_dir)
    message = bot.api.push_message("배우들 연기가 훌륭하고 여운이 길게 남는 영화")
    reply = await bot.api.wait_for_reply(message)
    toxicity = await verdict_for(bot, message, Task.TOXICITY)
    assert toxicity.label_name == "정상"  # stored like every verdict, but not said
    assert "⚠️" not in reply["text"] and len(buttons_of(reply)) == 2

    command = bot.api.push_message("/predict 스토리가 엉망이고 지루했다")
    predicted = (await bot.api.wait_for_reply(command))["text"]
    for label in ("부정", "긍정", "정상", "공격적", "혐오"):
        assert f"• {label}: " in predicted
    assert texts.PROBABILITIES_HEADER in predicted and texts.TOXICITY_PROBABILITIES_HEADER in predicted

    model = (await bot.api.wait_for_reply(bot.api.push_message("/model")))["text"]
    assert texts.TOXICITY_MODEL_INFO_HEADER + "#2 (사용 중)" in model


async def test_without_a_toxicity_model_reviews_get_sentiment_and_toxicity_labels_are_refused(start_bot):
    bot = await start_bot()
    message = bot.api.push_message("스토리가 엉망이고 지루했다")
    reply = await bot.api.wait_for_reply(message)
    assert await verdict_for(bot, message, Task.TOXICITY) is None and len(buttons_of(reply)) == 2
    command = bot.api.push_message("/feedback 혐오", reply_to=reply)
    assert (await bot.api.wait_for_reply(command))["text"] == texts.FEEDBACK_NO_TASK_VERDICT.format(
        label="혐오"
    )
    model = (await bot.api.wait_for_reply(bot.api.push_message("/model")))["text"]
    assert texts.TOXICITY_MODEL_INFO_HEADER + texts.TOXICITY_MODEL_NONE in model


async def test_a_failing_toxicity_model_never_keeps_sentiment_from_answering(
    start_bot, toxic_everywhere_model_dir, monkeypatch
):
    bot = await start_bot(toxicity_model=toxic_everywhere_model_dir)
    toxicity = bot.moderation.toxicity.serving.active.classifier

    def broken(texts, **kwargs):
        raise RuntimeError("onnxruntime: out of memory")  # what a runtime failure looks like to the batcher

    monkeypatch.setattr(toxicity, "predict", broken)
    message = bot.api.push_message("스토리가 엉망이고 지루했다")
    reply = await bot.api.wait_for_reply(message)
    sentiment = await verdict_for(bot, message)
    assert reply["text"] == texts.VERDICT.format(
        label=sentiment.label_name, confidence=100.0 * sentiment.confidence
    )
    assert len(buttons_of(reply)) == 2 and await verdict_for(bot, message, Task.TOXICITY) is None

    monkeypatch.undo()  # it recovers: the next review gets both verdicts again
    second = bot.api.push_message("배우들 연기가 훌륭하고 여운이 길게 남는 영화")
    assert "⚠️" in (await bot.api.wait_for_reply(second))["text"]
    assert (await verdict_for(bot, second, Task.TOXICITY)).label_name == "공격적"


async def test_an_admin_rolls_the_toxicity_model_back_without_touching_sentiment(
    start_bot, toxic_everywhere_model_dir, clean_everywhere_model_dir
):
    from bot_identity import ADMIN_ID

    from classifier import Classifier

    bot = await start_bot(toxicity_model=toxic_everywhere_model_dir)
    first = bot.moderation.toxicity.serving.active.version_id
    async with bot.session() as session:  # a promotion of a version that calls everything 정상
        second = await storage.register_model_version(
            session,
            path=str(clean_everywhere_model_dir),
            base_checkpoint="test",
            metrics=None,
            task=Task.TOXICITY,
        )
        await storage.activate_model_version(session, version_id=second.id)
    bot.moderation.toxicity.serving.swap(Classifier.load(clean_everywhere_model_dir), second.id)
    admin = {"user_id": ADMIN_ID, "chat_id": ADMIN_ID}

    usage = await bot.api.wait_for_reply(bot.api.push_message("/rollback 아무거나", **admin))
    assert usage["text"] == texts.ROLLBACK_USAGE
    rolled = await bot.api.wait_for_reply(bot.api.push_message("/rollback 표현", **admin))
    assert rolled["text"] == texts.ROLLBACK_DONE.format(
        task="표현(정상/공격적/혐오)", old=second.id, new=first
    )
    async with bot.session() as session:
        assert (await storage.get_active_model_version(session, task=Task.TOXICITY)).id == first
        assert (await storage.get_active_model_version(session)).id == bot.version_id
    assert bot.moderation.toxicity.serving.active.version_id == first
    assert bot.moderation.serving.active.version_id == bot.version_id
    flagged = await bot.api.wait_for_reply(bot.api.push_message("감독 이 새끼 진짜 죽여버리고 싶네"))
    assert "⚠️ 공격적 표현" in flagged["text"]  # served by the version rolled back to
