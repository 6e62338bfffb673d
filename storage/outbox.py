"""Outgoing messages: written with the state change that caused them, drained by the sender."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

from storage.db import Connection, Row, fetch_one, to_json
from storage.timefmt import to_db


@dataclass(frozen=True)
class OutboxItem:
    id: int
    channel: str
    chat_id: str
    method: str
    payload: dict[str, Any]
    attempts: int
    survey_id: int | None
    ticket_id: int | None = None
    coalesce_key: str | None = None


async def enqueue(
    conn: Connection,
    *,
    channel: str,
    chat_id: str,
    contact_id: int | None,
    method: str,
    payload: dict[str, Any],
    now: datetime,
    survey_id: int | None = None,
    priority: int = 0,
    ticket_id: int | None = None,
    coalesce_key: str | None = None,
) -> int:
    cur = await conn.execute(
        "INSERT INTO outbox (channel, chat_id, contact_id, method, payload, survey_id, priority, ticket_id,"
        " coalesce_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            channel, chat_id, contact_id, method, to_json(payload), survey_id, priority,
            ticket_id, coalesce_key, to_db(now),
        ),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


async def ready(
    conn: Connection, now: datetime, limit: int, skip_channels: tuple[str, ...] = ()
) -> list[OutboxItem]:
    """Pending messages whose retry time (if any) has come: interactive ones first, then in
    the order they were written (none of `skip_channels`: paused platforms)."""
    skip = f" AND channel NOT IN ({_in(list(skip_channels))})" if skip_channels else ""
    return [_item(r) for r in await conn.execute_fetchall(
        f"{_SELECT} WHERE status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= ?){skip}"
        " ORDER BY priority, id LIMIT ?",
        (to_db(now), *skip_channels, limit),
    )]


_SELECT = "SELECT id, channel, chat_id, method, payload, attempts, survey_id, ticket_id, coalesce_key FROM outbox"


def _item(r: Row) -> OutboxItem:
    return OutboxItem(
        r["id"], r["channel"], r["chat_id"], r["method"], json.loads(r["payload"]), r["attempts"],
        r["survey_id"], r["ticket_id"], r["coalesce_key"],
    )


async def take_coalescable(conn: Connection, item: OutboxItem, max_chars: int) -> list[OutboxItem]:
    """Pending rows that may ride along with `item` (same chat, same key, after it, in
    order, within the size budget): marked sent as part of it."""
    if item.coalesce_key is None:
        return []
    candidates = [_item(r) for r in await conn.execute_fetchall(
        f"{_SELECT} WHERE status = 'pending' AND chat_id = ? AND coalesce_key = ? AND id > ? ORDER BY id LIMIT 50",
        (item.chat_id, item.coalesce_key, item.id),
    )]
    taken: list[OutboxItem] = []
    size = len(item.payload.get("text", ""))
    for other in candidates:
        size += len(other.payload.get("text", "")) + 1
        if other.method != item.method or size > max_chars:
            break
        taken.append(other)
    for other in taken:
        # They share the first row's fate from here on (sent, retried or failed together).
        await conn.execute(
            "UPDATE outbox SET status = 'sending', attempts = attempts + 1, last_error = ? WHERE id = ?",
            (f"merged into {item.id}", other.id),
        )
    return taken


async def next_retry_at(conn: Connection) -> str | None:
    row = await fetch_one(conn, 
        "SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending' AND next_attempt_at IS NOT NULL"
    )
    return row[0] if row else None


async def mark_sending(conn: Connection, item_id: int) -> bool:
    """Claim a pending row; False if someone else claimed it first."""
    cur = await conn.execute(
        "UPDATE outbox SET status = 'sending', attempts = attempts + 1 WHERE id = ? AND status = 'pending'",
        (item_id,),
    )
    return cur.rowcount == 1


def _in(ids: list[int]) -> str:
    return ", ".join("?" * len(ids))


async def mark_sent(conn: Connection, ids: list[int], platform_message_id: str | None, now: datetime) -> None:
    await conn.execute(
        f"UPDATE outbox SET status = 'sent', platform_message_id = ?, sent_at = ? WHERE id IN ({_in(ids)})",
        (platform_message_id, to_db(now), *ids),
    )


async def mark_retry(conn: Connection, ids: list[int], at: datetime, error: str, count_attempt: bool = True) -> None:
    # A 429 is the platform pacing us, not a failed attempt: it does not use up retries.
    await conn.execute(
        "UPDATE outbox SET status = 'pending', next_attempt_at = ?, last_error = ?,"
        f" attempts = attempts - ? WHERE id IN ({_in(ids)})",
        (to_db(at), error[:1000], 0 if count_attempt else 1, *ids),
    )


async def mark_final(conn: Connection, ids: list[int], status: str, error: str) -> None:
    """failed: dead letter, never retried; unknown: may have arrived, never resent."""
    assert status in ("failed", "unknown")
    await conn.execute(
        f"UPDATE outbox SET status = ?, last_error = ? WHERE id IN ({_in(ids)})", (status, error[:1000], *ids)
    )


async def requeue_in_flight(conn: Connection, resend_channels: Sequence[str] = ()) -> int:
    """Rows left 'sending' by a crash that go out again; call before recover_in_flight.
    Scheduled survey questions (bulk, priority 1): a question that never arrived is lost
    feedback, one that arrives twice is one extra message (the rule: every due survey is
    sent, at most the in-flight ones twice). Rows on `resend_channels`, whose delivery is our
    own write (the web chat): a resend costs at most a repeated line in the chat log."""
    cur = await conn.execute(
        "UPDATE outbox SET status = 'pending', last_error = 'in flight when the bot stopped; sent again'"
        " WHERE status = 'sending' AND ((survey_id IS NOT NULL AND priority = 1 AND method = 'send_text')"
        f" OR channel IN ({','.join('?' * len(resend_channels)) or 'NULL'}))", tuple(resend_channels),
    )
    return cur.rowcount


async def recover_in_flight(conn: Connection) -> int:
    """Rows left 'sending' by a crash: we cannot know whether they arrived, so never resend."""
    cur = await conn.execute(
        "UPDATE outbox SET status = 'unknown', last_error = 'in flight when the bot stopped'"
        " WHERE status = 'sending'"
    )
    return cur.rowcount
