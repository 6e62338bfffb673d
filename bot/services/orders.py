"""Orders from sales systems become purchases: a recorded webhook delivery (or an imported
row) is mapped by its platform module, decided by flows/orders.py, validated by the same
parse_purchase as the HTTP API and written by the same record_purchase, so its survey is
scheduled exactly like a posted purchase. Dedupe: one row per delivery id, one per order
and kind (purchase, cancel). A cancelled or refunded order skips a survey not yet sent."""
from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable

from bot.clock import Clock
from bot.services.purchases import (InputError, PurchaseConflict, PurchaseInput, PurchasePrograms, parse_purchase,
                                    record_purchase_in)
from bot.sources.base import BadPayload, without_nul
from bot.sources.kiotviet_api import KiotVietClient, KiotVietError
from bot.sources.settings import SourceSettings
from flows.orders import Action, OrderEvent, decide, normalise_phone, touchpoint_for
from flows.schedule import SurveyPolicy
from storage import orders
from storage.db import Connection

log = logging.getLogger(__name__)

MAX_ITEMS = 500
# The longest a delivery takes: a survey counts from the goods' arrival at most this long after
# the order (an old order merely edited now is not asked about months later).
MAX_DELIVERY_TIME = timedelta(days=14)
UNKNOWN_CUSTOMER = "Khách hàng"
_NOT_ID = re.compile(r"[^A-Za-z0-9._:/#-]")

Alert = Callable[[Connection, str, dict[str, str], datetime], Awaitable[None]]  # (tx, text key, params, now)


@dataclass(frozen=True)
class Prepared:
    """One order event, decided and (for a purchase) validated, ready to be written."""

    event: OrderEvent
    action: Action
    purchase_order_id: str
    data: PurchaseInput | None = None
    error: str | None = None
    goods_at: datetime | None = None  # when the delivery saying "the customer has the goods" came


def purchase_order_id(source: str, event: OrderEvent) -> str:
    """The purchase's order id: the source's name and the number people read ("shop:#100811")."""
    return _NOT_ID.sub("-", f"{source}:{event.code}")[:64]


def customer_external_id(source: str, event: OrderEvent, phone: str | None) -> str:
    if event.customer_id:
        raw = f"{source}:{event.customer_id}"
    elif phone:
        raw = f"{source}:tel:{phone.lstrip('+')}"
    else:
        raw = f"{source}:order:{event.order_id}"
    return _NOT_ID.sub("-", raw)[:64]


def purchase_body(source: str, event: OrderEvent, touchpoint: str, now: datetime) -> dict[str, Any]:
    """What the HTTP API would have been posted for this order (validated by parse_purchase)."""
    phone = normalise_phone(event.phone)
    return without_nul({
        "order_id": purchase_order_id(source, event),
        "customer": {
            "external_id": customer_external_id(source, event, phone),
            "name": (event.customer_name or UNKNOWN_CUSTOMER)[:200],
            "phone": phone,
        },
        "amount": event.amount if event.amount not in (None, "") else 0,
        "currency": (event.currency or "VND").upper(),
        "items": list(event.items[:MAX_ITEMS]),
        "store": event.store[:100] if event.store else None,
        "touchpoint": touchpoint,
        "purchased_at": event.purchased_at or now.isoformat(),
    })


class OrderIntake:
    def __init__(
        self, db: Any, clock: Clock, policy: SurveyPolicy, touchpoints: tuple[str, ...], *,
        alert: Alert | None = None, kiotviet: Callable[[SourceSettings], KiotVietClient | None] | None = None,
        wake_sender: Callable[[], None] | None = None, programs: PurchasePrograms | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.policy = policy
        self.touchpoints = touchpoints
        self.alert = alert  # tells the owners (once per source) that requests are being refused
        self.kiotviet = kiotviet  # the source's API client, for invoices without a phone
        self.wake_sender = wake_sender  # after an alert is committed
        self.programs = programs  # survey programs: whether the CSAT is asked, and the programs a purchase starts

    # --- webhooks ------------------------------------------------------------------------

    async def record(self, source: SourceSettings, delivery_id: str, topic: str | None, body: str,
                     signature: str | None) -> int | None:
        """The delivery's row (committed before the platform gets its answer); None: seen before."""
        async with self.db.transaction() as tx:
            return await orders.record_delivery(tx, source.name, delivery_id[:200], topic, body, signature,
                                                self.clock.now())

    async def refused(self, source: SourceSettings, reason: str) -> None:
        """A request refused (bad signature, bad body): counted; the owners are told once."""
        log.warning("order source %s (%s): request refused: %s", source.name, source.platform, reason)
        now = self.clock.now()
        async with self.db.transaction() as tx:
            first = await orders.note_rejected(tx, source.name, reason, now)
            if first and self.alert is not None:
                await self.alert(tx, "orders.refused", {"source": source.name, "platform": source.platform,
                                                        "reason": reason}, now)
        if first and self.wake_sender is not None:
            self.wake_sender()

    async def ingest(self, source: SourceSettings, delivery_id: str, topic: str | None, body_text: str, body: Any,
                     signature: str | None, *, test: bool = False) -> tuple[int | None, bool]:
        """A verified delivery: (its row, whether it still needs `process`); row None: seen before.
        Most are recorded and handled in one unit of writes, committed before the platform gets its
        answer (a crash before that: no answer, the platform sends it again). One that needs the
        platform's API (a KiotViet customer) is recorded first and handled after the answer.
        A test notification (`test`) is recorded as ignored: it shows the connection works, and its
        canned order is nobody's purchase."""
        now = self.clock.now()
        if test:
            async with self.db.transaction() as tx:
                row = await orders.record_delivery(tx, source.name, delivery_id[:200], topic, body_text, signature, now)
                if row is not None:
                    await orders.finish_delivery(tx, row, "ignored", "a test notification: no purchase", now)
            return row, False
        try:
            events = source.module.events(topic, body)
        except (BadPayload, ValueError) as exc:
            async with self.db.transaction() as tx:
                row = await orders.record_delivery(tx, source.name, delivery_id[:200], topic, body_text, signature, now)
                if row is not None:
                    await orders.finish_delivery(tx, row, "failed", f"not an order payload: {exc}", now)
            return row, False
        if any(e.needs_customer_lookup for e in events) and self.kiotviet is not None:
            return await self.record(source, delivery_id, topic, body_text, signature), True
        prepared = [self.prepare(source.name, source.delivered_on, e, now, goods_at=now) for e in events]
        # A unit: deliveries arriving together share one COMMIT (group commit), each in its own
        # savepoint; the answer waits for that COMMIT.
        async with self.db.unit() as tx:
            row = await orders.record_delivery(tx, source.name, delivery_id[:200], topic, body_text, signature, now)
            if row is not None:
                await self._finish(tx, source.name, row, prepared, now)
        return row, False

    async def _finish(self, tx: Connection, source: str, row: int, prepared: list[Prepared], now: datetime) -> str:
        outcomes = [await self.apply(tx, source, p, row, now) for p in prepared]
        status = _status(outcomes)
        summary = "; ".join(f"{p.purchase_order_id}: {o}" for p, o in zip(prepared, outcomes)) or "no order in it"
        await orders.finish_delivery(tx, row, status, summary, now)
        log.info("order source %s: delivery %s %s (%s)", source, row, status, summary[:200])
        return status

    async def process(self, source: SourceSettings, delivery_row: int, topic: str | None, body_text: str,
                      received_at: datetime | None = None) -> str:
        """Handle one recorded delivery; its final status ('done', 'ignored' or 'failed').
        `received_at`: when it came, if not just now (a replay after a restart)."""
        now = self.clock.now()
        try:
            events = source.module.events(topic, without_nul(json.loads(body_text)))
        except (BadPayload, ValueError) as exc:
            async with self.db.transaction() as tx:
                await orders.finish_delivery(tx, delivery_row, "failed", f"not an order payload: {exc}", now)
            return "failed"
        events = [await self._with_customer(source, e) for e in events]
        prepared = [self.prepare(source.name, source.delivered_on, e, now, goods_at=received_at or now)
                    for e in events]
        async with self.db.transaction() as tx:
            return await self._finish(tx, source.name, delivery_row, prepared, now)

    async def replay(self, sources: dict[str, SourceSettings]) -> int:
        """Deliveries recorded but not handled before the last stop."""
        async with self.db.transaction() as tx:
            pending = await orders.pending_deliveries(tx)
        done = 0
        for delivery in pending:
            source = sources.get(delivery.source)
            if source is None or delivery.body is None:
                continue
            await self.process(source, delivery.id, delivery.topic, delivery.body, delivery.received_at)
            done += 1
        return done

    async def _with_customer(self, source: SourceSettings, event: OrderEvent) -> OrderEvent:
        """KiotViet invoices without a phone: the customer's contact number from the API."""
        if not event.needs_customer_lookup or self.kiotviet is None or event.customer_id is None:
            return event
        client = self.kiotviet(source)
        if client is None:
            return event
        try:
            phone, name = await asyncio.wait_for(client.customer_phone(event.customer_id), 15)
        except (KiotVietError, asyncio.TimeoutError) as exc:
            log.warning("order source %s: customer %s not fetched (%s); the purchase goes without a phone",
                        source.name, event.customer_id, exc)
            return event
        from dataclasses import replace

        return replace(event, phone=phone or event.phone, customer_name=event.customer_name or name)

    # --- shared with the import ------------------------------------------------------------

    def prepare(self, source: str, delivered_on: str, event: OrderEvent, now: datetime, *,
                goods_at: datetime | None = None) -> Prepared:
        """`goods_at`: a webhook's time, which the survey counts from when it is after the order's
        (an order delivered days after it was placed); an imported row has none."""
        touchpoint = touchpoint_for(event, self.touchpoints)
        action = decide(event, delivered_on, touchpoint)
        order_id = purchase_order_id(source, event)
        if action.kind != "purchase":
            return Prepared(event, action, order_id)
        try:
            data = parse_purchase(purchase_body(source, event, touchpoint, now), touchpoints=self.touchpoints,
                                  timezone=self.policy.timezone, now=now)
        except InputError as exc:
            return Prepared(event, action, order_id, error=str(exc))
        if goods_at is not None:
            goods_at = min(goods_at, data.purchased_at + MAX_DELIVERY_TIME)
        return Prepared(event, action, order_id, data, goods_at=goods_at)

    async def apply(self, tx: Connection, source: str, p: Prepared, delivery_row: int | None, now: datetime) -> str:
        """Write one prepared event in the caller's transaction; what happened, in words."""
        if p.error is not None:
            return f"failed: {p.error}"
        if p.action.kind == "ignore":
            return f"ignored: {p.action.reason}"
        if p.action.kind == "cancel":
            # The purchase as recorded for this order: a deletion or a refund may carry the order's
            # id without the number the purchase is named by (Shopify's orders/delete: {"id"}).
            purchase = await orders.purchase_of(tx, source, p.event.order_id) or p.purchase_order_id
            if not await orders.claim_event(tx, source, p.event.order_id, "cancel", purchase, delivery_row, now):
                return "ignored: cancellation already handled"
            before = await orders.cancel_unsent_survey(tx, purchase, f"order_{p.action.reason}", now)
            if before is None:
                return f"{p.action.reason}: no purchase recorded for it"
            if before in orders.NOT_SENT:
                return f"{p.action.reason}: survey cancelled"
            return f"{p.action.reason}: survey already {before}, left as it is"
        assert p.data is not None
        if await orders.event_exists(tx, source, p.event.order_id, "purchase"):
            return "ignored: purchase already recorded"
        if await orders.event_exists(tx, source, p.event.order_id, "cancel"):
            return "ignored: the order was cancelled before"
        try:
            outcome = await record_purchase_in(tx, now, self.policy, p.data, programs=self.programs,
                                               goods_at=p.goods_at)
        except PurchaseConflict as exc:
            return f"failed: {exc}"
        await orders.claim_event(tx, source, p.event.order_id, "purchase", p.purchase_order_id, delivery_row, now)
        if not outcome.created:
            return "ignored: purchase already recorded"
        return f"purchase recorded, survey {outcome.survey_status}"


def _status(outcomes: list[str]) -> str:
    if any(o.startswith("failed") for o in outcomes):
        return "failed"
    if outcomes and all(o.startswith("ignored") for o in outcomes) or not outcomes:
        return "ignored"
    return "done"
