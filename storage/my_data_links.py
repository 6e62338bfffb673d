"""Short-lived download links for a /mydata export on channels that cannot send a file
(Zalo): the token is random, only its SHA-256 is stored, and the row is gone after expiry."""
from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from storage.db import Connection, fetch_one
from storage.timefmt import to_db


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def create(conn: Connection, token: str, contact_id: int | None, document: str, now: datetime,
                 expires_at: datetime) -> None:
    await conn.execute(
        "INSERT INTO my_data_links (token_hash, contact_id, document, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        (token_hash(token), contact_id, document, to_db(now), to_db(expires_at)),
    )


async def document(conn: Connection, token: str, now: datetime) -> str | None:
    """The export behind this token, if it has not expired (None otherwise)."""
    wanted = token_hash(token)
    row = await fetch_one(
        conn, "SELECT token_hash, document FROM my_data_links WHERE token_hash = ? AND expires_at > ?", (wanted, to_db(now)))
    if row is None or not hmac.compare_digest(row["token_hash"], wanted):
        return None
    return row["document"]


async def undelivered_files(conn: Connection, outbox_ids: list[int]) -> list[tuple[str, str, int, dict[str, Any]]]:
    """Of these outbox rows (just failed for good), the /mydata files that still hold their
    document: (channel, chat_id, contact_id, payload) each."""
    marks = ", ".join("?" for _ in outbox_ids)
    rows = await conn.execute_fetchall(
        f"SELECT channel, chat_id, contact_id, payload FROM outbox WHERE id IN ({marks})"
        " AND method = 'send_document' AND contact_id IS NOT NULL", outbox_ids)
    found = [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]
    return [f for f in found if f[3].get("my_data") and f[3].get("document_base64")]
