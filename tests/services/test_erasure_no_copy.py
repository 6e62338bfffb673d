"""Issue 19 item 5: after an erasure (chat /forget, `feedbot customer erase`, the retention
purge) no file of the database (main file, -wal, -shm) keeps a copy of the erased text, even
while other writes go on and a reader holds an old snapshot; on the real app and real SQLite."""
from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import AsyncIterator

import aiosqlite

from storage.db import Database
from tests.e2e.test_complaints import CUSTOMER
from tests.services.test_privacy import SECRETS, build_history, buttons, desk  # noqa: F401 - the fixture
from tests.channels.web.test_server import Visitor, web  # noqa: F401 - the fixture
from tests.channels.zalo.test_channel import USER, next_message, post_zalo_purchase, say, tap, zfake, zh  # noqa: F401 - fixtures

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
