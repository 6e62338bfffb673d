"""End to end: the real app object, long polling against the fake Bot API, a real SQLite file."""
from __future__ import annotations

import asyncio

from tests.conftest import BOTH, hours, purchase_body

BACKENDS = BOTH  # the CSAT flow end to end on SQLite and on PostgreSQL

USER = 555001
# The shop posts the customer's Telegram user id: the chat is proved to be hers (a receipt's
# link alone gives only its order).
HERS = {"customer": {**purchase_body()["customer"], "telegram_user_id": USER}}


async def test_purchase_to_comment_over_telegram(harness):
    tg = harness.tg
    await harness.start()

    # The shop posts a purchase: 202, a survey scheduled 3 h later, a deep link to print.
    status, body = await harness.post_purchase()
    assert status == 202, body
    assert body["survey"]["status"] == "scheduled"
    assert body["survey"]["due_at"].startswith("2026-11-23T12:00:00+07:00")
    link = body["links"]["telegram"]
    assert link.startswith("https://t.me/feedbot_test_bot?start=")
    token = link.split("start=")[1]

    # The customer opens the deep link: greeted (by the order, not by name: a receipt proves
    # nothing of who opens it), this order granted to the chat, no survey yet (not due).
    await harness.customer_says(USER, f"/start {token}")
    welcome = await tg.wait_for_messages(USER, 1)
    assert "#A-1001" in welcome[0].text and "Lan" not in welcome[0].text
    contact = (await harness.rows("SELECT * FROM contacts"))[0]
    assert contact["customer_id"] is None and contact["language"] == "vi"
    assert len(await harness.rows("SELECT * FROM start_token_uses WHERE contact_id = ?", (contact["id"],))) == 1

    assert (await harness.app.dispatcher.dispatch_due()) == {}
    await asyncio.sleep(0.2)
    assert len(tg.sent_messages(USER)) == 1

    # Three hours later the dispatch job sends the question with 1-5 buttons.
    harness.clock.advance(hours(3))
    outcome = await harness.app.dispatcher.dispatch_due()
    assert outcome == {"sent": 1}
    question = (await tg.wait_for_messages(USER, 2))[1]
    assert "#A-1001" in question.text
    buttons = question.reply_markup["inline_keyboard"][0]
    assert [b["text"][0] for b in buttons] == ["1", "2", "3", "4", "5"]

    # The customer taps 4: recorded, spinner stopped, buttons replaced, follow-up asked.
    await harness.customer_taps(USER, buttons[3]["callback_data"], question.message_id)
    followup = (await tg.wait_for_messages(USER, 3))[2]
    assert "Cảm ơn bạn đã chấm 4/5" in followup.text
    await tg.wait_for_requests("answerCallbackQuery", 1)
    edits = await tg.wait_for_requests("editMessageText", 1)
    assert "4/5" in edits[0].params["text"]

    # The free-text answer is the survey's comment.
    await harness.customer_says(USER, "Giao nhanh, nhưng hộp hơi móp 📦")
    thanks = (await tg.wait_for_messages(USER, 4))[3]
    assert "Cảm ơn bạn" in thanks.text

    survey = (await harness.rows("SELECT * FROM surveys"))[0]
    assert survey["status"] == "answered" and survey["score"] == 4
    assert survey["comment"] == "Giao nhanh, nhưng hộp hơi móp 📦"
    assert survey["sent_at"] is not None and survey["answered_at"] is not None
    assert survey["contact_id"] == contact["id"]
    inbox = await harness.rows("SELECT kind, text, processed_at, error FROM inbox ORDER BY id")
    assert [r["kind"] for r in inbox] == ["command", "choice", "text"]
    assert all(r["processed_at"] and r["error"] is None for r in inbox)
    outbox = await harness.rows("SELECT method, status FROM outbox ORDER BY id")
    await _wait_all_sent(harness)
    outbox = await harness.rows("SELECT method, status FROM outbox ORDER BY id")
    assert [r["method"] for r in outbox] == [
        "send_text", "send_text", "answer_choice", "send_text", "edit_text", "send_text",
    ]
    assert {r["status"] for r in outbox} == {"sent"}
    conversation = (await harness.rows("SELECT state FROM conversations"))[0]
    assert conversation["state"] == "idle"


async def _wait_all_sent(harness, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.05)):
        rows = await harness.rows("SELECT COUNT(*) AS n FROM outbox WHERE status != 'sent'")
        if rows[0]["n"] == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(await harness.rows("SELECT * FROM outbox WHERE status != 'sent'"))


async def test_english_customer_gets_english(harness):
    await harness.start()
    _, body = await harness.post_purchase()
    token = body["links"]["telegram"].split("start=")[1]
    await harness.customer_says(USER, f"/start {token}", language_code="en-US")
    harness.clock.advance(hours(3))
    await harness.app.dispatcher.dispatch_due()
    messages = await harness.tg.wait_for_messages(USER, 2)
    assert messages[0].text.startswith("Hello! This is the customer care chat of Shop An. Here you can rate order #A-1001")
    assert "how satisfied are you with order #A-1001?" in messages[1].text


async def test_linking_after_due_time_sends_the_pending_survey_at_once(harness):
    await harness.start()
    _, body = await harness.post_purchase()
    harness.clock.advance(hours(4))
    assert await harness.app.dispatcher.dispatch_due() == {"awaiting_contact": 1}
    token = body["links"]["telegram"].split("start=")[1]
    await harness.customer_says(USER, f"/start {token}")
    messages = await harness.tg.wait_for_messages(USER, 2)
    assert "#A-1001" in messages[1].text
    assert (await harness.rows("SELECT status FROM surveys"))[0]["status"] == "sent"


async def test_telegram_user_id_from_the_shop_links_without_deep_link(harness):
    await harness.start()
    await harness.post_purchase(customer={"external_id": "C-7", "name": "Bảo", "telegram_user_id": USER})
    await harness.customer_says(USER, "/start")
    await harness.tg.wait_for_messages(USER, 1)
    harness.clock.advance(hours(3))
    assert await harness.app.dispatcher.dispatch_due() == {"sent": 1}
    await harness.tg.wait_for_messages(USER, 2)


async def test_stop_opts_out_and_start_opts_back_in(harness):
    await harness.start()
    _, body = await harness.post_purchase(**HERS)
    token = body["links"]["telegram"].split("start=")[1]
    await harness.customer_says(USER, f"/start {token}")
    await harness.customer_says(USER, "/stop")
    await harness.tg.wait_for_messages(USER, 2)
    harness.clock.advance(hours(3))
    assert await harness.app.dispatcher.dispatch_due() == {"skipped_opted_out": 1}

    await harness.customer_says(USER, "/start")
    await harness.tg.wait_for_messages(USER, 3)
    await harness.post_purchase("A-1002", purchased_at=harness.clock.now().isoformat(), **HERS)
    harness.clock.advance(hours(3))
    assert await harness.app.dispatcher.dispatch_due() == {"sent": 1}


async def test_opting_out_or_in_again_changes_nothing(harness):
    """A second /stop keeps the first one's time; a /start from a customer who never opted
    out writes nothing to the customer (its updated_at orders customers sharing a user id)."""

    async def opted_out() -> tuple[str | None, str | None, str]:
        row = await harness.app.db.fetchone(
            "SELECT ct.opted_out_at, c.opted_out_at, c.updated_at FROM contacts ct JOIN customers c ON c.id = ct.customer_id"
        )
        return tuple(row)

    async def an_hour_later(command: str) -> tuple[str | None, str | None, str]:
        harness.clock.advance(hours(1))
        await harness.customer_says(USER, command)
        return await opted_out()

    await harness.start()
    _, body = await harness.post_purchase(**HERS)
    await harness.customer_says(USER, f"/start {body['links']['telegram'].split('start=')[1]}")
    linked = await opted_out()
    assert linked[:2] == (None, None)
    assert await an_hour_later("/start") == linked

    first = await an_hour_later("/stop")
    assert first[0] is not None and first[1] == first[0] == first[2] and first[2] > linked[2]
    assert await an_hour_later("/stop") == first

    back = await an_hour_later("/start")
    assert back[:2] == (None, None) and back[2] > first[2]


async def test_fatigue_one_survey_per_week(harness):
    await harness.start()
    _, body = await harness.post_purchase(**HERS)
    await harness.customer_says(USER, f"/start {body['links']['telegram'].split('start=')[1]}")
    await harness.tg.wait_for_messages(USER, 1)
    await harness.post_purchase("A-1002", purchased_at=harness.clock.now().isoformat(), **HERS)
    harness.clock.advance(hours(3))
    assert await harness.app.dispatcher.dispatch_due() == {"sent": 1, "skipped_fatigue": 1}
    harness.clock.advance(hours(24 * 7))
    await harness.post_purchase("A-1003", purchased_at=harness.clock.now().isoformat(), **HERS)
    harness.clock.advance(hours(3))
    assert await harness.app.dispatcher.dispatch_due() == {"sent": 1}


async def test_unanswered_survey_expires_and_late_tap_is_refused(harness):
    await harness.start()
    _, body = await harness.post_purchase()
    await harness.customer_says(USER, f"/start {body['links']['telegram'].split('start=')[1]}")
    harness.clock.advance(hours(3))
    await harness.app.dispatcher.dispatch_due()
    question = (await harness.tg.wait_for_messages(USER, 2))[1]
    harness.clock.advance(hours(72))
    assert await harness.app.dispatcher.expire() == {"expired": 1}
    await harness.customer_taps(USER, question.reply_markup["inline_keyboard"][0][4]["callback_data"], question.message_id)
    answers = await harness.tg.wait_for_requests("answerCallbackQuery", 1)
    assert "đóng" in answers[0].params["text"]
    survey = (await harness.rows("SELECT status, score FROM surveys"))[0]
    assert survey == {"status": "expired", "score": None}


async def test_reminder_once_when_enabled(tmp_path, tg, clock, database_url):
    from tests.conftest import Harness, make_config

    h = Harness(make_config(tmp_path, tg, database_url=database_url, survey={"reminder": True, "reminder_after": "24h"}), tg, clock)
    try:
        await h.start()
        _, body = await h.post_purchase()
        await h.customer_says(USER, f"/start {body['links']['telegram'].split('start=')[1]}")
        h.clock.advance(hours(3))
        await h.app.dispatcher.dispatch_due()
        h.clock.advance(hours(24))
        assert await h.app.dispatcher.remind() == 1
        assert await h.app.dispatcher.remind() == 0
        messages = await tg.wait_for_messages(USER, 3)
        assert "vẫn rất mong được nghe ý kiến của bạn về đơn hàng #A-1001" in messages[2].text
    finally:
        await h.close()


async def test_no_reminder_to_a_receipt_link_chat_that_said_stop(tmp_path, tg, clock, database_url):
    from tests.conftest import Harness, make_config

    h = Harness(make_config(tmp_path, tg, database_url=database_url, survey={"reminder": True, "reminder_after": "24h"}), tg, clock)
    try:
        await h.start()
        _, body = await h.post_purchase()  # no chat id of the customer's: the link's chat is not theirs
        await h.customer_says(USER, f"/start {body['links']['telegram'].split('start=')[1]}")
        h.clock.advance(hours(3))
        assert await h.app.dispatcher.dispatch_due() == {"sent": 1}
        before = len(tg.texts(USER))
        await h.customer_says(USER, "/stop")
        assert "không nhận khảo sát" in (await tg.wait_for_messages(USER, before + 1))[-1].text
        h.clock.advance(hours(24))
        assert await h.app.dispatcher.remind() == 0
        await asyncio.sleep(0.2)
        assert not any("vẫn rất mong" in t for t in tg.texts(USER))
    finally:
        await h.close()


async def test_quiet_hours_postpone_to_morning(harness):
    await harness.start()
    _, body = await harness.post_purchase(purchased_at="2026-11-22T19:30:00+07:00")
    assert body["survey"]["due_at"].startswith("2026-11-23T08:00:00+07:00")


async def test_restart_sends_a_survey_that_came_due_while_down_exactly_once(tmp_path, tg, clock, database_url):
    from tests.conftest import Harness, make_config

    h = Harness(make_config(tmp_path, tg, database_url=database_url), tg, clock)
    try:
        await h.start()
        _, body = await h.post_purchase()
        await h.customer_says(USER, f"/start {body['links']['telegram'].split('start=')[1]}")
        await tg.wait_for_messages(USER, 1)
        await h.stop()

        clock.advance(hours(5))  # the survey came due while the bot was down
        await h.start(scheduler=True)  # the dispatch job runs at start
        await tg.wait_for_messages(USER, 2)
        await h.stop()
        await h.start(scheduler=True)
        await asyncio.sleep(0.5)
        assert len(tg.sent_messages(USER)) == 2
        assert [r["status"] for r in await h.rows("SELECT status FROM surveys")] == ["sent"]
    finally:
        await h.close()


async def test_messages_from_groups_and_unknown_updates_are_ignored(harness):
    await harness.start()
    harness.tg.push_update(harness.tg.make_message_update(USER, "hi", chat_id=-100123))
    await harness.customer_says(USER, "xin chào")
    await harness.tg.wait_for_messages(USER, 1)
    # An update type we do not subscribe to, delivered anyway (webhooks do not filter).
    await harness.app.engine.receive("telegram", {"update_id": 1, "edited_message": {"message_id": 1}})
    rows = await harness.rows("SELECT kind FROM inbox ORDER BY id")
    assert [r["kind"] for r in rows] == ["ignored", "text", "ignored"]
    assert harness.tg.sent_messages(-100123) == []


async def test_update_recorded_before_a_crash_is_handled_at_restart(tmp_path, tg, clock, database_url):
    """The bot stopped between recording an update and handling it: replayed once at start."""
    import json

    from storage import inbox
    from tests.conftest import Harness, make_config

    config = make_config(tmp_path, tg, database_url=database_url)
    update = tg.make_message_update(USER, "xin chào")
    async with config.database.open() as db:
        async with db.transaction() as tx:
            assert await inbox.record(tx, "telegram", str(update["update_id"]), update, clock.now())
    h = Harness(config, tg, clock)
    try:
        await h.start()
        replies = await tg.wait_for_messages(USER, 1)
        assert "đã nhận câu hỏi" in replies[0].text
        row = (await h.rows("SELECT processed_at, kind, payload FROM inbox"))[0]
        assert row["processed_at"] and row["kind"] == "text"
        assert json.loads(row["payload"]) == update
        await h.stop()
        await h.start()
        await asyncio.sleep(0.3)
        assert len(tg.sent_messages(USER)) == 1  # not replayed twice
    finally:
        await h.close()


async def test_an_update_failing_half_way_keeps_its_error_and_none_of_its_writes(harness, monkeypatch):
    """Handled in a unit shared with the updates arriving with it (storage/db.py): the failing
    one's writes go (its contact was already written when it failed), the others' stay, and its
    inbox row keeps the error; its redelivery is not handled again."""
    import bot.outbox.consent

    await harness.start()
    tg, engine = harness.tg, harness.app.engine
    unlucky = USER + 1
    real_on_inbound = bot.outbox.consent.on_inbound

    async def on_inbound(tx, contact_id, event, now):
        if event.user_id == str(unlucky):
            raise RuntimeError("the disk caught fire")
        await real_on_inbound(tx, contact_id, event, now)

    monkeypatch.setattr(bot.outbox.consent, "on_inbound", on_inbound)
    updates = [tg.make_message_update(USER + i, "xin chào") for i in range(3)]
    assert await asyncio.gather(*(engine.receive("telegram", u) for u in updates)) == [True, True, True]
    rows = await harness.rows("SELECT update_id, kind, error, contact_id, processed_at FROM inbox ORDER BY id")
    failed = next(r for r in rows if r["update_id"] == str(updates[1]["update_id"]))
    assert failed["error"] == "RuntimeError: the disk caught fire"
    assert failed["processed_at"] and failed["kind"] is None and failed["contact_id"] is None
    assert [r["error"] for r in rows if r is not failed] == [None, None]
    contacts = await harness.rows("SELECT platform_user_id FROM contacts ORDER BY platform_user_id")
    assert [c["platform_user_id"] for c in contacts] == [str(USER), str(USER + 2)]
    assert await engine.receive("telegram", updates[1]) is False  # the redelivery: recorded already
    await tg.wait_for_messages(USER + 2, 1)
    assert tg.sent_messages(unlucky) == []
    monkeypatch.setattr(bot.outbox.consent, "on_inbound", real_on_inbound)
    await harness.customer_says(unlucky, "xin chào")  # the next message is handled as usual
    assert len(await tg.wait_for_messages(unlucky, 1)) == 1


async def test_a_nul_character_in_a_chat_message_is_handled_on_either_backend(harness):
    # PostgreSQL text cannot hold U+0000 (storage/pg.py drops it from what it binds); SQLite
    # keeps it. Either way the customer's message is handled, not kept with an error. (The
    # shop's API refuses one with a 400 on both: storage.db.encodable.)
    await harness.start()
    body = purchase_body()
    body["customer"]["name"] = "Nguyễn Thị\u0000 Lan"
    status, answer = await harness.post_purchase(customer=body["customer"])
    assert status == 400 and "NUL" in str(answer), answer
    await harness.customer_says(USER, "xin\u0000 chào")
    assert (await harness.tg.wait_for_messages(USER, 1))[0].text
    [row] = await harness.rows("SELECT text, error FROM inbox")
    assert row["error"] is None and row["text"].replace("\x00", "") == "xin chào"
