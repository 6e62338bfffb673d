"""Purchases posted by the shop's systems, and the survey each one schedules."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from storage.db import Connection, Row, fetch_one, to_json
from storage.timefmt import from_db, to_db


@dataclass(frozen=True)
class PurchaseRecord:
    id: int
    order_id: str
    customer_id: int
    amount: Decimal
    currency: str
    items: list[Any]
    store: str | None
    touchpoint: str
    purchased_at: datetime
    fingerprint: str


def _record(row: Row) -> PurchaseRecord:
    purchased_at = from_db(row["purchased_at"])
    assert purchased_at is not None
    return PurchaseRecord(
        id=row["id"],
        order_id=row["order_id"],
        customer_id=row["customer_id"],
        amount=Decimal(str(row["amount"])),
        currency=row["currency"],
        items=json.loads(row["items"]),
        store=row["store"],
        touchpoint=row["touchpoint"],
        purchased_at=purchased_at,
        fingerprint=row["fingerprint"],
    )


async def by_order_id(conn: Connection, order_id: str) -> PurchaseRecord | None:
    row = await fetch_one(conn, "SELECT * FROM purchases WHERE order_id = ?", (order_id,))
    return _record(row) if row else None


async def insert(
    conn: Connection,
    *,
    order_id: str,
    customer_id: int,
    amount: Decimal,
    currency: str,
    items: list[Any],
    store: str | None,
    touchpoint: str,
    purchased_at: datetime,
    fingerprint: str,
    now: datetime,
    staff: str | None = None,
    stage: str | None = None,
) -> int:
    # Decimal goes in as text: SQLite's NUMERIC affinity keeps integers exact.
    cur = await conn.execute(
        "INSERT INTO purchases (order_id, customer_id, amount, currency, items, store, touchpoint,"
        " purchased_at, fingerprint, created_at, staff, stage) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            order_id,
            customer_id,
            str(amount),
            currency,
            to_json(items),
            store,
            touchpoint,
            to_db(purchased_at),
            fingerprint,
            to_db(now),
            staff,
            stage,
        ),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


# The order's current receipt-link token: its newest one not revoked.
_LINK_TOKEN = (
    "(SELECT t.token FROM start_tokens t WHERE t.purchase_id = p.id AND t.revoked_at IS NULL ORDER BY t.id DESC LIMIT 1)"
)


async def with_survey(db: Any, order_id: str) -> Row | None:
    """An order with its survey and its current receipt-link token (the API's GET of a purchase)."""
    return await db.fetchone(
        f"SELECT p.order_id, {_LINK_TOKEN} AS link_token, s.id, s.status, s.skip_reason, s.due_at, s.sent_at, s.score,"
        " s.comment FROM purchases p JOIN surveys s ON s.purchase_id = p.id WHERE p.order_id = ?",
        (order_id,),
    )


async def link_token(conn: Connection, order_id: str) -> Row | None:
    """The order's row with its current receipt-link token (None in it: no usable token); None: no such order."""
    return await fetch_one(conn, f"SELECT {_LINK_TOKEN} FROM purchases p WHERE p.order_id = ?", (order_id,))
