"""Group commit for inline transactions (Database.unit(): the units waiting for the write lock
share one transaction, each in a savepoint, and one COMMIT) and the background checkpointer
(commits never copy the WAL into the database file on the event loop; a task does, on its
own connection, and keeps the WAL from growing without end)."""
from __future__ import annotations

import asyncio
import sqlite3
from typing import AsyncIterator

import pytest

import storage.db as dbmod
from storage.db import Database, savepoint
from tests.storage.test_db_fast_paths import INSERT_SETTING, trace_statements


@pytest.fixture
async def db(tmp_path) -> AsyncIterator[Database]:
    async with Database(tmp_path / "u.db") as database:
        yield database


def count(seen: list[str], word: str) -> int:
    return sum(1 for s in seen if s.strip().upper() == word)


async def keys(db: Database, like: str) -> list[str]:
    return [r[0] for r in await db.fetchall("SELECT key FROM settings WHERE key LIKE ? ORDER BY key", (like,))]


async def write_unit(db: Database, key: str, fail: bool = False) -> str:
    async with db.unit() as tx:
        await tx.execute(INSERT_SETTING, (key, "v"))
        await asyncio.sleep(0)  # the others queue up on the write lock meanwhile
        if fail:
            raise RuntimeError(f"unit {key} failed")
    return key


async def test_units_that_arrive_together_share_one_commit_and_are_committed_on_return(db):
    seen = await trace_statements(db)
    done = await asyncio.gather(*(write_unit(db, f"u{i}") for i in range(10)))
    assert done == [f"u{i}" for i in range(10)]
    assert count(seen, "COMMIT") == 1 and count(seen, "BEGIN IMMEDIATE") == 1
    assert await keys(db, "u%") == [f"u{i}" for i in range(10)]  # the reader connection sees them all
    assert not db.writer._conn.in_transaction


async def test_a_failing_unit_rolls_back_only_its_own_writes(db):
    results = await asyncio.gather(
        *(write_unit(db, f"f{i}", fail=(i == 3)) for i in range(6)), return_exceptions=True
    )
    assert isinstance(results[3], RuntimeError)
    assert [r for i, r in enumerate(results) if i != 3] == ["f0", "f1", "f2", "f4", "f5"]
    assert await keys(db, "f%") == ["f0", "f1", "f2", "f4", "f5"]


async def test_the_first_unit_of_a_transaction_takes_no_savepoint_and_a_failing_first_rolls_back_alone(db):
    seen = await trace_statements(db)
    results = await asyncio.gather(
        *(write_unit(db, f"g{i}", fail=(i == 0)) for i in range(4)), return_exceptions=True
    )
    assert isinstance(results[0], RuntimeError) and results[1:] == ["g1", "g2", "g3"]
    assert await keys(db, "g%") == ["g1", "g2", "g3"]
    assert await write_unit(db, "alone") == "alone"  # one unit alone: BEGIN, its write, COMMIT
    assert await keys(db, "alone") == ["alone"] and not db.writer._conn.in_transaction
    # The first unit of each of the three transactions: no savepoint; the two units that
    # joined the second transaction: one each.
    assert count(seen, "SAVEPOINT UNIT") == 2 and count(seen, "BEGIN IMMEDIATE") == 3


async def test_a_failed_commit_raises_in_every_unit_of_the_group_and_leaves_nothing(db):
    await db.writer.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    await db.writer.execute(
        "CREATE TABLE child (id INTEGER PRIMARY KEY, "
        "parent_id INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)"
    )

    async def orphan() -> None:  # checked only at COMMIT: the whole group's COMMIT fails
        async with db.unit() as tx:
            await tx.execute("INSERT INTO child (parent_id) VALUES (42)")

    results = await asyncio.gather(
        write_unit(db, "c0"), orphan(), write_unit(db, "c1"), return_exceptions=True
    )
    assert all(isinstance(r, sqlite3.IntegrityError) for r in results), results
    assert await keys(db, "c%") == [] and (await db.fetchone("SELECT COUNT(*) FROM child"))[0] == 0
    assert not db.writer._conn.in_transaction
    assert await write_unit(db, "after") == "after"  # the next group goes on
    assert await keys(db, "after") == ["after"]


async def test_another_writer_commits_the_open_units_before_its_own_transaction(db):
    seen = await trace_statements(db)

    async def plain_transaction() -> None:
        async with db.transaction() as tx:
            await tx.execute(INSERT_SETTING, ("plain", "v"))

    async with db.transaction():  # holds the lock: the unit, then the plain transaction, queue
        unit = asyncio.create_task(write_unit(db, "unit"))
        await asyncio.sleep(0.01)
        plain = asyncio.create_task(plain_transaction())
        await asyncio.sleep(0.01)
    await asyncio.gather(unit, plain)
    work = [s.split()[0].upper() + (" " + s.split()[2] if s.upper().startswith("INSERT") else "")
            for s in seen if not s.upper().startswith(("SAVEPOINT", "RELEASE"))]
    # the units' transaction ends before the other writer's BEGIN: never nested, never mixed
    assert work[work.index("INSERT settings"):] == [
        "INSERT settings", "COMMIT", "BEGIN", "INSERT settings", "COMMIT"
    ]
    assert await keys(db, "%") == ["plain", "unit"]


async def test_a_savepoint_undoes_only_its_block(db):
    async with db.transaction(inline=True) as tx:
        await tx.execute(INSERT_SETTING, ("kept", "v"))
        with pytest.raises(ValueError):
            async with savepoint(tx, "inner"):
                await tx.execute(INSERT_SETTING, ("undone", "v"))
                raise ValueError("bad step")
        await tx.execute(INSERT_SETTING, ("also kept", "v"))
    assert await keys(db, "%") == ["also kept", "kept"]


async def test_units_still_waiting_for_their_commit_are_committed_at_close(tmp_path):
    path = tmp_path / "c.db"
    database = Database(path)
    await database.open()
    async with database.transaction():  # the units will wait behind it...
        units = [asyncio.create_task(write_unit(database, f"k{i}")) for i in range(3)]
        await asyncio.sleep(0.01)
    await asyncio.sleep(0)  # ...the first one begins the group
    await database.close()
    await asyncio.gather(*units, return_exceptions=True)
    async with Database(path) as reopened:
        assert await keys(reopened, "k%") == ["k0", "k1", "k2"]


async def test_commits_never_checkpoint_the_background_task_does(db):
    assert (await db.writer.execute_fetchall("PRAGMA wal_autocheckpoint"))[0][0] == 0
    checkpoints: list[str] = []
    assert db._checkpointer is not None
    await db._checkpointer._execute(db._checkpointer._conn.set_trace_callback, checkpoints.append)
    for i in range(5):
        await write_unit(db, f"w{i}")
    for _ in range(200):
        if checkpoints:
            break
        await asyncio.sleep(0.01)
    assert checkpoints == ["PRAGMA wal_checkpoint(PASSIVE)"]


async def steady_writes(path, monkeypatch, *, spacing: float, wal_limit: int = dbmod.WAL_LIMIT_PAGES) -> int:
    """2,000 rows of about a page each, in bursts of 50 units; returns the WAL file's size
    (it never shrinks: its size is the most the WAL ever held)."""
    monkeypatch.setattr(dbmod, "CHECKPOINT_SPACING_S", spacing)
    monkeypatch.setattr(dbmod, "WAL_LIMIT_PAGES", wal_limit)
    async with Database(path) as database:
        for batch in range(40):
            await asyncio.gather(*(write_unit_value(database, f"b{batch}-{i}", "x" * 4000) for i in range(50)))
            await asyncio.sleep(0.02)
        wal_bytes = (path.parent / (path.name + "-wal")).stat().st_size
        assert (await database.fetchone("SELECT COUNT(*) FROM settings WHERE key LIKE 'b%'"))[0] == 2000
    return wal_bytes


async def test_the_wal_stays_bounded_under_steady_writes(tmp_path, monkeypatch):
    # Checkpoints spaced past the end of the run: the WAL holds every page written (~9 MB).
    unchecked = await steady_writes(tmp_path / "a.db", monkeypatch, spacing=3600)
    # With them, the WAL is reused from its start once copied; past the page limit a
    # checkpoint holds the writers off, so it completes whatever the timing (measured: ~1/6).
    checked = await steady_writes(tmp_path / "b.db", monkeypatch, spacing=0.01, wal_limit=200)
    assert checked < unchecked / 3, (checked, unchecked)


async def write_unit_value(db: Database, key: str, value: str) -> None:
    async with db.unit() as tx:
        await tx.execute(INSERT_SETTING, (key, value))
