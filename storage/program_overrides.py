"""Owners' edits of survey programs from the dashboard (program_overrides): the changed keys
of each program, applied over its [[programs]] table by bot/feedback_settings.py."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.db import Connection, fetch_one
from storage.timefmt import from_db, to_db


@dataclass(frozen=True)
class Override:
    program: str
    enabled: bool
    changes: dict[str, Any]
    updated_at: datetime | None
    updated_by: str


async def all_(conn: Connection) -> dict[str, Override]:
    rows = await conn.execute_fetchall(
        "SELECT program, enabled, changes, updated_at, updated_by FROM program_overrides ORDER BY program")
    return {r[0]: Override(r[0], bool(r[1]), json.loads(r[2]), from_db(r[3]), r[4]) for r in rows}


async def get(conn: Connection, program: str) -> Override | None:
    row = await fetch_one(conn, "SELECT program, enabled, changes, updated_at, updated_by FROM program_overrides"
                                " WHERE program = ?", (program,))
    return Override(row[0], bool(row[1]), json.loads(row[2]), from_db(row[3]), row[4]) if row else None


async def put(conn: Connection, program: str, enabled: bool, changes: dict[str, Any], now: datetime, by: str) -> None:
    await conn.execute(
        "INSERT INTO program_overrides (program, enabled, changes, updated_at, updated_by) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (program) DO UPDATE SET enabled = excluded.enabled, changes = excluded.changes,"
        " updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        (program, int(enabled), json.dumps(changes, ensure_ascii=False, sort_keys=True), to_db(now), by))


async def delete(conn: Connection, program: str) -> bool:
    cur = await conn.execute("DELETE FROM program_overrides WHERE program = ?", (program,))
    return cur.rowcount == 1

