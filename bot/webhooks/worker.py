"""Delivers the webhook outbox: at least once, signed, on Standard Webhooks' retry schedule.

A pass claims due deliveries with a lease (storage/webhooks.py), POSTs each (aiohttp, no
redirects followed, a total timeout), and writes every verdict of the pass in one
transaction. A worker that dies mid-delivery leaves its rows 'sending' until the lease runs
out; then they are claimed again and sent with the same webhook-id (the receiver dedupes on
it). Verdicts: 2xx delivered; 410 disables the endpoint (its queue becomes dead letters);
anything else (other statuses, 3xx, timeouts, connection errors) is retried after the
schedule's next delay with jitter, or after the receiver's Retry-After, until the schedule
ends: then a dead letter (`feedbot webhooks deliveries --status dead`, `redeliver`).
429, 502, 503 and 504 also hold back the endpoint's other deliveries for that long.
"""
from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import aiohttp

from bot.clock import Clock
from bot.webhooks import signing
from storage import webhooks
from storage.db import Database
from storage.webhooks import Claimed, Outcome

if TYPE_CHECKING:
    from bot.config import Config

log = logging.getLogger(__name__)

# Standard Webhooks' example schedule: the wait before each retry (the first attempt is
# immediate); 10 attempts over ~3 days, then a dead letter.
SCHEDULE = (
    timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2), timedelta(hours=5),
    timedelta(hours=10), timedelta(hours=14), timedelta(hours=20), timedelta(hours=24),
)
JITTER = 0.2  # each wait is drawn from +-20% of the schedule's
MAX_RETRY_AFTER = timedelta(hours=24)  # a receiver's Retry-After is honoured up to this
THROTTLE_STATUSES = frozenset({429, 502, 503, 504})  # the endpoint is held back, not only this delivery
LEASE_MARGIN = timedelta(seconds=15)  # a claim's lease: the request timeout and this
ERROR_CHARS = 200
IDLE_FLOOR_S = 0.05  # the shortest sleep between passes that found nothing to claim


@dataclass(frozen=True)
class WebhookSettings:
    """The [webhooks] section, read in one place."""

    enabled: bool = True
    timeout: timedelta = timedelta(seconds=15)
    concurrency: int = 16
    batch: int = 200
    poll_interval: timedelta = timedelta(seconds=2)
    rotation_overlap: timedelta = timedelta(hours=24)

    @staticmethod
    def from_config(config: "Config") -> "WebhookSettings":
        s = config.webhooks
        return WebhookSettings(
            enabled=s.enabled, timeout=s.timeout, concurrency=s.concurrency,
            poll_interval=s.poll_interval, rotation_overlap=s.rotation_overlap,
        )


def retry_delay(attempts: int, rng: random.Random) -> timedelta | None:
    """After `attempts` failed attempts: how long to wait before the next, with jitter; None
    when the schedule is over."""
    if attempts < 1 or attempts > len(SCHEDULE):
        return None
    return SCHEDULE[attempts - 1] * (1 + rng.uniform(-JITTER, JITTER))


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """Retry-After as seconds or an HTTP date, capped at MAX_RETRY_AFTER; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # isdigit() alone takes "²", which int() refuses
        delay = timedelta(seconds=int(value))
    else:
        try:
            at = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if at.tzinfo is None:
            return None
        delay = at - now
    return max(timedelta(0), min(delay, MAX_RETRY_AFTER))


@dataclass(frozen=True)
class Attempt:
    """What one POST came to."""

    status: int | None  # the receiver's HTTP status; None: no answer (timeout, connection error)
    error: str | None = None
    retry_after: timedelta | None = None
    elapsed_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookWorker:
    def __init__(self, db: Database, clock: Clock, settings: WebhookSettings, *,
                 rng: random.Random | None = None) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._held: dict[int, datetime] = {}  # endpoint id -> not before (429/502/503/504)
        self.delivered = 0  # counters, for the bench and the log
        self.failed = 0
        self.last_pass: list[tuple[Claimed, Attempt | None]] = []  # the latest pass's attempts (None: held back)

    # --- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout.total_seconds()),
                connector=aiohttp.TCPConnector(limit=self.settings.concurrency, limit_per_host=self.settings.concurrency),
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Pass after pass while deliveries are due; between, sleep until the next one is due,
        a wake() or the poll interval (events written by other processes). An idle worker
        only reads (no write transaction while nothing is due) and holds no HTTP client."""
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    due = await webhooks.next_due(self.db.reader)
                    if due is not None and due <= self.clock.now() and await self.drain_once():
                        continue
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("webhook delivery pass failed; trying again shortly")
                    due = None
                    await asyncio.sleep(1.0)
                if self._stopping:
                    break
                wait = self.settings.poll_interval.total_seconds()
                if due is not None:  # (due already and nothing claimed: another worker has it; no busy loop)
                    wait = max(IDLE_FLOOR_S, min(wait, (due - self.clock.now()).total_seconds()))
                try:
                    async with asyncio.timeout(wait):  # not wait_for: on 3.11 it can swallow a cancel
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            await self.close()

    # --- one pass -------------------------------------------------------------------------

    async def drain_once(self, delivery_id: int | None = None) -> int:
        """Claim due deliveries (or only `delivery_id`, due or not), attempt each, record the
        verdicts; how many were claimed. The HTTP client is made on the first delivery."""
        now = self.clock.now()
        lease = now + self.settings.timeout + LEASE_MARGIN
        async with self.db.transaction() as tx:
            claimed = await webhooks.claim(tx, now, lease, self.settings.batch, delivery_id=delivery_id)
        if not claimed:
            return 0
        await self.open()
        gate = asyncio.Semaphore(self.settings.concurrency)

        async def one(c: Claimed) -> tuple[Claimed, Attempt | None]:
            held = self._held.get(c.endpoint.id)
            if held is not None and held > self.clock.now() and delivery_id is None:
                return c, None  # not sent: its endpoint asked us to slow down
            async with gate:
                return c, await self.attempt(c)

        results = await asyncio.gather(*(one(c) for c in claimed))
        self.last_pass = results
        now = self.clock.now()
        outcomes, gone = [], {}
        for c, attempt in results:
            outcomes.append(self._verdict(c, attempt, now, gone))
        async with self.db.transaction() as tx:
            await webhooks.record(tx, outcomes, now)
            for endpoint_id, reason in gone.items():
                dead = await webhooks.disable_endpoint(tx, endpoint_id, reason, now)
                log.warning("webhook endpoint %s answered 410 Gone: disabled, %d queued deliveries dead", endpoint_id, dead)
        return len(claimed)

    async def attempt(self, c: Claimed) -> Attempt:
        """One signed POST of the event's exact body."""
        assert self._session is not None
        now = self.clock.now()
        body = c.payload.encode("utf-8")
        headers = signing.headers(c.msg_id, int(now.timestamp()), body, c.endpoint.secrets(now))
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with self._session.post(c.endpoint.url, data=body, headers=headers, allow_redirects=False) as resp:
                text = (await resp.content.read(ERROR_CHARS)).decode("utf-8", "replace") if resp.status >= 300 else ""
                elapsed = (loop.time() - started) * 1000
                return Attempt(resp.status, f"HTTP {resp.status} {text}".strip() if resp.status >= 300 else None,
                               parse_retry_after(resp.headers.get("Retry-After"), self.clock.now()), elapsed)
        except asyncio.TimeoutError:
            return Attempt(None, f"timed out after {self.settings.timeout.total_seconds():g}s")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            # Never the URL itself in the error (kept and logged): it may carry a token (?token=...).
            return Attempt(None, f"{type(exc).__name__}: {exc}".replace(c.endpoint.url, "<endpoint URL>")[:ERROR_CHARS])

    def _verdict(self, c: Claimed, attempt: Attempt | None, now: datetime, gone: dict[int, str]) -> Outcome:
        if attempt is None:  # held back: back in the queue, this claim does not count
            return Outcome(c.id, "pending", self._held[c.endpoint.id], refund_attempt=True, error="held back by the endpoint")
        if attempt.ok or (c.endpoint.redirect_ok and attempt.status is not None and 300 <= attempt.status < 400):
            self.delivered += 1
            return Outcome(c.id, "delivered", http_status=attempt.status)
        self.failed += 1
        if attempt.status == 410:
            gone[c.endpoint.id] = "410 Gone: the receiver asked to stop"
            return Outcome(c.id, "dead", http_status=410, error=attempt.error)
        delay = retry_delay(c.attempts, self.rng)
        if delay is None:
            log.warning("webhook %s (%s) to endpoint %s: dead letter after %d attempts: %s",
                        c.msg_id, c.type, c.endpoint.id, c.attempts, attempt.error)
            return Outcome(c.id, "dead", http_status=attempt.status, error=attempt.error)
        if attempt.retry_after is not None:
            delay = attempt.retry_after
        if attempt.status in THROTTLE_STATUSES:
            self._held[c.endpoint.id] = max(self._held.get(c.endpoint.id, now), now + delay)
        log.info("webhook %s (%s) to endpoint %s, attempt %d: %s; again in %.0fs",
                 c.msg_id, c.type, c.endpoint.id, c.attempts, attempt.error, delay.total_seconds())
        return Outcome(c.id, "pending", now + delay, http_status=attempt.status, error=attempt.error)


def describe(attempt: Attempt) -> dict[str, Any]:
    """An attempt for the CLI."""
    return {"status": attempt.status, "error": attempt.error, "ms": round(attempt.elapsed_ms, 1)}
