"""The report queries of issue 21's digests: program answers, ideas, CSAT per journey stage,
per staff member and per store, complaints per stage and per category. Each reads an index
range of one week (answered_at, created_at), like storage/reports.py; never the history."""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

from storage.db import Connection, fetch_one
from storage.timefmt import to_db

HIGH = 4


def _marks(items: Sequence[object]) -> str:
    return ", ".join("?" * len(items))


async def program_answers(conn: Connection, start: datetime, end: datetime) -> dict[tuple[str, str], dict]:
    """(program, kind) -> {(score, choice): count} of the week's first answers."""
    rows = await conn.execute_fetchall(
        "SELECT program, kind, score, choice, COUNT(*) FROM program_surveys WHERE answered_at >= ? AND answered_at < ?"
        " AND demo = 0 GROUP BY program, kind, score, choice",
        (to_db(start), to_db(end)),
    )
    out: dict[tuple[str, str], dict] = {}
    for program, kind, score, choice, n in rows:
        out.setdefault((program, kind), {})[(score, choice)] = n
    return out


async def csat_by(
    conn: Connection, column: str, start: datetime, end: datetime, *, store: str | None = None,
) -> dict[str, tuple[int, int]]:
    """The purchase CSAT of the week per purchase `column` (stage | staff): name -> (answers,
    satisfied); "" for purchases that named none. `store`: that store's purchases only."""
    assert column in ("stage", "staff")
    where = " AND p.store = ?" if store is not None else ""
    params: tuple = (to_db(start), to_db(end), *((store,) if store is not None else ()))
    rows = await conn.execute_fetchall(
        f"SELECT COALESCE(p.{column}, ''), COUNT(*), SUM(CASE WHEN s.score >= {HIGH} THEN 1 ELSE 0 END)"
        " FROM surveys s JOIN purchases p ON p.id = s.purchase_id"
        f" WHERE s.answered_at >= ? AND s.answered_at < ? AND s.score IS NOT NULL AND s.demo = 0{where}"
        f" GROUP BY COALESCE(p.{column}, '')",
        params,
    )
    return {r[0]: (int(r[1]), int(r[2] or 0)) for r in rows}


async def store_csat(conn: Connection, store: str, start: datetime, end: datetime) -> tuple[int, int]:
    row = await fetch_one(
        conn,
        f"SELECT COUNT(*), SUM(CASE WHEN score >= {HIGH} THEN 1 ELSE 0 END) FROM surveys"
        " WHERE answered_at >= ? AND answered_at < ? AND score IS NOT NULL AND demo = 0 AND store = ?",
        (to_db(start), to_db(end), store),
    )
    return (int(row[0]), int(row[1] or 0)) if row else (0, 0)


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
