"""Leases (who leads) and outbox claims with a lease, on both backends (issue 22, phase 2)."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

import pytest

from storage import leases, outbox
from storage.db import dialect
from tests.conftest import BOTH, START, open_db

BACKENDS = BOTH


@pytest.fixture
async def db(tmp_path, database_url) -> AsyncIterator:
    database = open_db(tmp_path, database_url)
    await database.open()
    yield database
    await database.close()


async def take(db, holder: str, seconds: float) -> bool:
    async with db.transaction() as tx:
        return await leases.acquire(tx, leases.LEADER, holder, seconds)


async def test_a_lease_is_held_by_one_until_it_runs_out(db):
    assert await take(db, "a", 0.5)
    assert await take(db, "a", 0.5)  # renewed by its holder
    assert not await take(db, "b", 0.5)  # not while a's runs
    held = await leases.current(db.reader, leases.LEADER)
    assert held is not None and held.holder == "a"
    await asyncio.sleep(0.6)
    assert await leases.current(db.reader, leases.LEADER) is None
    assert await take(db, "b", 5)  # ran out: b takes it
    assert not await take(db, "a", 5)  # and a, back from a stall, does not get it back
    assert (await leases.current(db.reader, leases.LEADER)).holder == "b"


async def test_a_released_lease_is_taken_at_once_and_only_by_its_holder(db):
    assert await take(db, "a", 60)
    async with db.transaction() as tx:
        assert not await leases.release(tx, leases.LEADER, "b")  # not b's to give up
        assert await leases.release(tx, leases.LEADER, "a")
    assert await take(db, "b", 60)


async def test_renewal_keeps_since(db):
    assert await take(db, "a", 60)
    first = await leases.current(db.reader, leases.LEADER)
    await asyncio.sleep(0.01)
    assert await take(db, "a", 60)
    again = await leases.current(db.reader, leases.LEADER)
    assert again.since == first.since and again.until > first.until


async def enqueue(tx, text: str, **extra) -> int:
    return await outbox.enqueue(tx, channel="telegram", chat_id="1", contact_id=None, method="send_text",
                                payload={"text": text}, now=START, **extra)


async def test_a_claim_names_its_instance_and_runs_out_unless_renewed(db):
    async with db.transaction() as tx:
        mine, theirs, dead = [await enqueue(tx, t) for t in ("mine", "theirs", "dead")]
    async with db.transaction() as tx:
        assert await outbox.mark_sending(tx, mine, "a", 0.5)
        assert await outbox.mark_sending(tx, theirs, "b", 60)
        assert await outbox.mark_sending(tx, dead, "c", 0.5)
        assert not await outbox.mark_sending(tx, dead, "a", 60)  # claimed once only
    await asyncio.sleep(0.6)
    async with db.transaction() as tx:
        assert await outbox.renew_claims(tx, "a", 60) == 1  # a is alive (too late, but nobody took it yet)
        assert await outbox.recover_in_flight(tx, expired_only=True) == 1  # c's only
    rows = {r["id"]: (r["status"], r["claimed_by"]) for r in await db.fetchall(
        "SELECT id, status, claimed_by FROM outbox")}
    assert rows == {mine: ("sending", "a"), theirs: ("sending", "b"), dead: ("unknown", "c")}


async def test_survey_questions_of_a_dead_instance_go_again_after_their_lease(db):
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO customers (id, external_id, name, link_token, created_at, updated_at)"
                         " VALUES (1, 'C-1', 'Lan', 'tok', 'x', 'x')")
        await tx.execute("INSERT INTO purchases (id, order_id, customer_id, amount, currency, items, touchpoint,"
                         " purchased_at, fingerprint, created_at) VALUES (1, 'A-1', 1, 1, 'VND', '[]', 'delivery', 'x',"
                         " 'f', 'x')")
        await tx.execute("INSERT INTO surveys (id, purchase_id, customer_id, touchpoint, status, due_at, created_at)"
                         " VALUES (1, 1, 1, 'delivery', 'sent', 'x', 'x')")
        question = await enqueue(tx, "how was it?", priority=1, survey_id=1)
        live = await enqueue(tx, "how was it, too?", priority=1, survey_id=1)
        assert await outbox.mark_sending(tx, question, "dead", 0.3)
        assert await outbox.mark_sending(tx, live, "alive", 60)
    async with db.transaction() as tx:
        assert await outbox.requeue_in_flight(tx, expired_only=True) == 0  # not yet
    await asyncio.sleep(0.4)
    async with db.transaction() as tx:
        assert await outbox.requeue_in_flight(tx, expired_only=True) == 1
    rows = {r["id"]: r["status"] for r in await db.fetchall("SELECT id, status FROM outbox")}
    assert rows == {question: "pending", live: "sending"}


@pytest.mark.postgresql_only
async def test_a_row_being_claimed_elsewhere_is_skipped_not_waited_for(db, database_url):
    """Two instances reach for the same row: the second moves on at once (SKIP LOCKED)."""
    from storage.pg import PgDatabase

    async with db.transaction() as tx:
        row = await enqueue(tx, "one")
    other = PgDatabase(database_url)
    await other.open()
    try:
        async with db.transaction() as tx:
            assert await outbox.mark_sending(tx, row, "a", 60)  # uncommitted: the row is locked
            async with other.transaction() as tx2:
                assert not await asyncio.wait_for(outbox.mark_sending(tx2, row, "b", 60), 2)
    finally:
        await other.close()
    assert (await db.fetchone("SELECT claimed_by FROM outbox WHERE id = ?", (row,)))[0] == "a"


async def test_a_claim_and_a_sent_mark_do_not_wait_for_a_long_transaction_of_the_process(db):
    """The sender's claims and sent marks must not queue behind a write of the same process
    that holds the writer (a dispatch batch): on PostgreSQL they go beside it (write_beside);
    on SQLite, where a claim is tens of microseconds, behind it, once it commits."""
    async with db.transaction() as tx:
        first, second = await enqueue(tx, "one"), await enqueue(tx, "two")
    holding, release = asyncio.Event(), asyncio.Event()

    async def long_batch() -> None:
        async with db.transaction() as tx:
            await tx.execute("UPDATE settings SET value = value WHERE key = 'none'")
            holding.set()
            await release.wait()

    batch = asyncio.create_task(long_batch())
    await holding.wait()
    try:
        claimed = asyncio.create_task(outbox.claim(db, first, "a", 60))
        marked = asyncio.create_task(outbox.record_sent(db, [second], "m2", START))
        pg = dialect(db) == "postgresql"
        # PostgreSQL: both finish (10 s only bounds a failure); SQLite: they cannot, whatever the wait.
        done, _ = await asyncio.wait({claimed, marked}, timeout=10 if pg else 0.05)
        if pg:
            assert done == {claimed, marked}, "a claim waited for the process's open transaction"
            assert claimed.result()
        else:
            assert not done  # one writer: they wait for the batch's COMMIT
    finally:
        release.set()
        await batch
    await asyncio.wait_for(asyncio.gather(claimed, marked), 10)
    statuses = dict(await db.fetchall("SELECT id, status FROM outbox WHERE id IN (?, ?)", (first, second)))
    assert statuses == {first: "sending", second: "sent"}
