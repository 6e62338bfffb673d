"""Feedback rollups (issue 21): what the feedback pages group by, per shop day, kept up to date in
the transaction that records each answer and rebuilt with the other rollups by `feedbot rollups
rebuild` (migration 0057).

- `journey_rollups`: the purchase CSAT (surveys about a purchase) per day x the purchase's store x
  dimension (stage | staff) x name: answers, satisfied (4-5), score_sum. An answer adds to its
  stage's row and to its staff member's row (`add_answer`, called by `surveys.record_score`).
- `program_rollups`: program answers per day x store (the purchase's the survey follows, or that
  of the purchase the complaint it follows was about) x program x kind x score x choice.
  `record_answer` in storage/programs.py writes through `ProgramTally`, which takes back a
  survey's old contribution and adds its new one ("other" answered again moves it).

Erasure and the retention purge keep what these count (scores, choices, times, stores, stages
and staff of purchases), so they need no step of their own; tests/storage/test_feedback_rollups.py
checks that. Demo answers count nowhere. Days are shop days: the answer's rule (CSAT) or the
time zone the rollups were last built under (programs: setting `rollups.timezone`)."""
from __future__ import annotations

from datetime import tzinfo
from typing import Any, Sequence

from storage import ticket_rollups
from storage.db import Connection
from storage import rollup_lock
from storage.rollup_lock import serialize
from storage.timefmt import from_db

HIGH = 4  # a CSAT answer of 4 or 5 is "satisfied"
DIMENSIONS = ("stage", "staff")
NO_SCORE, NO_CHOICE = -1, ""  # a program answer without a score (a choice, a text) or without a choice

JourneyKey = tuple[str, str, str, str]  # day, store, dimension, name
ProgramKey = tuple[str, str, str, str, int, str]  # day, store, program, kind, score, choice
Journey = dict[JourneyKey, tuple[int, int, int]]  # answers, satisfied, score_sum
Programs = dict[ProgramKey, int]


class _Days:
    """Shop days of stored UTC times; many answers share a minute: each converted once."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self.seen: dict[str, str] = {}

    def __call__(self, at: str) -> str:
        minute = at[:16]
        day = self.seen.get(minute)
        if day is None:
            day = self.seen[minute] = from_db(at).astimezone(self.tz).date().isoformat()  # type: ignore[union-attr]
        return day


def _add_journey(into: dict[JourneyKey, list[int]], day: str, store: str, stage: str, staff: str, score: int,
                 sign: int = 1) -> None:
    for dimension, name in (("stage", stage), ("staff", staff)):
        cell = into.setdefault((day, store, dimension, name), [0, 0, 0])
        cell[0] += sign
        cell[1] += sign if score >= HIGH else 0
        cell[2] += sign * score


_JOURNEY_UPSERT = (
    "INSERT INTO journey_rollups (day, store, dimension, name, answers, satisfied, score_sum)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (day, store, dimension, name) DO UPDATE SET"
    " answers = journey_rollups.answers + excluded.answers,"
    " satisfied = journey_rollups.satisfied + excluded.satisfied,"
    " score_sum = journey_rollups.score_sum + excluded.score_sum")
_PROGRAMS_UPSERT = (
    "INSERT INTO program_rollups (day, store, program, kind, score, choice, answers) VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (day, store, program, kind, score, choice) DO UPDATE SET"
    " answers = program_rollups.answers + excluded.answers")


async def _write_journey(conn: Connection, cells: dict[JourneyKey, list[int]]) -> None:
    """Gathered for the commit where the transaction does (storage/rollup_lock.py), else now."""
    rows = [(k, v) for k, v in cells.items() if any(v)]
    if rows:
        await rollup_lock.add(conn, rollup_lock.JOURNEY, _JOURNEY_UPSERT, rows)


async def _write_programs(conn: Connection, cells: Programs) -> None:
    rows = [(k, (v,)) for k, v in cells.items() if v]
    if rows:
        await rollup_lock.add(conn, rollup_lock.PROGRAMS, _PROGRAMS_UPSERT, rows)


# --- the purchase CSAT per stage and staff -------------------------------------------------------

_JOURNEY = ("SELECT s.answered_at, COALESCE(p.store, ''), COALESCE(p.stage, ''), COALESCE(p.staff, ''), s.score, s.id"
            " FROM surveys s JOIN purchases p ON p.id = s.purchase_id"
            " WHERE s.answered_at IS NOT NULL AND s.score IS NOT NULL AND s.demo = 0")


# One statement per answer: its stage's row and its staff member's row.
_ADD = (
    "INSERT INTO journey_rollups (day, store, dimension, name, answers, satisfied, score_sum)"
    " SELECT ?, COALESCE(p.store, ''), d.dimension,"
    " COALESCE(CASE d.dimension WHEN 'stage' THEN p.stage ELSE p.staff END, ''), 1,"
    f" CASE WHEN s.score >= {HIGH} THEN 1 ELSE 0 END, s.score"
    " FROM surveys s JOIN purchases p ON p.id = s.purchase_id"
    " CROSS JOIN (SELECT 'stage' AS dimension UNION ALL SELECT 'staff') d"
    " WHERE s.id = ? AND s.demo = 0 AND s.score IS NOT NULL"
    " ON CONFLICT (day, store, dimension, name) DO UPDATE SET answers = journey_rollups.answers + excluded.answers,"
    " satisfied = journey_rollups.satisfied + excluded.satisfied, score_sum = journey_rollups.score_sum + excluded.score_sum"
)


# The answer's purchase: what _ADD reads, for a transaction that gathers its rollup writes.
_ANSWER = ("SELECT COALESCE(p.store, ''), COALESCE(p.stage, ''), COALESCE(p.staff, ''), s.score"
           " FROM surveys s JOIN purchases p ON p.id = s.purchase_id"
           " WHERE s.id = ? AND s.demo = 0 AND s.score IS NOT NULL")


async def add_answer(conn: Connection, survey_id: int, day: str) -> None:
    """Count one purchase CSAT answer on its shop `day` (call in the transaction that records it)."""
    if not rollup_lock.gathers(conn):  # at once, in one statement (SQLite, outside a unit)
        await serialize(conn)
        await conn.execute(_ADD, (day, survey_id))
        return
    cells: dict[JourneyKey, list[int]] = {}
    for store, stage, staff, score in await conn.execute_fetchall(_ANSWER, (survey_id,)):
        _add_journey(cells, day, store, stage, staff, score)
    await _write_journey(conn, cells)


# --- program answers -----------------------------------------------------------------------------

_PROGRAMS = ("SELECT s.answered_at, COALESCE(p.store, tp.store, ''), s.program, s.kind, COALESCE(s.score, -1),"
             " COALESCE(s.choice, ''), s.id FROM program_surveys s"
             " LEFT JOIN purchases p ON p.id = s.purchase_id LEFT JOIN tickets t ON t.id = s.ticket_id"
             " LEFT JOIN purchases tp ON tp.id = t.purchase_id"
             " WHERE s.answered_at IS NOT NULL AND s.demo = 0")


def _count_programs(rows: Sequence[Any], days: _Days, into: Programs, sign: int = 1) -> None:
    for answered_at, store, program, kind, score, choice, _ in rows:
        key = (days(answered_at), store, program, kind, int(score), choice)
        into[key] = into.get(key, 0) + sign


class ProgramTally:
    """Around a write that may answer program surveys or change their answer: `before` reads what
    they count now, `after` writes the difference (both in the write's transaction)."""

    def __init__(self, conn: Connection, survey_ids: list[int]) -> None:
        self.conn, self.ids = conn, survey_ids
        self.cells: Programs = {}
        self.days: _Days | None = None

    async def _rows(self) -> list:
        marks = ", ".join("?" * len(self.ids))
        return list(await self.conn.execute_fetchall(f"{_PROGRAMS} AND s.id IN ({marks})", self.ids))

    async def before(self) -> "ProgramTally":
        if self.ids:
            self.days = _Days(await ticket_rollups.shop_tz(self.conn))
            _count_programs(await self._rows(), self.days, self.cells, -1)
        return self

    async def after(self) -> None:
        if self.ids and self.days is not None:
            _count_programs(await self._rows(), self.days, self.cells)
            await _write_programs(self.conn, self.cells)


# --- the raw aggregation (rebuild, and what tests compare against) --------------------------------


async def _batches(conn: Connection, sql: str, batch: int):
    after = 0
    while True:
        rows = await conn.execute_fetchall(f"{sql} AND s.id > ? ORDER BY s.id LIMIT ?", (after, batch))
        yield rows
        if len(rows) < batch:
            return
        after = rows[-1][-1]


async def aggregate_raw(conn: Connection, tz: tzinfo, batch: int = 50_000) -> tuple[Journey, Programs]:
    """Both rollups computed from the answers themselves, in batches of `batch` rows; zero rows left out."""
    days = _Days(tz)
    journey: dict[JourneyKey, list[int]] = {}
    async for rows in _batches(conn, _JOURNEY, batch):
        for answered_at, store, stage, staff, score, _ in rows:
            _add_journey(journey, days(answered_at), store, stage, staff, score)
    programs: Programs = {}
    async for rows in _batches(conn, _PROGRAMS, batch):
        _count_programs(rows, days, programs)
    return ({k: (v[0], v[1], v[2]) for k, v in journey.items() if any(v)}, {k: v for k, v in programs.items() if v})


async def read(conn: Connection) -> tuple[Journey, Programs]:
    """Every rollup row, zero rows left out."""
    journey = {tuple(r[:4]): (int(r[4]), int(r[5]), int(r[6])) for r in await conn.execute_fetchall(
        "SELECT day, store, dimension, name, answers, satisfied, score_sum FROM journey_rollups")}
    programs = {(r[0], r[1], r[2], r[3], int(r[4]), r[5]): int(r[6]) for r in await conn.execute_fetchall(
        "SELECT day, store, program, kind, score, choice, answers FROM program_rollups")}
    return ({k: v for k, v in journey.items() if any(v)}, {k: v for k, v in programs.items() if v})  # type: ignore[misc]


async def rebuild(conn: Connection, tz: tzinfo) -> int:
    """Replace every row by the raw aggregation (in the caller's transaction). Returns rows written."""
    journey, programs = await aggregate_raw(conn, tz)
    await serialize(conn)
    await conn.execute("DELETE FROM journey_rollups")
    await conn.execute("DELETE FROM program_rollups")
    await _write_journey(conn, {k: list(v) for k, v in journey.items()})
    await _write_programs(conn, programs)
    return len(journey) + len(programs)


# --- reading (the feedback digests, the dashboard's programs page) --------------------------------


def _stores(stores: Sequence[str] | None) -> tuple[str, list[Any]]:
    """None: every store; else only those (none: nothing)."""
    if stores is None:
        return "", []
    if not stores:
        return " AND 0 = 1", []
    return f" AND store IN ({', '.join('?' * len(stores))})", list(stores)


async def csat_by(conn: Connection, dimension: str, lo: str, hi: str,
                  stores: Sequence[str] | None = None) -> list[tuple[str, str, int, int, int]]:
    """The purchase CSAT over shop days [lo, hi) per (store, stage or staff):
    (store, name, answers, satisfied, score_sum); "" where the purchase named none."""
    assert dimension in DIMENSIONS
    where, params = _stores(stores)
    rows = await conn.execute_fetchall(
        "SELECT store, name, SUM(answers), SUM(satisfied), SUM(score_sum) FROM journey_rollups"
        f" WHERE dimension = ? AND day >= ? AND day < ?{where} GROUP BY store, name HAVING SUM(answers) <> 0",
        (dimension, lo, hi, *params))
    return [(r[0], r[1], int(r[2]), int(r[3]), int(r[4])) for r in rows]


async def program_answers(conn: Connection, lo: str, hi: str,
                          stores: Sequence[str] | None = None) -> list[tuple[str, str, int | None, str | None, int]]:
    """(program, kind, score, choice, answers) of the answers given over shop days [lo, hi)
    (score and choice None where there is none)."""
    where, params = _stores(stores)
    rows = await conn.execute_fetchall(
        "SELECT program, kind, score, choice, SUM(answers) FROM program_rollups"
        f" WHERE day >= ? AND day < ?{where} GROUP BY program, kind, score, choice HAVING SUM(answers) <> 0",
        (lo, hi, *params))
    return [(r[0], r[1], None if r[2] == NO_SCORE else int(r[2]), None if r[3] == NO_CHOICE else r[3], int(r[4]))
            for r in rows]
