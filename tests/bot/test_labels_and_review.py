"""Labels in both directions and the review queue, through the real python-telegram-bot stack and the stand-in."""

from __future__ import annotations

import re

from bot_identity import ADMIN_ID
from bot_records import callback_answers, verdict_for
from fake_telegram import BOT_USER
from sqlalchemy import func, select

from bot import storage
from bot.moderation import texts
from bot.storage import Feedback, FeedbackSource, LabelRule, ReviewView, Verdict

USER, OTHER, REVIEWER = 1001, 1002, 3003


async def feedback_rows(bot) -> list[Feedback]:
    async with bot.session() as session:
        return list((await session.scalars(select(Feedback).order_by(Feedback.id))).all())


async def test_right_is_stored_as_a_confirmation_by_button_and_by_command(start_bot):
    bot = await start_bot()
    message = bot.api.push_message("배우들 연기가 훌륭하고 여운이 길게 남는 영화")
    reply = await bot.api.wait_for_reply(message)
    verdict = await verdict_for(bot, message)
    name = verdict.label_name

    waits = " " + texts.LABEL_WAITS_FOR_REVIEWER  # nobody checked these users yet; an admin can
    bot.api.push_callback(data=f"ok:{verdict.id}", message=reply)  # 맞아요
    assert (await callback_answers(bot, 1))[-1] == texts.FEEDBACK_CONFIRMED.format(label=name) + waits
    command = bot.api.push_message("/feedback right", reply_to=reply, user_id=OTHER, chat_id=USER)
    assert (await bot.api.wait_for_reply(command))["text"] == texts.FEEDBACK_CONFIRMED.format(
        label=name
    ) + waits
    again = bot.api.push_message(
        f"/feedback {name}", reply_to=reply
    )  # the label by name: the same confirmation
    assert (await bot.api.wait_for_reply(again))["text"] == texts.FEEDBACK_ALREADY.format(label=name)

    rows = await feedback_rows(bot)
    assert [(r.user_id, r.label, r.source) for r in rows] == [
        (USER, verdict.label, FeedbackSource.COMMAND),  # the same label again, last given by command
        (OTHER, verdict.label, FeedbackSource.COMMAND),
    ]
    async with bot.session() as session:
        # Two users agreeing is not evidence about them: the labels wait for a reviewer's check.
        assert await storage.export_human_labels(session, rule=LabelRule()) == []
        (exported,) = await storage.export_human_labels(session, rule=LabelRule(trust_everyone=True))
    assert exported.is_confirmation and exported.label == verdict.label

    stats = (await bot.api.wait_for_reply(bot.api.push_message("/stats")))["text"]
    assert (
        "확인(맞아요): 2건" in stats and "정정: 0건" in stats and "검토자 확인을 기다리는 라벨: 2건" in stats
    )

    # Changing one's mind from right to wrong replaces the confirmation with a correction.
    bot.api.push_callback(data=f"wrong:{verdict.id}", message=reply)
    answers = await callback_answers(bot, 2)
    assert "기록했어요" in answers[-1]
    assert [r.label for r in await feedback_rows(bot)] == [1 - verdict.label, verdict.label]


async def test_a_forged_label_button_equal_to_the_verdict_is_refused(start_bot):
    bot = await start_bot()
    message = bot.api.push_message("스토리가 엉망이고 지루했다")
    reply = await bot.api.wait_for_reply(message)
    verdict = await verdict_for(bot, message)
    bot.api.push_callback(data=f"label:{verdict.id}:{verdict.label}", message=reply)
    assert (await callback_answers(bot, 1))[-1] == texts.FEEDBACK_SAME_AS_VERDICT.format(
        label=verdict.label_name
    )
    assert await feedback_rows(bot) == []


async def test_predict_on_the_bots_own_message_stores_nothing(start_bot):
    bot = await start_bot()
    message = bot.api.push_message("음악이 좋았던 영화")
    reply = await bot.api.wait_for_reply(message)
    assert reply["from"]["id"] == BOT_USER["id"]
    command = bot.api.push_message("/predict", reply_to=reply)
    assert (await bot.api.wait_for_reply(command))["text"] == texts.PREDICT_BOT_MESSAGE
    async with bot.session() as session:
        assert await session.scalar(select(func.count()).select_from(Verdict)) == 1  # only the review itself


async def test_the_review_queue_for_admins_and_reviewers(start_bot):
    bot = await start_bot(reviewer_ids=frozenset({REVIEWER}))
    reviews = [
        "배우 연기는 좋았는데 스토리는 글쎄",
        "그럭저럭 볼만했지만 다시 보진 않을 듯",
        "최고의 영화 강력 추천합니다",
        "돈 아깝고 시간 아까운 최악의 영화",
        "나쁘지 않았다 킬링타임용",
    ]
    for index, review in enumerate(reviews):
        await bot.api.wait_for_reply(bot.api.push_message(review, user_id=5000 + index, chat_id=5000 + index))
    async with bot.session() as session:
        verdicts = list((await session.scalars(select(Verdict))).all())
    by_margin = sorted(verdicts, key=lambda v: v.margin)

    refused = bot.api.push_message("/review", user_id=USER, chat_id=USER)
    assert (await bot.api.wait_for_reply(refused))["text"] == texts.REVIEW_ONLY

    command = bot.api.push_message("/review", user_id=REVIEWER, chat_id=REVIEWER)
    item = await bot.api.wait_for_reply(command)
    assert "남은 5건" in item["text"] and by_margin[0].text in item["text"]  # the least certain first
    buttons = [b for row in item["reply_markup"]["inline_keyboard"] for b in row]
    assert [b["text"] for b in buttons] == ["부정", "긍정", texts.BUTTON_SKIP]

    # Label it 긍정 with the button: a trusted label, and the next item arrives in the same chat.
    label_button = next(b for b in buttons if b["text"] == "긍정")
    bot.api.push_callback(data=label_button["callback_data"], message=item, user_id=REVIEWER)
    toast = (await callback_answers(bot, 1))[-1]
    assert "기록했어요" in toast
    await bot.api.wait_until(lambda: len(bot.api.sent(chat_id=REVIEWER)) >= 2)
    second = bot.api.sent(chat_id=REVIEWER)[-1]
    assert "남은 4건" in second["text"]
    second_id = int(
        re.match(r"rv:(\d+):", second["reply_markup"]["inline_keyboard"][0][0]["callback_data"])[1]
    )
    assert second_id != by_margin[0].id
    # the two shown first cover both predicted classes when both are queued
    labels_shown = {by_margin[0].label, next(v.label for v in verdicts if v.id == second_id)}
    assert labels_shown == {0, 1} or len({v.label for v in verdicts}) == 1

    # Skip the second one.
    skip = next(
        b for row in second["reply_markup"]["inline_keyboard"] for b in row if b["text"] == texts.BUTTON_SKIP
    )
    bot.api.push_callback(data=skip["callback_data"], message=second, user_id=REVIEWER)
    assert (await callback_answers(bot, 2))[-1] == texts.REVIEW_SKIPPED

    # A forged review button for an item never shown to this user does nothing.
    unseen = next(v for v in verdicts if v.id not in (by_margin[0].id, second_id))
    bot.api.push_callback(data=f"rv:{unseen.id}:0", message=second, user_id=ADMIN_ID)
    assert (await callback_answers(bot, 3))[-1] == texts.FEEDBACK_NOT_YOURS
    bot.api.push_callback(data=f"rv:{unseen.id}:0", message=second, user_id=USER)
    assert (await callback_answers(bot, 4))[-1] == texts.REVIEW_ONLY

    rows = await feedback_rows(bot)
    assert [(r.user_id, r.verdict_id, r.label, r.trusted, r.source) for r in rows] == [
        (REVIEWER, by_margin[0].id, 1, True, FeedbackSource.REVIEW)
    ]
    async with bot.session() as session:
        views = list((await session.scalars(select(ReviewView).order_by(ReviewView.id))).all())
        (exported,) = await storage.export_human_labels(session, rule=LabelRule())
    assert [(v.verdict_id, v.outcome) for v in views][:2] == [
        (by_margin[0].id, "labelled"),
        (second_id, "skipped"),
    ]
    assert exported.trusted and exported.verdict_id == by_margin[0].id  # no second opinion needed

    # The admin has a queue of their own: the item the reviewer labelled is no longer in it.
    admin = await bot.api.wait_for_reply(bot.api.push_message("/review", user_id=ADMIN_ID, chat_id=ADMIN_ID))
    assert "남은 4건" in admin["text"] and by_margin[0].text not in admin["text"]


async def test_runs_show_progress_only_while_live_and_the_gate_checks_after(start_bot):
    from bot.storage import RunStatus, RunTrigger, TrainingRun

    bot = await start_bot()
    gate = {
        "eval_set": {"hash": "abcdef0123456789", "size": 5000, "source": "NSMC test"},
        "confidence": 0.95,
        "checks": [
            {
                "name": "base_vs_active",
                "passed": False,
                "rule": "significantly worse and the loss exceeds the tolerance (0.5 points)",
                "other_version": 1,
                "n": 5000,
                "candidate_accuracy": 0.770,
                "other_accuracy": 0.781,
                "difference": -0.011,
                "low": -0.016,
                "high": -0.006,
            }
        ],
    }
    async with bot.session() as session:
        session.add(
            TrainingRun(
                trigger=RunTrigger.ADMIN,
                status=RunStatus.REJECTED,
                progress="평가 중",  # the last progress line of a finished run must not show
                gate=gate,
            )
        )
        session.add(
            TrainingRun(
                trigger=RunTrigger.SCHEDULE,
                status=RunStatus.RUNNING,
                active_slot=1,
                progress="학습 중 3/10 단계",
            )
        )
    runs = (await bot.api.wait_for_reply(bot.api.push_message("/runs", user_id=ADMIN_ID, chat_id=ADMIN_ID)))[
        "text"
    ]
    live, finished = runs.split("\n#1 ")  # newest first
    assert "평가 중" not in finished and "기각됨 (관리자)" in finished and "진행 중 (예약)" in live
    assert (
        "✘ 기본 평가, 현재 모델 v1 대비: 78.1% → 77.0% (-1.1%p, 95% 구간 -1.6%p~-0.6%p, n=5000)" in finished
    )
    assert "유의하게 나빠졌고 하락 폭이 허용치를 넘음" in finished
    assert "학습 중 3/10 단계" in live


async def test_the_terminal_chat_has_the_review_queue_too(start_bot):
    import io

    from bot.telegram.chat import TerminalChat

    bot = await start_bot()
    output = io.StringIO()
    chat = TerminalChat(bot.moderation, output=output)
    for review in ("애매한 영화였다 그냥 그럼", "정말 최고의 영화"):
        chat.show(await chat.handle(review))
    item = await chat.handle("/review")
    chat.show(item)
    assert "남은 2건" in item.text and "/review 부정  /review 긍정  /review 건너뛰기" in output.getvalue()
    labelled = await chat.handle("/review 긍정")
    assert "기록했어요" in labelled.text and "남은 1건" in labelled.text
    skipped = await chat.handle("/review skip")
    assert texts.REVIEW_SKIPPED in skipped.text and texts.REVIEW_EMPTY in skipped.text
    rows = await feedback_rows(bot)
    assert [(r.user_id, r.label, r.trusted, r.source) for r in rows] == [(0, 1, True, FeedbackSource.REVIEW)]


async def test_review_is_only_shown_in_a_private_chat(start_bot):
    """A reviewer typing /review in a group must not post someone's private review into that group."""
    bot = await start_bot(reviewer_ids=frozenset({REVIEWER}))
    private_review = "비밀로 보낸 개인 채팅 리뷰입니다 정말 별로"
    await bot.api.wait_for_reply(bot.api.push_message(private_review, user_id=USER, chat_id=USER))
    group = -100777
    command = bot.api.push_message("/review", user_id=REVIEWER, chat_id=group, chat_type="supergroup")
    assert (await bot.api.wait_for_reply(command))["text"] == texts.REVIEW_PRIVATE_ONLY
    # A review button pressed in the group (forged, or an old message) shows nothing there either.
    async with bot.session() as session:
        verdict = await session.scalar(select(Verdict))
    item = await bot.api.wait_for_reply(bot.api.push_message("/review", user_id=REVIEWER, chat_id=REVIEWER))
    assert private_review in item["text"]
    fake_group_message = {**item, "chat": {"id": group, "type": "supergroup"}}
    bot.api.push_callback(data=f"rv:{verdict.id}:0", message=fake_group_message, user_id=REVIEWER)
    assert (await callback_answers(bot, 1))[-1] == texts.REVIEW_PRIVATE_ONLY
    assert all(private_review not in sent.get("text", "") for sent in bot.api.sent(chat_id=group))
    assert await feedback_rows(bot) == []  # nothing recorded from the group


async def test_a_lone_private_correction_waits_for_a_reviewer_then_its_author_counts(start_bot):
    """Private chats: nobody else sees the verdict, so a reviewer's blind checks decide whether the user counts."""
    bot = await start_bot(reviewer_ids=frozenset({REVIEWER}))
    reviews = [f"{index}번째 영화는 생각보다 괜찮았어요" for index in range(5)]
    replies = []
    for review in reviews:
        message = bot.api.push_message(review, user_id=USER, chat_id=USER)
        replies.append((await bot.api.wait_for_reply(message), await verdict_for(bot, message)))
    for index, (reply, verdict) in enumerate(replies):
        bot.api.push_callback(data=f"wrong:{verdict.id}", message=reply, user_id=USER)
        answer = (await callback_answers(bot, index + 1))[-1]
        assert answer.endswith(texts.LABEL_WAITS_FOR_REVIEWER), answer
    async with bot.session() as session:
        assert await storage.export_human_labels(session, rule=LabelRule()) == []

    # The reviewer's queue leads with the user's labels (shown blind), and agrees three times.
    item = await bot.api.wait_for_reply(bot.api.push_message("/review", user_id=REVIEWER, chat_id=REVIEWER))
    for answered in range(3):
        assert item["text"].startswith(texts.REVIEW_DISPUTED_NOTE), item["text"]
        verdict_id = int(
            re.match(r"rv:(\d+):", item["reply_markup"]["inline_keyboard"][0][0]["callback_data"])[1]
        )
        verdict = next(v for _, v in replies if v.id == verdict_id)
        bot.api.push_callback(data=f"rv:{verdict_id}:{1 - verdict.label}", message=item, user_id=REVIEWER)
        await bot.api.wait_until(lambda n=answered: len(bot.api.sent(chat_id=REVIEWER)) >= n + 2)
        item = bot.api.sent(chat_id=REVIEWER)[-1]

    async with bot.session() as session:
        exported = await storage.export_human_labels(session, rule=LabelRule())
        assert (
            await storage.labeller_standing(session, user_id=USER, rule=LabelRule())
            is storage.Standing.EARNED
        )
    assert sorted(e.verdict_id for e in exported) == sorted(v.id for _, v in replies)  # all five count now
    assert all(e.label != e.predicted for e in exported)
    # The user's next label counts at once, and the reply says so.
    message = bot.api.push_message("여섯번째 영화도 의외로 재미있었어요", user_id=USER, chat_id=USER)
    reply, verdict = await bot.api.wait_for_reply(message), await verdict_for(bot, message)
    bot.api.push_callback(data=f"ok:{verdict.id}", message=reply, user_id=USER)
    assert (await callback_answers(bot, 6))[-1].endswith(texts.LABEL_COUNTS)


async def test_without_admins_or_reviewers_a_label_is_told_it_cannot_count(start_bot, caplog):
    import logging

    bot = await start_bot(admin_ids=frozenset())
    with caplog.at_level(logging.WARNING, logger="bot.moderation"):
        bot.moderation.warn_about_settings()
    assert "nobody can answer the review queue" in caplog.text
    message = bot.api.push_message("연출이 훌륭했던 영화였습니다", user_id=USER, chat_id=USER)
    reply, verdict = await bot.api.wait_for_reply(message), await verdict_for(bot, message)
    bot.api.push_callback(data=f"wrong:{verdict.id}", message=reply, user_id=USER)
    assert (await callback_answers(bot, 1))[-1].endswith(texts.LABEL_NOT_COUNTED_NO_REVIEWER)


async def test_what_is_no_review_is_neither_classified_nor_stored(start_bot):
    bot = await start_bot()
    review = bot.api.push_message("배우들 연기가 정말 좋았던 영화", user_id=USER, chat_id=USER)
    reply = await bot.api.wait_for_reply(review)
    thanks = bot.api.push_message(
        "고마워요 정말로요", reply_to=reply, user_id=USER, chat_id=USER
    )  # talk, not a review
    assert (await bot.api.wait_for_reply(thanks))["text"] == texts.NOT_A_REVIEW
    thumbs = bot.api.push_message("👍👍👍👍👍👍", user_id=USER, chat_id=USER)
    assert (await bot.api.wait_for_reply(thumbs))["text"] == texts.NOT_A_REVIEW
    group = -100888
    short = bot.api.push_message(
        "ㅋㅋㅋ", reply_to=reply, user_id=OTHER, chat_id=group, chat_type="supergroup"
    )
    long_reply = bot.api.push_message(
        "저는 이 영화 정말 지루하고 돈 아까웠어요 두 번은 못 봐요",
        reply_to=reply,
        user_id=OTHER,
        chat_id=group,
        chat_type="supergroup",
    )
    await bot.api.wait_for_reply(long_reply)  # a long reply to the bot is a review
    async with bot.session() as session:
        texts_stored = list(await session.scalars(select(Verdict.text).order_by(Verdict.id)))
    assert texts_stored == [
        "배우들 연기가 정말 좋았던 영화",
        "저는 이 영화 정말 지루하고 돈 아까웠어요 두 번은 못 봐요",
    ]
    assert bot.api.sent(chat_id=group) and all(
        s.get("reply_to_message", {}).get("message_id") != short["message_id"]
        for s in bot.api.sent(chat_id=group)
    )
