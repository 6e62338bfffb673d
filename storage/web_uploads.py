"""Images web chat visitors attached (table web_uploads, migration 0060): the bytes, what they
are, the session that sent them and the web_messages entry that carries them. A ticket's
photos name one as "web:<id>" (REF_PREFIX)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from storage.db import Connection, fetch_one
from storage.timefmt import to_db

REF_PREFIX = "web:"


def ref(upload_id: int) -> str:
    """How a ticket's photos (and the inbound payload) name an upload."""
    return f"{REF_PREFIX}{upload_id}"


def parse_ref(value: object) -> int | None:
    """The upload id a "web:<id>" names; None for anything else (a Telegram file id, a URL)."""
    if not isinstance(value, str) or not value.startswith(REF_PREFIX):
        return None
    digits = value[len(REF_PREFIX):]
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 18 else None


@dataclass(frozen=True)
class Upload:
    id: int
    session_id: str
    message_id: int | None
    mime_type: str
    data: bytes


async def add(conn: Connection, session_id: str, mime_type: str, data: bytes, now: datetime) -> int:
    cur = await conn.execute(
        "INSERT INTO web_uploads (session_id, mime_type, size, data, created_at) VALUES (?, ?, ?, ?, ?)",
        (session_id, mime_type, len(data), data, to_db(now)),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


async def link(conn: Connection, upload_id: int, message_id: int) -> None:
    await conn.execute("UPDATE web_uploads SET message_id = ? WHERE id = ?", (message_id, upload_id))


async def get(conn: Connection, upload_id: int) -> Upload | None:
    row = await fetch_one(
        conn, "SELECT id, session_id, message_id, mime_type, data FROM web_uploads WHERE id = ?", (upload_id,))
    if row is None:
        return None
    return Upload(row["id"], row["session_id"], row["message_id"], row["mime_type"], bytes(row["data"]))


async def of_message(conn: Connection, session_id: str, message_id: int) -> Upload | None:
    """The image a visitor's log entry carries (only that session's)."""
    row = await fetch_one(
        conn, "SELECT id FROM web_uploads WHERE session_id = ? AND message_id = ?", (session_id, message_id))
    return await get(conn, row["id"]) if row is not None else None
