"""Managing the shop's webhook endpoints (the `feedbot webhooks ...` commands use this):
add, remove, enable, rotate a secret, send a test event, queue a delivery again."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from bot.clock import Clock
from bot.webhooks import events, signing
from bot.webhooks.worker import Attempt, WebhookSettings, WebhookWorker
from storage import webhooks
from storage.db import Database
from storage.webhooks import DeliveryRow, Endpoint

ALL = ("*", "all")


class BadInput(ValueError):
    """What is wrong with a command's argument (the CLI exits 2 with it)."""


def parse_url(value: str) -> str:
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"expected an http:// or https:// URL, got {value[:80]!r}")
    if any(c.isspace() for c in url):
        raise BadInput("a URL has no spaces")
    return url


def parse_events(value: str) -> tuple[str, ...]:
    """A comma-separated list of event types, or * / all for every one."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise BadInput("--events needs at least one event type")
    if any(n in ALL for n in names):
        return events.EVENT_TYPES
    unknown = [n for n in names if n not in events.EVENT_TYPES]
    if unknown:
        raise BadInput(f"unknown event type {unknown[0]!r} (known: {', '.join(events.EVENT_TYPES)})")
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class TestResult:
    delivery_id: int
    msg_id: str
    attempt: Attempt | None  # None: the endpoint was held back or not pending


class WebhookAdmin:
    def __init__(self, db: Database, clock: Clock, settings: WebhookSettings) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings

    async def add(self, url: str, event_types: tuple[str, ...], description: str = "", *,
                  redirect_ok: bool = False) -> Endpoint:
        secret = signing.new_secret()
        async with self.db.transaction() as tx:
            endpoint_id = await webhooks.add_endpoint(tx, url, event_types, secret, description, self.clock.now(),
                                                      redirect_ok=redirect_ok)
            found = await webhooks.endpoint(tx, endpoint_id)
        assert found is not None
        return found

    async def list(self) -> tuple[list[Endpoint], dict[tuple[int, str], int]]:
        conn = self.db.reader
        return await webhooks.endpoints(conn), await webhooks.counts(conn)

    async def get(self, endpoint_id: int) -> Endpoint | None:
        return await webhooks.endpoint(self.db.reader, endpoint_id)

    async def remove(self, endpoint_id: int) -> bool:
        async with self.db.transaction() as tx:
            return await webhooks.remove_endpoint(tx, endpoint_id)

    async def enable(self, endpoint_id: int) -> bool:
        async with self.db.transaction() as tx:
            return await webhooks.set_status(tx, endpoint_id, "active", None, self.clock.now())

    async def rotate(self, endpoint_id: int) -> tuple[Endpoint, datetime] | None:
        """A new secret; the old one keeps signing too for rotation_overlap. None: no such endpoint."""
        now = self.clock.now()
        until = now + self.settings.rotation_overlap
        async with self.db.transaction() as tx:
            if not await webhooks.rotate_secret(tx, endpoint_id, signing.new_secret(), until, now):
                return None
            found = await webhooks.endpoint(tx, endpoint_id)
        assert found is not None
        return found, until

    async def test(self, endpoint_id: int) -> TestResult | None:
        """A `webhook.test` event to this endpoint, attempted now (retried by the bot like any
        other if it fails). None: no such endpoint."""
        now = self.clock.now()
        msg_id = signing.new_msg_id()
        payload = events.body(msg_id, events.TEST, {"endpoint_id": endpoint_id, "message": "Xin chào từ feedbot / Hello from feedbot"}, now)
        async with self.db.transaction() as tx:
            if await webhooks.endpoint(tx, endpoint_id) is None:
                return None
            delivery_id = await webhooks.add_test_message(tx, endpoint_id, msg_id=msg_id, payload=payload, now=now)
        worker = WebhookWorker(self.db, self.clock, self.settings)
        try:
            await worker.drain_once(delivery_id=delivery_id)
        finally:
            await worker.close()
        attempt = worker.last_pass[0][1] if worker.last_pass else None
        return TestResult(delivery_id, msg_id, attempt)

    async def redeliver(self, ident: str) -> list[int]:
        ident = ident.strip()
        if not (ident.startswith("msg_") or (ident.isascii() and ident.isdigit())):
            raise BadInput(f"expected a delivery id (a number) or a webhook-id (msg_...), got {ident[:60]!r}")
        async with self.db.transaction() as tx:
            return await webhooks.redeliver(tx, ident, self.clock.now())

    async def deliveries(self, *, status: str | None, endpoint_id: int | None, limit: int) -> list[DeliveryRow]:
        return await webhooks.deliveries(self.db.reader, status=status, endpoint_id=endpoint_id, limit=limit)
