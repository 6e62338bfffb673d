"""Privacy (issue 7) on the web chat and Zalo: the notice once per chat, /mydata as a page
download or a short-lived link, /forget end to end, the web chat's log in export, erase
and retention; on the real app with real SQLite, a real WebSocket and the fake Zalo OA API."""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from pathlib import Path
from datetime import timedelta

import pytest

from flows.texts import text
from storage import privacy
from storage.db import Database
from tests.browser import PHONE, chromium
from tests.conftest import Harness, hours, make_config
from tests.services.test_privacy import NOTICE_MARK, file_bytes
from tests.channels.web.test_server import Visitor, web  # noqa: F401 - the fixture
from tests.channels.zalo.test_channel import USER, next_message, outbox_settled, post_zalo_purchase, say, started
from tests.channels.zalo.test_channel import settled, tap, zfake, zh  # noqa: F401 - fixtures

SECRET = "Số nhà tôi là 12 ngõ Trúc Lạc, Ba Đình"
PUBLIC = "https://shop.example/fb"


async def web_rows(h: Harness) -> list[dict]:
    return await h.rows("SELECT id, session_id, kind, body FROM web_messages ORDER BY id")


# --- the web chat ------------------------------------------------------------------------------


async def test_web_visitor_gets_the_notice_once(web):
    v = await Visitor.connect(web)
    greeting = await v.message("Xin chào")
    assert NOTICE_MARK in greeting["text"]
    await v.say("/help")
    assert NOTICE_MARK not in (await v.next("message"))["text"]


async def test_web_mydata_is_a_download_on_the_page_and_leaves_the_log_after_a_day(web):
    v = await Visitor.connect(web)
    await v.message("Xin chào")
    await v.say("/mydata")
    frame = await v.next("document")
    assert "JSON" in frame["text"] and frame["buttons"] == []
    document = frame["document"]
    assert (document["filename"], document["mime_type"]) == ("my-data.json", "application/json")
    data = json.loads(base64.b64decode(document["data"]).decode("utf-8"))
    assert data["subject"].startswith("contact:")
    assert any(r["kind"] == "visitor" and r["body"]["text"] == "/mydata" for r in data["tables"]["web_messages"])

    # A second export shows the first one's entry, not its data again.
    await v.say("/mydata")
    again = json.loads(base64.b64decode((await v.next("document"))["document"]["data"]))
    earlier = [r for r in again["tables"]["web_messages"] if r["kind"] == "document"]
    assert [r["body"]["document"]["data"] for r in earlier] == [privacy.EARLIER_EXPORT]

    web.clock.advance(hours(23))
    await web.app.privacy.purge()
    assert len([r for r in await web_rows(web) if r["kind"] == "document"]) == 2  # still there within the day
    web.clock.advance(hours(2))
    counts = await web.app.privacy.purge()
    assert counts["my_data_web"] == 2
    rows = await web_rows(web)
    assert not any("data" in json.loads(r["body"]).get("document", {}) for r in rows)
    # A reload shows the caption and the file's name, marked expired.
    reload = await Visitor.connect(web, session=v.session, resume=0)
    expired = await reload.next("message", seq=frame["seq"])
    assert expired["document"] == {"filename": "my-data.json", "mime_type": "application/json", "expired": True}
    assert "JSON" in expired["text"]


async def test_web_forget_clears_the_page_and_the_log_and_the_visitor_starts_afresh(web):
    v = await Visitor.connect(web)
    greeting = await v.message("Xin chào")
    await v.say(SECRET)
    old_contact = (await web.rows("SELECT id FROM contacts WHERE channel = 'web'"))[0]["id"]
    exported = await web.app.privacy.export(f"contact:{old_contact}")
    assert any(r["body"].get("text") == SECRET for r in exported["tables"]["web_messages"])

    await v.say("/forget")
    ask = await v.message("xoá toàn bộ dữ liệu")
    assert (await v.tap(ask, "Xoá dữ liệu"))["type"] == "accepted"
    # The open page is told to clear what it shows, then gets the goodbye (same socket: ids
    # went on growing although the log was deleted).
    reset = await v.next("reset")
    goodbye = await v.message("Đã xoá dữ liệu")
    assert greeting["seq"] < ask["seq"] < reset["seq"] < goodbye["seq"]

    rows = await web_rows(web)
    assert not any(SECRET in r["body"] or "Xin chào" in r["body"] for r in rows)
    assert SECRET.encode() not in await file_bytes(web)

    # A reload (resume from 0) shows nothing of the old conversation and no new greeting.
    reload = await Visitor.connect(web, session=v.session, resume=0)
    await reload.next("message", seq=goodbye["seq"])
    assert not any(SECRET in json.dumps(f, ensure_ascii=False) or "Xin chào" in f.get("text", "") for f in reload.frames)
    # Writing again: a new contact, told the notice again; the old page resumes after its last id.
    await reload.say("/help")
    fresh = await reload.next("message")
    assert NOTICE_MARK in fresh["text"] and fresh["seq"] > goodbye["seq"]
    contacts = await web.rows("SELECT id, erased_at, chat_id FROM contacts WHERE channel = 'web' ORDER BY id")
    assert [c["id"] == old_contact for c in contacts] == [True, False]
    assert contacts[0]["erased_at"] is not None and contacts[0]["chat_id"] == ""
    assert contacts[1]["erased_at"] is None
    await v.next("message", seq=fresh["seq"])


async def test_web_log_retention_deletes_old_entries_and_resume_still_works(web):
    v = await Visitor.connect(web)
    greeting = await v.message("Xin chào")
    await v.say("/help")
    last = await v.next("message")
    await v.close()
    before = len(await web_rows(web))
    session_id = (await web_rows(web))[-1]["session_id"]
    web.clock.advance(timedelta(days=400))
    counts = await web.app.privacy.purge()
    rows = await web_rows(web)
    assert before >= 3 and counts["web_messages"] == before - 1 and [r["id"] for r in rows] == [last["seq"]]
    # The table's last id stays (an empty tombstone): a new entry never reuses an id a page has already seen.
    assert rows[0]["kind"] == "erased" and rows[0]["session_id"] == ""
    await web.app.web.deliver("send_text", session_id, {"text": "sau một năm", "buttons": []})
    back = await Visitor.connect(web, session=v.session, resume=greeting["seq"])
    later = await back.message("sau một năm")
    assert later["seq"] > last["seq"]


async def test_web_log_retention_leaves_no_text_in_the_tables_last_entry(web):
    """The newest entry stays for its id (pages resume after it), but not what it said."""
    v = await Visitor.connect(web)
    await v.message("Xin chào")
    await v.close()
    reply = "Chào chị Lan, shop gửi bù hộp mới tới 12 ngõ Trúc Lạc ạ"
    session_id = (await web_rows(web))[-1]["session_id"]
    await web.app.web.deliver("send_text", session_id, {"text": reply, "buttons": []})  # an agent's answer, last
    assert reply in (await web_rows(web))[-1]["body"]
    web.clock.advance(timedelta(days=400))
    await web.app.privacy.purge()
    assert [r for r in await web_rows(web) if reply in r["body"] or r["session_id"] == session_id] == []
    assert reply.encode() not in await file_bytes(web)


# --- Zalo --------------------------------------------------------------------------------------


async def zalo_app(tmp_path, tg, clock, zfake, **http) -> Harness:
    return await started(tmp_path, tg, clock, zfake, http=http, telegram={"mode": "polling"})


async def follow(h: Harness, fake) -> None:
    fake.add_follower(USER)
    assert await fake.send_event(h.url, fake.make_event("follow", USER)) == 200
    await settled(h)


async def test_zalo_follower_gets_the_notice_once(zh, zfake):
    await follow(zh, zfake)
    welcome = await next_message(zfake)
    assert NOTICE_MARK in welcome.text
    await say(zh, zfake, "/help")
    assert NOTICE_MARK not in (await next_message(zfake)).text


async def test_zalo_mydata_is_a_short_lived_link(tmp_path, tg, clock, zfake):
    h = await zalo_app(tmp_path, tg, clock, zfake, public_url=PUBLIC)
    try:
        await follow(h, zfake)
        await next_message(zfake)
        await say(h, zfake, "/mydata")
        message = await next_message(zfake)
        assert "JSON" in message.text and "24" in message.text and len(message.text) <= 2000
        token = re.search(re.escape(PUBLIC) + r"/mydata/([A-Za-z0-9_-]{40,})", message.text).group(1)
        stored = (await h.rows("SELECT token_hash FROM my_data_links"))[0]["token_hash"]
        assert token not in stored  # only its hash is kept

        async with h.http.get(f"{h.url}/mydata/{token}") as resp:
            assert resp.status == 200 and "attachment" in resp.headers["Content-Disposition"]
            assert resp.headers["Cache-Control"] == "no-store"
            data = json.loads(await resp.text())
        assert data["subject"].startswith("contact:") and data["tables"]["contacts"][0]["platform_user_id"] == USER
        async with h.http.get(f"{h.url}/mydata/{token[:-1]}x") as resp:
            assert resp.status == 404
        async with h.http.get(f"{h.url}/mydata/{token}") as resp:
            assert resp.status == 200  # until it expires (a link preview may have fetched it already)

        h.clock.advance(hours(25))
        async with h.http.get(f"{h.url}/mydata/{token}") as resp:
            assert resp.status == 404
        assert (await h.app.privacy.purge())["my_data_links"] == 1
        assert await h.rows("SELECT id FROM my_data_links") == []
    finally:
        await h.close()


class Recorded(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def test_zalo_mydata_without_a_public_url_says_to_ask_the_shop(zh, zfake):
    await follow(zh, zfake)
    await next_message(zfake)
    recorded = Recorded()
    logging.getLogger("bot.services.data_rights").addHandler(recorded)
    try:
        await say(zh, zfake, "/mydata")
        message = await next_message(zfake)
    finally:
        logging.getLogger("bot.services.data_rights").removeHandler(recorded)
    assert "liên hệ Shop An" in message.text and "/mydata/" not in message.text
    assert any("http.public_url" in m for m in recorded.messages)
    assert await zh.rows("SELECT id FROM my_data_links") == []


async def test_zalo_forget_erases_the_customer_and_the_contact_and_a_new_message_starts_afresh(tmp_path, tg, clock, zfake):
    h = await zalo_app(tmp_path, tg, clock, zfake, public_url=PUBLIC)
    try:
        await post_zalo_purchase(h, zalo_user_id=USER, phone="+84 912 345 678")
        h.clock.advance(hours(3))
        zfake.add_follower(USER)
        assert await h.app.dispatcher.dispatch_due() == {"sent": 1}
        question = await next_message(zfake)
        assert NOTICE_MARK in question.text  # the first message to this follower
        await tap(h, zfake, question, "5")
        await next_message(zfake)
        await say(h, zfake, "/mydata")  # a link that must go with the erasure
        await next_message(zfake)

        await say(h, zfake, "/forget")
        ask = await next_message(zfake)
        await tap(h, zfake, ask, "Xoá dữ liệu")
        assert "Đã xoá dữ liệu" in (await next_message(zfake)).text
        await outbox_settled(h)

        customer = (await h.rows("SELECT * FROM customers"))[0]
        assert customer["zalo_user_id"] is None and customer["phone"] in (None, "") and customer["erased_at"]
        old = (await h.rows("SELECT * FROM contacts"))[0]
        assert old["platform_user_id"].startswith("erased:") and old["chat_id"] == "" and old["erased_at"]
        assert await h.rows("SELECT id FROM my_data_links") == []
        await h.app.privacy.purge()  # the goodbye's chat id goes too
        assert await h.rows("SELECT id FROM outbox WHERE chat_id = ?", (USER,)) == []
        assert USER.encode() not in await file_bytes(h)

        await say(h, zfake, "xin chào")
        fresh = await next_message(zfake)
        assert NOTICE_MARK in fresh.text
        contacts = await h.rows("SELECT id, platform_user_id, customer_id FROM contacts ORDER BY id")
        assert len(contacts) == 2 and contacts[1]["platform_user_id"] == USER and contacts[1]["customer_id"] is None
    finally:
        await h.close()


async def test_zalo_long_question_gets_the_notice_apart_and_keeps_its_numbered_choices(tmp_path, tg, clock, zfake):
    long_shop = "Cửa hàng bánh " + "ngon " * 300  # ~1500 characters: question + notice + choices > 2000
    h = await started(tmp_path, tg, clock, zfake, zalo={"buttons": False}, shop={"name": long_shop})
    try:
        await post_zalo_purchase(h, zalo_user_id=USER)
        h.clock.advance(hours(3))
        zfake.add_follower(USER)
        assert await h.app.dispatcher.dispatch_due() == {"sent": 1}
        first, question = await zfake.wait_for_messages(USER, 2)
        assert first.text.startswith(NOTICE_MARK)
        assert "5. 5" in question.text and NOTICE_MARK not in question.text and len(question.text) <= 2000
        await say(h, zfake, "4")
        assert (await h.rows("SELECT score FROM surveys"))[0]["score"] == 4
    finally:
        await h.close()


@pytest.mark.parametrize("buttons", [True, False])
async def test_zalo_short_question_carries_the_notice_whole(tmp_path, tg, clock, zfake, buttons):
    h = await started(tmp_path, tg, clock, zfake, zalo={"buttons": buttons})
    try:
        await post_zalo_purchase(h, zalo_user_id=USER)
        h.clock.advance(hours(3))
        zfake.add_follower(USER)
        assert await h.app.dispatcher.dispatch_due() == {"sent": 1}
        question = await next_message(zfake)
        assert text("vi", "privacy.notice") in question.text
        assert len(zfake.sent_to(USER)) == 1
    finally:
        await h.close()


# --- the page in a real browser ------------------------------------------------------------------


async def test_mydata_download_and_forget_on_the_page_in_a_real_browser(tmp_path, clock):
    h = Harness(make_config(tmp_path), None, clock)
    await h.start()
    try:
        async with chromium() as browser:
            page = await browser.new_page(viewport=PHONE, accept_downloads=True)
            await page.goto(f"{h.url}/chat")
            await page.locator(".fb-bot", has_text="Xin chào").wait_for(timeout=10_000)
            message = page.get_by_label("Tin nhắn của bạn")
            await message.fill("/mydata")
            await message.press("Enter")
            link = page.get_by_role("link", name="Tải xuống dữ liệu của bạn (my-data.json)")
            async with page.expect_download(timeout=10_000) as download_info:
                await link.click(timeout=10_000)
            download = await download_info.value
            assert download.suggested_filename == "my-data.json"
            data = json.loads(Path(await download.path()).read_text(encoding="utf-8"))
            assert data["format"] == "feedbot-personal-data/1" and data["subject"].startswith("contact:")

            await message.fill("/forget")
            await message.press("Enter")
            await page.locator(".fb-bot").get_by_role("button", name="Xoá dữ liệu", exact=True).click(timeout=10_000)
            await page.locator(".fb-bot", has_text="Đã xoá dữ liệu").wait_for(timeout=10_000)
            shown = await page.locator(".fb-log").inner_text()
            assert "Xin chào" not in shown and "/mydata" not in shown and await link.count() == 0
            await page.reload()
            await page.locator(".fb-bot", has_text="Đã xoá dữ liệu").wait_for(timeout=10_000)
            assert "Xin chào" not in await page.locator(".fb-log").inner_text()
    finally:
        await h.close()


# --- shutdown during the retention job -----------------------------------------------------------


async def test_a_transaction_cancelled_while_it_begins_leaves_no_transaction_open(tmp_path):
    """The purge job is cancelled at shutdown, often while its BEGIN is queued on the
    connection's thread; the sender's next transaction must still start (it once failed
    with "cannot start a transaction within a transaction", and a survey went out twice)."""
    async with Database(tmp_path / "x.db") as db:
        async def purge_like() -> None:
            async with db.transaction() as tx:
                await tx.execute("SELECT 1")

        for _ in range(5):
            task = asyncio.create_task(purge_like())
            await asyncio.sleep(0)  # it holds the write lock and waits for BEGIN
            task.cancel()
            assert isinstance((await asyncio.gather(task, return_exceptions=True))[0], asyncio.CancelledError)
            async with db.transaction() as tx:
                await tx.execute("CREATE TABLE IF NOT EXISTS t (x)")
                await tx.execute("INSERT INTO t VALUES (1)")
        assert (await db.fetchall("SELECT COUNT(*) FROM t"))[0][0] == 5
