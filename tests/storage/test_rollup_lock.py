"""Two instances on one PostgreSQL database add to the same hot rollup rows in opposite orders
(group commit puts several updates in one transaction): written at once, PostgreSQL found a
deadlock and failed one of them (an update lost its handling). Gathered for the commit and
written there in one order (storage/rollup_lock.py), both commit. Units gather on SQLite
too (one upsert per row at the shared COMMIT): the unit tests run on both backends."""
from __future__ import annotations

import asyncio

import pytest

from storage import rollups
from storage.db import dialect, savepoint
from tests.conftest import BOTH, open_db

BACKENDS = BOTH
DAY, OTHER_DAY = ("2026-12-05", "Q1", "delivery"), ("2026-12-05", "Q3", "store")


@pytest.fixture
async def two(tmp_path, database_url):
    first, second = open_db(tmp_path, database_url), open_db(tmp_path, database_url)
    await first.open()
    await second.open()
    yield first, second
    await second.close()
    await first.close()


@pytest.mark.postgresql_only
async def test_rollup_writes_in_opposite_orders_in_two_transactions_both_commit(two):
    first, second = two
    first_wrote, second_wrote = asyncio.Event(), asyncio.Event()

    async def one() -> None:
        async with first.transaction() as tx:
            await rollups._write_sends(tx, {DAY: 1})
            first_wrote.set()
            try:  # written at the commits: neither waits here for the other
                await asyncio.wait_for(second_wrote.wait(), 2.0)
            except TimeoutError:
                pass
            await rollups._write_sends(tx, {OTHER_DAY: 1})

    async def other() -> None:
        await first_wrote.wait()
        async with second.transaction() as tx:
            await rollups._write_sends(tx, {OTHER_DAY: 1})
            second_wrote.set()
            await rollups._write_sends(tx, {DAY: 1})

    results = await asyncio.gather(one(), other(), return_exceptions=True)
    assert results == [None, None], results
    assert await rollups.read_sends(first.reader) == {DAY: 2, OTHER_DAY: 2}


async def test_a_failing_units_rollup_writes_go_with_it_and_the_others_are_summed(two):
    db, _ = two

    async def ok() -> None:
        async with db.unit() as tx:
            await rollups._write_sends(tx, {DAY: 1, OTHER_DAY: 1})

    async def bad() -> None:
        with pytest.raises(RuntimeError):
            async with db.unit() as tx:
                await rollups._write_sends(tx, {DAY: 5})
                raise RuntimeError("this update fails")

    await asyncio.gather(ok(), bad(), ok(), bad())  # one transaction: the first and the third units' writes
    assert await rollups.read_sends(db.reader) == {DAY: 2, OTHER_DAY: 2}


async def test_units_rollup_writes_reach_the_table_at_the_shared_commit_in_one_upsert_per_row(two):
    db, _ = two
    ran: list[str] = []
    sqlite = dialect(db.writer) == "sqlite"
    if sqlite:  # what SQLite runs, the triggers' statements included
        db.writer._conn.set_trace_callback(lambda sql: ran.append(sql) if "INTO survey_sends" in sql else None)
        async with db.transaction() as tx:  # not a unit: written at once
            await rollups._write_sends(tx, {DAY: 1})
        per_row, ran[:] = len(ran), []

    async def one(n: int) -> None:
        async with db.unit() as tx:
            await rollups._write_sends(tx, {DAY: n})
            await rollups._write_sends(tx, {OTHER_DAY: 1})

    await asyncio.gather(*(one(n) for n in (1, 2, 3, 4)))  # four units, one transaction
    assert await rollups.read_sends(db.reader) == {DAY: 10 + sqlite, OTHER_DAY: 4}
    if sqlite:
        db.writer._conn.set_trace_callback(None)
        assert per_row >= 1
        assert len(ran) == 2 * per_row, ran  # one upsert per row (written at once: 8 upserts)


async def test_a_savepoint_rolled_back_inside_a_unit_takes_its_rollup_writes_back_too(two):
    """The engine handles a recorded update in a savepoint of its unit (bot/engine.py process):
    a failure there undoes the handling's rows, and must undo the rollup deltas gathered for
    the COMMIT as well, or the rollups count an answer the survey rows do not have."""
    db, _ = two
    async with db.unit() as tx:
        await rollups._write_sends(tx, {DAY: 1})
        with pytest.raises(RuntimeError):
            async with savepoint(tx, "handling"):
                await rollups._write_sends(tx, {DAY: 5, OTHER_DAY: 5})
                raise RuntimeError("the handling fails")
        async with savepoint(tx, "handling"):
            await rollups._write_sends(tx, {OTHER_DAY: 2})
    assert await rollups.read_sends(db.reader) == {DAY: 1, OTHER_DAY: 2}
