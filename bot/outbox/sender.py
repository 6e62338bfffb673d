"""Drains the outbox through the channels within the platforms' limits.

- ~30 messages/s overall per platform (the channel's `messages_per_second`, None = no overall
  limit, missing = the configured rate): starts spread evenly a little under the rate, and
  never more than `rate` of them in any second plus a margin for the requests' jitter on their
  way (see `_slot_opens`); ~1/s per private chat, ~20/min per group (the channel's `pacing`);
  messages to one chat in order, one in flight per chat.
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
import math
import random
import time
from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Awaitable, Callable, Mapping, Protocol

from bot.channels.base import SENDER_RATE, Ambiguous, Channel, Permanent, RetryLater, Transient
from bot.clock import Clock, SystemClock
from storage import outbox, surveys
from storage.db import Connection, Database, savepoint
from storage.outbox import OutboxItem
from storage.timefmt import from_db

log = logging.getLogger(__name__)

READY_BATCH = 200
LAST_SENT_PRUNE_AT = 1024  # per-chat send times kept before idle chats are forgotten ...
LAST_SENT_PRUNE_EVERY = 1.0  # ... at most once a second
RATE_MARGIN = 0.98  # starts are spread 1/(rate * RATE_MARGIN) apart, kept to that schedule ...
CATCH_UP = 3  # ... up to this many intervals of lag made up, never closer than half an interval ...
WINDOW_MARGIN = 0.010  # ... and at most `rate` starts in any (1 s + this + a slow request's delay)
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


@dataclass(frozen=True)
class _RateLimit:
    count: int  # at most this many arrivals ...
    window: float  # ... in any window this long (seconds)
    interval: float  # seconds between two starts on the even schedule


class _Start:
    """One message start on a rate-limited channel, and how long its request took."""

    __slots__ = ("at", "round_trip", "sent")

    def __init__(self, at: float) -> None:
        self.at = at
        self.round_trip: float | None = None  # None while in flight
        self.sent = True

    def answered(self, now: float) -> None:
        self.round_trip = now - self.at

    def unused(self) -> None:
        """Nothing went out on this start after all: it still counts, with no delay."""
        self.round_trip, self.sent = 0.0, False


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
        instance: str | None = None,
        claim_lease: float = outbox.CLAIM_LEASE_S,
    ) -> None:
        self.db = db
        # Rows this sender claims carry its instance's name and a lease (renewed by the
        # cluster while the instance lives): another instance recovers them once it ran out.
        self.instance = instance
        self.claim_lease = claim_lease
        self.channels = channels
        # A little under the platform's limit: requests spaced exactly 1/rate apart still
        # arrive bunched by network jitter, and one extra in a second is a 429 that pauses
        # every chat (seen in bench/csat_pipeline.py at exactly 30/s). The window limit in
        # _global_slot is what keeps the count; this spacing keeps the sends spread.
        self.messages_per_second = messages_per_second
        self.interval = 1.0 / (messages_per_second * RATE_MARGIN)
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        # Retry times are real time, whatever clock the rest of the app uses.
        self.clock = clock or SystemClock()
        self.monotonic = monotonic
        self.jitter = jitter
        self.sleep = sleep  # the overall rate's waits (tests pass one that moves a fake `monotonic`)
        self.hooks = hooks
        # Also called in the transaction that marks rows failed for good, with their ids
        # (e.g. a /mydata file: the customer is told and offered the link).
        self.failure_listeners: list[Callable[[Connection, list[int]], Awaitable[None]]] = []
        self._slots = asyncio.Semaphore(max_in_flight)
        self._wake = asyncio.Event()
        # Rows written here may be another instance's to send (the cluster's leader): tell it.
        self.wake_others: Callable[[], None] | None = None
        self._stopping = False
        self._next_slot: dict[str, float] = {}  # per channel: when its next start is due
        self._starts: dict[str, deque[_Start]] = {}  # per channel: its last `limit` starts
        self._paused_until: dict[str, float] = {}  # per channel: a 429 pauses that platform only
        self._limits: dict[str, _RateLimit | None] = {}
        self._last_sent: dict[tuple[str, str], float] = {}
        self._next_prune = 0.0
        self._in_flight: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.stats = {"sent": 0, "retried": 0, "failed": 0, "unknown": 0, "rate_limited": 0}

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
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
            # that races with the event being set, and the task never stops.
            async with asyncio.timeout(wait):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def stop(self, timeout: float = 10.0) -> None:
        """Let in-flight requests finish (or time out) so their outcome is recorded."""
        self.finish_soon()
        tasks = list(self._in_flight.values())
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def pump(self) -> float:
        """Start every send the limits allow now; returns how long to wait before trying again."""
        mono = self.monotonic()
        pauses = {name: until - mono for name, until in self._paused_until.items() if until > mono}
        if len(self._last_sent) > LAST_SENT_PRUNE_AT and mono >= self._next_prune:
            self._forget_idle_chats()
        # Rows of a paused channel are not even read: a long Telegram pause with a big
        # backlog must not keep the web chat's messages out of the batch.
        rows = await outbox.ready(self.db.reader, self.clock.now(), READY_BATCH, skip_channels=tuple(pauses))
        wait = min([IDLE_WAIT, *pauses.values()])
        held: set[tuple[str, str]] = set()  # chats whose next message must wait: keep their order
        for row in rows:
            if self._stopping:
                break
            key = (row.channel, row.chat_id)
            if key in held or key in self._in_flight:
                held.add(key)
                continue
            if self.monotonic() < self._paused_until.get(row.channel, 0.0):
                continue  # a 429 of this channel during this pass: its rows wait, others go on
            channel = self.channels.get(row.channel)
            if channel is None:
                await self._finish([row.id], "failed", f"channel {row.channel} is not enabled")
                continue
            paced = row.method != "answer_choice"  # button acknowledgements are not chat messages
            if paced:
                ready_at = self._last_sent.get(key, float("-inf")) + channel.pacing(row.chat_id)
                if ready_at > self.monotonic():
                    wait = min(wait, ready_at - self.monotonic())
                    held.add(key)
                    continue
            start: _Start | None = None
            if paced:  # the ~30/s budget is for messages; a button acknowledgement is not one
                opens = self._slot_opens(row.channel, channel)
                if opens is not None and opens[0] - self.monotonic() > opens[1]:
                    # Longer than a slot (the window after a slow request): not slept here,
                    # so the rows of other channels (the web chat) go on meanwhile.
                    held.add(key)
                    wait = min(wait, opens[0] - self.monotonic())
                    continue
                start = await self._global_slot(row.channel, channel)
            if self.monotonic() < self._paused_until.get(row.channel, 0.0):
                held.add(key)  # a 429 came in while we waited for the slot
                wait = min(wait, self._paused_until[row.channel] - self.monotonic())
                if start is not None:
                    start.unused()
                continue
            await self._slots.acquire()
            async with self.db.transaction() as tx:
                claimed = await outbox.mark_sending(tx, row.id, self.instance, self.claim_lease)
                # Messages piling up for a busy chat (a group allows ~20 a minute) go as one.
                merged = await outbox.take_coalescable(tx, row, COALESCE_MAX_CHARS) if claimed else []
            if not claimed:
                self._slots.release()
                if start is not None:
                    start.unused()
                continue
            self._in_flight[key] = asyncio.create_task(self._send(channel, row, merged, key, paced, start))
        if len(rows) == READY_BATCH:
            return min(wait, self.interval)
        retry_at = from_db(await outbox.next_retry_at(self.db.reader))
        if retry_at is not None:
            wait = min(wait, max(0.0, (retry_at - self.clock.now()).total_seconds()))
        return wait

    def _forget_idle_chats(self) -> None:
        """Drop the send times of chats whose pacing interval has passed (they may be sent to
        at once, as if never seen): the dict holds the recently active chats, not every chat
        ever sent to (at ~30 msg/s: a few hundred entries, whatever the number of customers)."""
        now = self.monotonic()
        for key, at in list(self._last_sent.items()):
            channel = self.channels.get(key[0])
            if channel is None or now - at >= channel.pacing(key[1]):
                del self._last_sent[key]
        self._next_prune = now + LAST_SENT_PRUNE_EVERY

    def _limit(self, name: str, channel: Channel) -> _RateLimit | None:
        """The channel's overall rate limit (None: no overall limit)."""
        if name not in self._limits:
            rate = channel.messages_per_second
            if rate == SENDER_RATE:  # the platform's rate is the configured one
                rate = self.messages_per_second
            if rate is None:
                self._limits[name] = None
            else:
                count = max(1, math.floor(rate))  # 30/s: 30 in 1 s; 0.5/s: 1 in 2 s
                self._limits[name] = _RateLimit(count, count / rate, 1.0 / (rate * RATE_MARGIN))
                self._starts[name] = deque(maxlen=count)
        return self._limits[name]

    async def _global_slot(self, name: str, channel: Channel) -> _Start | None:
        """Waits until the channel's overall limit allows one more message and records its
        start (None: the channel has no overall limit). The caller reports the answer
        (`_Start.answered`) as soon as the request is done, or at once if it sends nothing."""
        while True:  # again after the wait: an answer that came in meanwhile may move it
            opens = self._slot_opens(name, channel)
            if opens is None:
                return None
            now = self.monotonic()
            if opens[0] <= now:
                break
            await self.sleep(opens[0] - now)
        limit = self._limits[name]
        assert limit is not None
        scheduled = self._next_slot.get(name, now)
        self._next_slot[name] = max(scheduled, now - CATCH_UP * limit.interval) + limit.interval
        start = _Start(now)
        self._starts[name].append(start)
        return start

    def _slot_opens(self, name: str, channel: Channel) -> tuple[float, float] | None:
        """When the channel's overall limit allows the next start, and the channel's interval
        (None: no overall limit)."""
        limit = self._limit(name, channel)
        if limit is None:
            return None
        # Two rules. (1) Starts are spread evenly, 1/(rate * RATE_MARGIN) apart, kept to that
        # schedule: a wake-up ~1 ms late does not push every later start back (counting from
        # the wake-up cost 3% of the rate, 0.944 of the cap in bench/outbound_drain.py). A late
        # start lets the next ones follow sooner, never closer than half an interval, and at
        # most CATCH_UP intervals of lag are made up (after a stall or an idle spell: no burst).
        # (2) What the platform counts is arrivals: at most `count` in any `window` (1 s).
        # A start may follow the `count`-th start before it by no less than the window plus
        # that request's delay beyond the fastest recent round trip (it may have arrived that
        # late; for a request still in flight, WINDOW_MARGIN). Based on actual start and answer
        # times, so lateness does not compound, and a request held up on its way delays the
        # next window instead of landing in it: in bench/outbound_drain.py a start reaches the
        # fake Bot API ~2 ms later, but 40-90 ms later a few times per 3,000 (event-loop
        # stalls), and keeping to the schedule without this rule drew 2-5 429s per 10,000.
        # In steady state rule (1) binds and rule (2) rarely does. A fixed margin would have
        # to cover the worst stall on every window (90 ms: 0.92 of the cap at best); this one
        # costs only the windows after a slow request.
        ready = self._next_slot.get(name, float("-inf"))
        starts = self._starts[name]
        if starts:
            ready = max(ready, starts[-1].at + limit.interval / 2)
        if len(starts) == limit.count:
            ready = max(ready, self._window_opens(starts, limit))
        return ready, limit.interval

    def _window_opens(self, starts: deque[_Start], limit: _RateLimit) -> float:
        """When one more start keeps at most `count` arrivals in any window."""
        oldest = starts[0]
        fastest = min((s.round_trip for s in starts if s.sent and s.round_trip is not None), default=0.0)
        late = WINDOW_MARGIN if oldest.round_trip is None else max(WINDOW_MARGIN, oldest.round_trip - fastest)
        return oldest.at + limit.window + late

    async def _send(
        self, channel: Channel, row: OutboxItem, merged: list[OutboxItem], key: tuple[str, str], paced: bool,
        start: _Start | None = None,
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
                message_id = await channel.deliver(row.method, row.chat_id, payload)
            finally:
                if start is not None:
                    start.answered(self.monotonic())
        except RetryLater as exc:
            self.stats["rate_limited"] += 1
            until = self.monotonic() + exc.seconds
            self._paused_until[row.channel] = max(self._paused_until.get(row.channel, 0.0), until)
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
            async with self.db.transaction() as tx:
                await outbox.mark_sent(tx, ids, message_id, self.clock.now())
            self.stats["sent"] += 1
            if self.hooks is not None:
                try:
                    await self.hooks.on_sent(row, message_id)
                except Exception:
                    log.exception("outbox %s: after-send hook failed", row.id)
        finally:
            if start is not None and start.round_trip is None:
                start.unused()  # no request went out (prepare failed)
            if paced:
                # Counted from the answer, not the request: a slow request must not let the
                # next one reach the platform less than the interval after it.
                self._last_sent[key] = self.monotonic()
            self._in_flight.pop(key, None)
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
