"""The real Application against the Bot API stand-in, with a real SQLite file and a real classifier."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re

import pytest
from bot_identity import ADMIN_ID, TOKEN
from bot_records import VERDICT_RE, callback_answers, count, stored_reply_id, verdict_for
from fake_telegram import Fault
from sqlalchemy import select, text

from bot import storage
from bot.moderation import texts
from bot.storage import (
    Feedback,
    OutboxMessage,
    OutboxStatus,
    RunStatus,
    RunTrigger,
    Task,
    TrainingRun,
    Verdict,
)

USER = 1001


async def test_text_message_is_classified_stored_and_answered_with_buttons(start_bot):
    bot = await start_bot()
    message = bot.api.push_message("이 영화 정말 재밌어요 배우 연기가 최고")
    reply = await bot.api.wait_for_reply(message)

    assert VERDICT_RE.match(reply["text"]), reply["text"]
    verdict = await verdict_for(bot, message)
    assert verdict is not None
    assert verdict.text == message["text"] and verdict.user_id == USER
    assert verdict.model_version_id == bot.version_id
    assert reply["text"].startswith(f"{verdict.label_name} 리뷰 ({100 * verdict.confidence:.1f}%)")
    buttons = reply["reply_markup"]["inline_keyboard"][0]
    assert [b["text"] for b in buttons] == [texts.BUTTON_RIGHT, texts.BUTTON_WRONG]
    assert [b["callback_data"] for b in buttons] == [f"ok:{verdict.id}", f"wrong:{verdict.id}"]
    assert await stored_reply_id(bot, message) == reply["message_id"]
    async with bot.session() as session:  # replies to the bot's message find the verdict
        found = await storage.find_verdict_by_message(session, chat_id=USER, message_id=reply["message_id"])
        assert found is not None and found.id == verdict.id
    assert bot.api.calls("setMyCommands") and bot.api.calls("getMe")


async def test_buttons_and_feedback_command_record_the_other_label_once(start_bot):
    bot = await start_bot()
    message = bot.api.push_message("스토리가 엉망이고 지루했다")
    reply = await bot.api.wait_for_reply(message)
    verdict = await verdict_for(bot, message)
    other = 1 - verdict.label
    other_name = bot.moderation.serving.active.classifier.id2label[other]

    bot.api.push_callback(data=f"ok:{verdict.id}", message=reply)
    verdict_name = bot.moderation.serving.active.classifier.id2label[verdict.label]
    waits = " " + texts.LABEL_WAITS_FOR_REVIEWER
    assert (await callback_answers(bot, 1))[-1] == texts.FEEDBACK_CONFIRMED.format(label=verdict_name) + waits
    assert await count(bot, Feedback) == 1  # 맞아요 is a confirmation; 틀렸어요 next replaces it

    bot.api.push_callback(data=f"wrong:{verdict.id}", message=reply)
    assert (await callback_answers(bot, 2))[-1] == texts.FEEDBACK_RECORDED.format(label=other_name) + waits
    async with bot.session() as session:
        rows = (await session.scalars(select(Feedback))).all()
    assert [(r.verdict_id, r.user_id, r.label, r.is_admin) for r in rows] == [
        (verdict.id, USER, other, False)
    ]

    # the same correction again, as a reply to the bot's verdict: idempotent
    command = bot.api.push_message("/feedback wrong", reply_to=reply)
    assert (await bot.api.wait_for_reply(command))["text"] == texts.FEEDBACK_ALREADY.format(label=other_name)
    # ... and as a reply to the original message, by label name
    command = bot.api.push_message(f"/feedback {other_name}", reply_to=message)
    assert (await bot.api.wait_for_reply(command))["text"] == texts.FEEDBACK_ALREADY.format(label=other_name)
    assert await count(bot, Feedback) == 1

    # a forged button for a verdict of another chat does nothing
    bot.api.push_callback(
        data=f"wrong:{verdict.id}", message={**reply, "chat": {"id": 77, "type": "private"}}, user_id=77
    )
    assert (await callback_answers(bot, 3))[-1] == texts.FEEDBACK_NOT_YOURS
    assert await count(bot, Feedback) == 1


async def test_feedback_without_reply_uses_the_latest_verdict_and_explains_mistakes(start_bot):
    bot = await start_bot()
    nothing_yet = bot.api.push_message("/feedback wrong", user_id=7, chat_id=7)
    assert (await bot.api.wait_for_reply(nothing_yet))["text"] == texts.FEEDBACK_NO_VERDICT

    first = bot.api.push_message("첫 번째 리뷰 괜찮았어요")
    await bot.api.wait_for_reply(first)
    second = bot.api.push_message("두 번째 리뷰 별로였어요")
    await bot.api.wait_for_reply(second)
    usage = bot.api.push_message("/feedback")
    assert (await bot.api.wait_for_reply(usage))["text"] == texts.FEEDBACK_USAGE
    unknown = bot.api.push_message("/feedback 중립")
    assert "중립" in (await bot.api.wait_for_reply(unknown))["text"]
    command = bot.api.push_message("/feedback wrong")
    assert "기록했어요" in (await bot.api.wait_for_reply(command))["text"]

    latest = await verdict_for(bot, second)
    async with bot.session() as session:
        rows = (await session.scalars(select(Feedback))).all()
    assert [(r.verdict_id, r.label) for r in rows] == [(latest.id, 1 - latest.label)]


async def test_feedback_rate_limit_refuses_politely(start_bot):
    bot = await start_bot(feedback_rate_limit_per_hour=2)
    answers = []
    for i in range(3):
        message = bot.api.push_message(f"리뷰 번호 {i} 입니다")
        reply = await bot.api.wait_for_reply(message)
        command = bot.api.push_message("/feedback wrong", reply_to=reply)
        answers.append((await bot.api.wait_for_reply(command))["text"])
    assert "기록했어요" in answers[0] and "기록했어요" in answers[1]
    assert answers[2] == texts.FEEDBACK_RATE_LIMITED.format(limit=2)
    assert await count(bot, Feedback) == 2


async def test_predict_shows_every_probability_for_text_or_a_replied_message(start_bot):
    bot = await start_bot()
    command = bot.api.push_message("/predict 배우들 연기가 훌륭했다")
    reply = await bot.api.wait_for_reply(command)
    assert VERDICT_RE.match(reply["text"]) and texts.PROBABILITIES_HEADER in reply["text"]
    assert re.search(r"• 부정: \d+\.\d%", reply["text"]) and re.search(r"• 긍정: \d+\.\d%", reply["text"])
    stored = await verdict_for(bot, command)
    assert stored is not None and stored.text == "배우들 연기가 훌륭했다"
    assert sum(stored.probabilities.values()) == pytest.approx(1.0, abs=1e-4)

    original = {  # a message the bot never saw (e.g. sent before it joined)
        "message_id": 7,
        "date": 1,
        "chat": {"id": USER, "type": "private"},
        "text": "돈이 아까운 영화",
        "from": {"id": 55, "is_bot": False, "first_name": "u55"},
    }
    command = bot.api.push_message("/predict", reply_to=original)
    reply = await bot.api.wait_for_reply(command)
    assert texts.PROBABILITIES_HEADER in reply["text"]
    stored = await verdict_for(bot, original)
    assert stored is not None and stored.text == "돈이 아까운 영화" and stored.user_id == 55

    usage = bot.api.push_message("/predict")
    assert (await bot.api.wait_for_reply(usage))["text"] == texts.PREDICT_USAGE


async def test_group_messages_are_judged_silently_and_answered_only_when_addressed_to_the_bot(start_bot):
    bot = await start_bot()
    group = {"chat_id": -100500, "chat_type": "supergroup"}
    unaddressed = bot.api.push_message("그냥 우리끼리 하는 얘기", **group)
    mention = bot.api.push_message("@review_mod_bot 이 영화 최악이에요", **group)
    reply = await bot.api.wait_for_reply(mention)
    assert VERDICT_RE.match(reply["text"])
    assert (await verdict_for(bot, mention)).text == "이 영화 최악이에요"
    to_bot = bot.api.push_message("이건 어때요 정말 좋아요", reply_to=reply, **group)
    await bot.api.wait_for_reply(to_bot)
    # Watched (the default policy): judged and stored, never answered.
    for _ in range(100):
        if await verdict_for(bot, unaddressed) is not None:
            break
        await asyncio.sleep(0.05)
    assert (await verdict_for(bot, unaddressed)).text == "그냥 우리끼리 하는 얘기"
    assert not bot.api.replies_to(unaddressed)
    assert await count(bot, Verdict) == 3


async def test_a_group_whose_policy_is_off_is_not_watched(start_bot):
    bot = await start_bot()
    group = {"chat_id": -100501, "chat_type": "supergroup"}
    bot.api.set_member(-100501, 1001, "creator")
    off = bot.api.push_message("/settings mode off", **group)
    assert (await bot.api.wait_for_reply(off))["text"].startswith("✅")
    unaddressed = bot.api.push_message("그냥 우리끼리 하는 얘기", **group)
    mention = bot.api.push_message("@review_mod_bot 이 영화 최악이에요", **group)
    assert VERDICT_RE.match((await bot.api.wait_for_reply(mention))["text"])  # still answers when asked
    assert await verdict_for(bot, unaddressed) is None and not bot.api.replies_to(unaddressed)


async def test_stats_model_help(start_bot):
    bot = await start_bot()
    for review in ("좋아요 추천합니다", "별로예요 비추"):
        await bot.api.wait_for_reply(bot.api.push_message(review))
    correction = bot.api.push_message("/feedback wrong")
    await bot.api.wait_for_reply(correction)

    stats = (await bot.api.wait_for_reply(bot.api.push_message("/stats")))["text"]
    assert "판정: 2건" in stats and "정정: 1건" in stats and "50.0%" in stats
    assert f"#{bot.version_id}" in stats
    model = (await bot.api.wait_for_reply(bot.api.push_message("/model")))["text"]
    assert model.startswith(texts.MODEL_INFO_HEADER) and f"#{bot.version_id}" in model and "50.0%" in model
    for command in ("/start", "/help"):
        assert (await bot.api.wait_for_reply(bot.api.push_message(command)))["text"] == texts.HELP


async def test_admin_commands_are_refused_to_others_and_logged(start_bot, caplog):
    bot = await start_bot()
    for command in ("/retrain", "/runs", "/rollback", "/void 5"):
        reply = await bot.api.wait_for_reply(bot.api.push_message(command, user_id=31337, chat_id=31337))
        assert reply["text"] == texts.ADMIN_ONLY
    assert await count(bot, TrainingRun) == 0
    refusals = [r.getMessage() for r in caplog.records if "non-admin user 31337" in r.getMessage()]
    assert len(refusals) == 4


async def test_admin_retrain_runs_void_and_rollback(start_bot, bot_model_dir):
    bot = await start_bot()
    admin = {"user_id": ADMIN_ID, "chat_id": ADMIN_ID}
    reply = await bot.api.wait_for_reply(bot.api.push_message("/retrain", **admin))
    async with bot.session() as session:
        run = await storage.last_training_run(session)
    assert (run.status, run.trigger, run.requested_by) == (RunStatus.QUEUED, RunTrigger.ADMIN, ADMIN_ID)
    assert reply["text"] == texts.RETRAIN_QUEUED.format(run_id=run.id, task="감성(긍정/부정)")
    again = await bot.api.wait_for_reply(bot.api.push_message("/retrain", **admin))
    assert again["text"] == texts.RETRAIN_ALREADY.format(run_id=run.id)
    assert await count(bot, TrainingRun) == 1
    runs = await bot.api.wait_for_reply(bot.api.push_message("/runs", **admin))
    assert f"#{run.id} 감성(긍정/부정) 대기 (관리자)" in runs["text"]  # Korean task, status and trigger words

    # a user's corrections, voided by the admin
    review = bot.api.push_message("괜찮은 영화", user_id=66, chat_id=66)
    await bot.api.wait_for_reply(review)
    await bot.api.wait_for_reply(bot.api.push_message("/feedback wrong", user_id=66, chat_id=66))
    voided = await bot.api.wait_for_reply(bot.api.push_message("/void 66", **admin))
    assert voided["text"] == texts.VOID_DONE.format(user_id=66, count=1)
    async with bot.session() as session:
        (row,) = (await session.scalars(select(Feedback))).all()
    assert row.voided_at is not None and row.voided_by == ADMIN_ID
    usage = await bot.api.wait_for_reply(bot.api.push_message("/void someone", **admin))
    assert usage["text"] == texts.VOID_USAGE

    # rollback: nothing before the first version; then back from a second version to the first
    nothing = await bot.api.wait_for_reply(bot.api.push_message("/rollback", **admin))
    assert nothing["text"] == texts.ROLLBACK_NONE
    async with bot.session() as session:
        second = await storage.register_model_version(
            session, path=str(bot_model_dir), base_checkpoint="test", metrics={"accuracy": 0.6}
        )
        await storage.activate_model_version(session, version_id=second.id)
    rolled = await bot.api.wait_for_reply(bot.api.push_message("/rollback", **admin))
    assert rolled["text"] == texts.ROLLBACK_DONE.format(
        task="감성(긍정/부정)", old=second.id, new=bot.version_id
    )
    async with bot.session() as session:
        assert (await storage.get_active_model_version(session)).id == bot.version_id
    assert bot.moderation.serving.active.version_id == bot.version_id


class RecordingRetrainer:
    """Stands in for bot.retraining: records the request and reports through the given reporter."""

    def __init__(self) -> None:
        self.requests: list[tuple[RunTrigger, int | None, Task]] = []
        self.reported = asyncio.Event()

    async def request_run(self, *, trigger, requested_by, reporter, task=Task.SENTIMENT):
        self.requests.append((trigger, requested_by, task))
        if len(self.requests) > 1:
            return 42, True

        async def report() -> None:
            await asyncio.sleep(0.3)  # after the bot announced the run
            await reporter.progress(41, "학습 50%")
            await reporter.finished(41, "새 모델 #2 적용")
            self.reported.set()

        asyncio.get_running_loop().create_task(report())
        return 41, True


async def test_retrain_goes_to_the_retrainer_and_reports_progress_in_one_message(start_bot):
    retrainer = RecordingRetrainer()
    bot = await start_bot(retrainer=retrainer)
    reply = await bot.api.wait_for_reply(bot.api.push_message("/retrain", user_id=ADMIN_ID, chat_id=ADMIN_ID))
    assert reply["text"] == texts.RETRAIN_QUEUED.format(run_id=41, task="감성(긍정/부정)")
    await asyncio.wait_for(retrainer.reported.wait(), 10)
    await bot.api.wait_until(lambda: len(bot.api.sent(chat_id=ADMIN_ID)) >= 2)
    assert retrainer.requests == [(RunTrigger.ADMIN, ADMIN_ID, Task.SENTIMENT)]
    (edit,) = bot.api.calls("editMessageText")
    assert edit.params["message_id"] == reply["message_id"] and "학습 50%" in edit.params["text"]
    result = bot.api.sent(chat_id=ADMIN_ID)[-1]
    assert (
        "새 모델 #2 적용" in result["text"]
        and result["reply_to_message"]["message_id"] == reply["message_id"]
    )
    assert await count(bot, TrainingRun) == 0  # the retrainer owns the run, not the bot

    # the toxicity model, named by its title or a label of it; a word naming no task gets the usage
    admin = {"user_id": ADMIN_ID, "chat_id": ADMIN_ID}
    toxicity = await bot.api.wait_for_reply(bot.api.push_message("/retrain 표현", **admin))
    assert toxicity["text"] == texts.RETRAIN_QUEUED.format(run_id=42, task="표현(정상/공격적/혐오)")
    await bot.api.wait_for_reply(bot.api.push_message("/retrain toxicity", **admin))
    usage = await bot.api.wait_for_reply(bot.api.push_message("/retrain 아무거나", **admin))
    assert usage["text"] == texts.RETRAIN_USAGE
    assert [task for *_, task in retrainer.requests] == [Task.SENTIMENT, Task.TOXICITY, Task.TOXICITY]


@pytest.mark.parametrize(
    "faults",
    [(Fault.RATE_LIMIT,), (Fault.SERVER_ERROR, Fault.SERVER_ERROR), (Fault.HANG,)],
    ids=["429-retry-after", "500-twice", "hanging-response"],
)
async def test_send_faults_are_retried_and_the_bot_recovers(start_bot, faults):
    bot = await start_bot()
    bot.api.inject("sendMessage", *faults)
    message = bot.api.push_message("연출이 아쉬웠지만 음악은 좋았다")
    reply = await bot.api.wait_for_reply(message, timeout=30)
    assert VERDICT_RE.match(reply["text"])
    assert [r.fault for r in bot.api.calls("sendMessage", ok_only=False)] == [*faults, None]
    assert await stored_reply_id(bot, message) == reply["message_id"]
    after = bot.api.push_message("다음 메시지도 잘 받나요")
    await bot.api.wait_for_reply(after)


async def test_a_failed_send_is_retried_after_a_growing_pause_with_one_warning_line_each(start_bot, caplog):
    from bot.telegram.app import FIRST_BACKOFF_SECONDS

    bot = await start_bot(telegram_send_attempts=3)
    bot.api.inject("sendMessage", Fault.SERVER_ERROR, Fault.SERVER_ERROR)
    message = bot.api.push_message("두 번 실패해도 답은 한 번")
    await bot.api.wait_for_reply(message, timeout=30)

    sends = bot.api.calls("sendMessage", ok_only=False)
    assert [r.fault for r in sends] == [Fault.SERVER_ERROR, Fault.SERVER_ERROR, None]
    # The pauses are lower bounds (asyncio.sleep never wakes early): 0.5 s, then 1 s. A retry at once would
    # hammer a Bot API that is already failing.
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(sends)]
    assert gaps[0] >= FIRST_BACKOFF_SECONDS and gaps[1] >= 2 * FIRST_BACKOFF_SECONDS
    warnings = [r.getMessage() for r in caplog.records if "sendMessage failed" in r.getMessage()]
    assert len(warnings) == 2 and all("retrying in" in line for line in warnings)
    assert all(TOKEN not in line for line in warnings)


async def test_a_verdict_survives_a_send_that_keeps_failing_and_its_reply_is_sent_later_once(start_bot):
    bot = await start_bot(telegram_send_attempts=2)
    # Every attempt of the first send fails: the reply stays in the outbox and the flusher sends it later.
    bot.api.inject("sendMessage", Fault.SERVER_ERROR, Fault.SERVER_ERROR)
    message = bot.api.push_message("저장은 되어야 하는 리뷰")
    reply = await bot.api.wait_for_reply(message, timeout=30)

    assert VERDICT_RE.match(reply["text"])
    assert [b["text"] for b in reply["reply_markup"]["inline_keyboard"][0]] == [
        texts.BUTTON_RIGHT,
        texts.BUTTON_WRONG,
    ]
    faults = [r.fault for r in bot.api.calls("sendMessage", ok_only=False)]
    assert faults == [Fault.SERVER_ERROR, Fault.SERVER_ERROR, None]
    assert await stored_reply_id(bot, message) == reply["message_id"]
    async with bot.session() as session:
        (row,) = (await session.scalars(select(OutboxMessage))).all()
    assert (row.status, row.attempts, row.sent_message_id) == (OutboxStatus.SENT, 2, reply["message_id"])
    await bot.api.wait_for_reply(bot.api.push_message("그 다음 리뷰"))
    assert len(bot.api.replies_to(message)) == 1


async def test_a_database_hiccup_gets_an_apology_and_the_bot_recovers(start_bot):
    bot = await start_bot()
    async with bot.session() as session:
        await session.execute(text("ALTER TABLE verdicts RENAME TO verdicts_away"))
    message = bot.api.push_message("데이터베이스가 잠깐 없어요")
    assert (await bot.api.wait_for_reply(message))["text"] == texts.STORAGE_ERROR
    async with bot.session() as session:
        await session.execute(text("ALTER TABLE verdicts_away RENAME TO verdicts"))
    message = bot.api.push_message("이제 다시 돼요")
    assert VERDICT_RE.match((await bot.api.wait_for_reply(message))["text"])


async def test_two_hundred_messages_at_once_are_all_answered_and_stored(start_bot):
    bot = await start_bot()
    messages = [
        bot.api.push_message(
            f"리뷰 {i}번: 이 영화는 {'최고' if i % 2 else '최악'}이에요", user_id=2000 + i, chat_id=2000 + i
        )
        for i in range(200)
    ]
    await bot.api.wait_until(lambda: len(bot.api.sent()) >= 200, timeout=120)
    for message in messages:
        (reply,) = bot.api.replies_to(message)
        assert VERDICT_RE.match(reply["text"])
    for message in messages:
        assert await stored_reply_id(bot, message) == bot.api.replies_to(message)[0]["message_id"]
    async with bot.session() as session:
        rows = (await session.scalars(select(Verdict))).all()
    assert len(rows) == 200
    assert {(row.chat_id, row.text) for row in rows} == {(m["chat"]["id"], m["text"]) for m in messages}


FUZZ = {
    "long": "가" * 4096,
    "control": "\x01\x02\x1b[31m리뷰\x7f\x00끝",
    "zero-width-inside": "좋\u200b아\u200d요 정말 좋아요",
    "right-to-left": "\u202eمرحبا 영화 좋아요\u202c",
    "emoji": "😀👍🏽🇰🇷 최고의 영화 🎬" * 3,
    "combining": "ㅎㅏㄴ글 e\u0301\u0301\u0301",
}


async def test_fuzzed_text_never_crashes_and_nothing_is_lost(start_bot):
    bot = await start_bot()
    sent = {name: bot.api.push_message(value) for name, value in FUZZ.items()}
    blank = {
        "zero-width-only": bot.api.push_message("\u200b\u200c\u200d\ufeff"),
        "spaces": bot.api.push_message("   \n\t "),
        "empty": bot.api.push_message(""),
        "zero-width-padded": bot.api.push_message("좋\u200b아\u200d요"),  # three letters show: no review
    }
    for name, message in sent.items():
        reply = await bot.api.wait_for_reply(message)
        assert VERDICT_RE.match(reply["text"]), name
        stored = await verdict_for(bot, message)
        assert stored is not None and stored.text == message["text"].replace("\x00", ""), name
    for name, message in blank.items():
        reply = await bot.api.wait_for_reply(message)
        assert reply["text"] in {texts.EMPTY_TEXT, texts.NON_TEXT, texts.NOT_A_REVIEW}, name
        assert await verdict_for(bot, message) is None
    assert await count(bot, Verdict) == len(FUZZ)


async def test_non_text_updates_are_handled_gracefully(start_bot, caplog):
    bot = await start_bot()
    sticker = {
        "file_id": "s1",
        "file_unique_id": "u1",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
        "type": "regular",
    }
    photo = [{"file_id": "p1", "file_unique_id": "pu1", "width": 90, "height": 90}]
    private_sticker = bot.api.push_message(None, sticker=sticker)
    private_photo = bot.api.push_message(None, photo=photo)
    captioned = bot.api.push_message(None, photo=photo, caption="사진 속 영화 포스터 멋져요")
    bot.api.push_message("수정된 메시지", kind="edited_message")
    bot.api.push_message("채널 글", chat_id=-100777, chat_type="channel", kind="channel_post")
    bot.api.push_message(
        None,
        chat_id=-100500,
        chat_type="supergroup",
        new_chat_members=[{"id": 5, "is_bot": False, "first_name": "new"}],
    )
    bot.api.push_message(None, chat_id=-100500, chat_type="supergroup", sticker=sticker)
    unknown = bot.api.push_message("/unknown")

    assert (await bot.api.wait_for_reply(private_sticker))["text"] == texts.NON_TEXT
    assert (await bot.api.wait_for_reply(private_photo))["text"] == texts.NON_TEXT
    assert VERDICT_RE.match((await bot.api.wait_for_reply(captioned))["text"])
    assert (await verdict_for(bot, captioned)).text == "사진 속 영화 포스터 멋져요"
    assert (await bot.api.wait_for_reply(unknown))["text"] == texts.CHAT_UNKNOWN_COMMAND
    last = bot.api.push_message("마지막 확인")
    await bot.api.wait_for_reply(last)
    assert len(bot.api.sent()) == 5  # nothing for edits, channel posts, service messages, group stickers
    assert await count(bot, Verdict) == 2
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_token_redaction_filter_covers_message_args_and_tracebacks(caplog):
    from bot.telegram.redaction import REDACTED, install_token_redaction

    caplog.set_level(logging.INFO)
    install_token_redaction(TOKEN)
    log = logging.getLogger("test.redaction")
    log.info("POST https://api.telegram.org/bot%s/getMe", TOKEN)
    try:
        raise RuntimeError(f"connect failed for /bot{TOKEN}/sendMessage")
    except RuntimeError:
        log.exception("send failed")
    assert TOKEN not in caplog.text
    assert caplog.text.count(REDACTED) == 2
    assert f"bot{REDACTED}/getMe" in caplog.records[0].getMessage()


async def test_feedback_on_a_reply_whose_id_is_not_stored_yet_finds_the_verdict_by_its_buttons(start_bot):
    bot = await start_bot()
    message = bot.api.push_message("배우 연기가 너무 어색하고 지루했다")
    reply = await bot.api.wait_for_reply(message)
    assert await stored_reply_id(bot, message) == reply["message_id"]
    # The race a fast user can win: their reply arrives before the bot has stored its reply's id.
    async with bot.session() as session:
        await session.execute(text("UPDATE verdicts SET reply_message_id = NULL"))

    command = bot.api.push_message("/feedback wrong", reply_to=reply)
    answer = await bot.api.wait_for_reply(command)

    assert "기록했어요" in answer["text"], answer["text"]
    verdict = await verdict_for(bot, message)
    async with bot.session() as session:
        feedback = (await session.scalars(select(Feedback))).one()
    assert feedback.verdict_id == verdict.id and feedback.label != verdict.label


async def test_buttons_naming_another_chats_verdict_are_ignored(start_bot):
    bot = await start_bot()
    elsewhere = bot.api.push_message("다른 방의 리뷰 입니다 재밌어요", chat_id=2002, user_id=2002)
    await bot.api.wait_for_reply(elsewhere)
    foreign = await verdict_for(bot, elsewhere)
    forged = {  # a "bot message" whose buttons name the other chat's verdict
        "message_id": 999_999,
        "date": 1,
        "chat": {"id": USER, "type": "private"},
        "text": "긍정 리뷰 (90.0%)",
        "from": {"id": 1, "is_bot": True, "first_name": "bot"},
        "reply_markup": {"inline_keyboard": [[{"text": "틀렸어요", "callback_data": f"wrong:{foreign.id}"}]]},
    }

    command = bot.api.push_message("/feedback wrong", reply_to=forged)
    answer = await bot.api.wait_for_reply(command)

    assert answer["text"] == texts.FEEDBACK_NO_VERDICT
    assert await count(bot, Feedback) == 0
