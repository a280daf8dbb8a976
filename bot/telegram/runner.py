"""`moderator run`'s delivery loop around the python-telegram-bot `Application` (built without an Updater).

Nothing lost:
- **Inbox.** The poller stores each getUpdates batch in one transaction and only then advances the offset, which
  the next getUpdates confirms to Telegram; in webhook mode the answer is 200 only after the commit. Each
  update is then processed from memory (`Application.process_update`, at most
  `application.update_processor.max_concurrent_updates` at once) and marked done. At start-up the updates
  left pending by a crash are processed first. An update whose processing started `INBOX_MAX_ATTEMPTS` times
  without finishing (the process died each time) is marked failed instead of crashing the bot forever.
- **Outbox.** Replies go through `bot.telegram.delivery.Outbox`: stored, sent, marked sent. One already sent
  is not sent again when its update is processed again; one that could not be sent is sent later, once.

Nothing stuck:
- **Telegram trouble.** Network errors, timeouts, 5xx and 429 on getUpdates are one WARNING line each, then a
  growing pause, forever. A refused token (401/404) or another poller (409) is retried the same way for
  `TELEGRAM_AUTH_RETRY_SECONDS`, then the runner stops with a `FatalError` (one line, exit 1) so that a
  supervisor restarts it. getMe at start-up likewise.
- **Shutdown.** SIGTERM/SIGINT stop fetching, give in-flight updates until `SHUTDOWN_TIMEOUT_SECONDS` (minus a
  short reserve for the shutdown hooks), cancel the rest (their inbox rows and replies stay pending for the
  next start), then run the application's `post_stop`/`post_shutdown` hooks within the deadline.
- **A deleted database file** is noticed before and after every inbox commit and every second; the runner
  then stops with a `FatalError` instead of confirming updates written to a file that no longer exists.

Several processes (webhook mode behind a load balancer, PostgreSQL): each holds the updates it stored and the
replies and actions it made (bot/storage/process_claims.py: a key per process, alive while its PostgreSQL
advisory lock is held). Every TAKEOVER_INTERVAL_SECONDS a process adopts the pending updates of processes that
are gone and processes them; their replies and actions are claimed one by one before they are sent, so none goes
out twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import tornado.httpserver
import tornado.netutil
import tornado.web
from telegram import Update
from telegram.error import RetryAfter, TelegramError

from bot import metrics, storage
from bot.storage import DatabaseFileGuard, DatabaseGoneError
from bot.storage.database import engine_of
from bot.storage.models import utcnow
from bot.storage.process_claims import ProcessLock
from bot.telegram.delivery import Outbox, SentJournal, update_scope
from bot.telegram.inbox_marks import InboxMarks, adopt_pending_updates
from bot.telegram.telegram_trouble import Backoff, FatalError, RefusalWindow, describe, refusal, retry_after
from bot.telegram.webhook import WebhookHandler

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
    from telegram.ext import Application

    from bot.settings import Settings

logger = logging.getLogger(__name__)

GUARD_INTERVAL_SECONDS = 1.0  # how often the database file is checked besides every inbox commit
PURGE_INTERVAL_SECONDS = 3600.0
FIRST_PURGE_AFTER_SECONDS = 60.0
HOOK_RESERVE_SECONDS = 2.0  # of the shutdown deadline, kept for post_stop/shutdown/post_shutdown
BACKLOG_PER_SLOT = 4  # updates held in memory per concurrency slot before polling pauses
SUSPECT_ATTEMPTS = 2  # pending updates started this often are re-processed one at a time after a restart
# how often the updates of bot processes that are gone are adopted (PostgreSQL)
TAKEOVER_INTERVAL_SECONDS = 2.0


class BotRunner:
    """Runs an `Application` built with `.updater(None)`: `await runner.run()` until SIGINT/SIGTERM (exit
    code 0), or `start()`/`stop()` from tests. Raises `FatalError` when it cannot go on."""

    def __init__(
        self,
        application: Application,
        *,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        poll_timeout: int | None = None,
        webhook: bool | None = None,
    ) -> None:
        self.application = application
        self.settings = settings
        self.session_factory = session_factory
        self.poll_timeout = settings.telegram_poll_timeout_seconds if poll_timeout is None else poll_timeout
        self.webhook = bool(settings.webhook_url) if webhook is None else webhook
        self.outbox: Outbox | None = None
        self.guard: DatabaseFileGuard | None = None
        self.process_lock = ProcessLock(engine_of(session_factory))
        self._marks: InboxMarks | None = None
        self.fatal: FatalError | None = None
        self.stopped = asyncio.Event()  # set once stop() finished
        self._stop_requested = asyncio.Event()
        self._stopping = False
        self._started_hooks = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._inflight: set[asyncio.Task[Any]] = set()
        self._room = asyncio.Condition()  # notified when an in-flight update finishes (backlog bound)
        self._server: tornado.httpserver.HTTPServer | None = None
        self.webhook_port: int | None = None

    @property
    def bot(self) -> Any:
        return self.application.bot

    # -- lifecycle --------------------------------------------------------------------------------------

    async def run(self) -> int:
        """Start, serve until SIGINT/SIGTERM or a fatal error, stop within the deadline. Returns 0 or raises
        FatalError."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal, signum)
        try:
            starting = asyncio.create_task(self.start())
            stop_waiter = asyncio.create_task(self._stop_requested.wait())
            await asyncio.wait({starting, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():  # a signal (or a fatal error) while starting
                starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting  # re-raises a FatalError from start-up
            await self._stop_requested.wait()  # a signal, or a fatal error while serving
        except FatalError as error:
            self.fatal = self.fatal or error
        finally:
            await self.stop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        if self.fatal is not None:
            raise self.fatal
        return 0

    def _on_signal(self, signum: int) -> None:
        if self._stop_requested.is_set():
            logger.warning("%s again: already stopping", signal.Signals(signum).name)
            return
        logger.info(
            "%s: stopping (at most %.0f s)",
            signal.Signals(signum).name,
            self.settings.shutdown_timeout_seconds,
        )
        self._stop_requested.set()

    def request_stop(self) -> None:
        self._stop_requested.set()

    def _fail(self, error: FatalError) -> None:
        """Stop serving; `run()` raises `error` once stopped (`moderator` prints it as its one error line)."""
        if self.fatal is None:
            self.fatal = error
        self._stop_requested.set()

    async def start(self) -> None:
        """Connect (getMe, bounded on a refused token), run post_init, re-process what a crash left pending,
        then fetch updates. Raises FatalError when the token stays refused."""
        self._tasks.append(asyncio.create_task(self._stop_when_requested(), name="stop-watch"))
        await self._initialize()
        await self.process_lock.start()
        self.guard = DatabaseFileGuard(self.settings.database_url)
        journal = None
        if self.guard.path is not None:  # SQLite: a journal file next to the database (see delivery)
            journal = SentJournal(self.guard.path.with_name(self.guard.path.name + "-sent.journal"))
        self.outbox = Outbox(
            bot=self.bot,
            session_factory=self.session_factory,
            max_attempts=self.settings.outbox_max_attempts,
            journal=journal,
            process_lock=self.process_lock,
        )
        await self.outbox.recover_journal()
        actions = self.application.bot_data.get("actions")
        if actions is not None:
            actions.process_lock = self.process_lock
        self._marks = InboxMarks(self.session_factory, self.bot.id, self.process_lock)
        self._marks.start()
        if self.application.post_init is not None:
            await self.application.post_init(self.application)
        self._started_hooks = True
        await self.application.start()
        await self._take_over(left_by="the previous run")
        self._tasks.append(asyncio.create_task(self._flush_loop(), name="outbox-flusher"))
        self._tasks.append(asyncio.create_task(self._maintenance_loop(), name="inbox-maintenance"))
        if self.webhook:
            await self._start_webhook()
        else:
            await self._call_telegram("deleteWebhook", lambda: self.bot.delete_webhook())
            self._tasks.append(asyncio.create_task(self._poll_loop(), name="getUpdates"))
        logger.info("the bot is running (%s)", "webhook" if self.webhook else "long polling")

    async def _stop_when_requested(self) -> None:
        await self._stop_requested.wait()
        await self.stop()

    async def _initialize(self) -> None:
        await self._call_telegram("getMe", self.application.initialize)

    async def _call_telegram(self, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """`call()`, retried with backoff: forever on passing trouble, for TELEGRAM_AUTH_RETRY_SECONDS on a
        refusal (then FatalError)."""
        backoff = Backoff()
        refused = RefusalWindow(self.settings.telegram_auth_retry_seconds)
        while True:
            try:
                return await call()
            except TelegramError as error:
                delay = retry_after(error) if isinstance(error, RetryAfter) else backoff.next_delay()
                if refusal(error) is not None:
                    waited = refused.failed()
                    if waited >= refused.limit_s:
                        raise FatalError(f"{describe(error)}; gave up after {waited:.0f} s") from None
                    delay = min(delay, max(refused.limit_s - waited, 0.1))
                logger.warning("%s failed: %s; retrying in %.1f s", what, describe(error), delay)
                await asyncio.sleep(delay)

    async def stop(self) -> None:
        """Stop within SHUTDOWN_TIMEOUT_SECONDS: stop fetching, let in-flight updates finish until the deadline
        (minus a reserve for the hooks), cancel the rest (they stay pending), then the application's hooks."""
        if self._stopping:
            await self.stopped.wait()
            return
        self._stopping = True
        self._stop_requested.set()
        loop = asyncio.get_running_loop()
        timeout = self.settings.shutdown_timeout_seconds
        deadline = loop.time() + timeout
        reserve = min(HOOK_RESERVE_SECONDS, timeout / 2)
        started = loop.time()
        try:
            if self._server is not None:
                self._server.stop()  # no new webhook requests
            current = asyncio.current_task()
            background = [task for task in self._tasks if task is not current]
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            unfinished = await self._drain(deadline - reserve - loop.time())
            if self._marks is not None:  # what finished is marked done, so it is not processed again
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        self._marks.close(), max(deadline - reserve / 2 - loop.time(), 0.2)
                    )
            if self._server is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._server.close_all_connections(), 0.5)
            await self._run_hooks(deadline)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.process_lock.close(), 1.0)
            if self.outbox is not None and self.outbox.journal is not None:
                self.outbox.compact_journal()
                self.outbox.journal.close()
            logger.info(
                "stopped in %.1f s%s",
                loop.time() - started,
                f"; {unfinished} unfinished update(s) are processed after the restart" if unfinished else "",
            )
        finally:
            self.stopped.set()

    async def _drain(self, budget_s: float) -> int:
        """Wait for in-flight updates up to `budget_s`, then cancel the rest; returns how many were cut."""
        inflight = set(self._inflight)
        if not inflight:
            return 0
        _, pending = await asyncio.wait(inflight, timeout=max(budget_s, 0.0))
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        return len(pending)

    async def _run_hooks(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        application = self.application

        async def bounded(name: str, step: Callable[[], Awaitable[Any]], *, floor_s: float = 0.2) -> None:
            try:
                await asyncio.wait_for(step(), max(deadline - loop.time(), floor_s))
            except TimeoutError:
                logger.warning("shutdown: %s did not finish in time; skipped", name)
            except Exception as error:  # noqa: BLE001 - shutdown goes on whatever a hook does
                logger.warning("shutdown: %s failed (%s: %s)", name, type(error).__name__, error)

        if application.running:
            await bounded("Application.stop", application.stop)
        if self._started_hooks and application.post_stop is not None:
            await bounded("post_stop", lambda: application.post_stop(application))  # type: ignore[misc]
        await bounded("Application.shutdown", application.shutdown)
        if application.post_shutdown is not None:
            # disposes the database engine: granted a moment even past the deadline
            await bounded("post_shutdown", lambda: application.post_shutdown(application), floor_s=1.0)  # type: ignore[misc]

    # -- the inbox --------------------------------------------------------------------------------------

    async def _store(self, payloads: list[dict[str, Any]]) -> list[int]:
        """Store updates (one transaction); returns the ids new to the inbox. Checks the database file before
        and after the commit: an update is never confirmed to Telegram into a deleted file."""
        assert self.guard is not None
        self.guard.check()
        async with self.session_factory.begin() as session:
            new_ids = await storage.store_updates(
                session, bot_id=self.bot.id, updates=payloads, process_key=self.process_lock.key
            )
        self.guard.check()
        new = set(new_ids)
        metrics.record_updates(payload for payload in payloads if payload.get("update_id") in new)
        return new_ids

    def _schedule(self, update: Update) -> None:
        self._track(asyncio.create_task(self._process(update), name=f"update-{update.update_id}"))

    def _track(self, task: asyncio.Task[Any]) -> None:
        """In flight: counted for the backlog bound, waited for (until the deadline) by stop()."""
        self._inflight.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._inflight.discard(task)

        async def notify() -> None:
            async with self._room:
                self._room.notify_all()

        if not self._stopping:
            asyncio.get_running_loop().create_task(notify())

    async def _process(self, update: Update) -> None:
        coroutine = self._handle(update)
        try:
            await self.application.update_processor.process_update(update, coroutine)
        except asyncio.CancelledError:
            coroutine.close()  # cancelled while waiting for a slot: never started
            raise

    async def _handle(self, update: Update) -> None:
        assert self.outbox is not None and self._marks is not None
        update_id = update.update_id
        if await self._marks.claim(update_id) == 0:
            return  # processed meanwhile (or not in the inbox): nothing to do
        with update_scope(self.outbox, update_id):
            await self.application.process_update(update)  # handler errors go to the error handlers
        self._marks.done(update_id)

    async def _take_over(self, *, left_by: str) -> None:
        """Adopt the pending updates that no live process holds (at start-up: what the previous run of this bot
        left; later: what a killed process sharing the database left) and schedule them; suspects (started twice
        already) one at a time, so that if one of them kills the process again, only its own attempt is counted
        and it alone reaches INBOX_MAX_ATTEMPTS."""
        adopted = await adopt_pending_updates(
            self.session_factory,
            self.bot,
            process_key=self.process_lock.key,
            max_attempts=self.settings.inbox_max_attempts,
            suspect_attempts=SUSPECT_ATTEMPTS,
        )
        for update in adopted.updates:
            self._schedule(update)
        if adopted.suspects:
            self._track(
                asyncio.create_task(self._process_one_by_one(adopted.suspects), name="suspect-updates")
            )
        if adopted.updates or adopted.suspects:
            logger.info(
                "processing %d update(s) left pending by %s%s",
                len(adopted.updates) + len(adopted.suspects),
                left_by,
                f" ({len(adopted.suspects)} one at a time)" if adopted.suspects else "",
            )

    async def _process_one_by_one(self, updates: list[Update]) -> None:
        for update in updates:
            await self._process(update)

    async def _wait_for_room(self) -> None:
        limit = max(self.application.update_processor.max_concurrent_updates, 1) * BACKLOG_PER_SLOT
        async with self._room:
            await self._room.wait_for(lambda: len(self._inflight) < limit)

    # -- long polling -----------------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        offset: int | None = None
        backoff = Backoff()
        refused = RefusalWindow(self.settings.telegram_auth_retry_seconds)
        while True:
            await self._wait_for_room()
            try:
                updates = await self.bot.get_updates(
                    offset=offset, timeout=self.poll_timeout, allowed_updates=Update.ALL_TYPES
                )
            except TelegramError as error:
                metrics.record_telegram_error(method="getUpdates", error=type(error).__name__)
                delay = retry_after(error) if isinstance(error, RetryAfter) else backoff.next_delay()
                if refusal(error) is not None:
                    waited = refused.failed()
                    if waited >= refused.limit_s:
                        self._fail(FatalError(f"{describe(error)}; gave up after {waited:.0f} s"))
                        return
                    delay = min(delay, max(refused.limit_s - waited, 0.1))
                logger.warning("getUpdates failed: %s; retrying in %.1f s", describe(error), delay)
                await asyncio.sleep(delay)
                continue
            except Exception:  # a bug must not stop fetching for good
                delay = backoff.next_delay()
                logger.exception("getUpdates failed unexpectedly; retrying in %.1f s", delay)
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            refused.reset()
            if not updates:
                continue
            try:
                new_ids = set(await self._store([update.to_dict() for update in updates]))
            except DatabaseGoneError as error:
                self._fail(FatalError(str(error)))
                return
            except Exception as error:  # noqa: BLE001 - not stored: not confirmed; Telegram sends them again
                delay = backoff.next_delay()
                logger.warning(
                    "could not store %d update(s) (%s: %s); fetching them again in %.1f s",
                    len(updates),
                    type(error).__name__,
                    " ".join(str(error).split())[:200],
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            for update in updates:
                if update.update_id in new_ids:
                    self._schedule(update)
            offset = updates[-1].update_id + 1  # the next getUpdates confirms this batch: it is stored

    # -- webhook ----------------------------------------------------------------------------------------

    async def _start_webhook(self) -> None:
        settings = self.settings
        path = urlparse(settings.webhook_url or "").path or "/"
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        if not secret:
            logger.warning("WEBHOOK_SECRET is not set: anyone who finds the webhook URL can send updates")
        app = tornado.web.Application([(re.escape(path), WebhookHandler, {"runner": self})])
        sockets = tornado.netutil.bind_sockets(
            settings.webhook_port, settings.webhook_listen, reuse_port=settings.webhook_reuse_port
        )
        self.webhook_port = sockets[0].getsockname()[1]
        self._server = tornado.httpserver.HTTPServer(app, xheaders=True)
        self._server.add_sockets(sockets)
        await self._call_telegram(
            "setWebhook",
            lambda: self.bot.set_webhook(
                url=settings.webhook_url, secret_token=secret, allowed_updates=Update.ALL_TYPES
            ),
        )
        logger.info("webhook listening on %s:%d%s", settings.webhook_listen, self.webhook_port, path)

    async def accept_webhook_update(self, payload: Any) -> int:
        """Store one update posted to the webhook; returns the HTTP status to answer (200 once stored)."""
        if self._stopping:
            return 503
        if not isinstance(payload, dict):
            return 400
        try:
            update = Update.de_json(payload, self.bot)
        except Exception:  # noqa: BLE001 - not an update
            return 400
        try:
            new_ids = await self._store([payload])
        except DatabaseGoneError as error:
            self._fail(FatalError(str(error)))
            return 500
        except Exception as error:  # noqa: BLE001 - not stored: 5xx, so Telegram delivers it again
            logger.warning(
                "webhook: could not store update %s (%s); Telegram will send it again",
                payload.get("update_id"),
                type(error).__name__,
            )
            return 500
        if update.update_id in new_ids:
            self._schedule(update)
        return 200

    # -- background work --------------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        assert self.outbox is not None
        interval = self.settings.outbox_flush_interval_seconds
        await asyncio.sleep(min(interval, 1.0))  # replies left by the previous run go out soon after start
        while True:
            try:
                actions = self.application.bot_data.get("actions")
                if actions is not None:  # moderation actions a crash or passing trouble left pending
                    await actions.flush()
                await self.outbox.flush()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - retried at the next interval
                logger.warning("outbox: flush failed (%s: %s)", type(error).__name__, error)
            await asyncio.sleep(interval)

    async def _maintenance_loop(self) -> None:
        assert self.guard is not None
        loop = asyncio.get_running_loop()
        next_purge = loop.time() + FIRST_PURGE_AFTER_SECONDS
        next_takeover = loop.time() + TAKEOVER_INTERVAL_SECONDS
        while True:
            try:
                self.guard.check()
            except DatabaseGoneError as error:
                self._fail(FatalError(str(error)))
                return
            if self.outbox is not None:
                self.outbox.compact_journal()
            if self.process_lock.enabled and loop.time() >= next_takeover:
                next_takeover = loop.time() + TAKEOVER_INTERVAL_SECONDS
                try:
                    await self._take_over(left_by="a process that is gone")
                except Exception as error:  # noqa: BLE001 - tried again at the next interval
                    logger.warning("inbox: takeover failed (%s: %s)", type(error).__name__, error)
            if loop.time() >= next_purge:
                next_purge = loop.time() + PURGE_INTERVAL_SECONDS
                await self.purge()
            await asyncio.sleep(GUARD_INTERVAL_SECONDS)

    async def purge(self) -> tuple[int, int]:
        """Delete processed updates and sent messages older than INBOX_RETENTION_HOURS."""
        cutoff = utcnow() - timedelta(hours=self.settings.inbox_retention_hours)
        try:
            async with self.session_factory.begin() as session:
                updates = await storage.purge_inbox(session, older_than=cutoff)
                messages = await storage.purge_outbox(session, older_than=cutoff)
        except Exception as error:  # noqa: BLE001 - tried again at the next interval
            logger.warning("inbox: purge failed (%s: %s)", type(error).__name__, error)
            return 0, 0
        if updates or messages:
            logger.info("purged %d processed update(s) and %d sent message(s)", updates, messages)
        return updates, messages
