"""Leases: a name held by one instance at a time until a time it keeps moving forward.

On PostgreSQL the times are the server's (feedbot_clock, migration 0016): instances on
machines whose clocks disagree agree on who holds a lease. On SQLite (one instance) the
process's clock.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from storage.db import Connection, dialect
from storage.timefmt import from_db, to_db

LEADER = "leader"


def clock_sql(conn: Any, seconds: float) -> tuple[str, tuple[Any, ...]]:
    """An SQL expression for "now + seconds" as stored time text, and its parameter."""
    if dialect(conn) == "postgresql":
        return "feedbot_clock(?)", (float(seconds),)
    return "?", (to_db(datetime.now(timezone.utc) + timedelta(seconds=seconds)),)


@dataclass(frozen=True)
class Holder:
    holder: str
    until: str
    since: str


async def acquire(conn: Connection, name: str, holder: str, seconds: float) -> bool:
    """Take the lease or renew our own: True while we hold it (until now + seconds). Taken
    from another holder only once theirs ran out."""
    until, until_args = clock_sql(conn, seconds)
    now, now_args = clock_sql(conn, 0)
    rows = await conn.execute_fetchall(
        f"INSERT INTO leases (name, holder, until, since) VALUES (?, ?, {until}, {now})"
        " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until,"
        " since = CASE WHEN leases.holder = excluded.holder THEN leases.since ELSE excluded.since END"
        " WHERE leases.holder = excluded.holder OR leases.until < excluded.since"
        " RETURNING holder",
        (name, holder, *until_args, *now_args),
    )
    return bool(rows)


async def release(conn: Connection, name: str, holder: str) -> bool:
    """Give the lease up (a clean stop): another instance may take it at once."""
    cur = await conn.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))
    return cur.rowcount == 1


async def current(conn: Any, name: str) -> Holder | None:
    """Who holds the lease now (None: nobody, or theirs ran out)."""
    now, now_args = clock_sql(conn, 0)
    rows = await conn.execute_fetchall(
        f"SELECT holder, until, since FROM leases WHERE name = ? AND until >= {now}", (name, *now_args))
    return Holder(rows[0][0], rows[0][1], rows[0][2]) if rows else None


async def extend(conn: Connection, name: str, holder: str, seconds: float) -> None:
    """Hold `name` at least until now + seconds (a later time already set stays): a mark
    every instance can read, such as a platform's 429 pause."""
    until, until_args = clock_sql(conn, seconds)
    now, now_args = clock_sql(conn, 0)
    await conn.execute(
        f"INSERT INTO leases (name, holder, until, since) VALUES (?, ?, {until}, {now})"
        " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until, since = excluded.since"
        " WHERE leases.until < excluded.until",
        (name, holder, *until_args, *now_args),
    )


async def remaining(conn: Any, prefix: str) -> dict[str, float]:
    """The leases whose name starts with `prefix` (no LIKE wildcards in it) that still run:
    name -> seconds left."""
    now, now_args = clock_sql(conn, 0)
    rows = await conn.execute_fetchall(
        f"SELECT name, until, {now} FROM leases WHERE name LIKE ? AND until > {now}",
        (*now_args, prefix + "%", *now_args),
    )
    return {r[0]: (from_db(r[1]) - from_db(r[2])).total_seconds() for r in rows}  # type: ignore[operator]
