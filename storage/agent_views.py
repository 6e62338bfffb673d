"""Read-only queries for the agents' web page: the ticket list and one ticket's details."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.db import Connection, fetch_one
from storage.tickets import TicketRecord, _record
from storage.timefmt import from_db, to_db

_PRIORITY_RANK = "CASE t.priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 ELSE 2 END"

# The store a ticket belongs to, for a store manager's view (`t` a ticket, `p` its order, joined
# LEFT): the store of the order it is about; with no order (or one without a store), the store
# of the customer's latest purchase that names one. NULL (no store): owners and agents only.
TICKET_STORE = (
    "COALESCE(p.store, (SELECT lp.store FROM purchases lp WHERE lp.customer_id = t.customer_id"
    " AND lp.store IS NOT NULL ORDER BY lp.purchased_at DESC, lp.id DESC LIMIT 1))"
)


@dataclass(frozen=True)
class ListedTicket:
    ticket: TicketRecord
    customer_name: str
    channel: str
    escalated: bool
    last_event_id: int
    demo: bool = False


@dataclass(frozen=True)
class EventRecord:
    id: int
    at: datetime
    actor: str
    actor_name: str | None
    action: str
    body: str | None


async def desk_tickets(conn: Connection, resolved_since: datetime, limit: int = 300,
                       stores: tuple[str, ...] | None = None) -> list[ListedTicket]:
    """Unresolved tickets (most urgent, then earliest due first), then those resolved since;
    with `stores`, only tickets of one of those stores (TICKET_STORE: a manager's view)."""
    in_stores = ""
    if stores is not None:
        in_stores = f" AND {TICKET_STORE} IN ({', '.join('?' * len(stores))})" if stores else " AND 0 = 1"
    rows = await conn.execute_fetchall(
        "SELECT t.*, p.order_id, COALESCE(cu.name, ct.display_name, '') AS customer_name, ct.channel AS contact_channel,"
        " EXISTS (SELECT 1 FROM ticket_events e WHERE e.ticket_id = t.id AND e.action IN ('escalated', 'sla_breach'))"
        " AS escalated,"
        " COALESCE((SELECT MAX(e.id) FROM ticket_events e WHERE e.ticket_id = t.id), 0) AS last_event_id,"
        " t.demo AS demo_flag"
        " FROM tickets t LEFT JOIN purchases p ON p.id = t.purchase_id"
        " LEFT JOIN customers cu ON cu.id = t.customer_id JOIN contacts ct ON ct.id = t.contact_id"
        f" WHERE (t.status != 'resolved' OR t.resolved_at >= ?){in_stores}"
        f" ORDER BY t.status = 'resolved', CASE WHEN t.status = 'resolved' THEN 0 ELSE {_PRIORITY_RANK} END,"
        " t.resolved_at DESC, t.first_response_due_at, t.id LIMIT ?",
        (to_db(resolved_since), *(stores or ()), limit),
    )
    return [
        ListedTicket(_record(r), r["customer_name"] or "?", r["contact_channel"], bool(r["escalated"]), r["last_event_id"],
                     bool(r["demo_flag"]))
        for r in rows
    ]


async def ticket_store(conn: Connection, ticket_id: int) -> str | None:
    """The store a ticket belongs to (TICKET_STORE; None: no store, or no such ticket)."""
    row = await fetch_one(conn, f"SELECT {TICKET_STORE} FROM tickets t LEFT JOIN purchases p ON p.id = t.purchase_id"
                                " WHERE t.id = ?", (ticket_id,))
    return row[0] if row else None


@dataclass(frozen=True)
class FeedEvent:
    """One ticket event as the page's push stream tells it (bot/http/agent_feed.py)."""
    id: int
    ticket_id: int
    kind: str
    action: str
    actor: str
    store: str | None  # TICKET_STORE: who may see it


async def last_event_id(conn: Connection) -> int:
    row = await fetch_one(conn, "SELECT COALESCE(MAX(id), 0) FROM ticket_events")
    return int(row[0]) if row else 0


async def events_after(conn: Connection, after: int, limit: int = 500) -> list[FeedEvent]:
    """Ticket events with an id above `after`, oldest first, each with its ticket's store."""
    rows = await conn.execute_fetchall(
        f"SELECT e.id, e.ticket_id, t.kind, e.action, e.actor, {TICKET_STORE} AS store"
        " FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id LEFT JOIN purchases p ON p.id = t.purchase_id"
        " WHERE e.id > ? ORDER BY e.id LIMIT ?", (after, limit))
    return [FeedEvent(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]


async def is_demo(conn: Connection, ticket_id: int) -> bool:
    row = await fetch_one(conn, "SELECT demo FROM tickets WHERE id = ?", (ticket_id,))
    return bool(row and row[0])


async def events(conn: Connection, ticket_id: int) -> list[EventRecord]:
    rows = await conn.execute_fetchall(
        "SELECT id, at, actor, actor_name, action, body FROM ticket_events WHERE ticket_id = ? ORDER BY id", (ticket_id,)
    )
    return [EventRecord(r["id"], from_db(r["at"]), r["actor"], r["actor_name"], r["action"], r["body"]) for r in rows]  # type: ignore[arg-type]


async def ticket_people(conn: Connection, ticket: TicketRecord) -> dict[str, Any]:
    """The customer and order behind a ticket, as the page shows them."""
    contact = await fetch_one(conn, "SELECT channel, display_name, language FROM contacts WHERE id = ?", (ticket.contact_id,))
    customer = None
    if ticket.customer_id is not None:
        customer = await fetch_one(conn, "SELECT name, phone FROM customers WHERE id = ?", (ticket.customer_id,))
    order = None
    if ticket.purchase_id is not None:
        order = await fetch_one(
            conn, "SELECT order_id, amount, currency, items, store, touchpoint, purchased_at FROM purchases WHERE id = ?",
            (ticket.purchase_id,),
        )
    return {
        "name": (customer["name"] if customer else None) or (contact["display_name"] if contact else "") or "?",
        "phone": customer["phone"] if customer else None,
        "channel": contact["channel"] if contact else None,
        "language": contact["language"] if contact else None,
        "order": None if order is None else {
            "order_id": order["order_id"],
            "amount": str(order["amount"]),
            "currency": order["currency"],
            "items": json.loads(order["items"]),
            "store": order["store"],
            "touchpoint": order["touchpoint"],
            "purchased_at": from_db(order["purchased_at"]),
        },
    }
