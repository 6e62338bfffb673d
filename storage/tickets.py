"""Tickets (complaints and questions), their events (conversation + audit trail), and report helpers."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Sequence

from storage import ticket_rollups
from storage.db import Connection, Row, fetch_one
from storage.timefmt import from_db, to_db


@dataclass(frozen=True)
class TicketRecord:
    id: int
    contact_id: int
    customer_id: int | None
    purchase_id: int | None
    order_id: str | None
    category: str
    description: str
    photos: list[str]
    tier: str
    priority: str
    status: str
    assignee_id: str | None
    assignee_name: str | None
    created_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    first_response_due_at: datetime
    resolution_due_at: datetime
    first_response_breached: bool
    resolution_breached: bool
    reopened_count: int
    resolution_score: int | None
    agents_chat_id: str | None
    thread_id: str | None
    card_message_id: str | None
    kind: str = "complaint"  # complaint | question
    card_undelivered: str | None = None  # why the card never reached the agents' group


_SELECT = "SELECT t.*, p.order_id FROM tickets t LEFT JOIN purchases p ON p.id = t.purchase_id"


def _record(row: Row) -> TicketRecord:
    return TicketRecord(
        id=row["id"],
        contact_id=row["contact_id"],
        customer_id=row["customer_id"],
        purchase_id=row["purchase_id"],
        order_id=row["order_id"],
        category=row["category"],
        description=row["description"],
        photos=json.loads(row["photos"]),
        tier=row["tier"],
        priority=row["priority"],
        status=row["status"],
        assignee_id=row["assignee_id"],
        assignee_name=row["assignee_name"],
        created_at=from_db(row["created_at"]),  # type: ignore[arg-type]
        first_response_at=from_db(row["first_response_at"]),
        resolved_at=from_db(row["resolved_at"]),
        first_response_due_at=from_db(row["first_response_due_at"]),  # type: ignore[arg-type]
        resolution_due_at=from_db(row["resolution_due_at"]),  # type: ignore[arg-type]
        first_response_breached=row["first_response_breached_at"] is not None,
        resolution_breached=row["resolution_breached_at"] is not None,
        reopened_count=row["reopened_count"],
        resolution_score=row["resolution_score"],
        agents_chat_id=row["agents_chat_id"],
        thread_id=row["thread_id"],
        card_message_id=row["card_message_id"],
        kind=row["kind"],
        card_undelivered=row["card_undelivered"],
    )


async def insert(
    conn: Connection,
    *,
    contact_id: int,
    customer_id: int | None,
    purchase_id: int | None,
    survey_id: int | None,
    source: str,
    category: str,
    description: str,
    photos: list[str],
    tier: str,
    priority: str,
    first_response_due_at: datetime,
    resolution_due_at: datetime,
    agents_chat_id: str | None,
    now: datetime,
    kind: str = "complaint",
) -> int:
    cur = await conn.execute(
        "INSERT INTO tickets (contact_id, customer_id, purchase_id, survey_id, source, category, description,"
        " photos, tier, priority, status, created_at, first_response_due_at, resolution_due_at, agents_chat_id, kind)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?)",
        (
            contact_id, customer_id, purchase_id, survey_id, source, category, description,
            json.dumps(photos), tier, priority, to_db(now), to_db(first_response_due_at),
            to_db(resolution_due_at), agents_chat_id, kind,
        ),
    )
    assert cur.lastrowid is not None
    await ticket_rollups.added(conn, cur.lastrowid)  # the complaint rollups, in this transaction
    return cur.lastrowid


async def get(conn: Connection, ticket_id: int) -> TicketRecord | None:
    row = await fetch_one(conn, f"{_SELECT} WHERE t.id = ?", (ticket_id,))
    return _record(row) if row else None


async def for_contact(conn: Connection, contact_id: int, resolved_since: datetime) -> list[TicketRecord]:
    """The contact's open tickets and those resolved recently (they can still be rated or reopened)."""
    return [_record(r) for r in await conn.execute_fetchall(
        f"{_SELECT} WHERE t.contact_id = ? AND (t.status != 'resolved' OR t.resolved_at >= ?) ORDER BY t.id DESC",
        (contact_id, to_db(resolved_since)),
    )]



async def by_thread(conn: Connection, chat_id: str, thread_id: str) -> TicketRecord | None:
    row = await fetch_one(conn, 
        f"{_SELECT} WHERE t.agents_chat_id = ? AND t.thread_id = ? ORDER BY t.id DESC LIMIT 1", (chat_id, thread_id)
    )
    return _record(row) if row else None


async def by_agent_message(conn: Connection, chat_id: str, message_id: str) -> TicketRecord | None:
    """The ticket a message in the agents' group belongs to (a card or a relayed message)."""
    row = await fetch_one(conn, 
        "SELECT ticket_id FROM outbox WHERE chat_id = ? AND platform_message_id = ? AND ticket_id IS NOT NULL",
        (chat_id, message_id),
    )
    return await get(conn, row[0]) if row else None


async def update(conn: Connection, ticket_id: int, **fields: object) -> None:
    """Set columns by name (names come from our code, values are always placeholders)."""
    allowed = {
        "status", "assignee_id", "assignee_name", "claimed_at", "first_response_at", "resolved_at",
        "first_response_due_at", "resolution_due_at", "first_response_breached_at", "resolution_breached_at",
        "priority", "resolution_score", "thread_id", "card_message_id", "card_undelivered",
    }
    assert fields and set(fields) <= allowed, fields
    values = [to_db(v) if isinstance(v, datetime) else v for v in fields.values()]
    assignments = ", ".join(f"{name} = ?" for name in fields)
    if not set(fields) & ROLLUP_FIELDS:
        await conn.execute(f"UPDATE tickets SET {assignments} WHERE id = ?", (*values, ticket_id))
        return
    tally = await ticket_rollups.Tally(conn, [ticket_id]).before()
    await conn.execute(f"UPDATE tickets SET {assignments} WHERE id = ?", (*values, ticket_id))
    await tally.after()


MAX_PHOTOS = 50  # a ticket's photos kept for the agent page; a customer writing on sends no more


async def add_photos(conn: Connection, ticket_id: int, photos: Sequence[str]) -> None:
    """Photos the customer sent while the ticket was open, after those it was opened with."""
    row = await fetch_one(conn, "SELECT photos FROM tickets WHERE id = ?", (ticket_id,))
    if row is None or not photos:
        return
    kept = json.loads(row["photos"])
    kept += list(photos)[: max(MAX_PHOTOS - len(kept), 0)]
    await conn.execute("UPDATE tickets SET photos = ? WHERE id = ?", (json.dumps(kept), ticket_id))


# The columns a ticket's complaint rollups depend on (storage/ticket_rollups.py): a change of any
# of them retracts the ticket's old contribution and adds its new one.
ROLLUP_FIELDS = frozenset({"first_response_at", "resolved_at", "first_response_due_at", "resolution_due_at",
                           "resolution_score", "assignee_id", "assignee_name"})


async def reopen(conn: Connection, ticket_id: int, first_due: datetime, resolution_due: datetime) -> None:
    tally = await ticket_rollups.Tally(conn, [ticket_id]).before()
    await conn.execute(
        "UPDATE tickets SET status = 'open', resolved_at = NULL, resolution_score = NULL, assignee_id = NULL,"
        " assignee_name = NULL, first_response_at = NULL, first_response_due_at = ?, resolution_due_at = ?,"
        " first_response_breached_at = NULL, resolution_breached_at = NULL, reopened_count = reopened_count + 1"
        " WHERE id = ?",
        (to_db(first_due), to_db(resolution_due), ticket_id),
    )
    await tally.after()


async def add_event(
    conn: Connection,
    ticket_id: int | None,
    *,
    actor: str,
    action: str,
    now: datetime,
    actor_id: str | None = None,
    actor_name: str | None = None,
    body: str | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO ticket_events (ticket_id, at, actor, actor_id, actor_name, action, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (ticket_id, to_db(now), actor, actor_id, actor_name, action, body),
    )


async def unresolved_due_before(conn: Connection, now: datetime) -> list[TicketRecord]:
    """Tickets whose first-response or resolution target has passed and is not yet reported."""
    at = to_db(now)
    return [_record(r) for r in await conn.execute_fetchall(
        f"{_SELECT} WHERE t.status != 'resolved' AND t.demo = 0 AND ("  # demo tickets raise no alerts
        " (t.first_response_at IS NULL AND t.first_response_breached_at IS NULL AND t.first_response_due_at <= ?)"
        " OR (t.resolution_breached_at IS NULL AND t.resolution_due_at <= ?))",
        (at, at),
    )]


async def customer_spend(conn: Connection, customer_id: int, since: datetime) -> tuple[Decimal, int]:
    row = await fetch_one(conn, 
        "SELECT COALESCE(SUM(amount), 0), COUNT(*) FROM purchases WHERE customer_id = ? AND purchased_at >= ?",
        (customer_id, to_db(since)),
    )
    return Decimal(str(row[0])), int(row[1])


async def past_scores(conn: Connection, customer_id: int, limit: int = 5) -> tuple[int, ...]:
    return tuple(r[0] for r in await conn.execute_fetchall(
        "SELECT score FROM surveys WHERE customer_id = ? AND score IS NOT NULL ORDER BY answered_at DESC LIMIT ?",
        (customer_id, limit),
    ))


async def recent_orders(conn: Connection, customer_id: int, limit: int = 5) -> list[tuple[str, datetime]]:
    return [(r[0], from_db(r[1])) for r in await conn.execute_fetchall(
        "SELECT order_id, purchased_at FROM purchases WHERE customer_id = ? ORDER BY purchased_at DESC LIMIT ?",
        (customer_id, limit),
    )]  # type: ignore[misc]


def since_12_months(now: datetime) -> datetime:
    return now - timedelta(days=365)
