"""Which weekly digest went to which owner chat: one row per (owner chat, ISO week)."""
from __future__ import annotations

from datetime import datetime

from storage.db import Connection, fetch_one
from storage.timefmt import to_db


async def was_sent(conn: Connection, owner_chat_id: str, week: str) -> bool:
    return await fetch_one(
        conn,
        "SELECT 1 FROM digests_sent WHERE owner_chat_id = ? AND week = ?", (owner_chat_id, week)
    ) is not None


async def mark_sent(conn: Connection, owner_chat_id: str, week: str, language: str, now: datetime) -> bool:
    """Claim (owner, week); False when it was already sent. Call in the transaction that
    writes the digest's outbox rows, so both happen or neither."""
    cur = await conn.execute(
        "INSERT INTO digests_sent (owner_chat_id, week, language, queued_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (owner_chat_id, week) DO NOTHING",
        (owner_chat_id, week, language, to_db(now)),
    )
    return cur.rowcount == 1
