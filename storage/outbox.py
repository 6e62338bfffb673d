"""Outgoing messages: written with the state change that caused them, drained by the sender."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.db import Connection
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
) -> int:
    cur = await conn.execute(
        "INSERT INTO outbox (channel, chat_id, contact_id, method, payload, survey_id, priority, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (channel, chat_id, contact_id, method, json.dumps(payload, ensure_ascii=False), survey_id, priority, to_db(now)),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


async def ready(conn: Connection, now: datetime, limit: int) -> list[OutboxItem]:
    """Pending messages whose retry time (if any) has come: interactive ones first, then in
    the order they were written."""
    async with conn.execute(
        "SELECT id, channel, chat_id, method, payload, attempts, survey_id FROM outbox"
        " WHERE status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
        " ORDER BY priority, id LIMIT ?",
        (to_db(now), limit),
    ) as cur:
        rows = await cur.fetchall()
    return [
        OutboxItem(r["id"], r["channel"], r["chat_id"], r["method"], json.loads(r["payload"]), r["attempts"], r["survey_id"])
        for r in rows
    ]


async def next_retry_at(conn: Connection) -> str | None:
    async with conn.execute(
        "SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending' AND next_attempt_at IS NOT NULL"
    ) as cur:
        row = await cur.fetchone()
    return row[0] if row else None


async def mark_sending(conn: Connection, item_id: int) -> bool:
    """Claim a pending row; False if someone else claimed it first."""
    cur = await conn.execute(
        "UPDATE outbox SET status = 'sending', attempts = attempts + 1 WHERE id = ? AND status = 'pending'",
        (item_id,),
    )
    return cur.rowcount == 1


async def mark_sent(conn: Connection, item_id: int, platform_message_id: str | None, now: datetime) -> None:
    await conn.execute(
        "UPDATE outbox SET status = 'sent', platform_message_id = ?, sent_at = ?, last_error = NULL WHERE id = ?",
        (platform_message_id, to_db(now), item_id),
    )


async def mark_retry(conn: Connection, item_id: int, at: datetime, error: str, count_attempt: bool = True) -> None:
    # A 429 is the platform pacing us, not a failed attempt: it does not use up retries.
    await conn.execute(
        "UPDATE outbox SET status = 'pending', next_attempt_at = ?, last_error = ?,"
        " attempts = attempts - ? WHERE id = ?",
        (to_db(at), error[:1000], 0 if count_attempt else 1, item_id),
    )


async def mark_final(conn: Connection, item_id: int, status: str, error: str) -> None:
    """failed: dead letter, never retried; unknown: may have arrived, never resent."""
    assert status in ("failed", "unknown")
    await conn.execute(
        "UPDATE outbox SET status = ?, last_error = ? WHERE id = ?", (status, error[:1000], item_id)
    )


async def recover_in_flight(conn: Connection) -> int:
    """Rows left 'sending' by a crash: we cannot know whether they arrived, so never resend."""
    cur = await conn.execute(
        "UPDATE outbox SET status = 'unknown', last_error = 'in flight when the bot stopped'"
        " WHERE status = 'sending'"
    )
    return cur.rowcount
