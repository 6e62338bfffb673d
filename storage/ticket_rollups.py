"""Complaint rollups (issue 20): what the dashboard's complaint figures need, per shop day x store x
category x kind, kept in the transaction of every ticket change and rebuilt from the tickets by
`feedbot rollups rebuild`.

A ticket contributes, as it stands now:
- `ticket_rollups`, on its opening day: opened, reopened (reopened at least once), responded (has a
  first response), closed (resolved now) and sla_met (closed within both targets); on the day of
  its resolution: resolved.
- `ticket_durations`, on its opening day (by store and kind, not category): one count in the
  bucket of its first-response time and one in that of its resolution time (fixed buckets,
  `EDGES`; a column per bucket), from which the median and p90 are read within a bucket's precision.
- `rating_rollups`, on the day of its resolution: the customer's rating of the resolution, by agent.

A change retracts the ticket's old contribution and adds its new one (`Tally.before` / `after`
around the write), so the rollups always equal the raw aggregation of the tickets, whatever
changed (a reopen takes back a resolution, an erasure closes a ticket). Demo tickets count nowhere.
Days are shop days in the time zone the rollups were last built under (setting `rollups.timezone`,
written by the rebuild)."""
from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from datetime import datetime, timezone, timedelta, tzinfo
from typing import Any, Sequence
from zoneinfo import ZoneInfo

from storage.db import Connection, dialect, fetch_one
from storage.rollup_lock import serialize
from storage.timefmt import from_db

TZ_SETTING = "rollups.timezone"
HOUR = 3600
# Upper edges of the duration buckets, in seconds: bucket i holds [EDGES[i-1], EDGES[i]); the last
# one everything from 30 days. Steps: 15 min up to 1 h, then 1 h up to 4 h, 2 h up to 8 h, 4 h up
# to 24 h, 12 h up to 2 days, 1 day up to 5 days, then 7, 10, 14, 21 and 30 days.
EDGES: tuple[int, ...] = (
    900, 1800, 2700, 3600, 2 * HOUR, 3 * HOUR, 4 * HOUR, 6 * HOUR, 8 * HOUR, 12 * HOUR, 16 * HOUR, 20 * HOUR, 24 * HOUR,
    36 * HOUR, 48 * HOUR, 72 * HOUR, 96 * HOUR, 120 * HOUR, 168 * HOUR, 240 * HOUR, 336 * HOUR, 504 * HOUR, 720 * HOUR,
)
BUCKETS = len(EDGES) + 1  # columns b0 .. b23 of ticket_durations
MEASURES = ("first_response", "resolution")
_B = ", ".join(f"b{i}" for i in range(BUCKETS))
COUNTS = ("opened", "resolved", "reopened", "responded", "closed", "sla_met")

_COLUMNS = ("t.id, t.kind, t.category, COALESCE(p.store, ''), t.demo, t.created_at, t.first_response_at, t.resolved_at,"
            " t.first_response_due_at, t.resolution_due_at, t.reopened_count, t.resolution_score,"
            " COALESCE(t.assignee_id, ''), COALESCE(t.assignee_name, '')")
_FROM = " FROM tickets t LEFT JOIN purchases p ON p.id = t.purchase_id"


def bucket(seconds: float) -> int:
    return bisect_right(EDGES, max(0.0, seconds))


def bucket_bounds(i: int) -> tuple[float, float | None]:
    """[lower, upper) seconds of bucket i (upper None for the last)."""
    return (EDGES[i - 1] if i else 0.0, EDGES[i] if i < len(EDGES) else None)


def tz_text(tz: tzinfo) -> str:
    key = getattr(tz, "key", None)
    if key:
        return str(key)
    offset = tz.utcoffset(None) or timedelta(0)
    return f"offset:{int(offset.total_seconds() // 60)}"


def tz_from_text(text: str | None) -> tzinfo:
    if not text:
        return timezone.utc
    if text.startswith("offset:"):
        return timezone(timedelta(minutes=int(text[7:])))
    try:
        return ZoneInfo(text)
    except (ValueError, KeyError, OSError):
        return timezone.utc


_zones: dict[str, tzinfo] = {}


async def shop_tz(conn: Connection) -> tzinfo:
    row = await fetch_one(conn, "SELECT value FROM settings WHERE key = ?", (TZ_SETTING,))
    text = row[0] if row else ""
    if text not in _zones:
        _zones[text] = tz_from_text(text)
    return _zones[text]


class Cells:
    """Contributions added up: counts, durations and ratings by their keys."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0] * len(COUNTS))
        self.durations: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0] * BUCKETS)
        self.ratings: dict[tuple[str, str, str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])

    def add(self, row: Sequence[Any], tz: tzinfo, sign: int = 1) -> None:
        (_, kind, category, store, demo, created, first, resolved, first_due, resolution_due, reopened, score,
         agent_id, agent_name) = row
        if demo:
            return
        day = lambda at: at.astimezone(tz).date().isoformat()  # noqa: E731
        created_at = from_db(created)
        first_at, resolved_at = from_db(first), from_db(resolved)
        key = (day(created_at), store, category, kind)
        cell = self.counts[key]
        cell[0] += sign
        cell[2] += sign if reopened else 0
        if first_at is not None:
            cell[3] += sign
            self.durations[(key[0], store, kind, "first_response")][bucket((first_at - created_at).total_seconds())] += sign
        if resolved_at is not None:
            self.counts[(day(resolved_at), store, category, kind)][1] += sign
            cell[4] += sign
            met = (resolved_at <= from_db(resolution_due) and first_at is not None and first_at <= from_db(first_due))
            cell[5] += sign if met else 0
            self.durations[(key[0], store, kind, "resolution")][bucket((resolved_at - created_at).total_seconds())] += sign
        if score is not None:
            rating = self.ratings[(day(resolved_at or created_at), store, kind, agent_id, agent_name)]
            rating[0] += sign
            rating[1] += sign if score >= 4 else 0
            rating[2] += sign if score <= 2 else 0
            rating[3] += sign * score

    def nonzero(self) -> tuple[dict, dict, dict]:
        return ({k: tuple(v) for k, v in self.counts.items() if any(v)},
                {k: tuple(v) for k, v in self.durations.items() if any(v)},
                {k: tuple(v) for k, v in self.ratings.items() if any(v)})


async def _rows(conn: Connection, ticket_ids: Sequence[int]) -> list:
    marks = ", ".join("?" * len(ticket_ids))
    return list(await conn.execute_fetchall(f"SELECT {_COLUMNS}{_FROM} WHERE t.id IN ({marks})", tuple(ticket_ids)))


async def _write(conn: Connection, cells: Cells) -> None:
    counts, durations, ratings = cells.nonzero()
    if counts or durations or ratings:
        await serialize(conn)
    if counts:
        await conn.executemany(
            f"INSERT INTO ticket_rollups (day, store, category, kind, {', '.join(COUNTS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (day, store, category, kind) DO UPDATE SET "
            + ", ".join(f"{c} = ticket_rollups.{c} + excluded.{c}" for c in COUNTS),
            [(*k, *v) for k, v in counts.items()])
    if durations:
        await conn.executemany(
            f"INSERT INTO ticket_durations (day, store, kind, measure, {_B}) VALUES (?, ?, ?, ?, {', '.join('?' * BUCKETS)})"
            " ON CONFLICT (day, store, kind, measure) DO UPDATE SET "
            + ", ".join(f"b{i} = ticket_durations.b{i} + excluded.b{i}" for i in range(BUCKETS)),
            [(*k, *v) for k, v in durations.items()])
    if ratings:
        await conn.executemany(
            "INSERT INTO rating_rollups (day, store, kind, agent_id, agent_name, ratings, satisfied, dissatisfied, score_sum)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (day, store, kind, agent_id, agent_name) DO UPDATE SET"
            " ratings = rating_rollups.ratings + excluded.ratings, satisfied = rating_rollups.satisfied + excluded.satisfied,"
            " dissatisfied = rating_rollups.dissatisfied + excluded.dissatisfied,"
            " score_sum = rating_rollups.score_sum + excluded.score_sum", [(*k, *v) for k, v in ratings.items()])


class Tally:
    """Around a write to tickets: `before` reads what they contribute now, `after` writes the
    difference to what they contribute once changed (both in the write's transaction)."""

    def __init__(self, conn: Connection, ticket_ids: Sequence[int]) -> None:
        self.conn = conn
        self.ids = list(ticket_ids)
        self.cells = Cells()
        self.tz: tzinfo = timezone.utc

    async def before(self) -> "Tally":
        if self.ids:
            self.tz = await shop_tz(self.conn)
            for row in await _rows(self.conn, self.ids):
                self.cells.add(row, self.tz, -1)
        return self

    async def after(self) -> None:
        if self.ids:
            for row in await _rows(self.conn, self.ids):
                self.cells.add(row, self.tz, 1)
            await _write(self.conn, self.cells)


async def added(conn: Connection, ticket_id: int) -> None:
    """Count a new ticket (call after inserting it, in that transaction)."""
    tally = Tally(conn, [ticket_id])
    tally.tz = await shop_tz(conn)
    await tally.after()


# --- the raw aggregation (rebuild, and what tests compare against) --------------------------------


async def aggregate_raw(conn: Connection, tz: tzinfo, batch: int = 50_000) -> Cells:
    cells = Cells()
    after = 0
    while True:
        rows = await conn.execute_fetchall(f"SELECT {_COLUMNS}{_FROM} WHERE t.id > ? ORDER BY t.id LIMIT ?", (after, batch))
        for row in rows:
            cells.add(row, tz)
            after = row[0]
        if len(rows) < batch:
            return cells


async def read(conn: Connection) -> tuple[dict, dict, dict]:
    """Every rollup row, zero rows left out (a retracted contribution can leave one)."""
    counts = {tuple(r[:4]): tuple(int(x) for x in r[4:]) for r in await conn.execute_fetchall(
        f"SELECT day, store, category, kind, {', '.join(COUNTS)} FROM ticket_rollups")}
    durations = {tuple(r[:4]): tuple(int(x) for x in r[4:]) for r in await conn.execute_fetchall(
        f"SELECT day, store, kind, measure, {_B} FROM ticket_durations")}
    ratings = {tuple(r[:5]): tuple(int(x) for x in r[5:]) for r in await conn.execute_fetchall(
        "SELECT day, store, kind, agent_id, agent_name, ratings, satisfied, dissatisfied, score_sum FROM rating_rollups")}
    return ({k: v for k, v in counts.items() if any(v)}, {k: v for k, v in durations.items() if any(v)},
            {k: v for k, v in ratings.items() if any(v)})


async def rebuild(conn: Connection, tz: tzinfo) -> int:
    """Replace every complaint rollup row by the raw aggregation (in the caller's transaction) and
    record the time zone the incremental writes use from now on. Returns rows written."""
    cells = await aggregate_raw(conn, tz)
    await serialize(conn)
    for table in ("ticket_rollups", "ticket_durations", "rating_rollups"):
        await conn.execute(f"DELETE FROM {table}")
    await _write(conn, cells)
    await conn.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                       (TZ_SETTING, tz_text(tz)))
    return sum(len(part) for part in cells.nonzero())


# --- reading (the dashboard) ----------------------------------------------------------------------


def _scope(stores: tuple[str, ...] | None, kind: str) -> tuple[str, list[Any]]:
    where, params = " AND kind = ?", [kind]
    if stores is not None:
        if not stores:
            return where + " AND 0 = 1", params
        where += f" AND store IN ({', '.join('?' * len(stores))})"
        params += list(stores)
    return where, params


async def by_day(conn: Connection, lo: str, hi: str, stores: tuple[str, ...] | None,
                 kind: str = "complaint") -> list[tuple[str, int, int]]:
    """(day, opened, resolved) per shop day in [lo, hi) that has any."""
    where, params = _scope(stores, kind)
    rows = await conn.execute_fetchall(
        f"SELECT day, SUM(opened), SUM(resolved) FROM ticket_rollups WHERE day >= ? AND day < ?{where} GROUP BY day",
        (lo, hi, *params))
    return [(r[0], int(r[1]), int(r[2])) for r in rows]


async def by_category(conn: Connection, lo: str, hi: str, stores: tuple[str, ...] | None,
                      kind: str = "complaint") -> list[tuple[str, int, int, int, int, int]]:
    """(category, opened, reopened, responded, closed, sla_met) of the tickets opened in shop days [lo, hi)."""
    where, params = _scope(stores, kind)
    rows = await conn.execute_fetchall(
        "SELECT category, SUM(opened), SUM(reopened), SUM(responded), SUM(closed), SUM(sla_met) FROM ticket_rollups"
        f" WHERE day >= ? AND day < ?{where} GROUP BY category", (lo, hi, *params))
    return [(r[0], *(int(x) for x in r[1:])) for r in rows]  # type: ignore[misc]


async def open_before(conn: Connection, lo: str, stores: tuple[str, ...] | None, kind: str = "complaint") -> int:
    """Tickets opened before shop day `lo` and not resolved before it."""
    where, params = _scope(stores, kind)
    row = await fetch_one(conn, f"SELECT COALESCE(SUM(opened - resolved), 0) FROM ticket_rollups WHERE day < ?{where}",
                          (lo, *params))
    return int(row[0]) if row else 0


async def durations(conn: Connection, lo: str, hi: str, stores: tuple[str, ...] | None,
                    kind: str = "complaint") -> dict[str, dict[int, int]]:
    """measure -> bucket -> tickets opened in shop days [lo, hi)."""
    where, params = _scope(stores, kind)
    rows = await conn.execute_fetchall(
        f"SELECT measure, {', '.join(f'SUM(b{i})' for i in range(BUCKETS))} FROM ticket_durations"
        f" WHERE day >= ? AND day < ?{where} GROUP BY measure", (lo, hi, *params))
    result: dict[str, dict[int, int]] = {m: {} for m in MEASURES}
    for measure, *counts in rows:
        result[measure] = {b: int(n) for b, n in enumerate(counts) if n and int(n)}
    return result


async def ratings_by_agent(conn: Connection, lo: str, hi: str, stores: tuple[str, ...] | None,
                           kind: str = "complaint") -> list[tuple[str, str, int, int, int, int]]:
    """(agent_id, agent_name, ratings, satisfied, dissatisfied, score_sum) of tickets resolved in [lo, hi)."""
    where, params = _scope(stores, kind)
    rows = await conn.execute_fetchall(
        "SELECT agent_id, agent_name, SUM(ratings), SUM(satisfied), SUM(dissatisfied), SUM(score_sum) FROM rating_rollups"
        f" WHERE day >= ? AND day < ?{where} GROUP BY agent_id, agent_name", (lo, hi, *params))
    return [(r[0], r[1], *(int(x) for x in r[2:])) for r in rows if int(r[2])]


async def oldest_open(conn: Connection, stores: tuple[str, ...] | None, limit: int = 10) -> list[tuple[int, str, datetime]]:
    """(id, category, created_at) of the oldest unresolved complaints: the partial index's first rows."""
    where, params = "", []
    if stores is not None:
        if not stores:
            return []
        where = f" AND p.store IN ({', '.join('?' * len(stores))})"
        params = list(stores)
    # SQLite, without statistics, takes tickets_resolved for "resolved_at IS NULL" and sorts every open
    # ticket (9,600 at 1M tickets: 5 ms); the partial index gives them oldest first (0.01 ms).
    indexed = " INDEXED BY tickets_unresolved" if dialect(conn) == "sqlite" else ""
    rows = await conn.execute_fetchall(
        f"SELECT t.id, t.category, t.created_at FROM tickets t{indexed} LEFT JOIN purchases p ON p.id = t.purchase_id"
        f" WHERE t.resolved_at IS NULL AND t.kind = 'complaint' AND t.demo = 0{where} ORDER BY t.created_at, t.id LIMIT ?",
        (*params, limit))
    return [(r[0], r[1], from_db(r[2])) for r in rows]  # type: ignore[misc]
