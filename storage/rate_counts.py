"""Events per key in a sliding window, counted in the database (bot/limits.py: the web chat's
abuse limits with several instances on one PostgreSQL database)."""
from __future__ import annotations

import math
from typing import Any

from storage.db import dialect

_HIT = (
    "INSERT INTO rate_counts (name, key, slot, count, previous, expires) VALUES (?, ?, ?, 1, 0, ?)"
    " ON CONFLICT (name, key) DO UPDATE SET"
    " previous = CASE WHEN rate_counts.slot = excluded.slot THEN rate_counts.previous"
    " WHEN rate_counts.slot = excluded.slot - 1 THEN rate_counts.count ELSE 0 END,"
    " count = CASE WHEN rate_counts.slot <> excluded.slot THEN 1"
    " WHEN rate_counts.count > ? THEN rate_counts.count ELSE rate_counts.count + 1 END,"
    " slot = excluded.slot, expires = excluded.expires"
    " RETURNING count, previous"
)


async def hit(db: Any, name: str, key: str, limit: int, window: float, now: float) -> bool:
    """Count one event for `key` at `now` (epoch seconds); True when the events of the last
    `window` seconds, this one included, are at most `limit`. The window slides: the previous
    fixed window's count weighs by how much of it is still inside. Refused events count too,
    up to limit + 1 per fixed window (someone who keeps hammering stays refused), in one
    statement on its own (on PostgreSQL not behind this instance's writer)."""
    slot = math.floor(now / window)
    args = (name, key, slot, (slot + 2) * window, limit)
    if dialect(db) == "postgresql":  # autocommit on a pool connection: beside the writer
        rows = await db.reader.execute_fetchall(_HIT, args)
    else:
        async with db.transaction() as tx:
            rows = await tx.execute_fetchall(_HIT, args)
    count, previous = rows[0][0], rows[0][1]
    inside = 1.0 - (now / window - slot)
    return previous * inside + count <= limit


async def purge(db: Any, now: float) -> int:
    """Forget the keys whose windows have passed."""
    async with db.transaction() as tx:
        cur = await tx.execute("DELETE FROM rate_counts WHERE expires < ?", (now,))
        return cur.rowcount
