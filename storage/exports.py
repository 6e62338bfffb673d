"""Exports of a date range, streamed in batches from an index range on each table's
creation time (never the whole table in memory). Demo surveys and tickets are left out."""
from __future__ import annotations

from datetime import datetime
from typing import AsyncIterator

from storage.db import Connection, fetch_one
from storage.timefmt import to_db

KINDS = ("surveys", "tickets", "messages")

# Columns in output order; time columns (UTC text in the database) end in "_at" or are "at".
COLUMNS: dict[str, tuple[str, ...]] = {
    "surveys": (
        "id", "order_id", "customer_external_id", "customer_name", "touchpoint", "store", "status", "skip_reason",
        "language", "score", "comment", "created_at", "due_at", "sent_at", "answered_at", "commented_at",
    ),
    "tickets": (
        "id", "number", "kind", "category", "status", "priority", "tier", "source", "order_id", "customer_external_id",
        "customer_name", "description", "assignee_name", "created_at", "first_response_at", "resolved_at",
        "first_response_due_at", "resolution_due_at", "reopened_count", "resolution_score",
    ),
    "messages": ("at", "direction", "channel", "chat_id", "contact_id", "contact_name", "kind", "text", "status"),
}

_SQL = {
    "surveys": (
        "SELECT s.id, p.order_id, c.external_id, c.name, s.touchpoint, s.store, s.status, s.skip_reason, s.language,"
        " s.score, s.comment, s.created_at, s.due_at, s.sent_at, s.answered_at, s.commented_at"
        " FROM surveys s JOIN purchases p ON p.id = s.purchase_id JOIN customers c ON c.id = s.customer_id"
        " WHERE s.created_at >= ? AND s.created_at < ? AND s.demo = 0 ORDER BY s.created_at, s.id"
    ),
    "tickets": (
        "SELECT t.id, printf(CASE t.kind WHEN 'question' THEN 'CH-%04d' ELSE 'KN-%04d' END, t.id), t.kind, t.category, t.status, t.priority, t.tier, t.source, p.order_id,"
        " c.external_id, c.name, t.description, t.assignee_name, t.created_at, t.first_response_at, t.resolved_at,"
        " t.first_response_due_at, t.resolution_due_at, t.reopened_count, t.resolution_score"
        " FROM tickets t LEFT JOIN purchases p ON p.id = t.purchase_id LEFT JOIN customers c ON c.id = t.customer_id"
        " WHERE t.created_at >= ? AND t.created_at < ? AND t.demo = 0 ORDER BY t.created_at, t.id"
    ),
    # What customers sent (inbox, as understood) and what the bot sent (outbox), in time
    # order: each side comes sorted from its own index and SQLite merges the two. Rows with
    # the same time keep their written order (side, then id: the two trailing sort columns,
    # cut off in rows()), so an export reads the same on both backends and every run.
    "messages": (
        "SELECT i.received_at AS at, 'in', i.platform, ct.chat_id, i.contact_id, ct.display_name, i.kind, i.text,"
        " CASE WHEN i.error IS NOT NULL THEN 'error' WHEN i.processed_at IS NULL THEN 'pending' ELSE 'processed' END,"
        " 0 AS side, i.id AS seq"
        " FROM inbox i LEFT JOIN contacts ct ON ct.id = i.contact_id"
        " WHERE i.received_at >= ? AND i.received_at < ?"
        " UNION ALL"
        " SELECT o.created_at AS at, 'out', o.channel, o.chat_id, o.contact_id, ct.display_name, o.method,"
        " json_extract(o.payload, '$.text'), o.status, 1, o.id"
        " FROM outbox o LEFT JOIN contacts ct ON ct.id = o.contact_id"
        " WHERE o.created_at >= ? AND o.created_at < ?"
        " ORDER BY at, side, seq"
    ),
}

_COUNT = {
    "surveys": "SELECT COUNT(*) FROM surveys WHERE created_at >= ? AND created_at < ? AND demo = 0",
    "tickets": "SELECT COUNT(*) FROM tickets WHERE created_at >= ? AND created_at < ? AND demo = 0",
    "messages": (
        "SELECT (SELECT COUNT(*) FROM inbox WHERE received_at >= ? AND received_at < ?)"
        " + (SELECT COUNT(*) FROM outbox WHERE created_at >= ? AND created_at < ?)"
    ),
}


def _params(kind: str, start: datetime, end: datetime) -> tuple[str, ...]:
    span = (to_db(start), to_db(end))
    return span * 2 if kind == "messages" else span


def sql(kind: str) -> str:
    return _SQL[kind]


async def count(conn: Connection, kind: str, start: datetime, end: datetime) -> int:
    row = await fetch_one(conn, _COUNT[kind], _params(kind, start, end))
    assert row is not None
    return row[0]


async def rows(conn: Connection, kind: str, start: datetime, end: datetime, batch: int = 1000) -> AsyncIterator[list[tuple]]:
    """Rows created in [start, end), oldest first, `batch` at a time (a cursor, not
    execute_fetchall: an export may not fit in memory)."""
    width = len(COLUMNS[kind])  # without any trailing sort-only columns
    async with conn.execute(_SQL[kind], _params(kind, start, end)) as cur:
        while True:
            chunk = await cur.fetchmany(batch)
            if not chunk:
                return
            yield [tuple(r)[:width] for r in chunk]
