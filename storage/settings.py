"""Small durable key/value settings (generated secrets, bot identity)."""
from __future__ import annotations

from typing import Callable

from storage.db import Connection, fetch_one


async def get(conn: Connection, key: str) -> str | None:
    row = await fetch_one(conn, "SELECT value FROM settings WHERE key = ?", (key,))
    return row[0] if row else None


async def get_or_create(conn: Connection, key: str, make: Callable[[], str]) -> str:
    """The stored value, or `make()`'s stored now. Two instances starting at once on a new
    database both make one: the first stored wins, and both return it (on PostgreSQL the
    second INSERT waits for the first's commit, then does nothing)."""
    value = await get(conn, key)
    if value is None:
        await conn.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, make()))
        value = await get(conn, key)
        assert value is not None
    return value


async def put(conn: Connection, key: str, value: str) -> None:
    await conn.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )
