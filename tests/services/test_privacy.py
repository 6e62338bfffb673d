"""Privacy (issue 7): the consent notice, /stop, /mydata, /forget, `feedbot customer
export|erase`, and the retention purge; on the real app, the fake Bot API and real SQLite."""
from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from testkit.clock import FakeClock
from flows.digest import to_json, week_of
from flows.texts import PRIVACY_NOTICE_VERSION
from bot.webhooks.events import EVENT_TYPES
from storage import customers, privacy, programs, surveys, webhooks
from storage.db import Database
from storage.folding import fold
from storage.timefmt import to_db
from tests.conftest import BOTH, START, VN, Harness, hours, make_config
from tests.cli.test_main import feedbot
from tests.e2e.test_complaints import AGENT, CUSTOMER, GROUP, OTHER_CUSTOMER, buttons, config, file_complaint_after_low_score

BACKENDS = BOTH  # consent, /mydata, erasure and retention on SQLite and on PostgreSQL
NOTICE_MARK = "🔒"
NAME, PHONE = "Nguyễn Thị Lan", "+84 912 345 678"
CHAT_NAME = "Bích Ngọc"  # the customer's name on Telegram
COMMENT = "Bánh kem chảy hết vì giao giữa trưa nắng gắt"
DESCRIPTION = "Shipper giao trễ 2 ngày, hộp bị móp"
IDEA = "Nên bán thêm bánh pía sầu riêng cho Lan"
NPS_WHY = "Vì chị chủ quán nhớ tên Lan"
RELAYED = "Địa chỉ nhà tôi là 12 ngõ Trúc Lạc, Ba Đình"
AGENT_REPLY = "Chào chị Lan, shop gửi bù hộp mới ngay hôm nay ạ"


@pytest.fixture
async def desk(tmp_path, tg, clock, database_url):
    tg.make_group(GROUP, "Agents", is_forum=False, members={AGENT: "Minh"})
    h = Harness(config(tmp_path, tg, database_url, agent_ids=[AGENT]), tg, clock)
    await h.start()
    yield h
    await h.close()


async def link(h, user, external="C-42", order="A-1001", name=NAME, phone=PHONE, first_name=None):
    """The customer's own chat: the shop posted her Telegram user id (a receipt's link alone
    would give the chat only its order: tests/e2e/test_receipt_links.py)."""
    customer = {"external_id": external, "name": name, "phone": phone, "telegram_user_id": user}
    _, body = await h.post_purchase(order, customer=customer)
    token = body["links"]["telegram"].split("start=")[1]
    await h.deliver(h.tg.make_message_update(user, f"/start {token}", first_name=first_name))
    return body


async def answer_survey(h, user, score, messages_before):
    h.clock.advance(hours(3))
    await h.app.dispatcher.dispatch_due()
    question = (await h.tg.wait_for_messages(user, messages_before + 1))[messages_before]
    await h.customer_taps(user, buttons(question)[score - 1]["callback_data"], question.message_id)
    await h.tg.wait_for_messages(user, messages_before + 2)


async def contact(h, user):
    rows = await h.rows("SELECT * FROM contacts WHERE platform_user_id = ?", (str(user),))
    return rows[0] if rows else None


async def all_sent(h, timeout=5.0):
    import asyncio

    for _ in range(int(timeout / 0.05)):
        pending = await h.rows("SELECT COUNT(*) AS n FROM outbox WHERE status IN ('pending', 'sending')")
        if pending[0]["n"] == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("outbox not drained")


def document_of(message) -> dict:
    assert message.method == "sendDocument"
    upload = message.params["document"]
    assert upload.filename == "my-data.json"
    return json.loads(upload.data.decode("utf-8"))


# Every table, TOAST table and index of the database, as PostgreSQL keeps them on disk.
PG_FILES = (
    "SELECT current_setting('data_directory') || '/' || pg_relation_filepath(c.oid) FROM pg_class c"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname IN (current_schema(), 'pg_toast') AND c.relkind IN ('r', 't', 'i')"
)


async def file_bytes(h) -> bytes:
    """The database file as it lies on disk (and its WAL), after a checkpoint; on PostgreSQL,
    the files of its tables and indexes (PostgreSQL's own WAL is outside our promise: README)."""
    if getattr(h.app.db, "dialect", "sqlite") == "postgresql":
        # No checkpoint() of ours: every erasure path must have its VACUUM FULL run by itself.
        await asyncio.gather(*h.app.db._tasks)
        # The files on disk up to date (superuser here). Its own connection: the app's writer
        # may be in use by the sender meanwhile ("another operation is in progress").
        conn = await asyncpg.connect(h.app.db.url)
        try:
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()
        files = [Path(r[0]) for r in await h.app.db.fetchall(PG_FILES)]
        return b"".join(f.read_bytes() for f in files if f.exists())
    await h.app.db.checkpoint()
    path = Path(h.app.db.path)
    data = path.read_bytes()
    wal = path.with_name(path.name + "-wal")
    return data + (wal.read_bytes() if wal.exists() else b"")


# --- consent -------------------------------------------------------------------------------


async def test_notice_goes_with_the_first_message_once_and_consent_follows_the_next_act(harness):
    await harness.start()
    await link(harness, CUSTOMER)
    welcome = (await harness.tg.wait_for_messages(CUSTOMER, 1))[0]
    assert NAME in welcome.text and NOTICE_MARK in welcome.text and "/mydata" in welcome.text and "/forget" in welcome.text
    shown = await contact(harness, CUSTOMER)
    assert shown["notice_version"] == PRIVACY_NOTICE_VERSION and shown["notice_at"] == to_db(harness.clock.now())
    assert shown["consent_at"] is None  # opening the link came before the notice: not consent

    harness.clock.advance(timedelta(minutes=5))
    await harness.customer_says(CUSTOMER, "/help")  # asking what the commands are is no consent either
    assert (await contact(harness, CUSTOMER))["consent_at"] is None
    await answer_survey(harness, CUSTOMER, 5, messages_before=2)
    agreed = await contact(harness, CUSTOMER)
    assert agreed["consent_at"] == to_db(harness.clock.now()) and agreed["consent_version"] == PRIVACY_NOTICE_VERSION
    assert agreed["consent_withdrawn_at"] is None
    texts = harness.tg.texts(CUSTOMER)
    assert sum(NOTICE_MARK in t for t in texts) == 1 and len(texts) == 4  # welcome, help, question, thanks

    # A chat that starts with a plain message gets the notice with the first reply, in English too.
    await harness.customer_says(OTHER_CUSTOMER, "hello?", language_code="en")
    reply = (await harness.tg.wait_for_messages(OTHER_CUSTOMER, 1))[0]
    assert "About your data" in reply.text and "/forget" in reply.text


async def test_stop_withdraws_consent_and_stops_surveys_until_start(harness):
    await harness.start()
    await link(harness, CUSTOMER)
    await harness.customer_says(CUSTOMER, "cảm ơn shop")  # an act after the notice: consent
    assert (await contact(harness, CUSTOMER))["consent_at"] is not None

    harness.clock.advance(timedelta(minutes=1))
    await harness.customer_says(CUSTOMER, "/stop")
    stopped = await contact(harness, CUSTOMER)
    assert stopped["consent_withdrawn_at"] == to_db(harness.clock.now()) and stopped["opted_out_at"] is not None
    confirm = (await harness.tg.wait_for_messages(CUSTOMER, 3))[2]
    assert "không nhận khảo sát" in confirm.text

    harness.clock.advance(hours(3))
    outcome = await harness.app.dispatcher.dispatch_due()
    assert outcome == {"skipped_opted_out": 1}
    await harness.customer_says(CUSTOMER, "alo")  # writing on is not consent again
    assert (await contact(harness, CUSTOMER))["consent_withdrawn_at"] is not None
    assert not any("#A-1001" in t for t in harness.tg.texts(CUSTOMER))

    await harness.customer_says(CUSTOMER, "/start")  # an explicit /start is
    again = await contact(harness, CUSTOMER)
    assert again["consent_withdrawn_at"] is None and again["consent_at"] == to_db(harness.clock.now())


# --- /mydata -------------------------------------------------------------------------------


async def test_mydata_sends_the_customers_own_data_and_nothing_of_another(harness):
    await harness.start()
    await link(harness, CUSTOMER, first_name=CHAT_NAME)
    await link(harness, OTHER_CUSTOMER, external="C-43", order="B-2002", name="Trần Văn Bình", phone="+84 988 111 222")
    await answer_survey(harness, CUSTOMER, 2, messages_before=1)
    await harness.customer_says(CUSTOMER, COMMENT)

    await harness.customer_says(OTHER_CUSTOMER, "/mydata")
    other_doc = (await harness.tg.wait_for_messages(OTHER_CUSTOMER, 3))[2]  # welcome, question, document
    other = document_of(other_doc)
    raw = json.dumps(other, ensure_ascii=False)
    assert other["subject"] == "C-43" and [c["name"] for c in other["tables"]["customers"]] == ["Trần Văn Bình"]
    assert NAME not in raw and COMMENT not in raw and CHAT_NAME not in raw and "A-1001" not in raw
    assert [p["order_id"] for p in other["tables"]["purchases"]] == ["B-2002"]

    await harness.customer_says(CUSTOMER, "/mydata")
    mine = (await harness.tg.wait_for_messages(CUSTOMER, 5))[4]  # welcome, question, follow-up, thanks, document
    doc = document_of(mine)
    assert "1 đơn hàng" in mine.text and "1 khảo sát" in mine.text
    assert doc["tables"]["customers"][0]["phone"] == PHONE
    assert doc["tables"]["contacts"][0]["display_name"] == CHAT_NAME
    assert doc["tables"]["surveys"][0]["comment"] == COMMENT and doc["tables"]["surveys"][0]["score"] == 2
    assert doc["tables"]["purchases"][0]["items"][0]["sku"] == "TEA-01"
    assert any(r["text"] == COMMENT for r in doc["tables"]["inbox"])
    assert "Trần Văn Bình" not in json.dumps(doc, ensure_ascii=False)

    # The file is a copy of everything: the outbox keeps it only until it is sent.
    await all_sent(harness)
    harness.clock.advance(timedelta(seconds=1))
    assert (await harness.app.privacy.purge())["my_data"] == 2
    copies = await harness.rows("SELECT payload FROM outbox WHERE method = 'send_document'")
    assert [r["payload"] for r in copies] == ["{}", "{}"]


async def test_mydata_file_that_cannot_be_sent_is_offered_as_a_link(tmp_path, tg, clock):
    public = "https://shop.example.com"
    h = Harness(make_config(tmp_path, tg, http={"public_url": public}, telegram={"mode": "polling"}), tg, clock)
    await h.start()
    try:
        await link(h, CUSTOMER)
        tg.fail_next("sendDocument", 400, description="Bad Request: file is too big")  # refused for good
        await h.customer_says(CUSTOMER, "/mydata")
        told = (await tg.wait_for_messages(CUSTOMER, 2))[1]  # welcome, then the apology with the link
        assert told.method == "sendMessage" and told.text.startswith("Xin lỗi, tệp dữ liệu của bạn không gửi được qua đây.")
        token = re.search(re.escape(public) + r"/mydata/([A-Za-z0-9_-]{40,})", told.text).group(1)
        async with h.http.get(f"{h.url}/mydata/{token}") as resp:
            assert resp.status == 200
            assert json.loads(await resp.text())["tables"]["customers"][0]["name"] == NAME
        assert [r["status"] for r in await h.rows("SELECT status FROM outbox WHERE method = 'send_document'")] == ["failed"]
    finally:
        await h.close()


async def test_mydata_file_that_cannot_be_sent_without_a_public_url_says_to_ask_the_shop(harness):
    await harness.start()
    await link(harness, CUSTOMER)
    harness.tg.disable_method("sendDocument")  # a Bot API server without it
    await harness.customer_says(CUSTOMER, "/mydata")
    told = (await harness.tg.wait_for_messages(CUSTOMER, 2))[1]
    assert told.text.startswith("Kênh này chưa gửi được tệp dữ liệu. Bạn vui lòng liên hệ Shop An")


# --- erase -------------------------------------------------------------------------------


async def build_history(h):
    """C-42: linked chat, a low score, a complaint with a photo, a message relayed both ways,
    a comment quoted in the owners' digest; C-43: another customer who answers 5."""
    tg = h.tg
    tg.make_message_update(CUSTOMER, "x", first_name=CHAT_NAME)  # the fake now knows her Telegram name
    opened = await file_complaint_after_low_score(h, tg)
    await h.customer_says(CUSTOMER, RELAYED)
    card = (await tg.wait_for_messages(GROUP, 1))[0]
    await h.deliver(tg.make_message_update(AGENT, AGENT_REPLY, chat_id=GROUP, reply_to_message_id=card.message_id))
    async with h.app.db.transaction() as tx:  # her survey comment (the complaint took the follow-up's place)
        survey_id = (await h.rows("SELECT id FROM surveys"))[0]["id"]
        assert await surveys.record_comment(tx, survey_id, COMMENT, h.clock.now())
        # ... and the phone the shop's system sends with her next order
        await customers.upsert(tx, external_id="C-42", name=NAME, phone=PHONE, telegram_user_id=None, now=h.clock.now())
        # ... and that system's next delivery about her, which failed: its body is kept until the purge
        body = json.dumps({"customer": {"name": NAME, "phone": "0912.345.678"}, "note": PHONE}, ensure_ascii=False)
        await tx.execute("INSERT INTO order_deliveries (source, delivery_id, body, status, received_at)"
                         " VALUES ('shop', 'failed-1', ?, 'failed', ?)", (body, to_db(h.clock.now())))
        # ... an NPS program's answer with its "why" (issue 21)
        now = h.clock.now()
        nps_id = await programs.insert(tx, program="nps", kind="nps", customer_id=1, priority=40, due_at=now,
                                       deadline_at=now, now=now)
        await programs.mark_sent(tx, nps_id, 1, "vi", now)
        await programs.record_answer(tx, nps_id, now, score=9)
        await programs.record_answer(tx, nps_id, now, text=NPS_WHY)
    await h.customer_says(CUSTOMER, f"/gopy {IDEA}")  # ... and an idea
    await link(h, OTHER_CUSTOMER, external="C-43", order="B-2002", name="Trần Văn Bình", phone="+84 988 111 222")
    h.clock.advance(hours(3))
    await h.app.dispatcher.dispatch_due()
    question = (await tg.wait_for_messages(OTHER_CUSTOMER, 2))[1]
    await h.customer_taps(OTHER_CUSTOMER, buttons(question)[4]["callback_data"], question.message_id)
    week = week_of(h.clock.now(), VN)
    assert await h.app.digests.send(week) == 1
    await all_sent(h)
    return opened, week


CHANNEL_TABLES = {"web_messages", "web_uploads", "my_data_links"}
SECRETS = (NAME, PHONE, CHAT_NAME, COMMENT, DESCRIPTION, RELAYED, AGENT_REPLY, "PHOTO-BOX-1", IDEA, NPS_WHY)


async def test_export_has_every_tables_rows_and_erase_leaves_only_anonymous_statistics(desk):
    h = desk
    async with h.app.db.transaction() as tx:  # her events for the shop's other tools (never delivered: refused)
        await webhooks.add_endpoint(tx, "http://127.0.0.1:9/", EVENT_TYPES, "whsec_" + "A" * 32, "", h.clock.now())
    _, week = await build_history(h)
    before = await file_bytes(h)
    assert [s for s in SECRETS if s.encode() not in before] == []  # the check below can fail
    report_before = to_json(await h.app.digests.build(week))
    assert report_before["csat"]["answers"] == 2

    document = await h.app.privacy.export("C-42")
    tables = document["tables"]
    assert set(tables) == {step.table for step in privacy.STEPS}
    # Every table but the web chat's and Zalo's (tests/services/test_privacy_channels.py) holds rows of this Telegram customer.
    assert all(tables[t] for t in tables if t not in CHANNEL_TABLES), {t: len(r) for t, r in tables.items()}
    raw = json.dumps(document, ensure_ascii=False)
    assert all(s in raw for s in SECRETS) and "Trần Văn Bình" not in raw and "B-2002" not in raw
    assert {e["action"] for e in tables["ticket_events"]} >= {"opened", "customer_message", "reply"}

    counts = await h.app.privacy.erase("C-42")
    assert counts["customers"] == 1 and counts["tickets"] == 1
    after = await file_bytes(h)
    leaked = [s for s in SECRETS if s.encode() in after]
    assert leaked == []
    assert "Trần Văn Bình".encode() in after  # the other customer is untouched
    # Nor the comment search's index (its trigrams, not the text, lie in its pages: the page-level
    # check is tests/storage/test_comment_index.py): nothing of hers is found through it.
    folded = fold(COMMENT)
    if getattr(h.app.db, "dialect", "sqlite") == "sqlite":
        assert await h.rows("SELECT rowid FROM comments_fts WHERE comments_fts MATCH ?", ('"' + folded[:14] + '"',)) == []
    assert await h.rows("SELECT id FROM surveys WHERE comment_folded LIKE ?", (f"%{folded[:14]}%",)) == []

    # Scores still count, anonymously; the complaint stays as a category and times.
    report_after = to_json(await h.app.digests.build(week))
    assert report_after["csat"] == report_before["csat"]
    assert report_after["complaints"]["opened"] == report_before["complaints"]["opened"] == 1
    ticket = (await h.rows("SELECT * FROM tickets"))[0]
    assert ticket["category"] == "delivery" and ticket["description"] == "" and ticket["status"] == "resolved"
    assert await h.app.privacy.export("C-42") is None and await h.app.privacy.erase("C-42") is None

    # The shop posting the same customer again makes a new customer; the old link is dead.
    status, body = await h.post_purchase("A-1009", customer={"external_id": "C-42", "name": NAME})
    assert status == 202
    customers = await h.rows("SELECT external_id, name FROM customers ORDER BY id")
    assert customers[0]["external_id"].startswith("erased:") and customers[0]["name"] == ""
    assert customers[-1] == {"external_id": "C-42", "name": NAME}


async def test_forget_asks_first_and_cancel_keeps_everything(harness):
    await harness.start()
    await link(harness, CUSTOMER)
    await harness.customer_says(CUSTOMER, "/forget")
    ask = (await harness.tg.wait_for_messages(CUSTOMER, 2))[1]
    assert [b["text"] for b in buttons(ask)] == ["Xoá dữ liệu", "Huỷ"]
    await harness.customer_taps(CUSTOMER, buttons(ask)[1]["callback_data"], ask.message_id)
    edits = await harness.tg.wait_for_requests("editMessageText", 1)
    assert "Đã huỷ" in edits[0].params["text"]
    assert (await harness.rows("SELECT name FROM customers"))[0]["name"] == NAME
    assert (await contact(harness, CUSTOMER))["erased_at"] is None


async def test_forget_confirmed_erases_like_the_cli_and_the_next_message_starts_afresh(desk):
    h = desk
    await build_history(h)
    count = len(h.tg.sent_messages(CUSTOMER))  # build_history waited until all was sent
    await h.customer_says(CUSTOMER, "/forget")
    ask = (await h.tg.wait_for_messages(CUSTOMER, count + 1))[-1]
    await h.customer_taps(CUSTOMER, buttons(ask)[0]["callback_data"], ask.message_id)
    goodbye = (await h.tg.wait_for_messages(CUSTOMER, count + 2))[-1]
    assert "Đã xoá dữ liệu" in goodbye.text
    await all_sent(h)

    old = (await h.rows("SELECT * FROM contacts WHERE erased_at IS NOT NULL"))[0]
    assert old["platform_user_id"].startswith("erased:") and old["display_name"] == ""
    assert await contact(h, CUSTOMER) is None
    assert all(r["payload"] == "{}" for r in await h.rows("SELECT payload FROM inbox WHERE contact_id = ?", (old["id"],)))

    await h.app.privacy.purge()  # also drops the chat id the goodbye went to
    assert await h.rows("SELECT id FROM outbox WHERE contact_id = ? AND chat_id != ''", (old["id"],)) == []
    leaked = [s for s in SECRETS if s.encode() in await file_bytes(h)]
    assert leaked == []

    await h.customer_says(CUSTOMER, "xin chào")
    fresh = await contact(h, CUSTOMER)
    assert fresh["id"] != old["id"] and fresh["customer_id"] is None
    hello = (await h.tg.wait_for_messages(CUSTOMER, count + 3))[-1]
    assert NOTICE_MARK in hello.text  # a new chat, told again


async def test_forget_from_a_receipt_links_chat_erases_the_survey_answer_it_wrote(harness):
    """A chat that only opened a receipt's link answers that order's survey (the customer's):
    its /forget takes what it wrote there too, and leaves the customer's own data."""
    h = harness
    await h.start()
    _, body = await h.post_purchase()  # no chat of the customer's named: the link's chat is not hers
    await h.customer_says(CUSTOMER, f"/start {body['links']['telegram'].split('start=')[1]}")
    await answer_survey(h, CUSTOMER, 2, messages_before=1)
    await h.customer_says(CUSTOMER, COMMENT)
    await all_sent(h)
    assert (await h.rows("SELECT comment FROM surveys"))[0]["comment"] == COMMENT
    count = len(h.tg.sent_messages(CUSTOMER))
    await h.customer_says(CUSTOMER, "/mydata")  # its answer is its own data
    doc = document_of((await h.tg.wait_for_messages(CUSTOMER, count + 1))[-1])
    assert [(r["score"], r["comment"]) for r in doc["tables"]["surveys"]] == [(2, COMMENT)]
    assert doc["tables"]["customers"] == [] and NAME not in json.dumps(doc, ensure_ascii=False)
    await all_sent(h)

    count = len(h.tg.sent_messages(CUSTOMER))
    await h.customer_says(CUSTOMER, "/forget")
    ask = (await h.tg.wait_for_messages(CUSTOMER, count + 1))[-1]
    await h.customer_taps(CUSTOMER, buttons(ask)[0]["callback_data"], ask.message_id)
    await all_sent(h)
    assert (await h.rows("SELECT name, erased_at FROM customers")) == [{"name": NAME, "erased_at": None}]
    assert (await h.rows("SELECT score, comment, comment_folded FROM surveys")) == [
        {"score": 2, "comment": None, "comment_folded": None}]
    await h.app.privacy.purge()
    assert COMMENT.encode() not in await file_bytes(h)


async def test_forget_blanks_an_update_of_theirs_that_failed_to_be_handled(harness, monkeypatch):
    """A message whose handling failed keeps its raw payload (for a look) on a row linked to no
    chat: the erasure must find it all the same."""
    h = harness
    await h.start()
    await link(h, CUSTOMER)
    crash_text = "Nhà tôi ở 12 ngõ Trúc Lạc, gọi tôi nhé"
    handle = h.app.engine._handle_customer

    async def failing(tx, event, now):
        if event.text == crash_text:
            raise ValueError(f"not a number: {event.text!r}")  # an error that quotes what they wrote
        return await handle(tx, event, now)

    monkeypatch.setattr(h.app.engine, "_handle_customer", failing)
    await h.customer_says(CUSTOMER, crash_text)
    [failed] = await h.rows("SELECT id, payload FROM inbox WHERE error IS NOT NULL")
    assert crash_text in json.loads(failed["payload"])["message"]["text"]

    assert await h.app.privacy.erase("C-42") is not None
    assert (await h.rows("SELECT payload, text, error FROM inbox WHERE id = ?", (failed["id"],))) == [
        {"payload": "{}", "text": None, "error": "erased"}]
    assert crash_text.encode() not in await file_bytes(h)


async def test_erased_rows_leave_nothing_in_free_pages(tmp_path):
    """A deleted row's bytes stay in the page's free space unless secure_delete is on."""
    draft = "Bản nháp khiếu nại: hàng giả, số tài khoản 0123456789 " * 3
    async with Database(tmp_path / "x.db") as db:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO contacts (channel, platform_user_id, chat_id, language, created_at, last_seen_at)"
                             " VALUES ('telegram', '5', '5', 'vi', 'a', 'a')")
            await tx.execute("INSERT INTO conversations (contact_id, state, data, updated_at) VALUES (1, 's', ?, 'a')",
                             (json.dumps({"draft": draft}, ensure_ascii=False),))
        await db.checkpoint()
        assert draft.encode() in (tmp_path / "x.db").read_bytes()
        async with db.transaction() as tx:
            await privacy.erase(tx, await privacy.find(tx, "contact:1"), START)
        await db.checkpoint()
    data = (tmp_path / "x.db").read_bytes()
    assert "hàng giả".encode() not in data and b"telegram" in data


# --- the CLI -------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["customer"], ["customer", "export"], ["customer", "erase"], ["customer", "link"],
                                  ["privacy", "purge"]])
def test_help(tmp_path, args):
    result = feedbot(*args, "--help", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("usage: feedbot")


async def test_cli_export_and_erase(tmp_path):
    async with Database(tmp_path / "feedbot.db") as db:
        async with db.transaction() as tx:
            await customers.upsert(tx, external_id="C-42", name=NAME, phone=PHONE, telegram_user_id=None, now=START)
    unknown = feedbot("customer", "export", "C-99", cwd=tmp_path)
    assert unknown.returncode == 1 and "no customer C-99" in unknown.stderr
    assert feedbot("customer", "erase", "contact:12", "--yes", cwd=tmp_path).returncode == 1

    exported = feedbot("customer", "export", "C-42", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["tables"]["customers"][0]["name"] == NAME
    assert feedbot("customer", "export", "C-42", "--output", "c42.json", cwd=tmp_path).returncode == 0
    assert json.loads((tmp_path / "c42.json").read_text())["subject"] == "C-42"
    assert (tmp_path / "c42.json").stat().st_mode & 0o777 == 0o600  # a person's data: the owner's eyes only

    refused = feedbot("customer", "erase", "C-42", cwd=tmp_path)  # no terminal, no --yes: nothing happens
    assert refused.returncode == 1 and "--yes" in refused.stderr
    erased = feedbot("customer", "erase", "C-42", "--yes", cwd=tmp_path)
    assert erased.returncode == 0 and "erased C-42" in erased.stdout
    assert feedbot("customer", "export", "C-42", cwd=tmp_path).returncode == 1
    purged = feedbot("privacy", "purge", cwd=tmp_path)
    assert purged.returncode == 0 and "inbox 0" in purged.stdout


# --- retention -----------------------------------------------------------------------------


async def test_retention_purges_old_payloads_only_in_batches(tmp_path, database_url):
    clock = FakeClock(START)
    h = Harness(make_config(tmp_path, database_url=database_url, privacy={"retention_days": 30}), None, clock)
    app = await h.start()
    old, recent = to_db(START - timedelta(days=31)), to_db(START - timedelta(days=29))
    async with app.db.transaction() as tx:
        for i in range(5):
            await tx.execute("INSERT INTO inbox (platform, update_id, payload, received_at, processed_at, text)"
                             " VALUES ('telegram', ?, '{\"old\": 1}', ?, ?, 'old text')", (f"o{i}", old, old))
        await tx.execute("INSERT INTO inbox (platform, update_id, payload, received_at) VALUES"
                         " ('telegram', 'unprocessed', '{\"keep\": 1}', ?)", (old,))
        await tx.execute("INSERT INTO inbox (platform, update_id, payload, received_at, processed_at) VALUES"
                         " ('telegram', 'recent', '{\"keep\": 2}', ?, ?)", (recent, recent))
        for status, at in (("sent", old), ("failed", old), ("pending", old), ("sent", recent)):
            await tx.execute("INSERT INTO outbox (channel, chat_id, method, payload, status, created_at) VALUES"
                             " ('telegram', '777', 'send_photo_file', '{\"png_base64\": \"AAAA\"}', ?, ?)", (status, at))
        await tx.execute("INSERT INTO customers (external_id, name, link_token, created_at, updated_at)"
                         " VALUES ('C-1', 'X', 't', ?, ?)", (old, old))
        await tx.execute("INSERT INTO contacts (channel, platform_user_id, chat_id, customer_id, language, created_at,"
                         " last_seen_at) VALUES ('telegram', '1', '1', 1, 'vi', ?, ?)", (old, old))
        for status, resolved in (("resolved", old), ("open", None)):
            cur = await tx.execute(
                "INSERT INTO tickets (contact_id, customer_id, source, category, description, tier, priority, status,"
                " created_at, resolved_at, first_response_due_at, resolution_due_at)"
                " VALUES (1, 1, 'command', 'delivery', 'kept', 'regular', 'normal', ?, ?, ?, ?, ?)",
                (status, old, resolved, old, old))
            await tx.execute("INSERT INTO ticket_events (ticket_id, at, actor, action, body) VALUES"
                             " (?, ?, 'customer', 'customer_message', 'a message')", (cur.lastrowid, old))
        await tx.execute("INSERT INTO conversations (contact_id, state, data, updated_at) VALUES (1, 'kn:describe', '{}', ?)", (old,))
        for delivery, status in (("failed-old", "failed"), ("pending-old", "pending")):
            await tx.execute("INSERT INTO order_deliveries (source, delivery_id, body, status, received_at)"
                             " VALUES ('shop', ?, '{\"phone\": \"0912345678\"}', ?, ?)", (delivery, status, old))

        # Webhook events: an old one delivered (its body goes), an old one still pending (kept).
        cur = await tx.execute("INSERT INTO webhook_endpoints (url, events, secret, created_at, updated_at)"
                               " VALUES ('http://127.0.0.1:9/', ',survey.answered,', 'whsec_x', ?, ?)", (old, old))
        endpoint_id = cur.lastrowid
        for n, status in enumerate(("delivered", "pending")):
            cur = await tx.execute("INSERT INTO webhook_messages (msg_id, type, payload, created_at)"
                                   " VALUES (?, 'survey.answered', '{\"n\": 1}', ?)", (f"msg_old{n}", old))
            await tx.execute("INSERT INTO webhook_deliveries (message_id, endpoint_id, status, next_attempt_at, created_at)"
                             " VALUES (?, ?, ?, ?, ?)", (cur.lastrowid, endpoint_id, status, "9999", old))


    counts = await privacy.purge(app.db, clock.now() - timedelta(days=30), clock.now(), batch=2)
    assert counts == {"my_data": 0, "my_data_web": 0, "my_data_links": 0, "web_messages": 0, "web_messages_last": 0, "web_uploads": 0, "inbox": 5, "outbox": 2,
                      "ticket_events": 1, "order_deliveries": 1, "webhook_messages": 1, "conversations": 1,
                      "erased_chats": 0}
    deliveries = {r["delivery_id"]: r["body"] for r in await h.rows("SELECT delivery_id, body FROM order_deliveries")}
    assert deliveries["failed-old"] is None and deliveries["pending-old"] is not None  # a pending one is handled at start
    hooks = {r["msg_id"]: r["payload"] for r in await h.rows("SELECT msg_id, payload FROM webhook_messages")}
    assert hooks == {"msg_old0": "{}", "msg_old1": '{"n": 1}'}
    inbox = {r["update_id"]: r for r in await h.rows("SELECT update_id, payload, text FROM inbox")}
    assert all(inbox[f"o{i}"]["payload"] == "{}" and inbox[f"o{i}"]["text"] is None for i in range(5))
    assert inbox["unprocessed"]["payload"] == '{"keep": 1}' and inbox["recent"]["payload"] == '{"keep": 2}'
    outbox = await h.rows("SELECT status, payload FROM outbox ORDER BY id")
    assert [r["payload"] == "{}" for r in outbox] == [True, True, False, False]  # the pending one waits its turn
    events = await h.rows("SELECT body FROM ticket_events ORDER BY id")
    assert [e["body"] for e in events] == [None, "a message"]  # the open ticket's conversation stays
    assert (await h.rows("SELECT description FROM tickets"))[0]["description"] == "kept"
    assert not any((await app.privacy.purge()).values())
    report = await app.digests.report_json(week_of(START, VN))  # the digest still works
    assert report["complaints"]["still_open"] == 1
    await h.close()


def test_privacy_config_is_checked(tmp_path):
    from bot.config import ConfigError

    with pytest.raises(ConfigError, match="privacy.retention_days"):
        make_config(tmp_path, privacy={"retention_days": 0})
    assert make_config(tmp_path).privacy.retention_days == 365
