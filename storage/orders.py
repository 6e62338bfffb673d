"""Order sources (sales systems): the sources added from the CLI, each webhook delivery
recorded before it is answered, the order events acted on (dedupe), each source's refused
requests, and cancelling a survey not yet sent."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.db import Connection, Row, fetch_one
from storage.timefmt import from_db, to_db

NOT_SENT = ("scheduled", "awaiting_contact")


# --- sources added by `feedbot source add` -----------------------------------------------


async def add_source(conn: Connection, name: str, platform: str, settings: dict[str, Any], now: datetime) -> bool:
    """False: a source of that name exists already."""
    cur = await conn.execute(
        "INSERT INTO order_sources (name, platform, settings, created_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (name) DO NOTHING",
        (name, platform, json.dumps(settings, ensure_ascii=False), to_db(now)),
    )
    return cur.rowcount == 1


async def update_source(conn: Connection, name: str, settings: dict[str, Any]) -> None:
    await conn.execute("UPDATE order_sources SET settings = ? WHERE name = ?",
                       (json.dumps(settings, ensure_ascii=False), name))


async def stored_sources(conn: Connection) -> list[tuple[str, str, dict[str, Any]]]:
    rows = await conn.execute_fetchall("SELECT name, platform, settings FROM order_sources ORDER BY name")
    return [(r[0], r[1], json.loads(r[2])) for r in rows]


async def remove_source(conn: Connection, name: str) -> bool:
    cur = await conn.execute("DELETE FROM order_sources WHERE name = ?", (name,))
    return cur.rowcount == 1


# --- deliveries ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryRecord:
    id: int
    source: str
    delivery_id: str
    topic: str | None
    body: str | None
    received_at: datetime


async def record_delivery(
    conn: Connection, source: str, delivery_id: str, topic: str | None, body: str, signature: str | None, now: datetime
) -> int | None:
    """The delivery's row; None when this delivery id of this source was recorded before."""
    cur = await conn.execute(
        "INSERT INTO order_deliveries (source, delivery_id, topic, body, signature, received_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source, delivery_id) DO NOTHING",
        (source, delivery_id, topic, body, signature, to_db(now)),
    )
    return cur.lastrowid if cur.rowcount == 1 else None


async def finish_delivery(conn: Connection, delivery_row: int, status: str, outcome: str, now: datetime) -> None:
    """Handled: the body goes (names, phones) unless it failed (kept for a look, until the purge)."""
    keep = "body" if status == "failed" else "NULL"
    await conn.execute(
        f"UPDATE order_deliveries SET status = ?, outcome = ?, processed_at = ?, body = {keep} WHERE id = ?",
        (status, outcome[:500], to_db(now), delivery_row),
    )


async def pending_deliveries(conn: Connection, limit: int = 500) -> list[DeliveryRecord]:
    rows = await conn.execute_fetchall(
        "SELECT id, source, delivery_id, topic, body, received_at FROM order_deliveries"
        " WHERE status = 'pending' ORDER BY id LIMIT ?", (limit,))
    return [DeliveryRecord(r[0], r[1], r[2], r[3], r[4], from_db(r[5])) for r in rows]  # type: ignore[arg-type]


# --- order events (dedupe per order and kind) ----------------------------------------------


async def claim_event(
    conn: Connection, source: str, order_id: str, kind: str, purchase_order_id: str, delivery_row: int | None,
    now: datetime,
) -> bool:
    """True the first time this order of this source is acted on for `kind`."""
    cur = await conn.execute(
        "INSERT INTO order_events (source, order_id, kind, purchase_order_id, delivery_id, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source, order_id, kind) DO NOTHING",
        (source, order_id, kind, purchase_order_id, delivery_row, to_db(now)),
    )
    return cur.rowcount == 1


async def event_exists(conn: Connection, source: str, order_id: str, kind: str) -> bool:
    row = await fetch_one(conn, "SELECT 1 FROM order_events WHERE source = ? AND order_id = ? AND kind = ?",
                          (source, order_id, kind))
    return row is not None


async def purchase_of(conn: Connection, source: str, order_id: str) -> str | None:
    """The purchase's order id recorded for this order of this source (None: no purchase yet)."""
    row = await fetch_one(conn, "SELECT purchase_order_id FROM order_events WHERE source = ? AND order_id = ?"
                          " AND kind = 'purchase'", (source, order_id))
    return None if row is None else row[0]


async def cancel_unsent_survey(conn: Connection, purchase_order_id: str, reason: str, now: datetime) -> str | None:
    """Skip the order's survey if it has not gone out; the survey's status before (None: no such order)."""
    row = await fetch_one(
        conn, "SELECT s.id, s.status FROM surveys s JOIN purchases p ON p.id = s.purchase_id WHERE p.order_id = ?",
        (purchase_order_id,))
    if row is None:
        return None
    if row[1] in NOT_SENT:
        await conn.execute(
            "UPDATE surveys SET status = 'skipped', skip_reason = ?, closed_at = ? WHERE id = ? AND status IN (?, ?)",
            (reason, to_db(now), row[0], *NOT_SENT))
    return row[1]


# --- refused requests ----------------------------------------------------------------------------


async def note_rejected(conn: Connection, source: str, reason: str, now: datetime) -> bool:
    """Count a refused request; True when the owner has not been told about this source yet
    (the caller tells them, once)."""
    await conn.execute(
        "INSERT INTO order_source_health (source, rejected, last_rejected_at, last_reason) VALUES (?, 1, ?, ?)"
        " ON CONFLICT (source) DO UPDATE SET rejected = order_source_health.rejected + 1,"
        " last_rejected_at = excluded.last_rejected_at, last_reason = excluded.last_reason",
        (source, to_db(now), reason[:300]),
    )
    cur = await conn.execute(
        "UPDATE order_source_health SET alerted_at = ? WHERE source = ? AND alerted_at IS NULL", (to_db(now), source))
    return cur.rowcount == 1


async def status(conn: Connection, source: str) -> dict[str, Any]:
    """What `feedbot source status` shows for one source."""
    counts = {r[0]: r[1] for r in await conn.execute_fetchall(
        "SELECT status, COUNT(*) FROM order_deliveries WHERE source = ? GROUP BY status", (source,))}
    last: Row | None = await fetch_one(
        conn, "SELECT received_at, status, outcome, signature FROM order_deliveries WHERE source = ?"
        " ORDER BY received_at DESC, id DESC LIMIT 1", (source,))
    health = await fetch_one(
        conn, "SELECT rejected, last_rejected_at, last_reason FROM order_source_health WHERE source = ?", (source,))
    purchases = await fetch_one(
        conn, "SELECT COUNT(*) FROM order_events WHERE source = ? AND kind = 'purchase'", (source,))
    return {
        "deliveries": counts,
        "purchases": purchases[0] if purchases else 0,
        "last_delivery": None if last is None else {
            "at": from_db(last[0]), "status": last[1], "outcome": last[2], "signature": last[3]},
        "rejected": health[0] if health else 0,
        "last_rejected": None if not health or health[1] is None else {"at": from_db(health[1]), "reason": health[2]},
    }
