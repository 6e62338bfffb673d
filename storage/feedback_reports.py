"""The report queries of issue 21's digests: program answers, ideas, CSAT per journey stage,
per staff member and per store, complaints per stage and per category. Answers are counted from
the rollups of the week's shop days (storage/feedback_rollups.py, csat_rollups); complaints,
ideas and quoted texts read an index range of one week (created_at, answered_at), like
storage/reports.py; never the history."""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

from storage import feedback_rollups
from storage.db import Connection, fetch_one
from storage.timefmt import to_db

HIGH = 4


def _marks(items: Sequence[object]) -> str:
    return ", ".join("?" * len(items))


async def program_answers(conn: Connection, lo: str, hi: str) -> dict[tuple[str, str], dict]:
    """(program, kind) -> {(score, choice): count} of the answers over shop days [lo, hi) (the rollups)."""
    out: dict[tuple[str, str], dict] = {}
    for program, kind, score, choice, n in await feedback_rollups.program_answers(conn, lo, hi):
        out.setdefault((program, kind), {})[(score, choice)] = n
    return out


async def csat_by(conn: Connection, column: str, lo: str, hi: str, *, store: str | None = None) -> dict[str, tuple[int, int]]:
    """The purchase CSAT over shop days [lo, hi) per purchase `column` (stage | staff): name -> (answers,
    satisfied); "" for purchases that named none. `store`: that store's purchases only (the rollups)."""
    out: dict[str, tuple[int, int]] = {}
    for _, name, n, satisfied, _ in await feedback_rollups.csat_by(conn, column, lo, hi, None if store is None else (store,)):
        had = out.get(name, (0, 0))
        out[name] = (had[0] + n, had[1] + satisfied)
    return out


async def store_csat(conn: Connection, store: str, lo: str, hi: str) -> tuple[int, int]:
    """A store's CSAT (answers, satisfied) over shop days [lo, hi), from the CSAT rollups."""
    row = await fetch_one(
        conn, "SELECT COALESCE(SUM(answers), 0), COALESCE(SUM(satisfied), 0) FROM csat_rollups"
        " WHERE store = ? AND day >= ? AND day < ?", (store, lo, hi))
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def store_low_comments(conn: Connection, store: str, start: datetime, end: datetime, limit: int = 3) -> list[str]:
    rows = await conn.execute_fetchall(
        f"SELECT comment FROM surveys WHERE answered_at >= ? AND answered_at < ? AND store = ? AND score < {HIGH}"
        " AND comment IS NOT NULL AND demo = 0 ORDER BY answered_at DESC LIMIT ?",
        (to_db(start), to_db(end), store, limit),
    )
    return [r[0] for r in rows]


async def complaints_by_stage(conn: Connection, start: datetime, end: datetime) -> dict[str, dict[str, int]]:
    """stage -> category -> complaints opened this week about a purchase of that stage."""
    rows = await conn.execute_fetchall(
        "SELECT COALESCE(p.stage, ''), t.category, COUNT(*) FROM tickets t JOIN purchases p ON p.id = t.purchase_id"
        " WHERE t.created_at >= ? AND t.created_at < ? AND t.kind = 'complaint' AND t.demo = 0"
        " GROUP BY COALESCE(p.stage, ''), t.category",
        (to_db(start), to_db(end)),
    )
    out: dict[str, dict[str, int]] = {}
    for stage, category, n in rows:
        out.setdefault(stage, {})[category] = n
    return out


async def complaints_in(
    conn: Connection, start: datetime, end: datetime, *, categories: Sequence[str] | None = None,
    store: str | None = None, texts: int = 3,
) -> tuple[dict[str, int], list[str]]:
    """The week's complaints in these categories (or of this store's purchases): per category,
    and the newest descriptions."""
    where, params = ["t.created_at >= ?", "t.created_at < ?", "t.kind = 'complaint'", "t.demo = 0"], [to_db(start), to_db(end)]
    join = ""
    if categories is not None:
        if not categories:
            return {}, []
        where.append(f"t.category IN ({_marks(categories)})")
        params += list(categories)
    if store is not None:
        join = " JOIN purchases p ON p.id = t.purchase_id"
        where.append("p.store = ?")
        params.append(store)
    sql = f"FROM tickets t{join} WHERE {' AND '.join(where)}"
    counts = {r[0]: r[1] for r in await conn.execute_fetchall(f"SELECT t.category, COUNT(*) {sql} GROUP BY t.category", params)}
    recent = await conn.execute_fetchall(
        f"SELECT t.description {sql} AND t.description <> '' ORDER BY t.created_at DESC LIMIT ?", (*params, texts))
    return counts, [r[0] for r in recent]


async def ideas_in(
    conn: Connection, start: datetime, end: datetime, *, topics: Sequence[str] | None = None, texts: int = 0,
) -> tuple[dict[str, int], list[str]]:
    where, params = "created_at >= ? AND created_at < ? AND demo = 0", [to_db(start), to_db(end)]
    if topics is not None:
        if not topics:
            return {}, []
        where += f" AND topic IN ({_marks(topics)})"
        params += list(topics)
    counts = {r[0]: r[1] for r in await conn.execute_fetchall(
        f"SELECT topic, COUNT(*) FROM ideas WHERE {where} GROUP BY topic", params)}
    recent: list[str] = []
    if texts:
        recent = [r[0] for r in await conn.execute_fetchall(
            f"SELECT text FROM ideas WHERE {where} AND text IS NOT NULL ORDER BY created_at DESC LIMIT ?",
            (*params, texts))]
    return counts, recent


async def was_sent(conn: Connection, recipient: str, slice_: str, week: str) -> bool:
    return await fetch_one(conn, "SELECT 1 FROM slice_digests_sent WHERE recipient = ? AND slice = ? AND week = ?",
                           (recipient, slice_, week)) is not None


async def mark_sent(conn: Connection, recipient: str, slice_: str, week: str, language: str, now: datetime) -> bool:
    cur = await conn.execute(
        "INSERT OR IGNORE INTO slice_digests_sent (recipient, slice, week, language, queued_at) VALUES (?, ?, ?, ?, ?)",
        (recipient, slice_, week, language, to_db(now)),
    )
    return cur.rowcount == 1
