"""Rollup writes (CSAT answers, survey sends, complaints) without deadlocks between instances.

Several instances on PostgreSQL add to the same hot rows (today's, this month's), and group
commit puts several updates in one transaction: two transactions adding to those rows in
opposite orders deadlocked (a /start's send count and a tap's answer). One lock taken at a
transaction's first rollup write and held to its commit stopped that, but made the instances'
whole transactions (a group of updates) take turns.

Now a PostgreSQL writer transaction (a unit's, transaction()'s: storage/pg.py) gathers its
rollup deltas in a `Pending` (the connection's `rollups`) and writes them just before its
COMMIT, summed per row, the tables and their rows in one order (CSAT..PROGRAMS; by month, then the rest
of the key, then the day). The lock (ROLLUP_LOCK) is taken there, for those last statements and
the COMMIT only: row order alone cannot rule cycles out, as triggers add every answer to rows
of other keys too (csat_days: one row per day, csat_store_days, the months). A unit's deltas
join its transaction's only if it succeeds. A rebuild takes the same lock (serialize()).

SQLite has one writer, so no deadlock there, but its units gather the same way
(storage/db.py): the updates sharing a group commit mostly add to the same rows (today's, the
same store), and one upsert per row at the COMMIT replaces one per update with its triggers'
statements (an answer's CSAT upsert and the trigger statements it sets off: 5 statements
more per answer). Other transactions (transaction(), the jobs' bulk work) have no `rollups`
and write at once, in the same order."""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence

from storage.backend import dialect

# Not storage.db's Connection: that module imports this one (its units gather).
Connection = Any


ROLLUP_LOCK = 0x6665_6564_726F_6C6C  # "feedroll"

# The order the tables are written in at a commit.
CSAT, SENDS, TICKET_COUNTS, TICKET_DURATIONS, RATINGS, JOURNEY, PROGRAMS = range(7)


def _order(key: tuple[str, ...]) -> tuple[Any, ...]:
    """Rows' write order: every rollup key starts with its day; the month first, as csat_months'
    rows (by month) are locked in the order of the csat_rollups rows that move them."""
    return (key[0][:7], key[1:], key[0])


class Pending:
    """Rollup deltas gathered by a transaction: per table (its upsert), per key, the values
    added up."""

    __slots__ = ("tables",)

    def __init__(self) -> None:
        self.tables: dict[tuple[int, str], dict[tuple[str, ...], list[int]]] = {}

    def add(self, rank: int, upsert: str, rows: Iterable[tuple[Sequence[str], Sequence[int]]]) -> None:
        cells = self.tables.setdefault((rank, upsert), {})
        for key, values in rows:
            cell = cells.get(tuple(key))
            if cell is None:
                cells[tuple(key)] = list(values)
            else:
                for i, v in enumerate(values):
                    cell[i] += v

    def merge(self, other: "Pending") -> None:
        for (rank, upsert), cells in other.tables.items():
            self.add(rank, upsert, cells.items())

    def __bool__(self) -> bool:
        return bool(self.tables)

    def drain(self) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
        """Each table's upsert and its rows (key then values), in the one order; emptied."""
        tables, self.tables = self.tables, {}
        for (_, upsert), cells in sorted(tables.items()):
            rows = [(*key, *values) for key, values in sorted(cells.items(), key=lambda kv: _order(kv[0]))
                    if any(values)]
            if rows:
                yield upsert, rows

    async def flush(self, conn: Connection) -> None:
        """Write everything gathered (in the transaction about to commit), in the one order."""
        locked = False
        for upsert, rows in self.drain():
            if not locked and dialect(conn) == "postgresql":
                await serialize(conn)  # held to the COMMIT, which follows
                locked = True
            await conn.executemany(upsert, rows)


def gathers(conn: Connection) -> bool:
    """The connection's transaction gathers rollup writes for its commit."""
    return getattr(conn, "rollups", None) is not None


async def add(conn: Connection, rank: int, upsert: str, rows: Iterable[tuple[Sequence[str], Sequence[int]]]) -> None:
    """Add to a rollup table: `upsert` takes each key's columns then its values (adding them to
    a row already there). Gathered for the commit where the transaction does, else now."""
    pending = getattr(conn, "rollups", None)
    if pending is not None:
        pending.add(rank, upsert, rows)
        return
    now = Pending()
    now.add(rank, upsert, rows)
    await now.flush(conn)


async def serialize(conn: Connection) -> None:
    """Before writing rollup rows: no other transaction writes any until this one commits
    (again in the same transaction: a no-op)."""
    if dialect(conn) == "postgresql":
        await conn.execute("SELECT pg_advisory_xact_lock(?)", (ROLLUP_LOCK,))
