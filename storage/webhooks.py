"""Outgoing webhooks: the shop's endpoints, the events written for them (in the transaction
that caused each) and their deliveries, claimed with a lease by bot/webhooks/worker.py."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

from storage.db import Connection, Row, fetch_one
from storage.timefmt import from_db, to_db

UNFINISHED = ("pending", "sending")


@dataclass(frozen=True)
class Endpoint:
    id: int
    url: str
    description: str
    events: tuple[str, ...]
    secret: str
    previous_secret: str | None
    previous_until: datetime | None
    status: str
    disabled_reason: str | None
    created_at: datetime
    redirect_ok: bool = False  # a 3xx answer counts as received (never followed)

    def secrets(self, now: datetime) -> tuple[str, ...]:
        """The keys a delivery is signed with now: the current one, and the previous one while
        its rotation grace lasts."""
        if self.previous_secret and self.previous_until is not None and now < self.previous_until:
            return (self.secret, self.previous_secret)
        return (self.secret,)


@dataclass(frozen=True)
class Claimed:
    """A delivery taken for one attempt: what to send where."""

    id: int
    attempts: int  # including this one
    msg_id: str
    type: str
    payload: str
    endpoint: Endpoint


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    msg_id: str
    type: str
    endpoint_id: int
    url: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to (the worker's verdict, written in one batch)."""

    delivery_id: int
    status: str  # delivered | pending | dead
    next_attempt_at: datetime | None = None
    http_status: int | None = None
    error: str | None = None
    refund_attempt: bool = False  # not sent at all (its endpoint was paused): does not count


def _events_column(events: Sequence[str]) -> str:
    return "," + ",".join(events) + ","


_ENDPOINT = ("SELECT id, url, description, events, secret, previous_secret, previous_until, status, disabled_reason,"
             " created_at, redirect_ok FROM webhook_endpoints")


def _endpoint(r: Row, id_column: str = "id") -> Endpoint:
    return Endpoint(
        r[id_column], r["url"], r["description"], tuple(e for e in r["events"].split(",") if e), r["secret"],
        r["previous_secret"], from_db(r["previous_until"]) if r["previous_until"] else None, r["status"],
        r["disabled_reason"], from_db(r["created_at"]), bool(r["redirect_ok"]),
    )


# --- endpoints ------------------------------------------------------------------------------


async def add_endpoint(conn: Connection, url: str, events: Sequence[str], secret: str, description: str,
                       now: datetime, *, redirect_ok: bool = False) -> int:
    cur = await conn.execute(
        "INSERT INTO webhook_endpoints (url, description, events, secret, redirect_ok, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (url, description, _events_column(events), secret, int(redirect_ok), to_db(now), to_db(now)))
    assert cur.lastrowid is not None
    return cur.lastrowid


async def endpoints(conn: Connection) -> list[Endpoint]:
    return [_endpoint(r) for r in await conn.execute_fetchall(f"{_ENDPOINT} ORDER BY id")]


async def endpoint(conn: Connection, endpoint_id: int) -> Endpoint | None:
    row = await fetch_one(conn, f"{_ENDPOINT} WHERE id = ?", (endpoint_id,))
    return _endpoint(row) if row else None


async def remove_endpoint(conn: Connection, endpoint_id: int) -> bool:
    """The endpoint and its deliveries go (events other endpoints still want stay)."""
    await conn.execute("DELETE FROM webhook_deliveries WHERE endpoint_id = ?", (endpoint_id,))
    cur = await conn.execute("DELETE FROM webhook_endpoints WHERE id = ?", (endpoint_id,))
    return cur.rowcount == 1


async def rotate_secret(conn: Connection, endpoint_id: int, secret: str, previous_until: datetime,
                        now: datetime) -> bool:
    cur = await conn.execute(
        "UPDATE webhook_endpoints SET previous_secret = secret, previous_until = ?, secret = ?, updated_at = ?"
        " WHERE id = ?", (to_db(previous_until), secret, to_db(now), endpoint_id))
    return cur.rowcount == 1


async def set_status(conn: Connection, endpoint_id: int, status: str, reason: str | None, now: datetime) -> bool:
    cur = await conn.execute(
        "UPDATE webhook_endpoints SET status = ?, disabled_reason = ?, updated_at = ? WHERE id = ?",
        (status, reason, to_db(now), endpoint_id))
    return cur.rowcount == 1


async def counts(conn: Connection) -> dict[tuple[int, str], int]:
    """(endpoint id, status) -> deliveries."""
    rows = await conn.execute_fetchall(
        "SELECT endpoint_id, status, COUNT(*) FROM webhook_deliveries GROUP BY endpoint_id, status")
    return {(r[0], r[1]): r[2] for r in rows}


# --- events ---------------------------------------------------------------------------------


async def subscribed(conn: Connection, event_type: str) -> bool:
    """Whether any active endpoint wants this event (else nothing is built or written)."""
    return await fetch_one(
        conn, "SELECT 1 FROM webhook_endpoints WHERE status = 'active' AND instr(events, ?) > 0 LIMIT 1",
        (f",{event_type},",)) is not None


async def add_message(
    conn: Connection, *, msg_id: str, event_type: str, payload: str, now: datetime,
    customer_id: int | None = None, contact_id: int | None = None, ticket_id: int | None = None,
) -> int:
    """The event, and one pending delivery for each active endpoint subscribed to its type
    (none: nothing is written; returns 0)."""
    ends = [r[0] for r in await conn.execute_fetchall(
        "SELECT id FROM webhook_endpoints WHERE status = 'active' AND instr(events, ?) > 0 ORDER BY id",
        (f",{event_type},",))]
    if not ends:
        return 0
    cur = await conn.execute(
        "INSERT INTO webhook_messages (msg_id, type, payload, customer_id, contact_id, ticket_id, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)", (msg_id, event_type, payload, customer_id, contact_id, ticket_id, to_db(now)))
    message_id = cur.lastrowid
    assert message_id is not None
    await conn.executemany(
        "INSERT INTO webhook_deliveries (message_id, endpoint_id, next_attempt_at, created_at) VALUES (?, ?, ?, ?)",
        [(message_id, e, to_db(now), to_db(now)) for e in ends])
    return message_id


async def add_test_message(conn: Connection, endpoint_id: int, *, msg_id: str, payload: str, now: datetime) -> int:
    """A `webhook.test` event for one endpoint, whatever it subscribed to; the delivery's id."""
    cur = await conn.execute(
        "INSERT INTO webhook_messages (msg_id, type, payload, created_at) VALUES (?, 'webhook.test', ?, ?)",
        (msg_id, payload, to_db(now)))
    cur = await conn.execute(
        "INSERT INTO webhook_deliveries (message_id, endpoint_id, next_attempt_at, created_at) VALUES (?, ?, ?, ?)",
        (cur.lastrowid, endpoint_id, to_db(now), to_db(now)))
    assert cur.lastrowid is not None
    return cur.lastrowid


# --- the worker -----------------------------------------------------------------------------


async def claim(conn: Connection, now: datetime, lease_until: datetime, limit: int,
                delivery_id: int | None = None) -> list[Claimed]:
    """Due deliveries (pending whose time has come, or sending whose lease ran out: a worker
    died mid-delivery), leased to the caller until `lease_until`; each counts an attempt.
    The outer status test makes a row claimed twice at once update once. `delivery_id`: only
    that one, if pending, due or not (`feedbot webhooks test`)."""
    if delivery_id is not None:
        rows = await conn.execute_fetchall(
            "UPDATE webhook_deliveries SET status = 'sending', attempts = attempts + 1, next_attempt_at = ?"
            " WHERE id = ? AND status = 'pending' RETURNING id", (to_db(lease_until), delivery_id))
    else:
        # Expired leases first, then pending rows; each an index range read in order, so a
        # pass costs the same with a backlog of 100,000 as with 10 (no sort of the queue).
        rows = []
        for status in ("sending", "pending"):
            due = f"status = '{status}' AND next_attempt_at <= ?"
            rows += await conn.execute_fetchall(
                f"UPDATE webhook_deliveries SET status = 'sending', attempts = attempts + 1, next_attempt_at = ?"
                f" WHERE id IN (SELECT id FROM webhook_deliveries WHERE {due} ORDER BY next_attempt_at LIMIT ?)"
                f" AND +status = '{status}' AND +next_attempt_at <= ? RETURNING id",  # by id, not the index again
                (to_db(lease_until), to_db(now), limit - len(rows), to_db(now)))
            if len(rows) >= limit:
                break
    ids = [r[0] for r in rows]
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    detail = await conn.execute_fetchall(
        "SELECT d.id, d.attempts, m.msg_id, m.type, m.payload, e.id AS e_id, e.url, e.description, e.events,"
        " e.secret, e.previous_secret, e.previous_until, e.status, e.disabled_reason, e.created_at, e.redirect_ok"
        " FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id"
        f" JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.id IN ({marks}) ORDER BY d.id", ids)
    return [Claimed(r["id"], r["attempts"], r["msg_id"], r["type"], r["payload"], _endpoint(r, "e_id")) for r in detail]


async def record(conn: Connection, outcomes: Sequence[Outcome], now: datetime) -> None:
    """The attempts' results, in the caller's transaction. A customer.erased event that no
    endpoint still waits for loses its body (the erased customer's id) at once."""
    for o in outcomes:
        await conn.execute(
            "UPDATE webhook_deliveries SET status = ?, next_attempt_at = COALESCE(?, next_attempt_at),"
            " last_status = ?, last_error = ?, delivered_at = ?, attempts = attempts - ? WHERE id = ? AND status = 'sending'",
            (o.status, to_db(o.next_attempt_at) if o.next_attempt_at else None, o.http_status, o.error,
             to_db(now) if o.status == "delivered" else None, 1 if o.refund_attempt else 0, o.delivery_id))
    done = [o.delivery_id for o in outcomes if o.status in ("delivered", "dead")]
    if done:
        await conn.execute(
            f"UPDATE webhook_messages SET payload = '{{}}' WHERE type = 'customer.erased' AND payload <> '{{}}'"
            f" AND id IN (SELECT message_id FROM webhook_deliveries WHERE id IN ({_marks(done)}))"
            " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.message_id = webhook_messages.id"
            " AND d.status IN ('pending', 'sending'))", done)


async def disable_endpoint(conn: Connection, endpoint_id: int, reason: str, now: datetime) -> int:
    """410 Gone: the endpoint stops, its unfinished deliveries become dead letters; how many."""
    await set_status(conn, endpoint_id, "disabled", reason, now)
    cur = await conn.execute(
        "UPDATE webhook_deliveries SET status = 'dead', last_error = ? WHERE endpoint_id = ? AND status = 'pending'",
        (reason, endpoint_id))
    return cur.rowcount


async def next_due(conn: Connection) -> datetime | None:
    """When the next delivery is due (or a lease runs out); None when nothing waits. Two
    index lookups (one MIN per status), never a scan of the queue."""
    row = await fetch_one(
        conn, "SELECT MIN(t) FROM (SELECT MIN(next_attempt_at) AS t FROM webhook_deliveries WHERE status = 'pending'"
        " UNION ALL SELECT MIN(next_attempt_at) AS t FROM webhook_deliveries WHERE status = 'sending') AS due")
    return from_db(row[0]) if row and row[0] else None


# --- the CLI's view and manual redelivery ----------------------------------------------------


async def deliveries(conn: Connection, *, status: str | None = None, endpoint_id: int | None = None,
                     limit: int = 50) -> list[DeliveryRow]:
    where, params = [], []  # type: ignore[var-annotated]
    if status:
        where.append("d.status = ?")
        params.append(status)
    if endpoint_id is not None:
        where.append("d.endpoint_id = ?")
        params.append(endpoint_id)
    rows = await conn.execute_fetchall(
        "SELECT d.id, m.msg_id, m.type, d.endpoint_id, e.url, d.status, d.attempts, d.next_attempt_at, d.last_status,"
        " d.last_error, d.delivered_at, d.created_at FROM webhook_deliveries d"
        " JOIN webhook_messages m ON m.id = d.message_id JOIN webhook_endpoints e ON e.id = d.endpoint_id"
        + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY d.id DESC LIMIT ?", (*params, limit))
    return [DeliveryRow(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], from_db(r[7]), r[8], r[9], from_db(r[10]) if r[10] else None,
        from_db(r[11])) for r in rows]


async def redeliver(conn: Connection, ident: str, now: datetime) -> list[int]:
    """A delivery id ("12") or an event's webhook-id ("msg_..."): queued again now with a fresh
    schedule (same webhook-id), unless in flight. The deliveries queued."""
    key = "m.msg_id = ?" if ident.startswith("msg_") else "d.id = ?"
    value: Any = ident if ident.startswith("msg_") else int(ident)
    rows = await conn.execute_fetchall(
        "SELECT d.id FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id"
        f" WHERE {key} AND d.status <> 'sending' AND m.payload <> '{{}}'", (value,))
    ids = [r[0] for r in rows]
    for delivery_id in ids:
        await conn.execute(
            "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?, last_error = NULL"
            " WHERE id = ?", (to_db(now), delivery_id))
    return ids


# --- erasure --------------------------------------------------------------------------------


async def messages_of(conn: Connection, customer_id: int | None, contact_ids: Sequence[int],
                      ticket_ids: Sequence[int]) -> list[tuple[int, str]]:
    """(id, payload) of the events that carry this person's data."""
    rows = await conn.execute_fetchall(
        f"SELECT id, payload FROM webhook_messages WHERE customer_id = ? OR contact_id IN ({_marks(contact_ids)})"
        f" OR ticket_id IN ({_marks(ticket_ids)}) ORDER BY id", (customer_id, *contact_ids, *ticket_ids))
    return [(r[0], r[1]) for r in rows]


async def unfinished_quoting(conn: Connection, forms: Sequence[str]) -> list[tuple[int, str]]:
    """(id, payload) of undelivered events of nobody in particular (a digest) quoting any of `forms`."""
    found: dict[int, str] = {}
    for form in forms:
        for r in await conn.execute_fetchall(
            "SELECT m.id, m.payload FROM webhook_messages m WHERE m.id IN (SELECT d.message_id FROM webhook_deliveries d"
            " WHERE d.status IN ('pending', 'sending')) AND m.customer_id IS NULL AND m.contact_id IS NULL"
            " AND m.ticket_id IS NULL AND instr(m.payload, ?) > 0", (form,)):
            found[r[0]] = r[1]
    return sorted(found.items())


async def set_payload(conn: Connection, message_id: int, payload: str) -> None:
    await conn.execute("UPDATE webhook_messages SET payload = ? WHERE id = ?", (payload, message_id))


def _marks(ids: Sequence[Any]) -> str:
    return ",".join("?" * len(ids)) or "NULL"


# --- what the events say (their data, read in the transaction that emits them) -------------


async def survey_facts(conn: Connection, survey_id: int) -> dict[str, Any] | None:
    row = await fetch_one(
        conn,
        "SELECT s.id, s.kind, s.touchpoint, s.store, s.score, s.comment, s.answered_at, s.commented_at, s.language,"
        " s.customer_id, s.contact_id, s.demo, p.order_id, p.amount, p.currency, p.purchased_at, c.external_id, c.name,"
        " c.phone, k.channel FROM surveys s JOIN purchases p ON p.id = s.purchase_id"
        " JOIN customers c ON c.id = s.customer_id LEFT JOIN contacts k ON k.id = s.contact_id WHERE s.id = ?",
        (survey_id,))
    return dict(row) if row else None


async def ticket_facts(conn: Connection, ticket_id: int) -> dict[str, Any] | None:
    row = await fetch_one(
        conn,
        "SELECT t.id, t.kind, t.source, t.category, t.description, t.tier, t.priority, t.status, t.created_at,"
        " t.first_response_at, t.resolved_at, t.assignee_name, t.reopened_count, t.survey_id, t.customer_id,"
        " t.contact_id, t.demo, p.order_id, c.external_id, c.name, c.phone, k.channel, k.display_name"
        " FROM tickets t LEFT JOIN purchases p ON p.id = t.purchase_id LEFT JOIN customers c ON c.id = t.customer_id"
        " LEFT JOIN contacts k ON k.id = t.contact_id WHERE t.id = ?", (ticket_id,))
    return dict(row) if row else None
