"""The review queue, the models page and the operations endpoints, over real HTTP to uvicorn."""

from __future__ import annotations

import re

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine
from web_helpers import ADMIN, REVIEWER, REVIEWS, csrf_of

from bot import storage
from bot.moderation import texts
from bot.serving import ServingModel
from bot.storage import Feedback, FeedbackSource, RunStatus, RunTrigger, Verdict

pytestmark = pytest.mark.timeout(600)  # the first test to start the app may train the session's scratch model

VERDICT_ID = re.compile(r'name="verdict_id" value="(\d+)"')


def shown_verdict(html: str) -> int:
    match = VERDICT_ID.search(html)
    assert match, "no review item on the page"
    return int(match.group(1))


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


async def test_labels_skip_and_undo_in_the_queue(start_web):
    web = await start_web()
    for number, review in enumerate(REVIEWS[:3], start=1):
        await web.classify(review, message_id=number)
    async with web.client(REVIEWER) as client:
        page = await client.get("/queue?task=sentiment")
        assert "남은 항목: <strong>3</strong>건" in page.text
        first = shown_verdict(page.text)
        assert page.text.count(f'value="{first}"') >= 2  # a form per label and one to skip
        assert (await client.get("/queue?task=sentiment")).text.count(
            f'value="{first}"'
        ) >= 2  # reload: same item
        answered = await client.post(
            "/queue/answer",
            data={"csrf_token": csrf_of(page.text), "verdict_id": first, "label": "1", "task": "sentiment"},
        )
        assert answered.status_code == 303
        assert answered.headers["location"] == "/queue?task=sentiment&chat=all"
        page = await client.get("/queue?task=sentiment")
        assert "남은 항목: <strong>2</strong>건" in page.text
        second = shown_verdict(page.text)
        assert second != first
        skipped = await client.post(
            "/queue/answer",
            data={
                "csrf_token": csrf_of(page.text),
                "verdict_id": second,
                "label": "skip",
                "task": "sentiment",
            },
        )
        assert skipped.status_code == 303
        async with web.session() as session:
            labels = list(await session.scalars(select(Feedback)))
        assert [(f.verdict_id, f.user_id, f.label, f.trusted, f.source) for f in labels] == [
            (first, REVIEWER, 1, True, FeedbackSource.REVIEW)
        ]
        undone = await client.post(
            "/queue/undo", data={"csrf_token": csrf_of(page.text), "task": "sentiment"}
        )
        assert undone.status_code == 303
        page = await client.get("/queue?task=sentiment")
        assert texts.REVIEW_UNDONE in page.text and shown_verdict(page.text) == first
        async with web.session() as session:
            assert await session.scalar(select(Feedback)) is None
        # A verdict never shown to this reviewer cannot be answered (a forged form).
        forged = await client.post(
            "/queue/answer",
            data={"csrf_token": csrf_of(page.text), "verdict_id": 999, "label": "0", "task": "sentiment"},
        )
        assert forged.status_code == 303
        assert texts.FEEDBACK_NO_VERDICT in (await client.get("/queue?task=sentiment")).text
        bad = await client.post(
            "/queue/answer", data={"csrf_token": csrf_of(page.text), "verdict_id": "x", "label": "0"}
        )
        assert bad.status_code == 400
        assert (await client.get("/queue?task=nonsense")).status_code == 400
        # The toxicity filter: no toxicity verdicts here.
        assert 'id="empty"' in (await client.get("/queue?task=toxicity")).text


async def test_the_queue_filtered_by_chat_shows_and_counts_that_chats_items_only(start_web):
    web = await start_web()
    for number, review in enumerate(REVIEWS[:5], start=1):  # three in one private chat, two in another
        await web.classify(review, message_id=number, user_id=9001 if number <= 3 else 9002)
    async with web.session() as session:
        ids = {
            verdict.id: verdict.chat_id
            for verdict in await session.scalars(select(Verdict).where(Verdict.task == "sentiment"))
        }
    async with web.client(REVIEWER) as client:
        page = await client.get("/queue?task=sentiment&chat=9002")
        assert "남은 항목: <strong>2</strong>건" in page.text
        first = shown_verdict(page.text)
        assert ids[first] == 9002 and 'name="chat" value="9002"' in page.text
        answered = await client.post(
            "/queue/answer",
            data={
                "csrf_token": csrf_of(page.text),
                "verdict_id": first,
                "label": "0",
                "task": "sentiment",
                "chat": "9002",
            },
        )
        assert answered.headers["location"] == "/queue?task=sentiment&chat=9002"
        page = await client.get(answered.headers["location"])
        assert "남은 항목: <strong>1</strong>건" in page.text and ids[shown_verdict(page.text)] == 9002
        everything = await client.get("/queue?task=sentiment&chat=all")
        assert (
            "남은 항목: <strong>4</strong>건" in everything.text
        )  # the shown, unanswered item comes back first
        assert 'id="empty"' in (await client.get("/queue?chat=-100777")).text
        assert (await client.get("/queue?chat=somewhere")).status_code == 400


async def test_the_models_page_activates_and_rolls_back_after_confirmation(start_web):
    web = await start_web()
    first, second = web.versions
    async with web.client(ADMIN) as client:
        page = await client.get("/models")
        assert f'id="version-{first}"' in page.text and "61.0%" in page.text and "사용 중" in page.text
        confirm = await client.get(f"/models/{second}/activate")
        assert confirm.status_code == 200 and 'id="confirm"' in confirm.text
        async with web.session() as session:  # showing the confirmation changed nothing
            assert (await storage.get_active_model_version(session)).id == first
        done = await client.post(f"/models/{second}/activate", data={"csrf_token": csrf_of(confirm.text)})
        assert done.status_code == 303
        assert f"#{first}에서 #{second}" in (await client.get("/models")).text
        async with web.session() as session:
            assert (await storage.get_active_model_version(session)).id == second
        assert web.moderation.serving.active.version_id == second  # served here at once
        confirm = await client.get("/models/rollback/sentiment")
        done = await client.post("/models/rollback/sentiment", data={"csrf_token": csrf_of(confirm.text)})
        assert done.status_code == 303
        async with web.session() as session:
            assert (await storage.get_active_model_version(session)).id == first
        assert web.moderation.serving.active.version_id == first
        assert (await client.get("/models/999/activate")).status_code == 404
        assert (await client.get("/models/rollback/astrology")).status_code == 404


async def test_metrics_count_verdicts_classified_through_the_moderator(start_web):
    web = await start_web()
    async with web.client() as client:
        before = samples((await client.get("/metrics")).text)
        await web.classify(REVIEWS[0], message_id=1)
        await web.classify(REVIEWS[1], message_id=2)
        response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)

    def verdicts(values) -> float:
        return sum(
            v
            for (name, labels), v in values.items()
            if name == "moderator_verdicts_total" and dict(labels).get("task") == "sentiment"
        )

    assert verdicts(after) - verdicts(before) == 2
    latency = ("moderator_verdict_latency_seconds_count", ())
    assert after[latency] - before.get(latency, 0.0) == 2
    assert after[("moderator_review_queue_items", (("task", "sentiment"),))] == 2
    assert after[("moderator_review_queue_items", (("task", "toxicity"),))] == 0
    version = str(web.versions[0])
    assert after[("moderator_model_info", (("task", "sentiment"), ("version", version)))] == 1
    assert after[("moderator_model_info", (("task", "toxicity"), ("version", "none")))] == 1


async def test_metrics_count_training_runs_by_task_and_status_from_the_database(start_web):
    web = await start_web()
    async with web.session() as session:  # as a run in another process (`moderator retrain`) would leave them
        for status in (RunStatus.REJECTED, RunStatus.SUCCEEDED, RunStatus.REJECTED):
            run, _ = await storage.start_training_run(session, trigger=RunTrigger.ADMIN, requested_by=ADMIN)
            await storage.finish_training_run(session, run_id=run.id, status=status)
        await storage.start_training_run(
            session, trigger=RunTrigger.ADMIN, requested_by=ADMIN, task=storage.Task.TOXICITY
        )
    async with web.client() as client:
        values = samples((await client.get("/metrics")).text)
    runs = {
        (dict(labels)["task"], dict(labels)["status"]): value
        for (name, labels), value in values.items()
        if name == "moderator_training_runs_total"
    }
    assert runs == {("sentiment", "rejected"): 2, ("sentiment", "succeeded"): 1, ("toxicity", "queued"): 1}


async def test_labels_are_counted_by_kind(start_web):
    web = await start_web()
    await web.classify(REVIEWS[2], message_id=3)
    async with web.client(REVIEWER) as client:
        before = samples((await client.get("/metrics")).text)
        page = await client.get("/queue")
        verdict_id = shown_verdict(page.text)
        await client.post(
            "/queue/answer",
            data={"csrf_token": csrf_of(page.text), "verdict_id": verdict_id, "label": "0", "task": "all"},
        )
        after = samples((await client.get("/metrics")).text)
    changed = {
        key: value - before.get(key, 0.0)
        for key, value in after.items()
        if key[0] == "moderator_labels_total"
    }
    assert sum(changed.values()) == 1
    ((_name, labels),) = [key for key, delta in changed.items() if delta == 1]
    assert dict(labels)["source"] == "review" and dict(labels)["kind"] in {"confirmation", "correction"}


async def test_health_and_readiness(start_web):
    web = await start_web()
    async with web.client() as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        served = web.moderation.serving
        web.moderation.serving = ServingModel()  # no model loaded
        try:
            not_ready = await client.get("/readyz")
        finally:
            web.moderation.serving = served
        assert not_ready.status_code == 503 and "no sentiment model" in not_ready.text
        working = web.app.state.session_factory
        broken = create_async_engine("sqlite+aiosqlite:////nonexistent-dir-for-readyz/db.sqlite")
        web.app.state.session_factory = storage.make_session_factory(broken)
        try:
            no_database = await client.get("/readyz")
        finally:
            web.app.state.session_factory = working
            await broken.dispose()
        assert no_database.status_code == 503 and "database" in no_database.text
        assert (await client.get("/healthz")).status_code == 200
