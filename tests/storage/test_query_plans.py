"""Reads that run on every survey dispatch, page view or purge pass use an index, never a scan
of a whole table (which grows with the shop: 100,000 tickets made each dispatch scan them
all). The statements are captured as SQLite runs them, then explained."""
from __future__ import annotations

import pytest

from storage import customers, dashboard, surveys, ticket_rollups, web_messages
from storage.db import Database
from tests.conftest import START

pytestmark = pytest.mark.sqlite_only


async def _plans(db: Database, call) -> list[tuple[str, list[str]]]:
    seen: list[str] = []
    raw = db.writer._conn
    await db.writer._execute(raw.set_trace_callback, seen.append)
    try:
        await call()
    finally:
        await db.writer._execute(raw.set_trace_callback, None)
    plans = []
    for sql in seen:
        if sql.split()[0].upper() == "SELECT":
            plans.append((sql, [r[3] for r in await db.fetchall("EXPLAIN QUERY PLAN " + sql)]))
    assert plans, "no statement was captured"
    return plans


def _scans(plan: list[str]) -> list[str]:
    """Steps that read a whole table, or a whole index in its order (SEARCH reads a range)."""
    return [step for step in plan if step.startswith("SCAN")]


async def _customer(db: Database) -> int:
    async with db.transaction() as tx:
        made = await customers.upsert(tx, external_id="C-1", name="Lan", phone=None, telegram_user_id=None, now=START)
    return made.id


async def test_a_survey_dispatch_reads_the_customer_by_index(db):
    customer_id = await _customer(db)

    async def dispatch_facts():
        async with db.transaction() as tx:
            assert (await surveys.dispatch_facts(tx, customer_id))[0] is not None
    for sql, plan in await _plans(db, dispatch_facts):
        assert not _scans(plan), f"{plan}\n{sql}"


async def test_the_customer_history_reads_by_index(db):
    customer_id = await _customer(db)

    async def history():
        async with db.transaction() as tx:
            assert await dashboard.customer_history(tx, customer_id, None) is not None
    for sql, plan in await _plans(db, history):
        assert not _scans(plan), f"{plan}\n{sql}"


async def test_the_silent_web_session_purge_reads_by_index(db):
    async def purge():
        async with db.transaction() as tx:
            await web_messages.purge_silent_sessions(tx, START, 500)
    for sql, plan in await _plans(db, purge):
        assert not _scans(plan), f"{plan}\n{sql}"


async def test_the_oldest_open_complaints_come_from_the_partial_index_in_order(db):
    """Not every open ticket read and sorted (the dashboard's complaints, any range)."""
    async def oldest():
        async with db.transaction() as tx:
            assert await ticket_rollups.oldest_open(tx, None) == []
    for sql, plan in await _plans(db, oldest):
        assert any("tickets_unresolved" in step for step in plan) and not any("TEMP B-TREE" in s for s in plan), \
            f"{plan}\n{sql}"
