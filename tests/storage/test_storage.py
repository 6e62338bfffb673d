"""Storage on real SQLite files: migrations, pragmas, transactions, inbox/outbox, time format,
and writers in another process (simulated by a plain sqlite3 connection in a thread)."""
from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import AsyncIterator
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from storage import contacts, customers, inbox, outbox, purchases, settings, surveys, zalo
from storage.db import BUSY_TIMEOUT_MS, PAGE_SIZE, Database, migration_files
from storage.timefmt import from_db, to_db
from tests.conftest import BOTH, START, open_db

TABLES = {"settings", "customers", "contacts", "purchases", "surveys", "conversations", "inbox", "outbox"}
HOLD_S = 0.3


BACKENDS = BOTH  # the repositories' tests run on SQLite and on PostgreSQL


@pytest.fixture
async def db(tmp_path, database_url) -> AsyncIterator[Database]:
    database = open_db(tmp_path, database_url)
    await database.open()
    yield database
    await database.close()


async def versions(db: Database) -> list[tuple[int, str]]:
    return [(r["version"], r["name"]) for r in await db.fetchall("SELECT version, name FROM schema_migrations ORDER BY version")]


def expected_versions() -> list[tuple[int, str]]:
    return [(version, name) for version, name, _ in migration_files()]


# --- migrations ------------------------------------------------------------------------

async def test_migrations_create_every_table_and_run_once(tmp_path):
    path = tmp_path / "feedbot.db"
    db = Database(path)
    await db.open(migrate=False)
    try:
        assert await db.migrate() == [name for _, name in expected_versions()]
        tables = {r["name"] for r in await db.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert TABLES | {"schema_migrations"} <= tables
        assert await db.migrate() == []
    finally:
        await db.close()

    # Opening again (a restart) applies nothing new and records nothing twice.
    async with Database(path) as again:
        assert await again.migrate() == []
        assert await versions(again) == expected_versions()
        counts = await again.fetchall("SELECT version, COUNT(*) AS n FROM schema_migrations GROUP BY version")
        assert all(r["n"] == 1 for r in counts)


async def test_two_processes_migrating_a_fresh_file_at_once_both_start(tmp_path):
    # `feedbot db migrate` run while the bot starts: both read "nothing applied" before
    # either has written. The loser must see the other's work, not fail on CREATE TABLE.
    path = tmp_path / "feedbot.db"
    first, second = Database(path), Database(path)
    await first.open(migrate=False)
    await second.open(migrate=False)
    try:
        real = second.applied_versions
        calls = 0

        async def stale_read() -> list[int]:
            nonlocal calls
            calls += 1
            return [] if calls == 1 else await real()  # what it read before `first` committed

        second.applied_versions = stale_read  # type: ignore[method-assign]
        assert await first.migrate() == [name for _, name in expected_versions()]
        assert await second.migrate() == []
        assert await versions(first) == expected_versions()
    finally:
        await first.close()
        await second.close()


async def test_concurrent_opens_of_a_fresh_file(tmp_path):
    for i in range(5):
        dbs = [Database(tmp_path / f"race{i}.db") for _ in range(2)]
        results = await asyncio.gather(*(d.open() for d in dbs), return_exceptions=True)
        try:
            assert [r for r in results if isinstance(r, BaseException)] == []
            assert await versions(dbs[0]) == expected_versions()
        finally:
            for d in dbs:
                await d.close()


async def test_opening_waits_for_another_process_writing_a_fresh_file(tmp_path):
    # Switching to WAL needs an exclusive lock; SQLite refuses it at once (no busy_timeout
    # wait) while another connection holds the write lock of a file still in rollback mode.
    path = str(tmp_path / "feedbot.db")
    locked, release = threading.Event(), threading.Event()

    def other() -> None:
        conn = other_process(path)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("CREATE TABLE other_tool (x)")
            locked.set()
            release.wait(5)
            conn.execute("COMMIT")
        finally:
            conn.close()

    thread = threading.Thread(target=other)
    thread.start()
    await asyncio.to_thread(locked.wait, 5)
    threading.Timer(HOLD_S, release.set).start()
    started = time.monotonic()
    db = Database(path)
    try:
        await db.open()
        assert time.monotonic() - started >= HOLD_S * 0.8
        async with db.reader.execute("PRAGMA journal_mode") as cur:
            assert (await cur.fetchone())[0] == "wal"
        assert await versions(db) == expected_versions()
    finally:
        await db.close()
        await asyncio.to_thread(thread.join, 5)


# --- connection settings ---------------------------------------------------------------

@pytest.mark.sqlite_only
async def test_wal_and_busy_timeout_on_both_connections(db):
    assert db.reader is not db.writer
    # The writer waits for another process's write lock at BEGIN only, turning its timeout on
    # for that statement (test_our_transaction_waits_for_another_writer); the reader always.
    for conn, busy_timeout in ((db.writer, 0), (db.reader, BUSY_TIMEOUT_MS)):
        async with conn.execute("PRAGMA journal_mode") as cur:
            assert (await cur.fetchone())[0] == "wal"
        async with conn.execute("PRAGMA busy_timeout") as cur:
            assert (await cur.fetchone())[0] == busy_timeout
        async with conn.execute("PRAGMA foreign_keys") as cur:
            assert (await cur.fetchone())[0] == 1
    assert BUSY_TIMEOUT_MS >= 1000


async def test_a_new_file_gets_small_pages_and_an_existing_one_keeps_its_own(tmp_path):
    async with Database(tmp_path / "new.db") as db:
        assert (await db.fetchone("PRAGMA page_size"))[0] == PAGE_SIZE == 1024
    old = tmp_path / "old.db"  # made by an earlier version, with SQLite's default pages
    with sqlite3.connect(old) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE kept (x INTEGER)")
        conn.execute("INSERT INTO kept VALUES (1)")
    conn.close()
    async with Database(old) as db:
        assert (await db.fetchone("PRAGMA page_size"))[0] == 4096
        assert (await db.fetchone("SELECT x FROM kept"))[0] == 1
        assert "surveys" in {r[0] for r in await db.fetchall("SELECT name FROM sqlite_master")}


# --- transactions ----------------------------------------------------------------------

class Boom(Exception):
    pass


async def test_a_failing_transaction_writes_nothing_and_the_connection_stays_usable(db):
    with pytest.raises(Boom):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO settings (key, value) VALUES ('a', '1')")
            await tx.execute("INSERT INTO settings (key, value) VALUES ('b', '2')")
            raise Boom()
    assert not db.writer.in_transaction
    assert await db.fetchall("SELECT * FROM settings") == []

    async with db.transaction() as tx:
        await tx.execute("INSERT INTO settings (key, value) VALUES ('a', 'after')")
    assert [tuple(r) for r in await db.fetchall("SELECT key, value FROM settings")] == [("a", "after")]


async def test_a_failing_statement_rolls_back_the_earlier_ones(db):
    with pytest.raises((sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO settings (key, value) VALUES ('a', '1')")
            await tx.execute("INSERT INTO settings (key, value) VALUES ('a', '2')")  # duplicate key
    assert await db.fetchall("SELECT * FROM settings") == []
    async with db.transaction() as tx:
        assert await settings.get_or_create(tx, "a", lambda: "3") == "3"


async def test_a_cancelled_transaction_rolls_back_and_releases_the_lock(db):
    entered = asyncio.Event()

    async def slow_writer() -> None:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO settings (key, value) VALUES ('half', 'done')")
            entered.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(slow_writer())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with asyncio.timeout(2):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO settings (key, value) VALUES ('next', 'ok')")
    assert [r["key"] for r in await db.fetchall("SELECT key FROM settings")] == ["next"]


async def test_reader_sees_the_last_commit_while_a_write_is_open(db):
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO settings (key, value) VALUES ('k', 'v1')")
    async with db.transaction() as tx:
        await tx.execute("UPDATE settings SET value = 'v2' WHERE key = 'k'")
        async with asyncio.timeout(1):  # WAL: the reader is not blocked by the writer
            assert (await db.fetchone("SELECT value FROM settings"))["value"] == "v1"
    assert (await db.fetchone("SELECT value FROM settings"))["value"] == "v2"


async def test_twenty_concurrent_transactions_lose_no_update(db):
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO settings (key, value) VALUES ('counter', '0')")

    async def increment() -> None:
        async with db.transaction() as tx:
            value = await settings.get(tx, "counter")
            await asyncio.sleep(0)  # let the other tasks run between the read and the write
            await tx.execute("UPDATE settings SET value = ? WHERE key = 'counter'", (str(int(value) + 1),))

    await asyncio.gather(*(increment() for _ in range(20)))
    assert (await db.fetchone("SELECT value FROM settings WHERE key = 'counter'"))["value"] == "20"


# --- another process on the same file --------------------------------------------------

def other_process(path: str) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=5, isolation_level=None, check_same_thread=False)


@pytest.mark.sqlite_only
async def test_another_writer_waits_for_our_transaction(db):
    done: dict[str, object] = {}

    def write() -> None:
        conn = other_process(db.path)
        try:
            conn.execute("INSERT INTO settings (key, value) VALUES ('other', 'x')")
            done["at"] = time.monotonic()
        except Exception as exc:  # pragma: no cover - what the test must not see
            done["error"] = exc
        finally:
            conn.close()

    async with db.transaction() as tx:
        await tx.execute("INSERT INTO settings (key, value) VALUES ('ours', 'y')")
        thread = threading.Thread(target=write)
        thread.start()
        await asyncio.sleep(HOLD_S)
        assert "at" not in done and "error" not in done  # still waiting for our lock
        committed_at = time.monotonic()
    await asyncio.to_thread(thread.join, 5)
    assert "error" not in done, done
    assert done["at"] >= committed_at
    keys = sorted(r["key"] for r in await db.fetchall("SELECT key FROM settings"))
    assert keys == ["other", "ours"]


@pytest.mark.sqlite_only
async def test_our_transaction_waits_for_another_writer(db):
    # busy_timeout at work: without it BEGIN IMMEDIATE fails at once with "database is locked".
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        conn = other_process(db.path)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO settings (key, value) VALUES ('other', 'x')")
            locked.set()
            release.wait(5)
            conn.execute("COMMIT")
        finally:
            conn.close()

    thread = threading.Thread(target=hold_lock)
    thread.start()
    await asyncio.to_thread(locked.wait, 5)
    threading.Timer(HOLD_S, release.set).start()
    started = time.monotonic()
    async with db.transaction() as tx:
        waited = time.monotonic() - started
        await tx.execute("INSERT INTO settings (key, value) VALUES ('ours', 'y')")
    await asyncio.to_thread(thread.join, 5)
    assert waited >= HOLD_S * 0.8
    keys = sorted(r["key"] for r in await db.fetchall("SELECT key FROM settings"))
    assert keys == ["other", "ours"]


# --- inbox -----------------------------------------------------------------------------

async def test_inbox_records_an_update_once_per_platform(db):
    now = START
    async with db.transaction() as tx:
        first = await inbox.record(tx, "telegram", "1001", {"update_id": 1001, "n": 1}, now)
        again = await inbox.record(tx, "telegram", "1001", {"update_id": 1001, "n": 2}, now)
        other = await inbox.record(tx, "zalo", "1001", {"event": "user_send_text"}, now)
    assert isinstance(first, int) and isinstance(other, int) and first != other
    assert again is None
    rows = await db.fetchall("SELECT platform, update_id, payload FROM inbox ORDER BY id")
    assert [(r["platform"], r["update_id"]) for r in rows] == [("telegram", "1001"), ("zalo", "1001")]
    assert '"n": 1' in rows[0]["payload"]  # the redelivery did not overwrite the first copy
    async with db.transaction() as tx:
        assert [item.id for item in await inbox.unprocessed(tx)] == [first, other]


async def test_a_zalo_users_last_message_is_read_from_the_inbox(db):
    # What a Zalo reply names (recipient.message_id): the user's own last message, not a
    # follow (no msg_id) nor another user's.
    async with db.transaction() as tx:
        lan = await contacts.upsert_seen(tx, channel="zalo", platform_user_id="517001", chat_id="517001",
                                         display_name="Lan", language="vi", now=START)
        other = await contacts.upsert_seen(tx, channel="zalo", platform_user_id="517002", chat_id="517002",
                                           display_name="Minh", language="vi", now=START)
        assert await zalo.last_message(tx, "517001") is None
        for update_id, contact, at in [("user_send_text:m-1", lan, START),
                                       ("user_send_sticker:m-2", lan, START + timedelta(minutes=1)),
                                       ("h:0123abcd", lan, START + timedelta(minutes=2)),  # a follow: no msg_id
                                       ("user_send_text:m-3", other, START + timedelta(minutes=3))]:
            row = await inbox.record(tx, "zalo", update_id, {}, at)
            await inbox.mark_processed(tx, row, at, contact_id=contact.id, kind="text")
        assert await zalo.last_message(tx, "517001") == ("m-2", START + timedelta(minutes=1))
        assert await zalo.last_message(tx, "517002") == ("m-3", START + timedelta(minutes=3))
        assert await zalo.last_message(tx, "517003") is None


# --- outbox ----------------------------------------------------------------------------

async def enqueue(tx, text: str, priority: int) -> int:
    return await outbox.enqueue(
        tx, channel="telegram", chat_id="1", contact_id=None, method="send_text",
        payload={"text": text}, now=START, priority=priority,
    )


async def test_survey_questions_in_flight_at_a_crash_are_sent_again(db):
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO customers (id, external_id, name, link_token, created_at, updated_at)"
            " VALUES (1, 'C-1', 'Lan', 'tok', 'x', 'x')"
        )
        await tx.execute(
            "INSERT INTO purchases (id, order_id, customer_id, amount, currency, items, touchpoint, purchased_at,"
            " fingerprint, created_at) VALUES (1, 'A-1', 1, 1, 'VND', '[]', 'delivery', 'x', 'f', 'x')"
        )
        await tx.execute(
            "INSERT INTO surveys (id, purchase_id, customer_id, touchpoint, status, due_at, created_at)"
            " VALUES (1, 1, 1, 'delivery', 'sent', 'x', 'x')"
        )
        question = await outbox.enqueue(
            tx, channel="telegram", chat_id="1", contact_id=None, method="send_text",
            payload={"text": "how was it?"}, now=START, priority=1, survey_id=1,
        )
        reply = await outbox.enqueue(
            tx, channel="telegram", chat_id="1", contact_id=None, method="send_text",
            payload={"text": "thanks"}, now=START, priority=0, survey_id=1,
        )
        for row_id in (question, reply):
            assert await outbox.mark_sending(tx, row_id)
        assert await outbox.requeue_in_flight(tx) == 1
        assert await outbox.recover_in_flight(tx) == 1
    rows = {r["id"]: r["status"] for r in await db.fetchall("SELECT id, status FROM outbox")}
    assert rows == {question: "pending", reply: "unknown"}


async def test_recover_in_flight_marks_sending_rows_unknown(db):
    async with db.transaction() as tx:
        in_flight = await enqueue(tx, "in flight", 0)
        delivered = await enqueue(tx, "delivered", 0)
        waiting = await enqueue(tx, "waiting", 0)
        assert await outbox.mark_sending(tx, in_flight)
        assert await outbox.mark_sending(tx, delivered)
        assert not await outbox.mark_sending(tx, delivered)  # claimed once only
        await tx.execute("UPDATE outbox SET status = 'sent' WHERE id = ?", (delivered,))
        assert await outbox.recover_in_flight(tx) == 1
        assert await outbox.recover_in_flight(tx) == 0
    rows = {r["id"]: r for r in await db.fetchall("SELECT id, status, last_error FROM outbox")}
    assert rows[in_flight]["status"] == "unknown" and "in flight" in rows[in_flight]["last_error"]
    assert rows[delivered]["status"] == "sent" and rows[waiting]["status"] == "pending"
    async with db.transaction() as tx:
        assert [i.id for i in await outbox.ready(tx, START, 10)] == [waiting]  # never resent


async def test_ready_puts_interactive_first_and_waits_for_retry_times(db):
    now = START
    async with db.transaction() as tx:
        bulk_1 = await enqueue(tx, "survey 1", 1)
        chat_1 = await enqueue(tx, "answer 1", 0)
        retry_later = await enqueue(tx, "answer 2 (retry)", 0)
        bulk_retry_due = await enqueue(tx, "survey 2 (retry)", 1)
        chat_2 = await enqueue(tx, "answer 3", 0)
        for item, at in ((retry_later, now + timedelta(minutes=5)), (bulk_retry_due, now - timedelta(seconds=1))):
            assert await outbox.mark_sending(tx, item)
            await tx.execute(  # what a retry after a 5xx leaves behind
                "UPDATE outbox SET status = 'pending', next_attempt_at = ? WHERE id = ?", (to_db(at), item)
            )

        assert [i.id for i in await outbox.ready(tx, now, 10)] == [chat_1, chat_2, bulk_1, bulk_retry_due]
        assert [i.id for i in await outbox.ready(tx, now, 2)] == [chat_1, chat_2]
        later = await outbox.ready(tx, now + timedelta(minutes=5), 10)
        assert [i.id for i in later] == [chat_1, retry_later, chat_2, bulk_1, bulk_retry_due]
        assert later[1].payload == {"text": "answer 2 (retry)"} and later[1].attempts == 1
        assert await outbox.next_retry_at(tx) == to_db(now - timedelta(seconds=1))


# --- hot-path queries ------------------------------------------------------------------

async def vm_steps(db: Database, query) -> int:
    """SQLite virtual machine instructions a query takes (its progress handler): a measure of
    the rows it reads that does not depend on the machine's speed."""
    steps = 0

    def tick() -> int:
        nonlocal steps
        steps += 1
        return 0

    raw = db.writer._conn
    async with db.transaction(inline=True) as tx:
        raw.set_progress_handler(tick, 1)
        try:
            await query(tx)
        finally:
            raw.set_progress_handler(None, 1)
    return steps


async def add_customers_awaiting_a_chat(db: Database, first: int, n: int) -> list[int]:
    """n customers, each with a purchase whose survey waits for the customer to link a chat."""
    ids = []
    async with db.transaction() as tx:
        for i in range(first, first + n):
            customer = await customers.upsert(
                tx, external_id=f"C-{i}", name=f"Khách {i}", phone=None, telegram_user_id=None, now=START
            )
            purchase_id = await purchases.insert(
                tx, order_id=f"O-{i}", customer_id=customer.id, amount=Decimal(100000), currency="VND", items=[],
                store=None, touchpoint="online", purchased_at=START, fingerprint=f"f{i}", now=START,
            )
            await surveys.insert(
                tx, purchase_id=purchase_id, customer_id=customer.id, touchpoint="online", store=None,
                due_at=START, status="awaiting_contact", skip_reason=None, now=START,
            )
            ids.append(customer.id)
    return ids


@pytest.mark.sqlite_only
async def test_a_customers_open_surveys_are_found_without_reading_other_customers(db):
    """open_for_customer runs on every /start: its work must not grow with the surveys other
    customers have waiting for a chat (thousands, in a shop whose customers rarely link one)."""
    [first] = await add_customers_awaiting_a_chat(db, 0, 1)
    later = START + timedelta(days=1)

    async def open_surveys(tx):
        assert len(await surveys.open_for_customer(tx, first, later)) == 1

    alone = await vm_steps(db, open_surveys)
    await add_customers_awaiting_a_chat(db, 1, 400)
    assert await vm_steps(db, open_surveys) < alone * 1.5  # by the customer's index: the same few rows


@pytest.mark.sqlite_only
async def test_lookups_of_one_chats_messages_read_only_that_chats_rows(db):
    """By a sent message's platform id (an agent replying to a ticket card) and the last text
    queued for a Zalo chat (its numbered choices): not a walk over the whole outbox."""
    from storage import tickets, zalo

    async def queue(chat: str, n: int, channel: str = "telegram") -> None:
        async with db.transaction() as tx:
            for i in range(n):
                row = await outbox.enqueue(tx, channel=channel, chat_id=chat, contact_id=None, method="send_text",
                                           payload={"text": f"{chat} {i}", "buttons": []}, now=START)
                await outbox.mark_sent(tx, [row], f"{chat}-m{i}", START)

    await queue("zalo-1", 1, channel="zalo")
    await queue("-100", 1)

    async def lookups(tx) -> None:
        assert (await zalo.last_buttons(tx, "zalo-1"))[1] == "zalo-1-m0"
        assert await tickets.by_agent_message(tx, "-100", "-100-m0") is None  # a message, no ticket

    alone = await vm_steps(db, lookups)
    for chat in range(20):
        await queue(f"chat-{chat}", 10)
        await queue(f"zalo-chat-{chat}", 10, channel="zalo")
    assert await vm_steps(db, lookups) < alone * 1.5


@pytest.mark.sqlite_only
async def test_the_messages_that_may_ride_along_are_found_without_walking_the_backlog(db):
    """At every send of an agent's message: the pending rows of that chat with its key, not
    every pending row (a drain of thousands of surveys may be waiting)."""
    async def queue(n: int, chat: str, key: str | None) -> list[int]:
        async with db.transaction() as tx:
            return [await outbox.enqueue(tx, channel="telegram", chat_id=chat, contact_id=None, method="send_text",
                                         payload={"text": f"{chat} {i}", "buttons": []}, now=START, coalesce_key=key)
                    for i in range(n)]

    first, second = await queue(2, "-100", "ticket:1")
    item = outbox.OutboxItem(first, "telegram", "-100", "send_text", {"text": "-100 0"}, 0, None, None, "ticket:1")

    async def ride_along(tx) -> None:
        assert [o.id for o in await outbox.take_coalescable(tx, item, 3500)] == [second]

    async def steps() -> int:
        try:
            return await vm_steps(db, ride_along)
        finally:
            async with db.transaction() as tx:  # undo the take: the next measure finds it again
                await tx.execute("UPDATE outbox SET status = 'pending' WHERE id = ?", (second,))

    alone = await steps()
    for chat in range(40):
        await queue(10, f"chat-{chat}", None)  # surveys waiting to go out
    assert await steps() < alone * 1.5


# --- timestamps ------------------------------------------------------------------------

def test_timestamps_round_trip_as_utc():
    local = datetime(2026, 11, 23, 9, 30, 15, 123456, tzinfo=START.tzinfo)
    stored = to_db(local)
    assert stored == "2026-11-23T02:30:15.123456Z"
    back = from_db(stored)
    assert back == local and back.tzinfo == timezone.utc
    assert from_db(None) is None


def test_string_order_is_time_order_across_offsets():
    times = [
        datetime(2026, 11, 23, 8, 0, tzinfo=timezone(timedelta(hours=7))),  # 01:00 UTC
        datetime(2026, 11, 23, 1, 0, 0, 1, tzinfo=timezone.utc),
        datetime(2026, 11, 22, 21, 0, tzinfo=timezone(timedelta(hours=-5))),  # 02:00 UTC
    ]
    stored = [to_db(t) for t in times]
    assert sorted(stored) == stored
    assert len({len(s) for s in stored}) == 1


def test_the_repeated_hour_of_a_dst_zone_is_stored_as_its_own_instant():
    # 01:30 in New York on 2026-11-01 happens twice (EDT, then EST): equal as Python
    # datetimes of one tzinfo (fold is ignored), an hour apart as instants.
    new_york = ZoneInfo("America/New_York")
    first = datetime(2026, 11, 1, 1, 30, tzinfo=new_york)
    second = datetime(2026, 11, 1, 6, 30, tzinfo=timezone.utc).astimezone(new_york)
    assert second.fold == 1 and first == second  # what a cache keyed by the datetime would confuse
    assert to_db(first) == "2026-11-01T05:30:00.000000Z"
    assert to_db(second) == "2026-11-01T06:30:00.000000Z"
    assert to_db(first) < to_db(second)


def test_naive_datetime_is_refused():
    with pytest.raises(ValueError, match="naive"):
        to_db(datetime(2026, 11, 23, 9, 0))


async def test_timestamps_round_trip_through_the_database(db):
    at = datetime(2026, 2, 28, 23, 59, 59, 999999, tzinfo=START.tzinfo)
    async with db.transaction() as tx:
        await inbox.record(tx, "telegram", "1", {}, at)
    row = await db.fetchone("SELECT received_at FROM inbox")
    assert from_db(row["received_at"]) == at
