"""The overview, runs and labellers pages (admins), over real HTTP to uvicorn: what they show is what the storage
functions hold, their buttons go through the bot's own use cases, and nobody else gets in."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from unittest.mock import patch

import pytest
from sqlalchemy import select
from web_helpers import ADMIN, REVIEWER, csrf_of

from bot import storage
from bot.moderation import texts
from bot.storage import ActivationReason, FeedbackSource, RunStatus, RunTrigger, Task, TrainingRun
from bot.storage.models import Feedback
from bot.web import texts as web_texts
from classifier.tasks import TASK_TITLES

pytestmark = pytest.mark.timeout(600)  # the first test to start the app may train the session's scratch model

CHAT_A, CHAT_B = -2001, -2002
PROBABILITIES = {"부정": 0.3, "긍정": 0.7}


async def add_verdict(web, *, chat_id: int, message_id: int, label: int, days_ago: int = 0) -> int:
    # recorded at its moment (add_verdict's clock), so that the per-day rollup and the labels' copies agree
    moment = datetime.now(UTC) - timedelta(days=days_ago)
    async with web.session() as session:
        with patch("bot.storage.verdicts.utcnow", return_value=moment):
            verdict = await storage.add_verdict(
                session,
                chat_id=chat_id,
                message_id=message_id,
                user_id=7,
                text=f"리뷰 {message_id}번: 영화가 좋았어요",
                label=label,
                label_name=("부정", "긍정")[label],
                confidence=0.7,
                probabilities=PROBABILITIES,
                model_version_id=web.versions[0],
            )
        return verdict.id


async def add_label(web, verdict_id: int, user_id: int, label: int, **extra) -> None:
    async with web.session() as session:
        await storage.record_feedback(
            session,
            verdict_id=verdict_id,
            user_id=user_id,
            label=label,
            num_labels=2,
            is_admin=False,
            **extra,
        )


def strong(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert match, f"no #{element_id} on the page"
    return match.group(1).strip()


async def test_the_overview_shows_the_stored_counts_per_task_and_chat(start_web):
    web = await start_web()
    a1 = await add_verdict(web, chat_id=CHAT_A, message_id=1, label=1)
    a2 = await add_verdict(web, chat_id=CHAT_A, message_id=2, label=0, days_ago=3)
    b1 = await add_verdict(web, chat_id=CHAT_B, message_id=3, label=1, days_ago=10)
    await add_verdict(web, chat_id=CHAT_B, message_id=4, label=1, days_ago=45)  # outside the default 30 days
    await add_label(web, a1, 901, 0)  # a correction
    await add_label(web, a2, 902, 0)  # a confirmation
    await add_label(web, b1, REVIEWER, 1, trusted=True, source=FeedbackSource.REVIEW)
    async with web.session() as session:  # chat B must be a known group to be offered in the filter
        await storage.update_chat_policy(session, chat_id=CHAT_B, updated_by=ADMIN, mode="watch")
    async with web.client(ADMIN) as admin:
        page = await admin.get("/")
        assert page.status_code == 200, page.text
        html = page.text
        assert strong(html, "verdicts-sentiment") == "3"
        assert strong(html, "labels-sentiment") == "3"
        assert strong(html, "agreement-sentiment") == "66.7%"  # 2 of 3 labels agree with the verdict
        assert strong(html, "verdicts-toxicity") == "0"
        assert strong(html, "active-sentiment").startswith(f"#{web.versions[0]}")
        assert strong(html, "active-toxicity") == "없음"
        assert html.count("<svg") == 6  # three charts per task
        assert "날짜별 판정 수" in html and "날짜별 모델-사람 일치율" in html and "정정" in html
        assert f'<option value="{CHAT_B}"' in html
        longer = await admin.get("/?days=60")
        assert strong(longer.text, "verdicts-sentiment") == "4"
        one_chat = await admin.get(f"/?chat={CHAT_A}&days=30")
        assert strong(one_chat.text, "verdicts-sentiment") == "2"
        assert strong(one_chat.text, "labels-sentiment") == "2"
        assert strong(one_chat.text, "agreement-sentiment") == "50.0%"
        for bad in ("/?days=0", "/?days=91", "/?days=x", "/?chat=abc"):
            assert (await admin.get(bad)).status_code == 400, bad
    async with web.client(REVIEWER) as reviewer:
        home = await reviewer.get("/")
        assert home.status_code == 200 and "<svg" not in home.text and "검토자" in home.text


async def test_the_runs_page_shows_each_runs_record_and_its_gate(start_web):
    web = await start_web()
    gate = {
        "promote": False,
        "reason": "a check failed",
        "confidence": 0.95,
        "seed": 1234,
        "checks": [
            {
                "name": "base_vs_active",
                "passed": False,
                "rule": "significantly worse on this class",
                "other_version": web.versions[0],
                "other_accuracy": 0.81,
                "candidate_accuracy": 0.79,
                "difference": -0.02,
                "low": -0.035,
                "high": -0.005,
                "n": 5000,
            }
        ],
        "human_labels": {"train": {"긍정": {"examples": 12, "confirmations": 5, "rows": 30, "share": 0.6}}},
        "pattern": {"terms": ["1점", " 1점"], "rows": 303},
    }
    async with web.session() as session:
        run, _ = await storage.start_training_run(session, trigger=RunTrigger.SCHEDULE, requested_by=None)
        await storage.mark_run_running(session, run_id=run.id, log_path="/tmp/run.log", seed=1234)
        await storage.finish_training_run(
            session, run_id=run.id, status=RunStatus.REJECTED, example_count=40, correction_count=7, gate=gate
        )
    async with web.client(ADMIN) as admin:
        page = await admin.get("/runs")
        assert page.status_code == 200
        section = page.text.split(f'id="run-{run.id}"', 1)[1]
        assert "탈락" in section and '<span class="seed">1234</span>' in section
        assert "81.0% → 79.0%" in section and "-2.0%p" in section and "-3.5 ~ -0.5%p" in section
        assert (
            "5000" in section and "긍정 12건(확인 5) 60%" in section and "학습 예시 40건, 정정 7건" in section
        )
        assert "정정된 패턴: &#39;1점&#39; (고정 평가 세트에서 303건" in section


async def test_the_run_button_asks_for_a_run_with_the_rules_of_retrain(start_web):
    web = await start_web()
    async with web.client(ADMIN) as admin:
        page = await admin.get("/runs")
        started = await admin.post("/runs/start", data={"csrf_token": csrf_of(page.text), "task": "toxicity"})
        assert started.status_code == 303 and started.headers["location"] == "/runs"
        async with web.session() as session:
            (run,) = list(await session.scalars(select(TrainingRun)))
        assert (run.task, run.trigger, run.requested_by, run.status) == (
            Task.TOXICITY,
            RunTrigger.ADMIN,
            ADMIN,
            RunStatus.QUEUED,
        )
        page = await admin.get("/runs")
        assert texts.RETRAIN_QUEUED.format(run_id=run.id, task=TASK_TITLES["toxicity"]) in page.text
        assert f'id="run-{run.id}"' in page.text
        # One run at a time, as /retrain says.
        again = await admin.post("/runs/start", data={"csrf_token": csrf_of(page.text), "task": "sentiment"})
        assert again.status_code == 303
        assert texts.RETRAIN_ALREADY.format(run_id=run.id) in (await admin.get("/runs")).text
        bad = await admin.post("/runs/start", data={"csrf_token": csrf_of(page.text), "task": "astrology"})
        assert bad.status_code == 400
    async with web.session() as session:
        assert len(list(await session.scalars(select(TrainingRun)))) == 1


async def test_the_labellers_page_shows_records_and_voids_through_the_void_use_case(start_web):
    web = await start_web()
    checked = await add_verdict(web, chat_id=CHAT_A, message_id=1, label=1)
    other = await add_verdict(web, chat_id=CHAT_A, message_id=2, label=1)
    await add_label(web, checked, 901, 0)  # spot-checked below: the reviewer says 0 too
    await add_label(web, other, 901, 0)
    await add_label(web, checked, REVIEWER, 0, trusted=True, source=FeedbackSource.REVIEW)
    async with web.client(ADMIN) as admin:
        page = await admin.get("/users")
        assert page.status_code == 200
        row = page.text.split('id="user-901"', 1)[1].split("</tr>", 1)[0]
        assert '<td class="labels">2</td>' in row and '<td class="checks">1</td>' in row
        assert '<td class="agreed">1</td>' in row and "확인 전" in row  # fewer checks than required
        assert "관리자/검토자" in page.text.split(f'id="user-{REVIEWER}"', 1)[1].split("</tr>", 1)[0]
        voided = await admin.post("/users/901/void", data={"csrf_token": csrf_of(page.text)})
        assert voided.status_code == 303
        after = await admin.get("/users")
        assert texts.VOID_DONE.format(user_id=901, count=2) in after.text
        row = after.text.split('id="user-901"', 1)[1].split("</tr>", 1)[0]
        assert '<td class="labels">0</td>' in row and '<td class="voided">2</td>' in row
        assert (
            await admin.post("/users/abc/void", data={"csrf_token": csrf_of(page.text)})
        ).status_code == 404
    async with web.session() as session:
        rows = list(await session.scalars(select(Feedback).where(Feedback.user_id == 901)))
    assert len(rows) == 2 and all(row.voided_at is not None and row.voided_by == ADMIN for row in rows)


async def test_the_labellers_page_is_paged_busiest_first(start_web, monkeypatch):
    from bot.web.pages import users

    monkeypatch.setattr(users, "USERS_PER_PAGE", 2)
    web = await start_web()
    verdicts = [await add_verdict(web, chat_id=CHAT_A, message_id=n, label=1) for n in range(1, 4)]
    for user, count in ((901, 3), (902, 1), (903, 2)):
        for verdict in verdicts[:count]:
            await add_label(web, verdict, user, 0)
    async with web.client(ADMIN) as admin:
        first = await admin.get("/users")
        second = await admin.get("/users?page=2")
        third = await admin.get("/users?page=3")
        for bad in ("0", "x", "-1"):
            assert (await admin.get(f"/users?page={bad}")).status_code == 400
    order = [user for user in (901, 902, 903) if f'id="user-{user}"' in first.text]
    assert order == [901, 903] and first.text.index("user-901") < first.text.index("user-903")
    assert 'id="next-page"' in first.text and 'id="previous-page"' not in first.text
    assert 'id="user-902"' in second.text and 'id="next-page"' not in second.text
    assert 'id="previous-page"' in second.text
    assert third.status_code == 200 and 'id="user-' not in third.text


async def test_admin_pages_refuse_reviewers_and_nobody(start_web):
    web = await start_web()
    async with web.client(REVIEWER) as reviewer:
        home = await reviewer.get("/")
        for path in ("/runs", "/users"):
            refused = await reviewer.get(path)
            assert refused.status_code == 403 and web_texts.ADMIN_ONLY in refused.text, path
        for path in ("/runs/start", f"/users/{REVIEWER}/void"):
            posted = await reviewer.post(path, data={"csrf_token": csrf_of(home.text), "task": "sentiment"})
            assert posted.status_code == 403, path
    async with web.client() as nobody:
        for path in ("/runs", "/users", "/chats"):
            assert (await nobody.get(path)).status_code == 401, path
        assert "<svg" not in (await nobody.get("/")).text
    async with web.session() as session:
        assert await storage.list_training_runs(session) == []
        assert await session.scalar(select(Feedback)) is None


async def test_the_labellers_page_shows_agreement_with_others_and_who_moves_in_lockstep(
    start_web, monkeypatch
):
    from bot.storage import overview

    monkeypatch.setattr(overview, "LOCKSTEP_MIN_SHARED", 4)
    web = await start_web()
    verdicts = [await add_verdict(web, chat_id=CHAT_A, message_id=n, label=1) for n in range(1, 6)]
    for verdict in verdicts:  # 901 and 902 label all five alike; 903 agrees with them on two of three
        await add_label(web, verdict, 901, 0)
        await add_label(web, verdict, 902, 0)
    for verdict, label in zip(verdicts[:3], (0, 0, 1), strict=True):
        await add_label(web, verdict, 903, label)
    async with web.client(ADMIN) as admin:
        page = await admin.get("/users")
    rows = {user: page.text.split(f'id="user-{user}"', 1)[1].split("</tr>", 1)[0] for user in (901, 902, 903)}
    # 901: 5 verdicts shared with 902 (all alike), 3 with 903 (2 alike)
    assert '<td class="agreement">88% (7/8)</td>' in rows[901]
    assert '<td class="lockstep">902 (5/5)</td>' in rows[901]
    assert '<td class="lockstep">901 (5/5)</td>' in rows[902]
    assert '<td class="agreement">67% (4/6)</td>' in rows[903]
    assert '<td class="lockstep">-</td>' in rows[903]  # 3 shared verdicts: fewer than the minimum


async def test_a_versions_page_shows_its_metrics_curves_calibration_gate_and_history(start_web):
    web = await start_web()
    metrics = {
        "accuracy": 0.788,
        "macro_f1": 0.7879,
        "loss": 0.4887,
        "labels": ["부정", "긍정"],
        "confusion_matrix": [[193, 48], [58, 201]],  # rows: the true class
        "history": [
            {
                "epoch": 1.0,
                "train_loss": 0.62,
                "eval_loss": 0.51,
                "eval_accuracy": 0.76,
                "eval_macro_f1": 0.75,
            },
            {
                "epoch": 2.0,
                "train_loss": 0.48,
                "eval_loss": 0.49,
                "eval_accuracy": 0.79,
                "eval_macro_f1": 0.79,
            },
        ],
        "calibration": {
            "temperature": 0.73,
            "ece_before": 0.0813,
            "ece_after": 0.0345,
            "fitted_on": 500,
            "confidence_map": {"fitted_on": 500, "knots": 36, "ece_after_map_in_sample": 0.0071},
        },
        "data": {"train_size": 4000, "eval_size": 500, "extra_size": 72, "neighbour_rows": 720},
        "seed": 1234,
    }
    gate = {
        "promote": True,
        "confidence": 0.95,
        "checks": [
            {
                "name": "base_vs_active",
                "passed": True,
                "rule": "not significantly worse",
                "other_version": web.versions[0],
                "other_accuracy": 0.78,
                "candidate_accuracy": 0.81,
                "difference": 0.03,
                "low": 0.012,
                "high": 0.048,
                "n": 5000,
            }
        ],
    }
    async with web.session() as session:
        version = await storage.register_model_version(
            session, path="/srv/models/run-version", base_checkpoint="e5", metrics=metrics
        )
        run, _ = await storage.start_training_run(session, trigger=RunTrigger.ADMIN, requested_by=ADMIN)
        await storage.mark_run_running(session, run_id=run.id, log_path="/tmp/run.log", seed=1234)
        await storage.finish_training_run(
            session, run_id=run.id, status=RunStatus.SUCCEEDED, model_version_id=version.id, gate=gate
        )
        await storage.activate_model_version(
            session, version_id=version.id, reason=ActivationReason.PROMOTION
        )
    async with web.client(ADMIN) as admin:
        page = await admin.get(f"/models/{version.id}")
        listing = await admin.get("/models")
        assert (await admin.get("/models/999999")).status_code == 404
    assert page.status_code == 200
    per_class = page.text.split('id="per-class"', 1)[1].split("</table>", 1)[0]
    # 부정: precision 193/251, recall 193/241; 긍정: precision 201/249, recall 201/259
    assert "<td>부정</td>\n      <td>76.9%</td>\n      <td>80.1%</td>" in per_class
    assert "<td>긍정</td>\n      <td>80.7%</td>\n      <td>77.6%</td>" in per_class
    curves = page.text.split('id="curves"', 1)[1].split("</div>", 1)[0]
    assert curves.count("<svg") == 2 and "에폭별 손실" in curves and "epoch 2 검증 손실: 0.49" in curves
    calibration = page.text.split('id="calibration"', 1)[1]
    assert "8.1% → 3.5%" in calibration  # ECE before and after
    assert "36개 지점, 맞춘 데이터에서 ECE 0.7%" in calibration  # the confidence map
    assert f'재학습 <a href="/runs#run-{run.id}">#{run.id}</a>' in page.text
    assert "78.0% → 81.0%" in page.text and "+1.2 ~ +4.8%p" in page.text  # the gate's check and interval
    history = page.text.split("사용 이력", 1)[1]
    assert (
        f'<a href="/models/{web.versions[0]}">#{web.versions[0]}</a> → <a href="/models/{version.id}">'
        in history
    )
    assert "재학습 통과" in history
    assert (
        f'<a href="/models/{version.id}">{version.id}</a>' in listing.text and "재학습 통과" in listing.text
    )
    async with web.client(REVIEWER) as reviewer:
        assert (await reviewer.get(f"/models/{version.id}")).status_code == 403
