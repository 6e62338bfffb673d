"""The web chat's per-session message log (what a visitor's page shows, resumable by id)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.db import Connection, to_json
from storage.timefmt import to_db


@dataclass(frozen=True)
class WebMessage:
    id: int
    kind: str
    body: dict[str, Any]

    def frame(self) -> dict[str, Any]:
        """As the page receives it."""
        return {**self.body, "type": self.kind, "seq": self.id}


async def append(
    conn: Connection, session_id: str, kind: str, body: dict[str, Any], now: datetime, client_id: str | None = None
) -> WebMessage | None:
    """Store one entry; None when this client id was stored before (a re-sent frame)."""
    cur = await conn.execute(
        "INSERT INTO web_messages (session_id, kind, client_id, body, created_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (session_id, kind, client_id, to_json(body), to_db(now)),
    )
    if cur.rowcount != 1 or cur.lastrowid is None:
        return None
    return WebMessage(cur.lastrowid, kind, body)


async def after(conn: Connection, session_id: str, after_id: int, limit: int = 500) -> list[WebMessage]:
    """This session's entries after `after_id`, oldest first (never another session's)."""
    rows = await conn.execute_fetchall(
        "SELECT id, kind, body FROM web_messages WHERE session_id = ? AND id > ? ORDER BY id LIMIT ?",
        (session_id, after_id, limit),
    )
    return [WebMessage(r["id"], r["kind"], json.loads(r["body"])) for r in rows]


async def count(conn: Connection, session_id: str) -> int:
    rows = await conn.execute_fetchall("SELECT COUNT(*) FROM web_messages WHERE session_id = ?", (session_id,))
    return rows[0][0]
