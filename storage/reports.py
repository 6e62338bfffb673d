"""Report queries: SQL aggregation over one [start, end) UTC range at a time.

Every query starts from an index range on the period's own time column (answered_at,
sent_at, created_at, resolved_at, first_response_at, ticket_events (action, at)), so a
week's report reads that week's rows, not the history (tests check the query plans).
Demo surveys and tickets (`demo = 1`, migration 0014) never count.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Sequence

from storage.db import Connection, fetch_one
from storage.timefmt import from_db, to_db

SATISFIED = 4  # 4 and 5 count as satisfied
TIER_WINDOW = timedelta(days=365)  # a customer's tier: spend and orders over 12 months
HIGH_COMMENTS = 200  # longest comments of satisfied customers handed to the idea ranking
COMPLAINT_TEXTS = 5000
SENT_STATUSES = ("sent", "answered", "expired")  # sent_at is set: (status, sent_at) is indexed


@dataclass(frozen=True)
class VipRule:
    spend: Decimal  # over the 12 months before the period's end
    orders: int


@dataclass(frozen=True)
class CsatCell:
    """Answers and sends for one touchpoint, store ("" for none) and tier over the period."""

    touchpoint: str
    store: str
    tier: str  # vip | regular; "" when tiers were not asked for
    answers: int  # answered in the period
    satisfied: int
    score_sum: int
    sent: int  # sent in the period
    sent_answered: int  # of those, answered before the period's end


@dataclass(frozen=True)
class Tally:
    answers: int
    satisfied: int
    score_sum: int


@dataclass(frozen=True)
class ComplaintStats:
    opened_by_category: dict[str, int]
    resolved: int
    first_response_s: tuple[float, ...]  # tickets first answered in the period: created -> first answer
    resolution_s: tuple[float, ...]  # tickets resolved in the period: created -> resolved
    sla_met: int  # of those resolved, answered and resolved within their targets
    sla_total: int  # those resolved, and those still open past a target at the period's end
    resolution_scores: Tally  # customers' ratings given in the period
    reopened: int


@dataclass(frozen=True)
class QuestionStats:
    opened: int  # questions opened in the period
    first_response_s: tuple[float, ...]  # questions first answered in the period: created -> first answer


@dataclass(frozen=True)
class OpenTicket:
    id: int
    category: str
    created_at: datetime


@dataclass(frozen=True)
class Comment:
    score: int
    comment: str
    touchpoint: str
    store: str


@dataclass(frozen=True)
class Period:
    """Everything the digest reads about one period."""

    cells: list[CsatCell]
    complaints: ComplaintStats
    low_comments: list[Comment]
    high_comments: list[Comment]
    complaint_texts: list[str]
    questions: QuestionStats = QuestionStats(0, ())


# --- CSAT ----------------------------------------------------------------------------------

_SENT_IN = ", ".join(f"'{s}'" for s in SENT_STATUSES)

CSAT_ROWS = (
    "WITH rows AS ("
    " SELECT touchpoint, store, customer_id, score, 0 AS sent, 0 AS sent_answered FROM surveys"
    "  WHERE answered_at >= :start AND answered_at < :end AND demo = 0"
    " UNION ALL"
    " SELECT touchpoint, store, customer_id, NULL, 1, CASE WHEN answered_at < :end THEN 1 ELSE 0 END FROM surveys"
    f"  WHERE status IN ({_SENT_IN}) AND sent_at >= :start AND sent_at < :end AND demo = 0"
    ")"
)
# A customer's tier as the ticket desk sees it: spend or orders over the 12 months before
# the period's end, from the covering index purchases (customer_id, purchased_at, amount).
CSAT_CELLS_BY_TIER = (
    CSAT_ROWS + " SELECT touchpoint, COALESCE(store, '') AS store,"
    "  (SELECT CASE WHEN COALESCE(SUM(p.amount), 0) >= :vip_spend OR COUNT(*) >= :vip_orders THEN 'vip' ELSE 'regular' END"
    "   FROM purchases p WHERE p.customer_id = rows.customer_id AND p.purchased_at >= :since AND p.purchased_at < :end) AS tier,"
    "  COUNT(score) AS answers, COALESCE(SUM(score >= 4), 0) AS satisfied, COALESCE(SUM(score), 0) AS score_sum,"
    "  SUM(sent) AS sent, SUM(sent_answered) AS sent_answered"
    " FROM rows GROUP BY 1, 2, 3"
)
CSAT_CELLS = (
    CSAT_ROWS + " SELECT touchpoint, COALESCE(store, '') AS store, '' AS tier,"
    "  COUNT(score) AS answers, COALESCE(SUM(score >= 4), 0) AS satisfied, COALESCE(SUM(score), 0) AS score_sum,"
    "  SUM(sent) AS sent, SUM(sent_answered) AS sent_answered"
    " FROM rows GROUP BY 1, 2"
)


# Answers only, by touchpoint and store: the alerts' 4-week baseline.
CSAT_ANSWERED = (
    "SELECT touchpoint, COALESCE(store, '') AS store, '' AS tier, COUNT(*) AS answers,"
    " SUM(score >= 4) AS satisfied, SUM(score) AS score_sum, 0 AS sent, 0 AS sent_answered"
    " FROM surveys WHERE answered_at >= ? AND answered_at < ? AND demo = 0 GROUP BY 1, 2"
)


def _number(value: Decimal) -> int | float:
    # Bound as a number: SQLite ranks any TEXT above any number, so "10000000" would never match.
    return int(value) if value == value.to_integral_value() else float(value)


async def csat_cells(conn: Connection, start: datetime, end: datetime, vip: VipRule | None = None) -> list[CsatCell]:
    params: dict[str, object] = {"start": to_db(start), "end": to_db(end)}
    sql = CSAT_CELLS
    if vip is not None:
        sql = CSAT_CELLS_BY_TIER
        params.update(since=to_db(end - TIER_WINDOW), vip_spend=_number(vip.spend), vip_orders=vip.orders)
    return [CsatCell(*row) for row in await conn.execute_fetchall(sql, params)]


async def csat_answered(conn: Connection, start: datetime, end: datetime) -> list[CsatCell]:
    """Answers by touchpoint and store (no sends, no tiers: the cheap form for a baseline)."""
    return [CsatCell(*row) for row in await conn.execute_fetchall(CSAT_ANSWERED, (to_db(start), to_db(end)))]


def series_sql(periods: int) -> str:
    values = ", ".join("(CAST(? AS INTEGER), CAST(? AS TEXT), CAST(? AS TEXT))" for _ in range(periods))
    return (
        f"WITH w(i, lo, hi) AS (VALUES {values})"  # not start/end: END is reserved in PostgreSQL
        " SELECT w.i, COUNT(sv.score), COALESCE(SUM(sv.score >= 4), 0), COALESCE(SUM(sv.score), 0)"
        " FROM w LEFT JOIN surveys sv ON sv.answered_at >= w.lo AND sv.answered_at < w.hi AND sv.demo = 0"
        " GROUP BY w.i ORDER BY w.i"
    )


async def csat_series(conn: Connection, ranges: Sequence[tuple[datetime, datetime]]) -> list[Tally]:
    """Answers per period (the chart's weeks), one index range per period."""
    if not ranges:
        return []
    params = [p for i, (start, end) in enumerate(ranges) for p in (i, to_db(start), to_db(end))]
    return [Tally(r[1], r[2], r[3]) for r in await conn.execute_fetchall(series_sql(len(ranges)), params)]


LOW_COMMENTS = (
    "SELECT score, comment, touchpoint, COALESCE(store, '') FROM surveys"
    " WHERE answered_at >= ? AND answered_at < ? AND demo = 0 AND score < 4 AND comment IS NOT NULL AND comment != ''"
    " ORDER BY score, answered_at, id LIMIT ?"
)
HIGH_COMMENTS_SQL = (
    "SELECT score, comment, touchpoint, COALESCE(store, '') FROM surveys"
    " WHERE answered_at >= ? AND answered_at < ? AND demo = 0 AND score >= 4 AND comment IS NOT NULL AND comment != ''"
    " ORDER BY length(comment) DESC, id LIMIT ?"
)


async def comments(conn: Connection, start: datetime, end: datetime, *, low: bool, limit: int) -> list[Comment]:
    sql = LOW_COMMENTS if low else HIGH_COMMENTS_SQL
    return [Comment(*row) for row in await conn.execute_fetchall(sql, (to_db(start), to_db(end), limit))]


# --- complaints ------------------------------------------------------------------------------

# Complaints only: questions (kind = 'question') have their own figures below.
OPENED_BY_CATEGORY = (
    "SELECT category, COUNT(*) FROM tickets WHERE created_at >= ? AND created_at < ? AND kind = 'complaint' AND demo = 0"
    " GROUP BY category"
)
FIRST_RESPONSES = (
    "SELECT (julianday(first_response_at) - julianday(created_at)) * 86400.0 FROM tickets"
    " WHERE first_response_at >= ? AND first_response_at < ? AND kind = 'complaint' AND demo = 0"
)
# Resolving without a written answer counts as the first response.
RESOLUTIONS = (
    "SELECT (julianday(resolved_at) - julianday(created_at)) * 86400.0,"
    " COALESCE(first_response_at, resolved_at) <= first_response_due_at AND resolved_at <= resolution_due_at"
    " FROM tickets WHERE resolved_at >= ? AND resolved_at < ? AND kind = 'complaint' AND demo = 0"
)
# A ticket event counts unless its ticket is a demo one (a primary-key look-up per event).
_NOT_DEMO = "NOT EXISTS (SELECT 1 FROM tickets t WHERE t.id = ticket_id AND t.demo = 1)"
# Events, not the tickets' current columns: a rating or a reopening counts in the week it happened.
RATINGS = (
    "SELECT COUNT(*), COALESCE(SUM(CAST(body AS INTEGER) >= 4), 0), COALESCE(SUM(CAST(body AS INTEGER)), 0)"
    " FROM ticket_events WHERE action = 'rated' AND at >= ? AND at < ? AND " + _NOT_DEMO
)
REOPENED = "SELECT COUNT(*) FROM ticket_events WHERE action = 'reopened' AND at >= ? AND at < ? AND " + _NOT_DEMO
COMPLAINT_TEXTS_SQL = (
    "SELECT description FROM tickets WHERE created_at >= ? AND created_at < ? AND kind = 'complaint' AND demo = 0"
    " LIMIT ?"
)
# Still open and past a target at the period's end: they missed the SLA as surely as a late
# resolution, so they count in it (else a week of only overdue tickets shows 100%).
OPEN_BREACHED = (
    "SELECT COUNT(*) FROM tickets WHERE status IN ('open', 'claimed') AND created_at < :end AND kind = 'complaint'"
    " AND demo = 0 AND (resolution_due_at < :end OR min(COALESCE(first_response_at, :end), :end) > first_response_due_at)"
)


async def complaint_stats(conn: Connection, start: datetime, end: datetime) -> ComplaintStats:
    span = (to_db(start), to_db(end))
    opened = {row[0]: row[1] for row in await conn.execute_fetchall(OPENED_BY_CATEGORY, span)}
    first = tuple(round(row[0], 3) for row in await conn.execute_fetchall(FIRST_RESPONSES, span))
    resolutions = list(await conn.execute_fetchall(RESOLUTIONS, span))
    ratings = await fetch_one(conn, RATINGS, span)
    reopened = await fetch_one(conn, REOPENED, span)
    open_breached = await fetch_one(conn, OPEN_BREACHED, {"end": span[1]})
    assert ratings is not None and reopened is not None and open_breached is not None
    return ComplaintStats(
        opened_by_category=opened,
        resolved=len(resolutions),
        first_response_s=first,
        resolution_s=tuple(round(row[0], 3) for row in resolutions),
        sla_met=sum(1 for row in resolutions if row[1]),
        sla_total=len(resolutions) + open_breached[0],
        resolution_scores=Tally(*ratings),
        reopened=reopened[0],
    )


QUESTIONS_OPENED = (
    "SELECT COUNT(*) FROM tickets WHERE created_at >= ? AND created_at < ? AND kind = 'question' AND demo = 0"
)
QUESTION_FIRST_RESPONSES = (
    "SELECT (julianday(first_response_at) - julianday(created_at)) * 86400.0 FROM tickets"
    " WHERE first_response_at >= ? AND first_response_at < ? AND kind = 'question' AND demo = 0"
)


async def question_stats(conn: Connection, start: datetime, end: datetime) -> QuestionStats:
    span = (to_db(start), to_db(end))
    opened = await fetch_one(conn, QUESTIONS_OPENED, span)
    assert opened is not None
    first = tuple(round(row[0], 3) for row in await conn.execute_fetchall(QUESTION_FIRST_RESPONSES, span))
    return QuestionStats(opened[0], first)


async def complaint_texts(conn: Connection, start: datetime, end: datetime, limit: int = COMPLAINT_TEXTS) -> list[str]:
    return [row[0] for row in await conn.execute_fetchall(COMPLAINT_TEXTS_SQL, (to_db(start), to_db(end), limit))]


OPEN_COUNT = (
    "SELECT COUNT(*) FROM tickets WHERE status IN ('open', 'claimed') AND created_at < ? AND kind = 'complaint'"
    " AND demo = 0"
)
OPEN_OLDEST = (
    "SELECT id, category, created_at FROM tickets WHERE status IN ('open', 'claimed') AND created_at < ?"
    " AND kind = 'complaint' AND demo = 0 ORDER BY created_at, id LIMIT ?"
)


async def open_tickets(conn: Connection, opened_before: datetime, limit: int) -> tuple[int, list[OpenTicket]]:
    """Tickets opened before the given time and not resolved now: how many, and the oldest."""
    count = await fetch_one(conn, OPEN_COUNT, (to_db(opened_before),))
    rows = await conn.execute_fetchall(OPEN_OLDEST, (to_db(opened_before), limit))
    assert count is not None
    return count[0], [OpenTicket(r[0], r[1], from_db(r[2])) for r in rows]  # type: ignore[arg-type]


# One index lookup each (surveys_created, tickets_created, inbox_received).
FIRST_DATA_PARTS = ("SELECT min(created_at) FROM surveys", "SELECT min(created_at) FROM tickets",
                    "SELECT min(received_at) FROM inbox")


async def first_data_at(conn: Connection) -> datetime | None:
    """When the database got its first survey, ticket or incoming message; None while it has none."""
    found = []
    for sql in FIRST_DATA_PARTS:
        row = await fetch_one(conn, sql)
        if row is not None and row[0] is not None:
            found.append(row[0])
    return from_db(min(found)) if found else None


# --- one period at once ------------------------------------------------------------------------


async def period(
    conn: Connection, start: datetime, end: datetime, vip: VipRule | None, *, quotes: int = 3
) -> Period:
    return Period(
        cells=await csat_cells(conn, start, end, vip),
        complaints=await complaint_stats(conn, start, end),
        low_comments=await comments(conn, start, end, low=True, limit=quotes * 10),  # room for duplicates
        high_comments=await comments(conn, start, end, low=False, limit=HIGH_COMMENTS),
        complaint_texts=await complaint_texts(conn, start, end),
        questions=await question_stats(conn, start, end),
    )
