"""The dashboard's queries: CSAT from the rollups, comments (Vietnamese search on the folded
column), a customer's history, and complaint figures. Every query takes `stores`: None for all
stores (owners), else only those (a manager's), applied in SQL."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Sequence

from storage.db import Connection, dialect, fetch_one
from storage.folding import fold
from storage.timefmt import from_db, to_db

DIMENSIONS = ("touchpoint", "store", "tier", "channel")


@dataclass(frozen=True)
class Filters:
    stores: tuple[str, ...] | None = None  # None: every store
    touchpoint: str = ""
    tier: str = ""
    channel: str = ""


def _in(column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
    if not values:
        return " AND 0 = 1", []
    return f" AND {column} IN ({', '.join('?' * len(values))})", list(values)


def _rollup_where(lo: str, hi: str, f: Filters) -> tuple[str, list[Any]]:
    where, params = "day >= ? AND day < ?", [lo, hi]
    if f.stores is not None:
        sql, values = _in("store", f.stores)
        where += sql
        params += values
    for column in ("touchpoint", "tier", "channel"):
        value = getattr(f, column)
        if value:
            where += f" AND {column} = ?"
            params.append(value)
    return where, params


async def csat_by_day(conn: Connection, lo: str, hi: str, f: Filters) -> list[tuple[str, int, int, int, int]]:
    """(day, answers, satisfied, dissatisfied, score_sum) per shop day in [lo, hi). Without a
    touchpoint, tier or channel filter from the day totals (csat_days: a row per day; a store's,
    csat_store_days: a row per store and day), else from csat_rollups' covering index (the days x
    the shop's combinations)."""
    if f.touchpoint or f.tier or f.channel:
        where, params = _rollup_where(lo, hi, f)
        sql = (f"SELECT day, SUM(answers), SUM(satisfied), SUM(dissatisfied), SUM(score_sum) FROM csat_rollups WHERE {where}"
               " GROUP BY day ORDER BY day")
    elif f.stores is None:
        sql, params = ("SELECT day, answers, satisfied, dissatisfied, score_sum FROM csat_days WHERE day >= ? AND day < ?"
                       " ORDER BY day", [lo, hi])
    else:
        stores, params = _in("store", f.stores)
        sql = ("SELECT day, SUM(answers), SUM(satisfied), SUM(dissatisfied), SUM(score_sum) FROM csat_store_days"
               f" WHERE day >= ? AND day < ?{stores} GROUP BY day ORDER BY day")
        params = [lo, hi, *params]
    return [(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in await conn.execute_fetchall(sql, params)]


def _whole_months(lo: str, hi: str) -> tuple[str, str] | None:
    """The first days of the first whole month in shop days [lo, hi) and of the month after the
    last whole one; None when no month lies wholly inside."""
    d_lo, d_hi = date.fromisoformat(lo), date.fromisoformat(hi)
    first = d_lo if d_lo.day == 1 else (d_lo.replace(day=1) + timedelta(days=32)).replace(day=1)
    after = d_hi.replace(day=1)
    return (first.isoformat(), after.isoformat()) if first < after else None


async def csat_combinations(conn: Connection, lo: str, hi: str, f: Filters) -> list[tuple[str, str, str, str, int, int, int, int]]:
    """(store, touchpoint, tier, channel, answers, satisfied, dissatisfied, score_sum) over shop days
    [lo, hi): one row per combination the shop has (a few dozen), from which every breakdown is added up.
    Whole months come from csat_months, the days around them from csat_rollups."""
    columns = "store, touchpoint, tier, channel, answers, satisfied, dissatisfied, score_sum"
    months = _whole_months(lo, hi)
    parts, params = [], []
    for a, b in ((lo, months[0]), (months[1], hi)) if months else ((lo, hi),):
        if a < b:
            where, values = _rollup_where(a, b, f)
            parts.append(f"SELECT {columns} FROM csat_rollups WHERE {where}")
            params += values
    if months:
        where, values = _rollup_where(months[0][:7], months[1][:7], f)
        where = where.replace("day >= ? AND day < ?", "month >= ? AND month < ?", 1)
        parts.append(f"SELECT {columns} FROM csat_months WHERE {where}")
        params += values
    rows = await conn.execute_fetchall(
        "SELECT store, touchpoint, tier, channel, SUM(answers), SUM(satisfied), SUM(dissatisfied), SUM(score_sum)"
        f" FROM ({' UNION ALL '.join(parts)}) AS r GROUP BY store, touchpoint, tier, channel", params)
    return [(r[0], r[1], r[2], r[3], int(r[4]), int(r[5]), int(r[6]), int(r[7])) for r in rows]


async def csat_sends(conn: Connection, p_lo: str, lo: str, hi: str, f: Filters) -> list[tuple[str, str, int, int]]:
    """(store, touchpoint, sent in [lo, hi), sent in [p_lo, lo)) from survey_sends: the response
    rate's denominator (sends are not split by tier or channel; with those filters there is none).
    Each range's whole months come from survey_sends_months, the days around them from survey_sends."""
    filters, values = "", []
    if f.stores is not None:
        filters, values = _in("store", f.stores)
    if f.touchpoint:
        filters += " AND touchpoint = ?"
        values.append(f.touchpoint)
    parts, params = [], []
    for current, (a, b) in ((1, (lo, hi)), (0, (p_lo, lo))):
        months = _whole_months(a, b)
        for x, y in ((a, months[0]), (months[1], b)) if months else ((a, b),):
            if x < y:
                parts.append(f"SELECT {current} AS cur, store, touchpoint, sent FROM survey_sends WHERE day >= ? AND day < ?{filters}")
                params += [x, y, *values]
        if months:
            parts.append(f"SELECT {current} AS cur, store, touchpoint, sent FROM survey_sends_months"
                         f" WHERE month >= ? AND month < ?{filters}")
            params += [months[0][:7], months[1][:7], *values]
    rows = await conn.execute_fetchall(
        "SELECT store, touchpoint, SUM(CASE WHEN cur = 1 THEN sent ELSE 0 END), SUM(CASE WHEN cur = 0 THEN sent ELSE 0 END)"
        f" FROM ({' UNION ALL '.join(parts)}) AS s GROUP BY store, touchpoint", params)
    return [(r[0], r[1], int(r[2]), int(r[3])) for r in rows]


async def stores(conn: Connection) -> list[str]:
    rows = await conn.execute_fetchall("SELECT DISTINCT store FROM csat_rollups WHERE store != '' ORDER BY store")
    return [r[0] for r in rows]


# --- comments ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommentRow:
    survey_id: int
    answered_at: datetime
    score: int
    comment: str
    touchpoint: str
    store: str
    channel: str
    customer_id: int
    customer_name: str
    order_id: str
    ticket_id: int | None


async def comments(conn: Connection, start: datetime, end: datetime, *, stores: tuple[str, ...] | None, query: str = "",
                   scores: Sequence[int] = (), touchpoint: str = "", channel: str = "", has_complaint: bool | None = None,
                   limit: int = 100) -> list[CommentRow]:
    """Comments answered in [start, end), newest first; `query` matches the folded comment (with or
    without diacritics, đ or d): every word a substring of it. A search with few matches reads
    only them (the trigram index); one with many walks the range newest first and stops at `limit`."""
    where = "s.answered_at >= ? AND s.answered_at < ? AND s.comment IS NOT NULL AND s.demo = 0"
    params: list[Any] = [to_db(start), to_db(end)]
    if stores is not None:
        sql, values = _in("s.store", stores)
        where += sql
        params += values
    words = fold(query).split()[:8]
    candidates = await _indexed_matches(conn, words) if words else None
    if candidates is not None:  # few matches in the whole history: only those rows are read
        if not candidates:
            return []
        where += f" AND s.id IN ({', '.join('?' * len(candidates))})"
        params += candidates
    for word in words:  # exact: the index finds candidates, LIKE decides (and covers words under 3 characters)
        where += " AND s.comment_folded LIKE ? ESCAPE '!'"
        params.append(_like(word))
    if scores:
        sql, values = _in("s.score", [int(s) for s in scores])  # type: ignore[list-item]
        where += sql
        params += values
    if touchpoint:
        where += " AND s.touchpoint = ?"
        params.append(touchpoint)
    if channel:
        where += " AND ct.channel = ?"
        params.append(channel)
    ticket = "(SELECT MIN(t.id) FROM tickets t WHERE t.purchase_id = s.purchase_id)"
    if has_complaint is not None:
        where += f" AND {ticket} IS {'NOT ' if has_complaint else ''}NULL"
    rows = await conn.execute_fetchall(
        "SELECT s.id, s.answered_at, s.score, s.comment, s.touchpoint, COALESCE(s.store, ''), COALESCE(ct.channel, ''),"
        f" s.customer_id, COALESCE(cu.name, ''), p.order_id, {ticket}"
        " FROM surveys s JOIN purchases p ON p.id = s.purchase_id JOIN customers cu ON cu.id = s.customer_id"
        f" LEFT JOIN contacts ct ON ct.id = s.contact_id WHERE {where} ORDER BY s.answered_at DESC, s.id DESC LIMIT ?",
        (*params, limit))
    return [CommentRow(r[0], from_db(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10]) for r in rows]


MAX_CANDIDATES = 2000  # more matches than this: walking the range newest first finds 100 soon enough


def _like(word: str) -> str:
    return "%" + word.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"


async def _indexed_matches(conn: Connection, words: list[str]) -> list[int] | None:
    """The ids of every comment containing all of `words` (of 3 characters or more), from the
    trigram index (SQLite: FTS5 comments_fts; PostgreSQL: pg_trgm's GIN index), when there are at
    most MAX_CANDIDATES; None when there are more, or no word is long enough to use the index."""
    long = [w for w in words if len(w) >= 3]
    if not long:
        return None
    if dialect(conn) == "sqlite":
        match = " ".join('"' + w.replace('"', '""') + '"' for w in long)
        rows = await conn.execute_fetchall(
            "SELECT rowid FROM comments_fts WHERE comments_fts MATCH ? LIMIT ?", (match, MAX_CANDIDATES + 1))
    else:
        rows = await conn.execute_fetchall(
            "SELECT id FROM surveys WHERE comment_folded IS NOT NULL"
            + " AND comment_folded LIKE ? ESCAPE '!'" * len(long) + " LIMIT ?",
            (*(_like(w) for w in long), MAX_CANDIDATES + 1))
    if len(rows) > MAX_CANDIDATES:
        return None
    return [r[0] for r in rows]


# --- a customer's history ----------------------------------------------------------------------


async def customer_history(conn: Connection, customer_id: int, stores: tuple[str, ...] | None) -> dict[str, Any] | None:
    """The customer, their orders with survey answers, and their tickets; a manager sees the
    customer only through orders of their stores (None if there are none)."""
    customer = await fetch_one(conn, "SELECT id, name, external_id, erased_at FROM customers WHERE id = ?", (customer_id,))
    if customer is None:
        return None
    where, params = "p.customer_id = ?", [customer_id]
    if stores is not None:
        sql, values = _in("p.store", stores)
        where += sql
        params += values
    orders = await conn.execute_fetchall(
        "SELECT p.order_id, p.purchased_at, COALESCE(p.store, ''), p.touchpoint, s.score, s.comment, s.answered_at"
        f" FROM purchases p LEFT JOIN surveys s ON s.purchase_id = p.id WHERE {where} ORDER BY p.purchased_at DESC LIMIT 200",
        params)
    if stores is not None and not orders:
        return None
    tickets = await conn.execute_fetchall(
        "SELECT t.id, t.kind, t.category, t.status, t.created_at, t.resolved_at, COALESCE(p.store, '')"
        " FROM tickets t LEFT JOIN purchases p ON p.id = t.purchase_id WHERE t.customer_id = ?"
        + (_in("p.store", stores)[0] if stores is not None else "") + " ORDER BY t.created_at DESC LIMIT 200",
        [customer_id, *(stores or ())])
    return {
        "id": customer[0], "name": customer[1] or "", "external_id": customer[2] or "", "erased": customer[3] is not None,
        "orders": [{"order_id": o[0], "purchased_at": from_db(o[1]), "store": o[2], "touchpoint": o[3], "score": o[4],
                    "comment": o[5], "answered_at": from_db(o[6]) if o[6] else None} for o in orders],
        "tickets": [{"id": t[0], "kind": t[1], "category": t[2], "status": t[3], "created_at": from_db(t[4]),
                     "resolved_at": from_db(t[5]) if t[5] else None, "store": t[6]} for t in tickets],
    }


# --- complaints --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TicketRow:
    id: int
    category: str
    status: str
    created_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    first_response_due_at: datetime
    resolution_due_at: datetime
    reopened: int


def _ticket_scope(stores: tuple[str, ...] | None) -> tuple[str, list[Any]]:
    if stores is None:
        return "", []
    sql, values = _in("p.store", stores)
    return sql, values


async def complaints(conn: Connection, start: datetime, end: datetime, stores: tuple[str, ...] | None) -> list[TicketRow]:
    """Complaints opened in [start, end), or still open at its start (for open-over-time): three
    index ranges (created in the range, resolved since its start, not resolved), not the table."""
    scope, params = _ticket_scope(stores)
    columns = ("SELECT t.id, t.category, t.status, t.created_at, t.first_response_at, t.resolved_at,"
               " t.first_response_due_at, t.resolution_due_at, t.reopened_count FROM tickets t"
               " LEFT JOIN purchases p ON p.id = t.purchase_id WHERE t.kind = 'complaint' AND t.demo = 0" + scope)
    s, e = to_db(start), to_db(end)
    rows = await conn.execute_fetchall(
        f"{columns} AND t.created_at >= ? AND t.created_at < ?"
        f" UNION {columns} AND t.resolved_at >= ? AND t.created_at < ?"
        f" UNION {columns} AND t.resolved_at IS NULL AND t.created_at < ?",
        (*params, s, e, *params, s, s, *params, e))
    return [TicketRow(r[0], r[1], r[2], from_db(r[3]), from_db(r[4]) if r[4] else None, from_db(r[5]) if r[5] else None,
                      from_db(r[6]), from_db(r[7]), r[8]) for r in rows]
