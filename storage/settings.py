"""Small durable key/value settings (generated secrets, bot identity)."""
from __future__ import annotations

from typing import Callable

from storage.db import Connection, fetch_one


async def get(conn: Connection, key: str) -> str | None:
    row = await fetch_one(conn, "SELECT value FROM settings WHERE key = ?", (key,))
    return row[0] if row else None


async def get_or_create(conn: Connection, key: str, make: Callable[[], str]) -> str:
    value = await get(conn, key)
    if value is None:
        value = make()
        await conn.execute("INSERT INTO settings (key, value) VALUES (?, ?)", (key, value))
    return value


async def put(conn: Connection, key: str, value: str) -> None:
    await conn.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )
