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


# A web contact is silent when it never said anything (only the page's automatic /start),
# has no shop customer behind it, and nothing else points at it.
_SILENT = (
    "SELECT c.id, c.platform_user_id FROM contacts c"
    " WHERE c.channel = 'web' AND c.customer_id IS NULL AND c.last_seen_at < ?"
    " AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.contact_id = c.id AND (i.kind IS NOT 'command' OR i.text IS NOT '/start'))"
    " AND NOT EXISTS (SELECT 1 FROM tickets t WHERE t.contact_id = c.id)"
    " AND NOT EXISTS (SELECT 1 FROM surveys s WHERE s.contact_id = c.id)"
    " AND NOT EXISTS (SELECT 1 FROM start_token_uses u WHERE u.contact_id = c.id)"  # opened a receipt's link
    " LIMIT ?"
)


async def purge_silent_sessions(conn: Connection, seen_before: datetime, limit: int) -> int:
    """Forget up to `limit` silent web sessions last seen before the given time: their
    contact, greeting and log (an anonymous visitor who only opened the page leaves nothing).
    The log's last row stays (see privacy._erase_web: ids are never reused)."""
    rows = await conn.execute_fetchall(_SILENT, (to_db(seen_before), limit))
    if not rows:
        return 0
    ids = [r[0] for r in rows]
    marks = ", ".join("?" for _ in rows)
    await conn.execute(f"DELETE FROM web_messages WHERE session_id IN ({marks})"
                       " AND id < (SELECT MAX(id) FROM web_messages)", [r[1] for r in rows])
    for table in ("outbox", "inbox", "conversations"):
        await conn.execute(f"DELETE FROM {table} WHERE contact_id IN ({marks})", ids)
    await conn.execute(f"DELETE FROM contacts WHERE id IN ({marks})", ids)
    return len(rows)
