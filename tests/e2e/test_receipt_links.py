"""Issue 19, items 1 and 6: a receipt's link (the start token) is not a key to the customer's
data. Attack scenarios against the real app: a second Telegram user or a fresh web session
holding a victim's token asks /mydata and /forget; expiry and revocation; the shop's switch
that trusts the first chat; which phone shares prove a chat is the customer's."""
from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import pytest

from bot.channels.web.server import customer_token
from storage import settings
from tests.conftest import Harness, hours, make_config
from storage import contacts as contacts_store
from storage import customers
from storage.db import Database
from tests.conftest import START
from tests.services.test_privacy import all_sent, contact, document_of, feedbot
from tests.channels.web.test_server import Visitor

VICTIM = 555001
ATTACKER = 666001
NAME = "Nguyễn Thị Lan"
PHONE = "+84 912 345 678"
COMMENT = "Giao tới số 12 Lê Lợi, hộp còn nguyên"
HERS = {"external_id": "C-42", "name": NAME, "phone": PHONE, "telegram_user_id": VICTIM}


def buttons(message):
    return [b for row in message.reply_markup["inline_keyboard"] for b in row]


def token_of(body: dict) -> str:
    return body["links"]["telegram"].split("start=")[1]


async def victim_with_history(h: Harness) -> str:
    """Her own Telegram chat (the shop posted her user id): a 5 with a comment. Her token."""
    _, body = await h.post_purchase(customer=HERS)
    await h.customer_says(VICTIM, f"/start {token_of(body)}")
    h.clock.advance(hours(3))
    assert await h.app.dispatcher.dispatch_due() == {"sent": 1}
    question = (await h.tg.wait_for_messages(VICTIM, 2))[1]
    await h.customer_taps(VICTIM, buttons(question)[4]["callback_data"], question.message_id)
    await h.customer_says(VICTIM, COMMENT)
    await all_sent(h)
    return token_of(body)


async def forget(h: Harness, user: int) -> None:
    before = len(h.tg.sent_messages(user))
    await h.customer_says(user, "/forget")
    ask = (await h.tg.wait_for_messages(user, before + 1))[-1]
    await h.customer_taps(user, buttons(ask)[0]["callback_data"], ask.message_id)
    await all_sent(h)


async def test_a_second_telegram_user_with_the_victims_token_gets_her_order_only(harness):
    h = harness
    await h.start()
    token = await victim_with_history(h)
    told_before = len(h.tg.sent_messages(VICTIM))

    await h.customer_says(ATTACKER, f"/start {token}")
    await h.customer_says(ATTACKER, "/mydata")
    export = (await h.tg.wait_for_messages(ATTACKER, 2))[1]
    assert "chỉ gồm dữ liệu của cuộc trò chuyện này" in export.params["caption"]
    document = document_of(export)
    leaked = json.dumps(document, ensure_ascii=False)
    assert document["tables"]["customers"] == [] and document["tables"]["purchases"] == []
    assert document["tables"]["surveys"] == []
    for secret in (NAME, "912 345 678", COMMENT, "TEA-01", str(VICTIM)):
        assert secret not in leaked, secret

    await forget(h, ATTACKER)
    assert (await contact(h, VICTIM))["erased_at"] is None
    assert (await h.rows("SELECT name, erased_at FROM customers"))[0] == {"name": NAME, "erased_at": None}
    assert (await h.rows("SELECT comment FROM surveys"))[0]["comment"] == COMMENT
    inbox = await h.rows("SELECT payload FROM inbox WHERE contact_id = ?", ((await contact(h, VICTIM))["id"],))
    assert inbox and all(r["payload"] != "{}" for r in inbox)

    greeting = h.tg.sent_messages(ATTACKER)[0].text
    assert NAME not in greeting and "Lan" not in greeting  # no "Hello <name>!"
    # The victim heard of it in her own chat.
    told = (await h.tg.wait_for_messages(VICTIM, told_before + 1))[told_before]
    assert "#A-1001" in told.text and "cuộc trò chuyện khác" in told.text


async def test_the_token_still_gives_its_order_survey_and_complaint_and_no_other_order(harness):
    h = harness
    await h.start()
    _, first = await h.post_purchase("A-1001")
    await h.post_purchase("A-1002", purchased_at=h.clock.now().isoformat())  # her other order
    await h.customer_says(ATTACKER, f"/start {token_of(first)}")
    h.clock.advance(hours(3))
    assert (await h.app.dispatcher.dispatch_due())["sent"] == 1
    question = (await h.tg.wait_for_messages(ATTACKER, 2))[1]
    assert "#A-1001" in question.text
    await h.customer_taps(ATTACKER, buttons(question)[0]["callback_data"], question.message_id)  # score 1
    assert (await h.rows("SELECT score FROM surveys ORDER BY id"))[0]["score"] == 1
    await all_sent(h)
    count = len(h.tg.sent_messages(ATTACKER))
    await h.customer_says(ATTACKER, "/complaint")
    ask = (await h.tg.wait_for_messages(ATTACKER, count + 1))[-1]
    offered = " ".join(b["text"] for b in buttons(ask)) + ask.text
    assert "A-1001" in offered and "A-1002" not in offered


async def test_a_fresh_web_session_with_the_token_cannot_read_or_erase_the_customers_chats(tmp_path, clock):
    h = Harness(make_config(tmp_path), None, clock)
    await h.start()
    try:
        _, body = await h.post_purchase(customer={"external_id": "C-42", "name": NAME, "phone": PHONE})
        async with h.app.db.transaction() as tx:
            secret = await settings.get(tx, "web_customer_token_secret")
        # The real customer, logged in on the shop's site: her web session is hers.
        own = await Visitor.connect(h, customer_token=customer_token(secret, "C-42", int(time.time()) + 3600))
        assert NAME in (await own.message("Xin chào"))["text"]
        assert (await own.say(COMMENT))["type"] == "accepted"

        token = body["links"]["web"].split("start=")[1]
        attacker = await Visitor.connect(h, start=token)
        greeting = (await attacker.message("Xin chào"))["text"]
        await attacker.say("/mydata")
        frame = await attacker.next("document")
        document = json.loads(base64.b64decode(frame["document"]["data"]).decode("utf-8"))
        leaked = json.dumps(document, ensure_ascii=False)
        assert document["tables"]["customers"] == [] and NAME not in leaked and COMMENT not in leaked
        assert "912 345 678" not in leaked

        await attacker.say("/forget")
        ask = await attacker.message("xoá")
        await attacker.tap(ask, "Xoá dữ liệu")
        await attacker.message("Đã xoá dữ liệu")
        mine = await h.rows("SELECT COUNT(*) AS n FROM web_messages WHERE session_id = ?", (own.session.split(".")[0],))
        assert mine[0]["n"] > 0  # her session's log is still there
        assert (await h.rows("SELECT name FROM customers"))[0]["name"] == NAME
        assert NAME not in greeting and "#A-1001" in greeting  # no "Hello <name>!"
        assert "#A-1001" in (await own.message("cuộc trò chuyện khác"))["text"]  # she is told
        await own.close()
        await attacker.close()
    finally:
        await h.close()


async def test_whole_customer_export_and_erase_tell_her_other_chats(harness):
    h = harness
    await h.start()
    token = await victim_with_history(h)
    await h.customer_says(ATTACKER, f"/start {token}")
    await all_sent(h)
    async with h.app.db.transaction() as tx:  # a second chat the shop vouched for (her Zalo, say)
        await tx.execute("INSERT INTO contacts (channel, platform_user_id, chat_id, customer_id, language, created_at,"
                         " last_seen_at, verified_by) VALUES ('telegram', '777', '777', 1, 'vi', '', '', 'shop')")
    await h.customer_says(VICTIM, "/mydata")
    await all_sent(h)
    assert any("bản sao toàn bộ dữ liệu" in m.text for m in h.tg.sent_messages(777))
    assert not any("bản sao toàn bộ" in m.text for m in h.tg.sent_messages(ATTACKER))  # not hers: not told of exports
    await forget(h, VICTIM)
    assert any("vừa được xoá theo yêu cầu" in m.text for m in h.tg.sent_messages(777))


@pytest.mark.parametrize("revoke", [False, True])
async def test_an_expired_or_revoked_token_gets_an_honest_answer_and_nothing(harness, revoke):
    h = harness
    await h.start()
    token = await victim_with_history(h)  # answered now: the link works 30 days more
    if revoke:
        status, again = await h.post_purchase(customer=HERS, revoke_link=True)
        assert status == 200 and token_of(again) != token
    else:
        h.clock.advance(timedelta(days=30, seconds=1))
    await h.customer_says(ATTACKER, f"/start {token}")
    answer = (await h.tg.wait_for_messages(ATTACKER, 1))[0].text
    assert "hết hạn" in answer and NAME not in answer and "A-1001" not in answer
    assert await h.rows("SELECT id FROM start_token_uses WHERE contact_id = ?", ((await contact(h, ATTACKER))["id"],)) == []


async def test_within_the_window_the_token_still_works(harness):
    h = harness
    await h.start()
    token = await victim_with_history(h)
    h.clock.advance(timedelta(days=29))
    await h.customer_says(ATTACKER, f"/start {token}")
    assert "#A-1001" in (await h.tg.wait_for_messages(ATTACKER, 1))[0].text


async def test_the_shop_may_trust_the_first_chat_to_open_a_link_and_only_the_first(tmp_path, tg, clock):
    h = Harness(make_config(tmp_path, tg, privacy={"trust_first_token_chat": True}), tg, clock)
    await h.start()
    try:
        _, body = await h.post_purchase(customer={"external_id": "C-42", "name": NAME, "phone": PHONE})
        await h.customer_says(VICTIM, f"/start {token_of(body)}")
        assert NAME in (await h.tg.wait_for_messages(VICTIM, 1))[0].text
        assert (await contact(h, VICTIM))["verified_by"] == "first_token"
        await h.customer_says(ATTACKER, f"/start {token_of(body)}")
        assert NAME not in (await h.tg.wait_for_messages(ATTACKER, 1))[0].text
        assert (await contact(h, ATTACKER))["customer_id"] is None
        assert "cuộc trò chuyện khác" in (await h.tg.wait_for_messages(VICTIM, 2))[1].text
    finally:
        await h.close()


async def test_a_telegram_contact_proves_the_phone_only_when_it_is_the_senders_own(harness):
    h = harness
    await h.start()
    await h.post_purchase(customer={"external_id": "C-42", "name": NAME, "phone": PHONE})
    # Someone else's contact card (another user id, or none): proves nothing.
    for owner in (VICTIM, None):
        await h.deliver(h.tg.make_message_update(ATTACKER, "", contact=("84912345678", owner)))
    assert (await contact(h, ATTACKER))["customer_id"] is None
    assert all(NAME not in m.text for m in h.tg.sent_messages(ATTACKER))
    # Her own number, shared with Telegram's button (the contact carries her own user id).
    await h.deliver(h.tg.make_message_update(VICTIM, "", contact=("+84912345678", VICTIM)))
    mine = await contact(h, VICTIM)
    assert mine["customer_id"] is not None and mine["verified_by"] == "phone"
    assert NAME in (await h.tg.wait_for_messages(VICTIM, 1))[0].text


async def test_the_shop_confirms_a_chat_with_feedbot_customer_link(tmp_path):
    async with Database(tmp_path / "feedbot.db") as db:
        async with db.transaction() as tx:
            await customers.upsert(tx, external_id="C-42", name=NAME, phone=PHONE, telegram_user_id=None, now=START)
            chat = await contacts_store.upsert_seen(tx, channel="zalo", platform_user_id="51706", chat_id="51706",
                                                    display_name="Lan", language="vi", now=START)
    for bad in (("contact:99", "C-42"), ("contact:1", "C-99"), ("7", "C-42")):
        refused = feedbot("customer", "link", *bad, cwd=tmp_path)
        assert refused.returncode == 1 and refused.stderr.startswith("feedbot: "), refused.stderr
    done = feedbot("customer", "link", f"contact:{chat.id}", "C-42", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    async with Database(tmp_path / "feedbot.db") as db:
        linked = await contacts_store.by_id(db.reader, chat.id)
        row = await db.fetchone("SELECT verified_by FROM contacts WHERE id = ?", (chat.id,))
    assert linked is not None and linked.customer_id is not None and row[0] == "shop_cli"


async def test_the_migration_keeps_shop_named_chats_and_demotes_chats_linked_by_a_link(tmp_path):
    """Before 0013 a receipt's link made the chat the customer's: such chats keep their
    orders (as links they opened) but are no longer hers; her printed link is her latest order's."""
    db = Database(tmp_path / "legacy.db")
    await db.open(migrate=False)
    try:
        assert len(await db.migrate(up_to=12)) == 11
        at = "2026-11-20T00:00:00.000000Z"
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO customers (id, external_id, name, telegram_user_id, link_token, created_at,"
                             " updated_at) VALUES (1, 'C-42', 'Lan', '111', 'OLDTOKEN1', ?, ?)", (at, at))
            for pid, order, when in ((1, "A-1", "2026-11-01T00:00:00.000000Z"), (2, "A-2", "2026-11-10T00:00:00.000000Z")):
                await tx.execute("INSERT INTO purchases (id, order_id, customer_id, amount, currency, items, touchpoint,"
                                 " purchased_at, fingerprint, created_at) VALUES (?, ?, 1, 1, 'VND', '[]', 'online', ?, '', ?)",
                                 (pid, order, when, at))
            for cid, channel, user in ((1, "telegram", "111"), (2, "telegram", "222"), (3, "web", "sess")):
                await tx.execute("INSERT INTO contacts (id, channel, platform_user_id, chat_id, customer_id, language,"
                                 " created_at, last_seen_at) VALUES (?, ?, ?, ?, 1, 'vi', ?, ?)", (cid, channel, user, user, at, at))
        assert "0013_start_tokens.sql" in await db.migrate()
        linked = await db.fetchall("SELECT id, customer_id, verified_by FROM contacts ORDER BY id")
        assert [tuple(r) for r in linked] == [(1, 1, "shop"), (2, None, None), (3, None, None)]
        uses = await db.fetchall("SELECT contact_id, purchase_id FROM start_token_uses ORDER BY contact_id, purchase_id")
        assert [tuple(r) for r in uses] == [(2, 1), (2, 2), (3, 1), (3, 2)]
        tokens = {r[0]: r[1] for r in await db.fetchall("SELECT purchase_id, token FROM start_tokens")}
        assert tokens[2] == "OLDTOKEN1" and tokens[1] != "OLDTOKEN1" and len(tokens) == 2
    finally:
        await db.close()


async def test_on_telegram_the_receipts_chat_is_offered_the_share_phone_button_and_her_number_proves_it(harness):
    h = harness
    await h.start()
    _, body = await h.post_purchase(customer={"external_id": "C-42", "name": NAME, "phone": PHONE})
    await h.customer_says(VICTIM, f"/start {token_of(body)}")
    greeting = (await h.tg.wait_for_messages(VICTIM, 1))[0]
    assert greeting.reply_markup["keyboard"] == [[{"text": "📱 Chia sẻ số điện thoại", "request_contact": True}]]
    assert greeting.reply_markup["one_time_keyboard"] is True
    await h.deliver(h.tg.make_message_update(VICTIM, "", contact=("84912345678", VICTIM)))  # the button's answer
    assert NAME in (await h.tg.wait_for_messages(VICTIM, 2))[1].text
    await h.customer_says(VICTIM, "/mydata")  # now the whole customer
    document = document_of((await h.tg.wait_for_messages(VICTIM, 3))[2])
    assert document["tables"]["customers"][0]["name"] == NAME
