"""One lock for every rollup write (CSAT, sends, complaints).

Several instances on PostgreSQL: transactions adding to the same hot rows (today's, this
month's) in different orders deadlocked, e.g. a /start's send count and a tap's answer in one
group commit against the other instance's. Every rollup write takes this lock first, held to
the commit, so rollup writers take turns instead. SQLite has one writer anyway."""
from __future__ import annotations

from storage.db import Connection, dialect

ROLLUP_LOCK = 0x6665_6564_726F_6C6C  # "feedroll"


async def serialize(conn: Connection) -> None:
    """Before writing rollup rows in a transaction (again in the same one: a no-op)."""
    if dialect(conn) == "postgresql":
        await conn.execute("SELECT pg_advisory_xact_lock(?)", (ROLLUP_LOCK,))
