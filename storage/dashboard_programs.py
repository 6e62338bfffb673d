"""The dashboard's survey-program queries (issue 21): each program's answers, CSAT per journey
stage, complaints per stage and category, CSAT per staff member, over a chosen range. Every
query takes `stores`: None for every store (owners), else only those (a manager's), applied in
SQL. A program answer belongs to the store of the purchase it follows (or of the purchase the
complaint it follows was about); one about no purchase (on demand, every N days) belongs to no
store, so only owners see it. Answers are read from the rollups of the range's shop days
(storage/feedback_rollups.py), complaints from an index range of created_at."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from storage import feedback_rollups
from storage.db import Connection
from storage.timefmt import to_db


def _stores(column: str, stores: Sequence[str] | None) -> tuple[str, list[Any]]:
    if stores is None:
        return "", []
    if not stores:
        return " AND 0 = 1", []
    return f" AND {column} IN ({', '.join('?' * len(stores))})", list(stores)


async def program_answers(conn: Connection, lo: str, hi: str,
                          stores: Sequence[str] | None) -> list[tuple[str, str, int | None, str | None, int]]:
    """(program, kind, score, choice, answers) of the answers given over shop days [lo, hi) (the rollups)."""
    return await feedback_rollups.program_answers(conn, lo, hi, stores)


async def csat_by(conn: Connection, column: str, lo: str, hi: str,
                  stores: Sequence[str] | None) -> list[tuple[str, str, int, int, int]]:
    """The purchase CSAT answered over shop days [lo, hi) per (store, purchase `column`) (stage | staff):
    (store, name, answers, satisfied, score_sum); "" where the purchase named none (the rollups)."""
    return await feedback_rollups.csat_by(conn, column, lo, hi, stores)


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
