"""The database's fast paths for the inbound hot path: group commit (Database.write_grouped,
inbox.record_committed: concurrent writes share one transaction, each caller's write is
committed when it returns, a bad one fails alone), inline transactions (statements on the
event loop thread, still all-or-nothing), the UTC time text storage writes and reads, and
the JSON text it writes."""
from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from typing import AsyncIterator
from zoneinfo import ZoneInfo

import pytest

from storage import inbox
from storage.db import Database, to_json
from storage.timefmt import from_db, to_db
from tests.conftest import START

INSERT_SETTING = "INSERT INTO settings (key, value) VALUES (?, ?)"


@pytest.fixture
async def db(tmp_path) -> AsyncIterator[Database]:
    async with Database(tmp_path / "g.db") as database:
        yield database


async def trace_statements(db: Database) -> list[str]:
    """Every statement SQLite runs on the writer connection (its own trace hook)."""
    seen: list[str] = []
    raw = db.writer._conn
    await db.writer._execute(raw.set_trace_callback, seen.append)
    return seen


async def test_concurrent_updates_are_recorded_once_each_and_committed(db):
    payloads = [(str(1000 + i % 40), {"update_id": 1000 + i % 40, "copy": i // 40}) for i in range(60)]
    ids = await asyncio.gather(
        *(inbox.record_committed(db, "telegram", uid, body, START) for uid, body in payloads)
    )
    new = [i for i in ids if i is not None]
    assert len(new) == len(set(new)) == 40  # 20 redeliveries recorded nothing
    assert all(ids[i] is not None for i in range(40))  # the first copy of each wins
    rows = await db.fetchall("SELECT update_id, payload FROM inbox ORDER BY id")  # the reader sees them
    assert len(rows) == 40 and all('"copy": 0' in r["payload"] for r in rows)


async def test_writes_that_wait_for_the_lock_share_one_transaction(db):
    seen = await trace_statements(db)
    async with db.transaction() as tx:  # holds the write lock while 20 writers arrive
        writers = [asyncio.create_task(db.write_grouped(INSERT_SETTING, (f"k{i}", "v"))) for i in range(20)]
        await asyncio.sleep(0.05)
        assert not any(w.done() for w in writers)
        await tx.execute(INSERT_SETTING, ("held", "v"))
    results = await asyncio.gather(*writers)
    assert all(count == 1 for _, count in results)
    assert sum(1 for s in seen if s.strip().upper() == "COMMIT") == 2  # the holder's and ONE for the 20
    assert (await db.fetchone("SELECT COUNT(*) FROM settings WHERE key LIKE 'k%'"))[0] == 20


async def test_a_cancelled_caller_does_not_take_its_group_down(db):
    writing = threading.Event()

    def slow_insert(statement: str) -> None:  # on the database thread: the group is being written
        if statement.startswith("INSERT INTO settings") and not writing.is_set():
            writing.set()
            threading.Event().wait(0.3)

    await db.writer._execute(db.writer._conn.set_trace_callback, slow_insert)
    async with db.transaction():
        first, second, third = (
            asyncio.create_task(db.write_grouped(INSERT_SETTING, (key, "v"))) for key in ("c1", "c2", "c3")
        )
        await asyncio.sleep(0.05)
    while not writing.is_set():
        await asyncio.sleep(0.01)
    first.cancel()  # its request went away while the group is on the database thread
    assert [count for _, count in await asyncio.gather(second, third)] == [1, 1]
    assert first.cancelled()
    keys = [r[0] for r in await db.fetchall("SELECT key FROM settings WHERE key LIKE 'c%' ORDER BY key")]
    assert keys == ["c1", "c2", "c3"]  # the write it asked for still happened


async def test_a_failing_write_in_a_group_fails_only_its_caller(db):
    async with db.transaction():
        good = [asyncio.create_task(db.write_grouped(INSERT_SETTING, (f"g{i}", "v"))) for i in range(5)]
        bad = asyncio.create_task(db.write_grouped(INSERT_SETTING, ("g1", "duplicate key")))
        more = asyncio.create_task(db.write_grouped(INSERT_SETTING, ("g9", "v")))
        await asyncio.sleep(0.05)
    with pytest.raises(sqlite3.IntegrityError):
        await bad
    await asyncio.gather(*good, more)
    keys = [r[0] for r in await db.fetchall("SELECT key FROM settings WHERE key LIKE 'g%' ORDER BY key")]
    assert keys == ["g0", "g1", "g2", "g3", "g4", "g9"]
    assert (await db.fetchone("SELECT value FROM settings WHERE key = 'g1'"))[0] == "v"


async def test_time_text_round_trips_and_keeps_its_fixed_width_format():
    vn = ZoneInfo("Asia/Ho_Chi_Minh")
    cases = [
        datetime(2026, 11, 23, 9, 0, tzinfo=vn),
        datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=timezone.utc),
        datetime(2026, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc),  # UTC's own path: no microseconds either
    ]
    texts = [to_db(at) for at in cases]
    assert texts == [
        "2026-11-23T02:00:00.000000Z", "2026-01-01T00:00:00.123456Z", "2027-01-01T04:59:59.000000Z",
        "2026-03-01T08:00:00.000000Z",
    ]
    for at, text in zip(cases, texts):
        back = from_db(text)
        assert back == at and back.utcoffset() == timedelta(0)
    assert from_db(None) is None
    with pytest.raises(ValueError):
        from_db("2026-11-23 02:00:00")
    with pytest.raises(ValueError):
        to_db(datetime(2026, 11, 23, 2, 0))


async def threads_of_statements(db: Database, **kw) -> dict[str, int]:
    """The thread SQLite ran each statement of one transaction on (its trace hook runs there)."""
    seen: dict[str, int] = {}
    record = lambda sql: seen.setdefault(sql.split()[0].upper(), threading.get_ident())  # noqa: E731
    await db.writer._execute(db.writer._conn.set_trace_callback, record)
    async with db.transaction(**kw) as tx:
        await tx.execute(INSERT_SETTING, (f"t{len(kw)}", "v"))
    await db.writer._execute(db.writer._conn.set_trace_callback, None)
    return {k: v for k, v in seen.items() if k in ("BEGIN", "INSERT", "COMMIT")}


async def test_an_inline_transaction_runs_on_the_loop_thread(db):
    loop_thread = threading.get_ident()
    inline = await threads_of_statements(db, inline=True)
    assert inline == {"BEGIN": loop_thread, "INSERT": loop_thread, "COMMIT": loop_thread}
    usual = await threads_of_statements(db)  # the default: every statement on aiosqlite's thread
    assert set(usual) == {"BEGIN", "INSERT", "COMMIT"} and loop_thread not in usual.values()


async def test_an_inline_transaction_commits_all_or_nothing(db):
    async with db.transaction(inline=True) as tx:
        cur = await tx.execute(INSERT_SETTING, ("a", "1"))
        assert cur.rowcount == 1 and cur.lastrowid
        await tx.executemany(INSERT_SETTING, [("b", "2"), ("c", "3")])
        assert [tuple(r) for r in await tx.execute_fetchall("SELECT key, value FROM settings ORDER BY key")] == [
            ("a", "1"), ("b", "2"), ("c", "3")
        ]
    with pytest.raises(sqlite3.IntegrityError):
        async with db.transaction(inline=True) as tx:
            await tx.execute(INSERT_SETTING, ("d", "4"))
            await tx.execute(INSERT_SETTING, ("a", "again"))  # primary key: the whole transaction goes
    rows = await db.fetchall("SELECT key, value FROM settings ORDER BY key")  # the reader connection
    assert [tuple(r) for r in rows] == [("a", "1"), ("b", "2"), ("c", "3")]
    async with db.transaction(inline=True) as tx:  # the other ways aiosqlite offers
        async with tx.execute("SELECT key FROM settings ORDER BY key") as cur:
            assert [r[0] for r in await cur.fetchmany(2)] == ["a", "b"]
            assert (await cur.fetchone())[0] == "c"
        cur = await tx.execute("SELECT COUNT(*) FROM settings")
        assert (await cur.fetchall())[0][0] == 3
    async with db.transaction() as tx:  # the connection is usable the usual way afterwards
        await tx.execute(INSERT_SETTING, ("e", "5"))
    assert (await db.fetchone("SELECT value FROM settings WHERE key = 'e'"))[0] == "5"


async def test_an_inline_transaction_waits_for_another_process_without_stalling_the_loop(db):
    other = sqlite3.connect(db.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process (say, the CLI) is writing
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    async def write() -> None:
        async with db.transaction(inline=True) as tx:
            await tx.execute(INSERT_SETTING, ("after", "1"))

    tick_task = asyncio.create_task(ticker())
    writer = asyncio.create_task(write())
    await asyncio.sleep(0.3)
    assert not writer.done() and ticks >= 10  # waiting, on the database thread, not on the loop
    other.execute("COMMIT")
    other.close()
    await asyncio.wait_for(writer, 10)
    tick_task.cancel()
    assert (await db.fetchone("SELECT value FROM settings WHERE key = 'after'"))[0] == "1"
    assert (await db.writer.execute_fetchall("PRAGMA busy_timeout"))[0][0] == 0  # the writer's own again


@pytest.mark.parametrize("inline", [False, True])
@pytest.mark.parametrize("step", range(4))
async def test_a_transaction_cancelled_at_any_await_leaves_the_connection_usable(db, inline, step):
    """Cancelled (a shutdown) at BEGIN, inside, or at COMMIT: the statement already handed to
    the database thread still runs there, so the transaction must be rolled back or finished,
    never left open for the next caller's BEGIN ('cannot start a transaction within a
    transaction': every later write of the bot failed, seen at SIGTERM in test_faults_process)."""
    await db.writer.execute("CREATE TABLE t (x INTEGER)")

    async def write() -> None:
        async with db.transaction(inline=inline) as tx:
            await tx.execute("INSERT INTO t VALUES (1)")
            await tx.execute("INSERT INTO t VALUES (2)")

    task = asyncio.create_task(write())
    for _ in range(step):
        await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    async with db.transaction() as tx:  # the next writer
        await tx.execute("INSERT INTO t VALUES (3)")
    assert not db.writer._conn.in_transaction
    values = sorted(r[0] for r in await db.fetchall("SELECT x FROM t"))
    assert values in ([3], [1, 2, 3])  # all or nothing of the cancelled one


def test_json_text_is_what_json_dumps_writes_and_refuses_the_same():
    values = [
        {"text": "Cảm ơn bạn ⭐ \"trích\"\n", "buttons": [[{"label": "Bỏ qua", "data": "csat:1:skip"}]], "n": None},
        {"score": 5, "ratio": 0.25, "ok": True, "no": False, "big": 10**20, "neg": -3, 7: "int key"},
        [], {}, "chuỗi", 3, None, [1.5, [2, {"x": []}]],
    ]
    for value in values:
        assert to_json(value) == json.dumps(value, ensure_ascii=False)
    for bad in ({"x": object()}, {"ids": {1, 2}}, {(1, 2): "tuple key"}):
        with pytest.raises(TypeError):
            to_json(bad)


async def test_none_and_bool_parameters_bind_as_null_and_integers(db):
    # storage.db registers adapters for them (a faster path than sqlite3's fallback): the
    # stored values must be what they always were.
    async with db.transaction(inline=True) as tx:
        row = (await tx.execute_fetchall(
            "SELECT ? IS NULL, typeof(?), ?, typeof(?), ?, typeof(?)", (None, None, True, True, False, False)
        ))[0]
    assert tuple(row) == (1, "null", 1, "integer", 0, "integer")
