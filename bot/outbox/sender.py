"""Drains the outbox through the channels within the platforms' limits.

- The platforms' limits (~30 messages/s overall, ~1/s per private chat, ~20/min per group, a
  429's pause of that platform only) are kept by a `RateLimiter` (bot/outbox/rate_limit.py):
  the sender asks it for a turn before each message; messages to one chat go in order, one in
  flight per chat.
- 429: every send on that channel pauses for retry_after, and the row waits at least that
  long; other channels (the web chat) go on.
- Transient failures (5xx, connection refused) retry with exponential backoff and full
  jitter, up to max_attempts; then the row is a dead letter ('failed') and logged.
- Ambiguous failures (read timeout: the platform may have delivered) are marked
  'unknown' and never resent: a customer must not get the same survey twice.
- A ticket's messages to one chat go in the order written, across retries (a forum topic,
  then the card, then the rest), and a row may wait for another row to be done (a customer's
  confirmation for the agents' card): see outbox.ready. The hooks' on_failed runs in the
  transaction that gives a row up, so nothing waiting on it goes without its fallback.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import timedelta
from typing import Any, Awaitable, Callable, Mapping, Protocol

from bot.channels.base import Ambiguous, Channel, Permanent, RetryLater, Transient
from bot.clock import Clock, SystemClock
from bot.outbox.rate_limit import RateLimiter, Turn
from storage import outbox, surveys
from storage.db import Connection, Database, savepoint
from storage.outbox import OutboxItem
from storage.timefmt import from_db

log = logging.getLogger(__name__)

READY_BATCH = 200
COALESCE_MAX_CHARS = 3500  # under Telegram's 4096, with room for the platform's own framing


class OutboxHooks(Protocol):
    """Per-row work around delivery that needs the database (e.g. a ticket's thread). No
    requests to the platform here: those are outbox rows of their own, sent and retried
    like any other (a forum topic is one)."""

    async def prepare(self, row: OutboxItem) -> dict[str, Any]:
        """The payload to deliver (may add the thread or the message to reply to)."""

    async def on_sent(self, row: OutboxItem, message_id: str | None) -> None:
        """Called after a successful delivery."""

    async def on_failed(self, tx: Connection, row: OutboxItem, status: str, error: Exception) -> None:
        """Called in the transaction that marks the row 'failed' or 'unknown' for good."""


IDLE_WAIT = 30.0  # seconds; a wake() cuts it short whenever something is enqueued


class Sender:
    def __init__(
        self,
        db: Database,
        channels: Mapping[str, Channel],
        *,
        messages_per_second: float = 30.0,
        max_attempts: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 300.0,
        max_in_flight: int = 32,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        hooks: OutboxHooks | None = None,
        limiter: RateLimiter | None = None,
        instance: str | None = None,
        claim_lease: float = outbox.CLAIM_LEASE_S,
    ) -> None:
        self.db = db
        # Rows this sender claims carry its instance's name and a lease (renewed by the
        # cluster while the instance lives): another instance recovers them once it ran out.
        self.instance = instance
        self.claim_lease = claim_lease
        self.channels = channels
        # The platforms' limits (messages_per_second: the configured overall rate, for the
        # channels that take it); `monotonic` and `sleep` are the limiter's time.
        # `is None`, not `or`: a limiter has a length (the chats it keeps), 0 when fresh.
        self.limiter = limiter if limiter is not None else RateLimiter(
            channels, messages_per_second=messages_per_second, monotonic=monotonic, sleep=sleep
        )
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        # Retry times are real time, whatever clock the rest of the app uses.
        self.clock = clock or SystemClock()
        self.monotonic = monotonic
        self.jitter = jitter
        self.hooks = hooks
        # Also called in the transaction that marks rows failed for good, with their ids
        # (e.g. a /mydata file: the customer is told and offered the link).
        self.failure_listeners: list[Callable[[Connection, list[int]], Awaitable[None]]] = []
        self._slots = asyncio.Semaphore(max_in_flight)
        self._wake = asyncio.Event()
        # Rows written here may be another instance's to send (the cluster's leader): tell it.
        self.wake_others: Callable[[], None] | None = None
        # With several instances: whether this one still surely leads (checked before each claim).
        self.may_send: Callable[[], bool] | None = None
        self._stopping = False
        self._in_flight: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.stats = {"sent": 0, "retried": 0, "failed": 0, "unknown": 0, "rate_limited": 0}
        # Where the sender's passes spent their time, in seconds (logged at stop, read by
        # bench/cluster.py): waiting for the limiter (its sleeps, and the waits between passes
        # while a row was held by a limit), for the database (reading ready rows, claiming),
        # for a free in-flight slot, and idle (nothing to send).
        self.waited = {"limiter": 0.0, "database": 0.0, "in_flight": 0.0, "idle": 0.0}
        self._held_by_limiter = False

    def wake(self) -> None:
        self._wake.set()
        if self.wake_others is not None:
            self.wake_others()

    async def recover(self, *, expired_only: bool = False) -> int:
        """At start: rows a crash left 'sending' may have arrived; mark them unknown (survey
        questions and web chat rows excepted: they are sent again, see outbox.requeue_in_flight).
        With several instances (`expired_only`): only rows whose claim ran out (their
        instance died); the others are being sent."""
        async with self.db.transaction() as tx:
            local = [name for name, ch in self.channels.items() if ch.resend_after_crash]
            requeued = await outbox.requeue_in_flight(tx, local, expired_only=expired_only)
            count = await outbox.recover_in_flight(tx, expired_only=expired_only)
        if requeued:
            log.warning("outbox: %d survey question(s) or web chat message(s) were in flight when the bot "
                        "stopped; sending them again (one may arrive twice)", requeued)
        if count:
            log.warning("outbox: %d message(s) were in flight when the bot stopped; marked unknown, not resent", count)
        return count

    async def run(self) -> None:
        """Until stop(): it is asked to end, never cancelled mid-pass (a cancel between
        claiming a row and starting its send would leave the row 'sending', then 'unknown').
        May run again after it returned and resume() (an instance that is the leader again)."""
        while not self._stopping:
            await self._step()

    def resume(self) -> None:
        """After finish_soon(): run() may be started again."""
        self._stopping = False

    def finish_soon(self) -> None:
        """Start no new sends; run() returns after the pass under way."""
        self._stopping = True
        self.wake()

    async def _step(self, max_wait: float = IDLE_WAIT) -> None:
        """One pass, then sleep until a send may be possible or something wakes us
        (a new row, or a send finishing: both call wake())."""
        self._wake.clear()  # before pump: a wake() during its awaits must not be lost
        wait = min(await self.pump(), max_wait)
        started = self.monotonic()
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
            # that races with the event being set, and the task never stops.
            async with asyncio.timeout(wait):
                await self._wake.wait()
        except TimeoutError:
            pass
        self.waited["limiter" if self._held_by_limiter else "idle"] += self.monotonic() - started

    async def stop(self, timeout: float = 10.0) -> None:
        """Let in-flight requests finish (or time out) so their outcome is recorded."""
        self.finish_soon()
        tasks = list(self._in_flight.values())
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        if self.stats["sent"]:
            log.info("sender: %d sent; seconds waiting for the limiter %.2f, the database %.2f, an in-flight slot %.2f,"
                     " idle %.2f", self.stats["sent"], *self.waited.values())

    async def pump(self) -> float:
        """Start every send the limits allow now; returns how long to wait before trying again."""
        pauses = await self.limiter.pauses()
        # Rows of a paused channel are not even read: a long Telegram pause with a big
        # backlog must not keep the web chat's messages out of the batch.
        skip = tuple(pauses)
        wait = min([IDLE_WAIT, *pauses.values()])
        held: set[tuple[str, str]] = set()  # chats whose next message must wait: keep their order
        self._held_by_limiter = False
        waited, mono = self.waited, self.monotonic
        for _ in range(2):
            at = mono()
            rows = await outbox.ready(self.db.reader, self.clock.now(), READY_BATCH, skip_channels=skip)
            waited["database"] += mono() - at
            waiting: set[str] = set()  # channels with a row that must wait ...
            started: set[str] = set()  # ... and channels with a row started in this pass
            for row in rows:
                if self._stopping or (self.may_send is not None and not self.may_send()):
                    break
                key = (row.channel, row.chat_id)
                if key in held or key in self._in_flight:
                    held.add(key)
                    waiting.add(row.channel)
                    continue
                channel = self.channels.get(row.channel)
                if channel is None:
                    await self._finish([row.id], "failed", f"channel {row.channel} is not enabled")
                    continue
                # A button acknowledgement is not a chat message: no pacing, not in the ~30/s budget.
                at = mono()
                turn = await self.limiter.wait_turn(row.channel, row.chat_id, paced=row.method != "answer_choice")
                waited["limiter"] += mono() - at
                if not isinstance(turn, Turn):
                    # The chat's pacing, the platform's window (not slept here, so the rows of
                    # other channels, the web chat, go on meanwhile) or a 429's pause.
                    held.add(key)
                    waiting.add(row.channel)
                    wait = min(wait, turn)
                    self._held_by_limiter = True
                    continue
                at = mono()
                await self._slots.acquire()
                waited["in_flight"] += mono() - at
                at = mono()
                if row.coalesce_key is None:  # the claim alone: one write (one round trip on PostgreSQL)
                    claimed, merged = await outbox.claim(self.db, row.id, self.instance, self.claim_lease), []
                else:
                    async with self.db.transaction() as tx:
                        claimed = await outbox.mark_sending(tx, row.id, self.instance, self.claim_lease)
                        # Messages piling up for a busy chat (a group allows ~20 a minute) go as one.
                        merged = await outbox.take_coalescable(tx, row, COALESCE_MAX_CHARS) if claimed else []
                waited["database"] += mono() - at
                if not claimed:
                    self._slots.release()
                    await self.limiter.unused(turn)
                    continue
                started.add(row.channel)
                self._in_flight[key] = asyncio.create_task(self._send(channel, row, merged, turn))
            # A full batch held up by a slower channel (ZNS at 5/s in front of Zalo's CS rows)
            # would hold the faster one to its pace: read once more without the channels
            # none of whose rows could start.
            blocked = waiting - started
            if len(rows) < READY_BATCH or not blocked or self._stopping:
                break
            skip = (*skip, *sorted(blocked))
        if len(rows) == READY_BATCH:
            return min(wait, self.limiter.interval)
        at = mono()
        retry_at = from_db(await outbox.next_retry_at(self.db.reader))
        waited["database"] += mono() - at
        if retry_at is not None:
            wait = min(wait, max(0.0, (retry_at - self.clock.now()).total_seconds()))
        return wait

    async def _send(
        self, channel: Channel, row: OutboxItem, merged: list[OutboxItem], turn: Turn
    ) -> None:
        attempt = row.attempts + 1
        ids = [row.id, *(m.id for m in merged)]
        try:
            payload = dict(row.payload)
            if merged:
                payload["text"] = "\n".join([payload.get("text", ""), *(m.payload.get("text", "") for m in merged)])
            if self.hooks is not None:
                payload = await self.hooks.prepare(OutboxItem(**{**row.__dict__, "payload": payload}))
            try:
                await self.limiter.sending(turn)
                message_id = await channel.deliver(row.method, row.chat_id, payload)
            finally:
                await self.limiter.answered(turn)
        except RetryLater as exc:
            self.stats["rate_limited"] += 1
            await self.limiter.pause(row.channel, exc.seconds)
            log.warning("%s asked us to slow down: pausing its sends for %.0fs", row.channel, exc.seconds)
            await self._retry(ids, exc.seconds, str(exc), count_attempt=False)
        except Transient as exc:
            if attempt >= self.max_attempts:
                log.error(
                    "outbox %s to %s failed %d times, giving up (dead letter): %s",
                    row.id, row.channel, attempt, exc,
                )
                await self._finish(ids, "failed", f"gave up after {attempt} attempts: {exc}", row, exc)
            else:
                delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
                delay *= 0.5 + 0.5 * self.jitter()  # jitter: retries of many rows do not stampede
                self.stats["retried"] += 1
                log.info("outbox %s to %s: %s; retry %d in %.1fs", row.id, row.channel, exc, attempt, delay)
                await self._retry(ids, delay, str(exc), count_attempt=True)
        except Ambiguous as exc:
            log.warning("outbox %s to %s: outcome unknown, not resending: %s", row.id, row.channel, exc)
            await self._finish(ids, "unknown", str(exc), row, exc)
        except Permanent as exc:
            log.warning("outbox %s to %s failed: %s", row.id, row.channel, exc)
            await self._finish(ids, "failed", str(exc), row, exc)
        except Exception as exc:  # a bug in a channel must not kill the sender
            log.exception("outbox %s: unexpected error", row.id)
            await self._finish(ids, "failed", f"{type(exc).__name__}: {exc}", row, exc)
        else:
            await outbox.record_sent(self.db, ids, message_id, self.clock.now())
            self.stats["sent"] += 1
            if self.hooks is not None:
                try:
                    await self.hooks.on_sent(row, message_id)
                except Exception:
                    log.exception("outbox %s: after-send hook failed", row.id)
        finally:
            await self.limiter.finished(turn)  # the chat's pacing counts from now
            self._in_flight.pop((row.channel, row.chat_id), None)
            self._slots.release()
            self.wake()

    async def _retry(self, ids: list[int], delay: float, error: str, count_attempt: bool) -> None:
        at = self.clock.now() + timedelta(seconds=delay)
        async with self.db.transaction() as tx:
            await outbox.mark_retry(tx, ids, at, error, count_attempt=count_attempt)

    async def _finish(
        self, ids: list[int], status: str, error: str, row: OutboxItem | None = None, exc: Exception | None = None
    ) -> None:
        self.stats[status] += 1
        async with self.db.transaction() as tx:
            await outbox.mark_final(tx, ids, status, error)
            if status == "failed":  # a survey whose question never arrived is not "sent and unanswered"
                await surveys.mark_undeliverable(tx, ids, error, self.clock.now())
                for listener in self.failure_listeners:
                    try:
                        async with savepoint(tx, "failure_listener"):
                            await listener(tx, ids)
                    except Exception:
                        log.exception("outbox %s: failure listener failed", ids)
            if row is not None and exc is not None and self.hooks is not None:
                try:  # in the same transaction: what waits for this row never sees it done without its fallback
                    async with savepoint(tx, "on_failed"):
                        await self.hooks.on_failed(tx, row, status, exc)
                except Exception:
                    log.exception("outbox %s: after-failure hook failed", row.id)

    async def drain(self, timeout: float = 30.0) -> None:
        """Send until nothing is pending or in flight (tests and benchmarks)."""
        deadline = self.monotonic() + timeout
        while True:
            if not self._in_flight:
                left = await outbox.unfinished(self.db)
                if not left:
                    return
                if self.monotonic() >= deadline:
                    raise TimeoutError(f"outbox not drained within {timeout}s: {[tuple(r) for r in left]}")
            await self._step(max_wait=max(0.0, deadline - self.monotonic()))
