"""Inbound platform updates: recorded once (dedupe key = platform + update id), then processed."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.db import Connection, Database, dialect, to_json
from storage.timefmt import to_db


@dataclass(frozen=True)
class InboxItem:
    id: int
    platform: str
    update_id: str
    payload: dict[str, Any]


MAX_ERROR = 2000  # characters of an error kept on its row

_INSERT = (
    "INSERT INTO inbox (platform, update_id, payload, received_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (platform, update_id) DO NOTHING"
)


def _as_json(payload: dict[str, Any] | str) -> str:
    """The payload column: the JSON text as received when we have it, else the update dumped."""
    return payload if isinstance(payload, str) else to_json(payload)


async def record(
    conn: Connection, platform: str, update_id: str, payload: dict[str, Any], now: datetime
) -> int | None:
    """Insert the update; None when it was already recorded (a redelivery)."""
    cur = await conn.execute(
        _INSERT,
        (platform, update_id, _as_json(payload), to_db(now)),
    )
    return cur.lastrowid if cur.rowcount == 1 else None


async def record_processed(
    conn: Connection,
    platform: str,
    update_id: str,
    payload: dict[str, Any] | str,
    received_at: datetime,
    processed_at: datetime,
    *,
    contact_id: int | None = None,
    kind: str | None = None,
    text: str | None = None,
    error: str | None = None,
) -> int | None:
    """Insert an update already handled (in the same transaction) or failed: one statement
    where record() + mark_processed() take two. None when it was already recorded.
    `payload` as its JSON text when the caller has it as received."""
    cur = await conn.execute(
        "INSERT INTO inbox (platform, update_id, payload, received_at, processed_at, contact_id, kind, text, error)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (platform, update_id) DO NOTHING",
        (
            platform, update_id, _as_json(payload), to_db(received_at), to_db(processed_at),
            contact_id, kind, text, None if error is None else error[:MAX_ERROR],
        ),
    )
    return cur.lastrowid if cur.rowcount == 1 else None


async def record_committed(
    db: Database, platform: str, update_id: str, payload: dict[str, Any], now: datetime
) -> int | None:
    """record() in a write transaction of its own, committed when this returns (updates that
    arrive together share one transaction: Database.write_grouped)."""
    rowid, count = await db.write_grouped(
        _INSERT, (platform, update_id, _as_json(payload), to_db(now))
    )
    return rowid if count == 1 else None


async def claim(conn: Connection, inbox_id: int, now: datetime) -> bool:
    """Take a recorded update to process; False when it was processed already (by another
    instance replaying it: on PostgreSQL this waits for that one's transaction to end). On
    SQLite one instance runs, and its own replay and webhook never overlap: nothing to take."""
    if dialect(conn) != "postgresql":
        return True
    cur = await conn.execute(
        "UPDATE inbox SET processed_at = ? WHERE id = ? AND processed_at IS NULL", (to_db(now), inbox_id))
    return cur.rowcount == 1


async def mark_processed(
    conn: Connection,
    inbox_id: int,
    now: datetime,
    *,
    contact_id: int | None = None,
    kind: str | None = None,
    text: str | None = None,
) -> None:
    await conn.execute(
        "UPDATE inbox SET processed_at = ?, contact_id = ?, kind = ?, text = ? WHERE id = ?",
        (to_db(now), contact_id, kind, text, inbox_id),
    )


async def mark_failed(conn: Connection, inbox_id: int, error: str, now: datetime, contact_id: int | None = None) -> None:
    """`contact_id`: the sender's chat, if known (their export and erasure find the row by it)."""
    await conn.execute(
        "UPDATE inbox SET processed_at = ?, error = ?, contact_id = COALESCE(?, contact_id) WHERE id = ?",
        (to_db(now), error[:MAX_ERROR], contact_id, inbox_id),
    )


async def unprocessed(conn: Connection, limit: int = 500) -> list[InboxItem]:
    """Updates recorded but never processed (the bot stopped in between): replayed at start."""
    rows = await conn.execute_fetchall(
        "SELECT id, platform, update_id, payload FROM inbox WHERE processed_at IS NULL ORDER BY id LIMIT ?",
        (limit,),
    )
    return [InboxItem(r["id"], r["platform"], r["update_id"], json.loads(r["payload"])) for r in rows]
