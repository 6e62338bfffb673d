"""Canned replies for the agents' page (owner-managed; texts filled by flows/canned.py)."""
from __future__ import annotations

from dataclasses import dataclass

from datetime import datetime

from storage.db import Connection, fetch_one
from storage.timefmt import to_db


@dataclass(frozen=True)
class CannedReply:
    id: int
    title: str
    body: str


async def all_replies(conn: Connection) -> list[CannedReply]:
    rows = await conn.execute_fetchall("SELECT id, title, body FROM canned_replies ORDER BY title, id")
    return [CannedReply(r[0], r[1], r[2]) for r in rows]


async def get(conn: Connection, reply_id: int) -> CannedReply | None:
    row = await fetch_one(conn, "SELECT id, title, body FROM canned_replies WHERE id = ?", (reply_id,))
    return CannedReply(row[0], row[1], row[2]) if row else None


async def add(conn: Connection, title: str, body: str, by: str, now: datetime) -> int:
    cur = await conn.execute(
        "INSERT INTO canned_replies (title, body, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        (title, body, by, to_db(now), to_db(now)))
    assert cur.lastrowid is not None
    return cur.lastrowid


async def update(conn: Connection, reply_id: int, title: str, body: str, now: datetime) -> bool:
    cur = await conn.execute("UPDATE canned_replies SET title = ?, body = ?, updated_at = ? WHERE id = ?",
                             (title, body, to_db(now), reply_id))
    return cur.rowcount > 0


async def delete(conn: Connection, reply_id: int) -> bool:
    cur = await conn.execute("DELETE FROM canned_replies WHERE id = ?", (reply_id,))
    return cur.rowcount > 0
