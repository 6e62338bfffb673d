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
) -> int:
    # Decimal goes in as text: SQLite's NUMERIC affinity keeps integers exact.
    cur = await conn.execute(
        "INSERT INTO purchases (order_id, customer_id, amount, currency, items, store, touchpoint,"
        " purchased_at, fingerprint, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        ),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid
