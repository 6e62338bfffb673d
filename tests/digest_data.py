"""Rows for digest tests, written straight into a real SQLite file (plain SQL, as the
app would have left them): customers, purchases, surveys, tickets and their events."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from decimal import Decimal

from storage import rollups, ticket_rollups
from storage.db import Database
from storage.folding import fold
from storage.rollups import RollupRule
from storage.timefmt import to_db

VN = ZoneInfo("Asia/Ho_Chi_Minh")
RULE = RollupRule(tz=VN, vip_spend=Decimal(10_000_000), vip_orders=10)  # the config's defaults


def local(day: int, hour: int = 12, minute: int = 0, second: int = 0, month: int = 11) -> datetime:
    """A shop-time moment in 2026 (November unless told)."""
    return datetime(2026, month, day, hour, minute, second, tzinfo=VN)


class ShopData:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._n = 0
        self._contact: int | None = None

    def _next(self) -> int:
        self._n += 1
        return self._n

    async def _insert(self, sql: str, params: tuple) -> int:
        async with self.db.transaction() as tx:
            cur = await tx.execute(sql, params)
        assert cur.lastrowid is not None
        return cur.lastrowid

    async def customer(self, name: str = "Khách") -> int:
        n = self._next()
        at = to_db(local(1, month=1))
        return await self._insert(
            "INSERT INTO customers (external_id, name, link_token, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
            (f"C-{n}", name, f"tok{n}", at, at),
        )

    async def contact(self) -> int:
        if self._contact is None:
            at = to_db(local(1, month=1))
            self._contact = await self._insert(
                "INSERT INTO contacts (channel, platform_user_id, chat_id, language, created_at, last_seen_at)"
                " VALUES ('telegram', '1', '1', 'vi', ?, ?)",
                (at, at),
            )
        return self._contact

    async def purchase(
        self, customer_id: int, at: datetime, *, amount: int = 250_000, store: str | None = "Q1", touchpoint: str = "delivery"
    ) -> int:
        n = self._next()
        return await self._insert(
            "INSERT INTO purchases (order_id, customer_id, amount, currency, items, store, touchpoint, purchased_at,"
            " fingerprint, created_at) VALUES (?, ?, ?, 'VND', '[]', ?, ?, ?, 'x', ?)",
            (f"A-{n}", customer_id, amount, store, touchpoint, to_db(at), to_db(at)),
        )

    async def survey(
        self,
        *,
        sent_at: datetime,
        answered_at: datetime | None = None,
        score: int | None = None,
        comment: str | None = None,
        touchpoint: str = "delivery",
        store: str | None = "Q1",
        customer_id: int | None = None,
        status: str | None = None,
    ) -> int:
        """A survey for a new purchase 3 h before it was sent; answered if given a score,
        else still 'sent' (or the given status, e.g. 'expired')."""
        customer_id = customer_id or await self.customer()
        bought = sent_at - timedelta(hours=3)
        purchase_id = await self.purchase(customer_id, bought, store=store, touchpoint=touchpoint)
        status = status or ("answered" if score is not None else "sent")
        survey_id = await self._insert(
            "INSERT INTO surveys (purchase_id, customer_id, touchpoint, store, status, due_at, sent_at, answered_at,"
            " score, comment, comment_folded, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                purchase_id, customer_id, touchpoint, store, status, to_db(sent_at), to_db(sent_at),
                to_db(answered_at) if answered_at else None, score, comment, fold(comment) if comment else None, to_db(bought),
            ),
        )
        async with self.db.transaction() as tx:  # the app counts a send and an answer in the rollups as it records them
            await rollups.sends_added(tx, [survey_id])
            if answered_at is not None and score is not None:
                await rollups.add_answer(tx, survey_id, answered_at, RULE)
        return survey_id

    async def ticket(
        self,
        *,
        created_at: datetime,
        category: str = "delivery",
        description: str = "Có vấn đề",
        first_response_at: datetime | None = None,
        resolved_at: datetime | None = None,
        status: str | None = None,
        first_target: timedelta = timedelta(hours=2),
        resolution_target: timedelta = timedelta(hours=48),
    ) -> int:
        contact_id = await self.contact()
        status = status or ("resolved" if resolved_at else "claimed" if first_response_at else "open")
        ticket_id = await self._insert(
            "INSERT INTO tickets (contact_id, source, category, description, tier, priority, status, created_at,"
            " first_response_at, resolved_at, first_response_due_at, resolution_due_at)"
            " VALUES (?, 'command', ?, ?, 'regular', 'normal', ?, ?, ?, ?, ?, ?)",
            (
                contact_id, category, description, status, to_db(created_at),
                to_db(first_response_at) if first_response_at else None, to_db(resolved_at) if resolved_at else None,
                to_db(created_at + first_target), to_db(created_at + resolution_target),
            ),
        )
        async with self.db.transaction() as tx:  # the app counts a ticket in the rollups as it writes it
            await ticket_rollups.added(tx, ticket_id)
        await self.event(ticket_id, "opened", created_at, description)
        return ticket_id

    async def event(self, ticket_id: int, action: str, at: datetime, body: str | None = None) -> None:
        await self._insert(
            "INSERT INTO ticket_events (ticket_id, at, actor, action, body) VALUES (?, ?, 'customer', ?, ?)",
            (ticket_id, to_db(at), action, body),
        )
