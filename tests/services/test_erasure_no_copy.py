"""Issue 19 item 5: after an erasure (chat /forget, `feedbot customer erase`, the retention
purge) no file of the database (main file, -wal, -shm) keeps a copy of the erased text, even
while other writes go on and a reader holds an old snapshot; on the real app and real SQLite.
Issue 18's review: the body a sales system sent in a delivery that failed is erased with its
customer, on SQLite and on PostgreSQL."""
from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
import dataclasses
from typing import AsyncIterator

import aiosqlite
import pytest

from bot.sources.settings import parse_sources
from storage.db import Database
from testkit import orders as kit
from tests.conftest import BOTH, make_config
from tests.sources.conftest import SECRETS as SOURCE_SECRETS, OrdersHarness, sources
from tests.e2e.test_complaints import CUSTOMER
from tests.services.test_privacy import SECRETS, build_history, buttons, desk, file_bytes  # noqa: F401 - the fixture
from tests.channels.web.test_server import Visitor, web  # noqa: F401 - the fixture
from tests.channels.zalo.test_channel import USER, next_message, post_zalo_purchase, say, tap, zfake, zh  # noqa: F401 - fixtures

BACKENDS = BOTH  # the order deliveries' test; the others read SQLite's own files (sqlite_only)
OTHERS = range(700_001, 700_013)  # other chats that keep writing meanwhile


def database_files(db: Database) -> bytes:
    """Every file of the database as it lies on disk now (no checkpoint first)."""
    path = Path(db.path)
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
                    if p.exists())


@contextlib.asynccontextmanager
async def burst(h) -> AsyncIterator[list[int]]:
    """Other chats writing all the time, and a reader that holds a snapshot now and then."""
    done = asyncio.Event()
    written = [0]

    async def writers() -> None:
        n = 0
        while not done.is_set():
            n += 1
            update = h.tg.make_message_update(OTHERS[n % len(OTHERS)], f"tin nhắn khác số {n}")
            await asyncio.gather(*(h.app.engine.receive("telegram", dict(update, update_id=update["update_id"] * 100 + i))
                                   for i in range(4)))
            written[0] += 4

    async def reader() -> None:
        while not done.is_set():
            async with h.app.db.reader.execute("SELECT name FROM sqlite_master") as cur:
                await cur.fetchone()  # the read transaction (an old snapshot) stays open meanwhile
                await asyncio.sleep(0.3)
            await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(writers()), asyncio.create_task(reader())]
    await asyncio.sleep(0.3)
    try:
        yield written
        await asyncio.sleep(0.3)  # and a while after
    finally:
        done.set()
        await asyncio.gather(*tasks)


@pytest.mark.sqlite_only
async def test_chat_forget_leaves_no_copy_in_any_database_file_during_a_burst(desk):
    h = desk
    await build_history(h)
    assert [s for s in SECRETS if s.encode() not in database_files(h.app.db)] == []  # the check below can fail
    count = len(h.tg.sent_messages(CUSTOMER))
    await h.customer_says(CUSTOMER, "/forget")
    ask = (await h.tg.wait_for_messages(CUSTOMER, count + 1))[-1]
    confirm = h.tg.make_callback_update(CUSTOMER, buttons(ask)[0]["callback_data"], ask.message_id)
    async with burst(h) as written:
        await h.app.engine.receive("telegram", confirm)  # as the webhook or long polling hands it over
        after = database_files(h.app.db)
    assert (await h.rows("SELECT COUNT(*) AS n FROM customers WHERE erased_at IS NOT NULL"))[0]["n"] == 1
    assert written[0] > 20
    assert [s for s in SECRETS if s.encode() in after] == []
    assert [s for s in SECRETS if s.encode() in database_files(h.app.db)] == []
    assert "tin nhắn khác".encode() in database_files(h.app.db) + b"".join(
        r["text"].encode() for r in await h.rows("SELECT text FROM inbox WHERE text IS NOT NULL"))


@pytest.mark.sqlite_only
async def test_cli_erase_and_purge_leave_no_copy_during_a_burst(desk):
    h = desk
    await build_history(h)
    assert [s for s in SECRETS if s.encode() not in database_files(h.app.db)] == []
    async with burst(h):
        assert (await h.app.privacy.erase("C-42"))["customers"] == 1
        after_erase = database_files(h.app.db)
        await h.app.privacy.purge()
        after_purge = database_files(h.app.db)
    assert [s for s in SECRETS if s.encode() in after_erase] == []
    assert [s for s in SECRETS if s.encode() in after_purge] == []


async def test_checkpoint_waits_for_a_reader_holding_an_old_snapshot(tmp_path):
    async with Database(tmp_path / "x.db") as db:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO settings (key, value) VALUES ('k', ?)", ("SECRET-VALUE-1" * 50,))
        async with db.reader.execute("SELECT name FROM sqlite_master") as cur:
            await cur.fetchone()  # a snapshot that still reads the WAL
            async with db.transaction() as tx:
                await tx.execute("UPDATE settings SET value = 'x' WHERE key = 'k'")
            checkpoint = asyncio.create_task(db.checkpoint())
            await asyncio.sleep(0.5)
            assert not checkpoint.done()  # it cannot truncate under the reader: it waits and tries again
        assert await checkpoint is True
        assert b"SECRET-VALUE-1" not in database_files(db)


@contextlib.asynccontextmanager
async def api_burst(h) -> AsyncIterator[None]:
    """Purchases posted all the time meanwhile (the shop's system), and a reader's old snapshot."""
    done = asyncio.Event()

    async def writers() -> None:
        n = 0
        while not done.is_set():
            n += 1
            await asyncio.gather(*(h.post_purchase(f"BURST-{n}-{i}", customer={"external_id": f"B-{n}-{i}", "name": "Khách khác"})
                                   for i in range(3)))

    async def reader() -> None:
        # Its own connection, like another process reading the file (`feedbot export`): a
        # cursor held open on the bot's shared reader would freeze the sender's snapshot too,
        # which the bot itself never does (its reads on that connection finish at once).
        async with aiosqlite.connect(h.app.db.path) as conn:
            while not done.is_set():
                async with conn.execute("SELECT name FROM sqlite_master") as cur:
                    await cur.fetchone()
                    await asyncio.sleep(0.3)
                await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(writers()), asyncio.create_task(reader())]
    await asyncio.sleep(0.3)
    try:
        yield
    finally:
        done.set()
        await asyncio.gather(*tasks)


WEB_SECRET = "Số nhà tôi là 12 ngõ Trúc Lạc, Ba Đình, gọi 0912 345 678"


@pytest.mark.sqlite_only
async def test_web_chat_forget_leaves_no_copy_during_a_burst(web):
    v = await Visitor.connect(web)
    await v.message("Xin chào")
    for n in range(3):
        await v.say(f"{WEB_SECRET} ({n})")
    assert WEB_SECRET.encode() in database_files(web.app.db)
    await v.say("/forget")
    ask = await v.message("xoá toàn bộ dữ liệu")
    async with api_burst(web):
        assert (await v.tap(ask, "Xoá dữ liệu"))["type"] == "accepted"  # answered once the erasure is done
        after = database_files(web.app.db)
    assert WEB_SECRET.encode() not in after
    assert WEB_SECRET.encode() not in database_files(web.app.db)


@pytest.mark.sqlite_only
async def test_zalo_forget_leaves_no_copy_during_a_burst(zh, zfake):
    await post_zalo_purchase(zh, zalo_user_id=USER, phone="+84 912 345 678")
    for n in range(3):
        await say(zh, zfake, f"{WEB_SECRET} ({n})")
    assert WEB_SECRET.encode() in database_files(zh.app.db)
    await say(zh, zfake, "/forget")
    ask = await next_message(zfake)
    while not any(b["title"].startswith("Xoá dữ liệu") for b in ask.buttons or ()):
        ask = await next_message(zfake)
    async with api_burst(zh):
        await tap(zh, zfake, ask, "Xoá dữ liệu")
        await zh.app.zalo_webhook.drain()
        after = database_files(zh.app.db)
    assert WEB_SECRET.encode() not in after
    await zh.outbox_settled()
    await zh.app.privacy.purge()  # the goodbye went to the chat id: the purge drops it once sent
    assert USER.encode() not in database_files(zh.app.db)


# --- failed order deliveries (issue 18's review) ----------------------------------------------

ADDRESS = "Số 7 ngõ 12 phố Trúc Khê, Đống Đa"  # only in the failed delivery's body
OTHER_ADDRESS = "Số 99 đường Lê Văn Sỹ, Quận 3"  # another person's failed delivery


@pytest.fixture
async def orders_app(tmp_path, clock, database_url) -> AsyncIterator[OrdersHarness]:
    config = make_config(tmp_path, None, database_url=database_url)
    h = OrdersHarness(dataclasses.replace(config, sources=parse_sources(sources())), None, clock)
    await h.start()
    yield h
    await h.close()


async def deliver(h: OrdersHarness, body: dict, delivery_id: str) -> None:
    headers, raw = kit.signed("haravan", SOURCE_SECRETS["haravan"], body, topic="orders/paid", delivery_id=delivery_id)
    status, text = await h.deliver("haravan", headers, raw)
    assert status == 200, text


async def test_erasing_a_customer_scrubs_the_bodies_of_their_failed_order_deliveries(orders_app):
    h = orders_app
    await deliver(h, kit.haravan_order(), "d-1")  # her order: customer haravan:1002345, phone 0909090909
    # Her next order fails (no order id), with her phone written another way and her address:
    # its body is kept for a look until the retention purge.
    broken = kit.haravan_order(phone="090 909 0909") | {"id": None, "note": f"Giao tới {ADDRESS}"}
    await deliver(h, broken, "d-2")
    # Found by her customer number alone (no phone in it), and by her phone inside a note.
    by_number = kit.haravan_order(name="#100812", phone=None) | {"id": None, "note": ADDRESS + " (2)"}
    await deliver(h, by_number, "d-3")
    by_note = kit.haravan_order(name="#100813", phone=None) | {"id": None, "customer": {"first_name": "Khách"},
                                                "note": f"{ADDRESS} (3), gọi +84 90 909 0909"}
    await deliver(h, by_note, "d-4")
    # Someone else's failed delivery stays until the purge.
    other = kit.haravan_order(name="#200900", phone="0988111222") | {"id": None, "customer": {"id": 777, "first_name": "Bình"},
                                                      "billing_address": {"name": "Bình", "phone": "0988111222"},
                                                      "note": OTHER_ADDRESS}
    await deliver(h, other, "d-5")
    deliveries = await h.rows("SELECT delivery_id, status, body FROM order_deliveries ORDER BY id")
    assert [(d["delivery_id"], d["status"], d["body"] is None) for d in deliveries] == [
        ("d-1", "done", True), ("d-2", "failed", False), ("d-3", "failed", False), ("d-4", "failed", False),
        ("d-5", "failed", False)]
    secrets = [ADDRESS.encode(), "090 909 0909".encode(), "+84 90 909 0909".encode()]
    before = await file_bytes(h)
    assert [s for s in secrets if s not in before] == []  # the check below can fail

    exported = (await h.app.privacy.export("haravan:1002345"))["tables"]["order_deliveries"]
    assert [d["delivery_id"] for d in exported] == ["d-2", "d-3", "d-4"]
    counts = await h.app.privacy.erase("haravan:1002345")
    assert counts["order_deliveries"] == 3 and counts["customers"] == 1
    after = await file_bytes(h)
    assert [s for s in secrets if s in after] == []
    assert OTHER_ADDRESS.encode() in after  # not hers: kept for the purge
    kept = await h.rows("SELECT delivery_id, status, outcome FROM order_deliveries WHERE body IS NOT NULL")
    assert [d["delivery_id"] for d in kept] == ["d-5"]
    assert all(d["status"] for d in await h.rows("SELECT status FROM order_deliveries"))  # the counts stay


async def test_a_customers_export_has_no_failed_delivery_of_a_namesake(orders_app):
    """Names repeat (Trần Minh, Nguyễn Thị Lan): a failed delivery that shares only the name,
    not the phone nor the sales system's customer or order numbers, is someone else's."""
    h = orders_app
    await deliver(h, kit.haravan_order(), "d-1")  # her order: customer haravan:1002345, "Trần Minh", 0909090909
    hers = kit.haravan_order(phone="090 909 0909") | {"id": None, "note": f"Giao tới {ADDRESS}"}
    await deliver(h, hers, "d-2")
    namesake = kit.haravan_order(name="#300100", phone="0977000111") | {
        "id": None, "customer": {"id": 888, "first_name": "Minh", "last_name": "Trần Hoàng", "phone": "0977000111"},
        "billing_address": {"name": "Trần Minh", "phone": "0977000111"}, "note": OTHER_ADDRESS}
    await deliver(h, namesake, "d-3")
    assert [d["status"] for d in await h.rows("SELECT status FROM order_deliveries ORDER BY id")] == [
        "done", "failed", "failed"]

    exported = (await h.app.privacy.export("haravan:1002345"))["tables"]["order_deliveries"]
    assert [d["delivery_id"] for d in exported] == ["d-2"]
    assert OTHER_ADDRESS not in str(exported)
