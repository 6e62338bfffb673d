"""The dashboard's survey-program queries (issue 21): each program's answers, CSAT per journey
stage, complaints per stage and category, CSAT per staff member, over a chosen range. Every
query takes `stores`: None for every store (owners), else only those (a manager's), applied in
SQL. A program answer belongs to the store of the purchase it follows (or of the purchase the
complaint it follows was about); one about no purchase (on demand, every N days) belongs to no
store, so only owners see it. Each reads an index range of answered_at / created_at."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from storage.db import Connection
from storage.timefmt import to_db

HIGH = 4  # a CSAT answer of 4 or 5 is "satisfied"


def _stores(column: str, stores: Sequence[str] | None) -> tuple[str, list[Any]]:
    if stores is None:
        return "", []
    if not stores:
        return " AND 0 = 1", []
    return f" AND {column} IN ({', '.join('?' * len(stores))})", list(stores)


async def program_answers(conn: Connection, start: datetime, end: datetime,
                          stores: Sequence[str] | None) -> list[tuple[str, str, int | None, str | None, int]]:
    """(program, kind, score, choice, answers) of the first answers given in [start, end)."""
    where, params = _stores("COALESCE(p.store, tp.store)", stores)
    rows = await conn.execute_fetchall(
        "SELECT s.program, s.kind, s.score, s.choice, COUNT(*) FROM program_surveys s"
        " LEFT JOIN purchases p ON p.id = s.purchase_id LEFT JOIN tickets t ON t.id = s.ticket_id"
        " LEFT JOIN purchases tp ON tp.id = t.purchase_id"
        f" WHERE s.answered_at >= ? AND s.answered_at < ? AND s.demo = 0{where}"
        " GROUP BY s.program, s.kind, s.score, s.choice",
        (to_db(start), to_db(end), *params))
    return [(r[0], r[1], r[2], r[3], int(r[4])) for r in rows]


async def csat_by(conn: Connection, column: str, start: datetime, end: datetime,
                  stores: Sequence[str] | None) -> list[tuple[str, str, int, int, int]]:
    """The purchase CSAT answered in [start, end) per (store, purchase `column`) (stage | staff):
    (store, name, answers, satisfied, score_sum); "" where the purchase named none."""
    assert column in ("stage", "staff")
    where, params = _stores("p.store", stores)
    rows = await conn.execute_fetchall(
        f"SELECT COALESCE(p.store, ''), COALESCE(p.{column}, ''), COUNT(*),"
        f" SUM(CASE WHEN s.score >= {HIGH} THEN 1 ELSE 0 END), SUM(s.score)"
        " FROM surveys s JOIN purchases p ON p.id = s.purchase_id"
        f" WHERE s.answered_at >= ? AND s.answered_at < ? AND s.score IS NOT NULL AND s.demo = 0{where}"
        f" GROUP BY COALESCE(p.store, ''), COALESCE(p.{column}, '')",
        (to_db(start), to_db(end), *params))
    return [(r[0], r[1], int(r[2]), int(r[3] or 0), int(r[4] or 0)) for r in rows]


async def complaints_by_stage(conn: Connection, start: datetime, end: datetime,
                              stores: Sequence[str] | None) -> dict[str, dict[str, int]]:
    """stage -> category -> complaints opened in [start, end) about a purchase of that stage."""
    where, params = _stores("p.store", stores)
    rows = await conn.execute_fetchall(
        "SELECT COALESCE(p.stage, ''), t.category, COUNT(*) FROM tickets t JOIN purchases p ON p.id = t.purchase_id"
        f" WHERE t.created_at >= ? AND t.created_at < ? AND t.kind = 'complaint' AND t.demo = 0{where}"
        " GROUP BY COALESCE(p.stage, ''), t.category",
        (to_db(start), to_db(end), *params))
    out: dict[str, dict[str, int]] = {}
    for stage, category, n in rows:
        out.setdefault(stage, {})[category] = int(n)
    return out
