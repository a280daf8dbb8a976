"""The web app in a real browser (Debian's chromium driven by Playwright): log in by link, label five queue items
by keyboard, activate and roll back a model through the confirmation pages, a group's admin edits their group's
policy and is refused another group's page, used or expired links and posts without the CSRF token are refused,
and /metrics, read in the browser, parses and counts a review that arrives.

Where /usr/bin/chromium is missing these tests skip with the reason, except where MODERATOR_REQUIRE_BROWSER=1
(CI sets it after installing chromium): there a missing browser fails them. `playwright install` is never needed.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update
from web_helpers import (
    ADMIN,
    GROUP,
    GROUP_ADMIN,
    OTHER_GROUP,
    OTHER_GROUP_ADMIN,
    REVIEWER,
    REVIEWS,
    FakeChatAdmins,
)

from bot import storage
from bot.storage import ChatMode, Feedback, FeedbackSource, WebLogin
from bot.storage.models import utcnow
from bot.web import texts as web_texts

pytestmark = pytest.mark.timeout(600)  # the first test to start the app may train the session's scratch model

CHROMIUM = Path(os.environ.get("MODERATOR_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STEP_TIMEOUT_MS = 15_000


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    if not CHROMIUM.exists():
        reason = f"no chromium at {CHROMIUM} (apt-get install chromium fonts-noto-cjk)"
        if os.environ.get("MODERATOR_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + "; MODERATOR_REQUIRE_BROWSER=1 requires it")
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, timeout=STEP_TIMEOUT_MS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def logged_in_page(browser, web, user_id: int):
    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    link = await web.link(user_id)
    await page.goto(web.url + "/login/" + link.rsplit("/", 1)[1])
    async with page.expect_navigation():
        await page.click("#login")
    assert page.url == web.url + "/"
    cookies = await context.cookies()
    (session,) = [cookie for cookie in cookies if cookie["name"] == "moderator_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    return page


async def test_a_reviewer_logs_in_by_link_and_labels_five_items_by_keyboard(start_web, browser):
    web = await start_web()
    for number, review in enumerate(REVIEWS[:6], start=1):
        await web.classify(review, message_id=number)
    page = await logged_in_page(browser, web, REVIEWER)
    assert "검토자" in await page.text_content("body")
    await page.goto(web.url + "/queue?task=sentiment")
    answered = {}
    for step in range(5):
        assert f"남은 항목: {6 - step}건" in await page.text_content("#remaining")
        verdict_id = int(await page.get_attribute('form[data-key="1"] input[name="verdict_id"]', "value"))
        assert (await page.text_content("#review-text")).strip() in REVIEWS  # Korean text as sent
        key = "1" if step % 2 == 0 else "2"
        answered[verdict_id] = int(key) - 1  # label ids 0 (부정), 1 (긍정) on keys 1, 2
        async with page.expect_navigation():
            await page.keyboard.press(key)
        await page.wait_for_selector("p.flash")
    assert "남은 항목: 1건" in await page.text_content("#remaining")
    async with web.session() as session:
        labels = list(await session.scalars(select(Feedback).order_by(Feedback.id)))
    assert {f.verdict_id: f.label for f in labels} == answered
    assert all(f.user_id == REVIEWER and f.trusted and f.source is FeedbackSource.REVIEW for f in labels)
    # U takes the last label back and shows its item again.
    last = list(answered)[-1]
    async with page.expect_navigation():
        await page.keyboard.press("u")
    assert int(await page.get_attribute('form[data-key="1"] input[name="verdict_id"]', "value")) == last
    async with web.session() as session:
        assert await session.scalar(select(Feedback).where(Feedback.verdict_id == last)) is None


async def test_an_admin_activates_and_rolls_back_a_model_with_confirmation(start_web, browser):
    web = await start_web()
    first, second = web.versions
    page = await logged_in_page(browser, web, ADMIN)
    await page.goto(web.url + "/models")
    await page.click(f"#activate-{second}")
    await page.wait_for_selector("#confirm")
    assert page.url.endswith(f"/models/{second}/activate")
    async with web.session() as session:
        assert (await storage.get_active_model_version(session)).id == first  # not before confirming
    async with page.expect_navigation():
        await page.click("#confirm")
    assert f"#{first}에서 #{second}" in await page.text_content("p.flash")
    async with web.session() as session:
        assert (await storage.get_active_model_version(session)).id == second
    await page.click("#rollback-sentiment")
    async with page.expect_navigation():
        await page.click("#confirm")
    assert f"#{second}에서 #{first}" in await page.text_content("p.flash")
    async with web.session() as session:
        assert (await storage.get_active_model_version(session)).id == first
    assert web.moderation.serving.active.version_id == first


async def test_a_group_admin_edits_their_groups_policy_and_is_refused_another_group(start_web, browser):
    admins = FakeChatAdmins({GROUP: {GROUP_ADMIN}, OTHER_GROUP: {OTHER_GROUP_ADMIN}})
    web = await start_web(chat_admins=admins)
    async with web.session() as session:
        for chat_id in (GROUP, OTHER_GROUP):
            await storage.update_chat_policy(session, chat_id=chat_id, updated_by=ADMIN, mode=ChatMode.WATCH)
    page = await logged_in_page(browser, web, GROUP_ADMIN)
    assert "그룹 관리자" in await page.text_content("body")
    async with page.expect_navigation():
        await page.click(f'#my-groups a[href="/chats/{GROUP}"]')
    assert "지켜보기" in await page.text_content("#policy-mode")
    await page.select_option("#policy-key", "mode")
    await page.fill("#policy-value", "조치")
    async with page.expect_navigation():
        await page.click("#policy-save")
    assert "바꿨어요" in await page.text_content("p.flash")
    assert (await page.text_content("#policy-mode")).strip() == "조치"
    async with web.session() as session:
        assert (await storage.get_chat_policy(session, chat_id=GROUP)).mode is ChatMode.ACT
    response = await page.goto(f"{web.url}/chats/{OTHER_GROUP}")
    assert response is not None and response.status == 403
    assert web_texts.NOT_YOUR_CHAT in await page.text_content("p.error")
    async with web.session() as session:
        assert (await storage.get_chat_policy(session, chat_id=OTHER_GROUP)).mode is ChatMode.WATCH


async def test_in_the_browser_a_used_or_expired_link_and_a_post_without_its_token_are_refused(
    start_web, browser
):
    web = await start_web()
    page = await logged_in_page(browser, web, ADMIN)
    # A form posted from elsewhere carries the session cookie but not the page's CSRF token: refused, nothing done.
    forged = await page.request.post(web.url + f"/models/{web.versions[1]}/activate", form={"confirm": "1"})
    assert forged.status == 403 and web_texts.CSRF_FAILED in await forged.text()
    async with web.session() as session:
        assert (await storage.get_active_model_version(session)).id == web.versions[0]

    stranger = await (await browser.new_context()).new_page()
    stranger.set_default_timeout(STEP_TIMEOUT_MS)
    used = web.url + "/login/" + (await web.link(REVIEWER)).rsplit("/", 1)[1]
    await stranger.goto(used)
    async with stranger.expect_navigation():
        await stranger.click("#login")
    reused = await (await browser.new_context()).new_page()
    response = await reused.goto(used)  # the same link in a second browser
    assert response is not None and response.status == 403
    assert web_texts.LOGIN_LINK_INVALID in await reused.text_content("body")

    expired = web.url + "/login/" + (await web.link(REVIEWER)).rsplit("/", 1)[1]
    async with web.session() as session:
        await session.execute(
            update(WebLogin)
            .where(WebLogin.used_at.is_(None))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    response = await reused.goto(expired)
    assert response is not None and response.status == 403
    assert web_texts.LOGIN_LINK_INVALID in await reused.text_content("body")
    assert (await reused.goto(web.url + "/queue")).status == 401  # never logged in


async def test_in_the_browser_metrics_parse_and_the_verdict_counter_moves_when_a_review_arrives(
    start_web, browser
):
    web = await start_web()
    page = await (await browser.new_context()).new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)

    async def verdicts() -> float:
        response = await page.goto(web.url + "/metrics")
        assert response is not None and response.status == 200
        return sum(
            sample.value
            for family in text_string_to_metric_families(await page.inner_text("body") + "\n")
            for sample in family.samples
            if sample.name == "moderator_verdicts_total"
        )

    before = await verdicts()
    await web.classify(REVIEWS[0], message_id=1)
    assert await verdicts() - before == 1
