"""CSAT rollups: answers per shop-local day x store x touchpoint x tier x channel, kept up to date
in the transaction that records each answer, read by the dashboard and the digest's chart, and
rebuilt from the surveys by `feedbot rollups rebuild`."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal

from storage import ticket_rollups
from storage import rollup_lock
from storage.db import Connection, dialect, fetch_one
from storage.rollup_lock import serialize
from storage.timefmt import from_db, to_db

TIER_WINDOW = timedelta(days=365)  # a customer's tier: spend and orders over the 12 months before the answer
DIMENSIONS = ("store", "touchpoint", "tier", "channel")
Key = tuple[str, str, str, str, str]  # day, store, touchpoint, tier, channel


@dataclass(frozen=True)
class RollupRule:
    """What a rollup row's day and tier mean: the shop's time zone and its VIP rule."""
    tz: tzinfo = timezone.utc
    vip_spend: Decimal = Decimal(10_000_000)
    vip_orders: int = 10

    def day(self, at: datetime) -> str:
        return at.astimezone(self.tz).date().isoformat()


@dataclass
class Cell:
    answers: int = 0
    satisfied: int = 0
    dissatisfied: int = 0
    score_sum: int = 0

    def add(self, score: int, n: int = 1) -> None:
        self.answers += n
        self.satisfied += n if score >= 4 else 0
        self.dissatisfied += n if score <= 2 else 0
        self.score_sum += n * score

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.answers, self.satisfied, self.dissatisfied, self.score_sum)


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


_TIER = ("(SELECT CASE WHEN COALESCE(SUM(p.amount), 0) >= ? OR COUNT(*) >= ? THEN 'vip' ELSE 'regular' END"
         " FROM purchases p WHERE p.customer_id = s.customer_id AND p.purchased_at >= ? AND p.purchased_at < ?)")

_ADD = (
    "INSERT INTO csat_rollups (day, store, touchpoint, tier, channel, answers, satisfied, dissatisfied, score_sum)"
    f" SELECT ?, COALESCE(s.store, ''), s.touchpoint, {_TIER}, COALESCE(ct.channel, ''), 1,"
    " CASE WHEN s.score >= 4 THEN 1 ELSE 0 END, CASE WHEN s.score <= 2 THEN 1 ELSE 0 END, s.score"
    " FROM surveys s LEFT JOIN contacts ct ON ct.id = s.contact_id"
    " WHERE s.id = ? AND s.demo = 0 AND s.score IS NOT NULL"
    " ON CONFLICT (day, store, touchpoint, tier, channel) DO UPDATE SET"
    " answers = csat_rollups.answers + excluded.answers, satisfied = csat_rollups.satisfied + excluded.satisfied,"
    " dissatisfied = csat_rollups.dissatisfied + excluded.dissatisfied, score_sum = csat_rollups.score_sum + excluded.score_sum"
)


# The answer's row of csat_rollups and its values (where the transaction gathers its rollup
# writes for its commit: storage/rollup_lock.py).
_ANSWER = (
    f"SELECT COALESCE(s.store, ''), s.touchpoint, {_TIER}, COALESCE(ct.channel, ''), s.score"
    " FROM surveys s LEFT JOIN contacts ct ON ct.id = s.contact_id"
    " WHERE s.id = ? AND s.demo = 0 AND s.score IS NOT NULL"
)
_UPSERT = (
    "INSERT INTO csat_rollups (day, store, touchpoint, tier, channel, answers, satisfied, dissatisfied, score_sum)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (day, store, touchpoint, tier, channel) DO UPDATE SET"
    " answers = csat_rollups.answers + excluded.answers, satisfied = csat_rollups.satisfied + excluded.satisfied,"
    " dissatisfied = csat_rollups.dissatisfied + excluded.dissatisfied, score_sum = csat_rollups.score_sum + excluded.score_sum"
)


async def add_answer(conn: Connection, survey_id: int, answered_at: datetime, rule: RollupRule) -> None:
    """Count one answer (call in the transaction that records it; demo surveys are not counted)."""
    params = (_number(rule.vip_spend), rule.vip_orders, to_db(answered_at - TIER_WINDOW), to_db(answered_at), survey_id)
    if not rollup_lock.gathers(conn):  # at once, in one statement (SQLite, outside a unit)
        await conn.execute(_ADD, (rule.day(answered_at), *params))
        return
    rows = await conn.execute_fetchall(_ANSWER, params)
    for store, touchpoint, tier, channel, score in rows:
        await rollup_lock.add(conn, rollup_lock.CSAT, _UPSERT, [(
            (rule.day(answered_at), store, touchpoint, tier, channel),
            (1, 1 if score >= 4 else 0, 1 if score <= 2 else 0, score))])


# --- the raw aggregation (rebuild, and what tests compare against) --------------------------------

# A year before the answer, as stored text: each backend's own date arithmetic (SQLite's
# strftime modifiers, PostgreSQL's intervals) on the fixed-width UTC text, fraction kept.
_YEAR_BEFORE = {
    "sqlite": "strftime('%Y-%m-%dT%H:%M:%S', substr(s.answered_at, 1, 19), '-365 days') || substr(s.answered_at, 20)",
    "postgresql": "to_char(CAST(substr(s.answered_at, 1, 19) AS timestamp) - interval '365 days',"
                  " 'YYYY-MM-DD\"T\"HH24:MI:SS') || substr(s.answered_at, 20)",
}


def _raw_sql(backend: str) -> str:
    return (
        "SELECT s.answered_at, COALESCE(s.store, ''), s.touchpoint,"
        " (SELECT CASE WHEN COALESCE(SUM(p.amount), 0) >= ? OR COUNT(*) >= ? THEN 'vip' ELSE 'regular' END"
        f"  FROM purchases p WHERE p.customer_id = s.customer_id AND p.purchased_at >= {_YEAR_BEFORE[backend]}"
        "  AND p.purchased_at < s.answered_at),"
        " COALESCE(ct.channel, ''), s.score, s.id"
        " FROM surveys s LEFT JOIN contacts ct ON ct.id = s.contact_id"
        " WHERE s.answered_at IS NOT NULL AND s.score IS NOT NULL AND s.demo = 0 AND s.id > ? ORDER BY s.id LIMIT ?"
    )


async def aggregate_raw(conn: Connection, rule: RollupRule, batch: int = 50_000) -> dict[Key, Cell]:
    """The rollups computed from the surveys themselves, in batches of `batch` rows; a customer's
    tier as of each answer from their purchases in the 12 months before it."""
    cells: dict[Key, Cell] = {}
    after = 0
    sql = _raw_sql(dialect(conn))
    day_of: dict[str, str] = {}  # many answers share an hour: convert each distinct hour once
    while True:
        rows = await conn.execute_fetchall(sql, (_number(rule.vip_spend), rule.vip_orders, after, batch))
        for answered_at, store, touchpoint, tier, channel, score, survey_id in rows:
            hour = answered_at[:13]
            day = day_of.get(hour)
            if day is None:
                day = day_of[hour] = rule.day(from_db(answered_at))
            cells.setdefault((day, store, touchpoint, tier, channel), Cell()).add(score)
            after = survey_id
        if len(rows) < batch:
            return cells


async def read_months(conn: Connection) -> dict[Key, Cell]:
    """csat_months (kept from the day rows by triggers: migration 0047), zero rows left out."""
    rows = await conn.execute_fetchall(
        "SELECT month, store, touchpoint, tier, channel, answers, satisfied, dissatisfied, score_sum FROM csat_months")
    return {tuple(r[:5]): Cell(*r[5:]) for r in rows if any(r[5:])}  # type: ignore[misc]


async def read_days(conn: Connection) -> dict[tuple[str, ...], Cell]:
    """csat_days and csat_store_days (kept by triggers: migration 0059) as {(day,): cell, (day, store): cell},
    zero rows left out."""
    days = await conn.execute_fetchall("SELECT day, answers, satisfied, dissatisfied, score_sum FROM csat_days")
    stores = await conn.execute_fetchall(
        "SELECT day, store, answers, satisfied, dissatisfied, score_sum FROM csat_store_days")
    return {tuple(r[:n]): Cell(*r[n:]) for rows, n in ((days, 1), (stores, 2)) for r in rows if any(r[n:])}  # type: ignore[misc]


def by_day(cells: dict[Key, Cell]) -> dict[tuple[str, ...], Cell]:
    """Day cells added up per day and per day and store (what csat_days and csat_store_days must hold)."""
    totals: dict[tuple[str, ...], Cell] = {}
    for (day, store, *_), cell in cells.items():
        for key in ((day,), (day, store)):
            t = totals.setdefault(key, Cell())
            t.answers, t.satisfied = t.answers + cell.answers, t.satisfied + cell.satisfied
            t.dissatisfied, t.score_sum = t.dissatisfied + cell.dissatisfied, t.score_sum + cell.score_sum
    return {k: v for k, v in totals.items() if v.answers}


def by_month(cells: dict[Key, Cell]) -> dict[Key, Cell]:
    """Day cells added up per month (what csat_months must hold)."""
    months: dict[Key, Cell] = {}
    for (day, *rest), cell in cells.items():
        m = months.setdefault((day[:7], *rest), Cell())  # type: ignore[arg-type]
        m.answers, m.satisfied = m.answers + cell.answers, m.satisfied + cell.satisfied
        m.dissatisfied, m.score_sum = m.dissatisfied + cell.dissatisfied, m.score_sum + cell.score_sum
    return {k: v for k, v in months.items() if v.answers}


async def read(conn: Connection) -> dict[Key, Cell]:
    rows = await conn.execute_fetchall(
        "SELECT day, store, touchpoint, tier, channel, answers, satisfied, dissatisfied, score_sum FROM csat_rollups")
    return {tuple(r[:5]): Cell(*r[5:]) for r in rows}  # type: ignore[misc]


async def rebuild(conn: Connection, rule: RollupRule) -> int:
    """Replace every rollup row (answers and sends) by the raw aggregation (in the caller's
    transaction), and record the shop's time zone for the sends' days. Returns rows written."""
    cells = await aggregate_raw(conn, rule)
    await serialize(conn)
    await conn.execute("DELETE FROM csat_rollups")
    for kept in ("csat_months", "csat_days", "csat_store_days"):  # the triggers add them up again from the inserts
        await conn.execute(f"DELETE FROM {kept}")
    await conn.executemany(
        "INSERT INTO csat_rollups (day, store, touchpoint, tier, channel, answers, satisfied, dissatisfied, score_sum)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [(*key, *cell.as_tuple()) for key, cell in sorted(cells.items())])
    sends = await sends_raw(conn, rule.tz)
    await conn.execute("DELETE FROM survey_sends")
    await conn.execute("DELETE FROM survey_sends_months")  # the triggers add them up again from the inserts
    await _write_sends(conn, sends)
    await conn.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                       (ticket_rollups.TZ_SETTING, ticket_rollups.tz_text(rule.tz)))
    return len(cells) + len(sends)


# --- surveys sent (the response rate's denominator) -------------------------------------------------

SendKey = tuple[str, str, str]  # day sent, store, touchpoint
_SENT = "SELECT sent_at, COALESCE(store, ''), touchpoint FROM surveys WHERE sent_at IS NOT NULL AND demo = 0"


def _count_sends(rows: list, tz: tzinfo, into: dict[SendKey, int], sign: int = 1) -> None:
    for sent_at, store, touchpoint in rows:
        key = (from_db(sent_at).astimezone(tz).date().isoformat(), store, touchpoint)  # type: ignore[union-attr]
        into[key] = into.get(key, 0) + sign


_SENDS_UPSERT = ("INSERT INTO survey_sends (day, store, touchpoint, sent) VALUES (?, ?, ?, ?)"
                 " ON CONFLICT (day, store, touchpoint) DO UPDATE SET sent = survey_sends.sent + excluded.sent")


async def _write_sends(conn: Connection, sends: dict[SendKey, int]) -> None:
    changed = [(k, (v,)) for k, v in sends.items() if v]
    if changed:
        await rollup_lock.add(conn, rollup_lock.SENDS, _SENDS_UPSERT, changed)


class SendTally:
    """Around a write that may set or clear surveys' sent_at: `before` reads what they count as
    sent now, `after` writes the difference (both in the write's transaction)."""

    def __init__(self, conn: Connection, survey_ids: list[int]) -> None:
        self.conn, self.ids = conn, survey_ids
        self.sends: dict[SendKey, int] = {}
        self.tz: tzinfo = timezone.utc

    async def _rows(self) -> list:
        marks = ", ".join("?" * len(self.ids))
        return list(await self.conn.execute_fetchall(f"{_SENT} AND id IN ({marks})", self.ids))

    async def before(self) -> "SendTally":
        if self.ids:
            self.tz = await ticket_rollups.shop_tz(self.conn)
            _count_sends(await self._rows(), self.tz, self.sends, -1)
        return self

    async def after(self) -> None:
        if self.ids:
            _count_sends(await self._rows(), self.tz, self.sends)
            await _write_sends(self.conn, self.sends)


async def send_before(conn: Connection, survey_id: int) -> tuple[str | None, str, str] | None:
    """Before one survey's sent_at is set (and nothing else the count reads): what it counts as
    now (None: a demo, not counted). With `count_send` after the write, one read where
    SendTally reads twice (it serves any change; this is on every /start)."""
    row = await fetch_one(conn, "SELECT sent_at, COALESCE(store, ''), touchpoint, demo FROM surveys WHERE id = ?",
                          (survey_id,))
    return None if row is None or row[3] else (row[0], row[1], row[2])


async def count_send(conn: Connection, before: tuple[str | None, str, str], sent_at: datetime) -> None:
    old, store, touchpoint = before
    tz = await ticket_rollups.shop_tz(conn)
    sends: dict[SendKey, int] = {}
    if old is not None:
        _count_sends([before], tz, sends, -1)
    _count_sends([(to_db(sent_at), store, touchpoint)], tz, sends)
    await _write_sends(conn, sends)


async def sends_added(conn: Connection, survey_ids: list[int]) -> None:
    """Count surveys written as sent already (call after inserting them, in that transaction)."""
    tally = SendTally(conn, survey_ids)
    tally.tz = await ticket_rollups.shop_tz(conn)
    await tally.after()


async def sends_raw(conn: Connection, tz: tzinfo, batch: int = 50_000) -> dict[SendKey, int]:
    """The sends counted from the surveys themselves, in batches of `batch` rows."""
    sends: dict[SendKey, int] = {}
    after = 0
    while True:
        rows = await conn.execute_fetchall(
            "SELECT sent_at, COALESCE(store, ''), touchpoint, id FROM surveys WHERE sent_at IS NOT NULL AND demo = 0"
            " AND id > ? ORDER BY id LIMIT ?", (after, batch))
        _count_sends([r[:3] for r in rows], tz, sends)
        if len(rows) < batch:
            return {k: v for k, v in sends.items() if v}
        after = rows[-1][3]


async def read_sends_months(conn: Connection) -> dict[SendKey, int]:
    """survey_sends_months (kept from survey_sends by triggers: migration 0059), zero rows left out."""
    rows = await conn.execute_fetchall("SELECT month, store, touchpoint, sent FROM survey_sends_months")
    return {(r[0], r[1], r[2]): int(r[3]) for r in rows if int(r[3])}


def sends_by_month(sends: dict[SendKey, int]) -> dict[SendKey, int]:
    months: dict[SendKey, int] = {}
    for (day, store, touchpoint), sent in sends.items():
        months[(day[:7], store, touchpoint)] = months.get((day[:7], store, touchpoint), 0) + sent
    return {k: v for k, v in months.items() if v}


async def read_sends(conn: Connection) -> dict[SendKey, int]:
    rows = await conn.execute_fetchall("SELECT day, store, touchpoint, sent FROM survey_sends")
    return {(r[0], r[1], r[2]): int(r[3]) for r in rows if int(r[3])}


# --- reading -----------------------------------------------------------------------------------


async def series(conn: Connection, ranges: list[tuple[str, str]]) -> list[tuple[int, int, int]]:
    """(answers, satisfied, score_sum) per [first day, day after last) range of shop days."""
    if not ranges:
        return []
    values = ", ".join("(CAST(? AS INTEGER), CAST(? AS TEXT), CAST(? AS TEXT))" for _ in ranges)
    params = [p for i, (lo, hi) in enumerate(ranges) for p in (i, lo, hi)]
    rows = await conn.execute_fetchall(
        f"WITH w(i, lo, hi) AS (VALUES {values})"
        " SELECT w.i, COALESCE(SUM(r.answers), 0), COALESCE(SUM(r.satisfied), 0), COALESCE(SUM(r.score_sum), 0)"
        " FROM w LEFT JOIN csat_rollups r ON r.day >= w.lo AND r.day < w.hi GROUP BY w.i ORDER BY w.i", params)
    return [(int(r[1]), int(r[2]), int(r[3])) for r in rows]


async def by_touchpoint_and_store(conn: Connection, lo: str, hi: str) -> list[tuple[str, str, int, int, int]]:
    """(touchpoint, store, answers, satisfied, score_sum) over shop days [lo, hi)."""
    rows = await conn.execute_fetchall(
        "SELECT touchpoint, store, SUM(answers), SUM(satisfied), SUM(score_sum) FROM csat_rollups"
        " WHERE day >= ? AND day < ? GROUP BY touchpoint, store", (lo, hi))
    return [(r[0], r[1], int(r[2]), int(r[3]), int(r[4])) for r in rows]
