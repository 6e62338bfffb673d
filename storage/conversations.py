"""Conversation state per contact (the flows' state machine position and data)."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Mapping

from storage.db import Connection, fetch_one, to_json
from storage.timefmt import to_db


async def get(conn: Connection, contact_id: int) -> tuple[str, dict[str, Any]]:
    row = await fetch_one(conn, "SELECT state, data FROM conversations WHERE contact_id = ?", (contact_id,))
    if row is None:
        return "idle", {}
    return row["state"], json.loads(row["data"])


async def put(conn: Connection, contact_id: int, state: str, data: Mapping[str, Any], now: datetime) -> None:
    await conn.execute(
        "INSERT INTO conversations (contact_id, state, data, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (contact_id) DO UPDATE SET state = excluded.state, data = excluded.data,"
        " updated_at = excluded.updated_at",
        (contact_id, state, to_json(dict(data)), to_db(now)),
    )
