"""Complaints end to end: a customer chat and the agents' group on the fake Bot API."""
from __future__ import annotations

import asyncio

import pytest

from tests.conftest import BOTH, Harness, hours, make_config

BACKENDS = BOTH  # the complaint flow end to end on SQLite and on PostgreSQL

CUSTOMER = 555001
OTHER_CUSTOMER = 555002
GROUP = -1001234567890
AGENT, AGENT_NAME = 9001, "Minh"
NOT_AGENT = 9002


def config(tmp_path, tg, database_url=None, **agents):
    return make_config(
        tmp_path, tg, database_url=database_url,
        agents={"chat_id": int(GROUP), "supervisor": "@shop_lead", "owner_chat_ids": [777], **agents},
        sender={"group_messages_per_minute": 600},  # fast tests; pacing itself is tested in test_sender
    )


@pytest.fixture
async def desk(tmp_path, tg, clock, database_url):
    tg.make_group(GROUP, "Agents", is_forum=False, members={AGENT: AGENT_NAME, NOT_AGENT: "Khách lạ"})
    h = Harness(config(tmp_path, tg, database_url, agent_ids=[AGENT]), tg, clock)
    await h.start()
    yield h
    await h.close()


async def linked_customer(h, user=CUSTOMER, order="A-1001", external="C-42"):
    """The customer's own chat (the shop posted her Telegram user id), opening her receipt's link."""
    customer = {"external_id": external, "name": "Nguyễn Thị Lan", "telegram_user_id": user}
    _, body = await h.post_purchase(order, customer=customer)
    await h.customer_says(user, f"/start {body['links']['telegram'].split('start=')[1]}")
    return body


def buttons(message):
    return [b for row in message.reply_markup["inline_keyboard"] for b in row]


async def file_complaint_after_low_score(h, tg):
    """Purchase -> survey -> score 1 -> 'File a complaint' -> category -> text -> photo -> send."""
    await linked_customer(h)
    h.clock.advance(hours(3))
    await h.app.dispatcher.dispatch_due()
    question = (await tg.wait_for_messages(CUSTOMER, 2))[1]
    await h.customer_taps(CUSTOMER, buttons(question)[0]["callback_data"], question.message_id)  # score 1
    followup = (await tg.wait_for_messages(CUSTOMER, 3))[2]
    complain = next(b for b in buttons(followup) if b["callback_data"].startswith("kn:new:"))
    await h.customer_taps(CUSTOMER, complain["callback_data"], followup.message_id)
    ask_category = (await tg.wait_for_messages(CUSTOMER, 4))[3]  # the survey's order is preselected
    delivery = next(b for b in buttons(ask_category) if b["text"] == "Giao hàng")
    await h.customer_taps(CUSTOMER, delivery["callback_data"], ask_category.message_id)
    await tg.wait_for_messages(CUSTOMER, 5)
    await h.customer_says(CUSTOMER, "Shipper giao trễ 2 ngày, hộp bị móp")
    await tg.wait_for_messages(CUSTOMER, 6)
    await h.deliver(tg.make_message_update(CUSTOMER, "", photo_file_ids=["PHOTO-BOX-1"], caption=""))
    ask_more = (await tg.wait_for_messages(CUSTOMER, 7))[6]
    await h.customer_taps(CUSTOMER, buttons(ask_more)[0]["callback_data"], ask_more.message_id)  # Continue
    confirm = (await tg.wait_for_messages(CUSTOMER, 8))[7]
    assert "#A-1001" in confirm.text and "Giao hàng" in confirm.text and "1 ảnh" in confirm.text
    await h.customer_taps(CUSTOMER, buttons(confirm)[0]["callback_data"], confirm.message_id)  # Send
    opened = (await tg.wait_for_messages(CUSTOMER, 9))[8]
    assert "KN-0001" in opened.text
    return opened


async def test_low_score_to_resolution_in_reply_mode(desk, tg):
    opened = await file_complaint_after_low_score(desk, tg)
    assert "trước 14:00 23/11" in opened.text  # normal priority: first response within 2 h of 12:00 shop time

    card = (await tg.wait_for_messages(GROUP, 1))[0]
    assert "KN-0001" in card.text and "Nguyễn Thị Lan" in card.text and "#A-1001" in card.text
    assert "Shipper giao trễ 2 ngày" in card.text and "1 ảnh" in card.text and "CSAT trước đây: 1" in card.text
    assert [b["text"] for b in buttons(card)] == ["✋ Nhận xử lý", "✅ Đã xong", "⏫ Chuyển cấp"]
    photo = (await tg.wait_for_messages(GROUP, 2))[1]
    assert photo.method == "sendPhoto" and photo.params["photo"] == "PHOTO-BOX-1"

    # The agent answers by replying to the card: the customer gets it, the ticket is taken.
    await desk.deliver(tg.make_message_update(AGENT, "Chào chị, shop gửi bù hộp mới ngay hôm nay ạ", chat_id=GROUP, reply_to_message_id=card.message_id))
    relayed = (await tg.wait_for_messages(CUSTOMER, 10))[9]
    assert relayed.text == "💬 Shop An (KN-0001): Chào chị, shop gửi bù hộp mới ngay hôm nay ạ"

    # The customer's answer goes to the group, threaded under the card.
    await desk.customer_says(CUSTOMER, "Cảm ơn shop")
    back = (await tg.wait_for_messages(GROUP, 3))[2]
    assert back.text == "👤 Nguyễn Thị Lan (KN-0001): Cảm ơn shop" and back.reply_to_message_id == card.message_id
    assert card.text.endswith("Trả lời (reply) tin này để nhắn cho khách; /note <ghi chú> để ghi chú nội bộ.")

    # An internal note never reaches the customer.
    await desk.deliver(tg.make_message_update(AGENT, "/note khách VIP tiềm năng", chat_id=GROUP, reply_to_message_id=card.message_id))
    await tg.wait_for_messages(GROUP, 4)
    await asyncio.sleep(0.2)
    assert not any("VIP tiềm năng" in m.text for m in tg.sent_messages(CUSTOMER))

    # Resolve: the customer is asked to rate the handling.
    await desk.deliver(tg.make_callback_update(AGENT, "dk:resolve:1", card.message_id, chat_id=GROUP))
    question = (await tg.wait_for_messages(CUSTOMER, 11))[10]
    assert "KN-0001 đã được xử lý xong" in question.text
    await desk.customer_taps(CUSTOMER, buttons(question)[4]["callback_data"], question.message_id)
    await tg.wait_for_messages(CUSTOMER, 12)

    ticket = (await desk.rows("SELECT * FROM tickets"))[0]
    assert ticket["status"] == "resolved" and ticket["resolution_score"] == 5
    assert ticket["assignee_id"] == str(AGENT) and ticket["first_response_at"] and ticket["source"] == "low_score"
    assert ticket["photos"] == '["PHOTO-BOX-1"]' and ticket["category"] == "delivery"
    actions = [r["action"] for r in await desk.rows("SELECT action FROM ticket_events ORDER BY id")]
    assert actions == ["opened", "reply", "customer_message", "note", "resolved", "rated"]
    for _ in range(100):  # the card is edited as the ticket moves (sent asynchronously)
        edits = [r.params["text"] for r in tg.requests_for("editMessageText") if str(r.params.get("chat_id")) == str(GROUP)]
        if any("đã đóng" in e for e in edits):
            break
        await asyncio.sleep(0.05)
    assert any("Minh đang xử lý" in e for e in edits) and any("Trạng thái: đã đóng" in e for e in edits)


async def test_forum_mode_one_topic_per_ticket(tmp_path, tg, clock):
    tg.make_group(GROUP, "Agents", is_forum=True, members={AGENT: AGENT_NAME})
    h = Harness(config(tmp_path, tg), tg, clock)
    try:
        await h.start()
        await linked_customer(h)
        await h.customer_says(CUSTOMER, "/complaint")
        ask_order = (await tg.wait_for_messages(CUSTOMER, 2))[1]
        await h.customer_taps(CUSTOMER, buttons(ask_order)[0]["callback_data"], ask_order.message_id)
        ask_category = (await tg.wait_for_messages(CUSTOMER, 3))[2]
        await h.customer_taps(CUSTOMER, buttons(ask_category)[1]["callback_data"], ask_category.message_id)  # product quality
        await h.customer_says(CUSTOMER, "Trà bị mốc, không uống được")
        ask_photos = (await tg.wait_for_messages(CUSTOMER, 5))[4]
        await h.customer_taps(CUSTOMER, buttons(ask_photos)[0]["callback_data"], ask_photos.message_id)
        confirm = (await tg.wait_for_messages(CUSTOMER, 6))[5]
        await h.customer_taps(CUSTOMER, buttons(confirm)[0]["callback_data"], confirm.message_id)
        opened = (await tg.wait_for_messages(CUSTOMER, 7))[6]
        assert "KN-0001" in opened.text and "trước 09:30" in opened.text  # severe category: 30 min target

        topics = tg.forum_topics(GROUP)
        assert len(topics) == 1
        thread, topic = next(iter(topics.items()))
        assert topic["name"] == "KN-0001 · Chất lượng sản phẩm"
        card = (await tg.wait_for_messages(GROUP, 1, thread_id=thread))[0]
        assert "ưu tiên cao" in card.text and "Nhắn trong chủ đề này" in card.text

        await h.deliver(tg.make_message_update(AGENT, "Shop xin lỗi, hoàn tiền trong hôm nay", chat_id=GROUP, message_thread_id=thread))
        relayed = (await tg.wait_for_messages(CUSTOMER, 8))[7]
        assert "hoàn tiền trong hôm nay" in relayed.text
        await h.customer_says(CUSTOMER, "Dạ vâng")
        back = await tg.wait_for_messages(GROUP, 2, thread_id=thread)
        assert back[1].text.endswith("Dạ vâng")
        assert (await h.rows("SELECT thread_id FROM tickets"))[0]["thread_id"] == str(thread)
    finally:
        await h.close()


async def test_falls_back_to_replies_when_the_server_has_no_topics(tmp_path, tg, clock):
    tg.make_group(GROUP, "Agents", is_forum=True, members={AGENT: AGENT_NAME})
    tg.disable_method("createForumTopic")  # e.g. an older self-hosted Bot API server
    h = Harness(config(tmp_path, tg), tg, clock)
    try:
        await h.start()
        await h.customer_says(CUSTOMER, "Hàng bị hỏng rồi, giao chậm nữa")
        ask_category = (await tg.wait_for_messages(CUSTOMER, 1))[0]  # no orders: straight to the category
        await h.customer_taps(CUSTOMER, buttons(ask_category)[0]["callback_data"], ask_category.message_id)
        ask_photos = (await tg.wait_for_messages(CUSTOMER, 2))[1]  # the message itself was the description
        await h.customer_taps(CUSTOMER, buttons(ask_photos)[0]["callback_data"], ask_photos.message_id)
        confirm = (await tg.wait_for_messages(CUSTOMER, 3))[2]
        assert "Hàng bị hỏng rồi, giao chậm nữa" in confirm.text
        await h.customer_taps(CUSTOMER, buttons(confirm)[0]["callback_data"], confirm.message_id)
        card = (await tg.wait_for_messages(GROUP, 1))[0]
        assert card.thread_id is None and "Trả lời (reply) tin này" in card.text
        await h.deliver(tg.make_message_update(AGENT, "Đã nhận", chat_id=GROUP, reply_to_message_id=card.message_id))
        relayed = (await tg.wait_for_messages(CUSTOMER, 5))[4]
        assert relayed.text.endswith("Đã nhận")
        ticket = (await h.rows("SELECT source, thread_id FROM tickets"))[0]
        assert ticket == {"source": "keywords", "thread_id": None}
    finally:
        await h.close()


async def test_only_agents_act_and_refusals_are_audited(desk, tg):
    await file_complaint_after_low_score(desk, tg)
    card = (await tg.wait_for_messages(GROUP, 1))[0]

    # A group member who is not on the agent list presses Resolve.
    answered = len(tg.requests_for("answerCallbackQuery"))
    await desk.deliver(tg.make_callback_update(NOT_AGENT, "dk:resolve:1", card.message_id, chat_id=GROUP))
    answers = await tg.wait_for_requests("answerCallbackQuery", answered + 1)
    assert answers[-1].params["text"] == "Bạn không có quyền xử lý khiếu nại này."
    # ... and replies to the card: not relayed.
    await desk.deliver(tg.make_message_update(NOT_AGENT, "trả lời bừa", chat_id=GROUP, reply_to_message_id=card.message_id))
    # An anonymous admin (posting as the group) replies: not relayed either.
    await desk.deliver(tg.make_message_update(AGENT, "ẩn danh", chat_id=GROUP, reply_to_message_id=card.message_id, sender_chat=True))
    # The customer crafts the agents' button in their private chat.
    await desk.deliver(tg.make_callback_update(CUSTOMER, "dk:resolve:1", 1))
    await asyncio.sleep(0.3)

    ticket = (await desk.rows("SELECT status FROM tickets"))[0]
    assert ticket["status"] == "open"
    assert not any(t in m.text for m in tg.sent_messages(CUSTOMER) for t in ("trả lời bừa", "ẩn danh"))
    denied = await desk.rows("SELECT actor, actor_id, body FROM ticket_events WHERE action = 'denied' ORDER BY id")
    assert [(d["actor"], d["body"]) for d in denied] == [
        ("agent", "resolve"), ("agent", "reply"), ("agent", "reply"), ("customer", "button:dk:resolve:1"),
    ]
    assert denied[0]["actor_id"] == str(NOT_AGENT)



async def test_a_customer_cannot_see_or_rate_another_customers_ticket(desk, tg):
    await file_complaint_after_low_score(desk, tg)
    card = (await tg.wait_for_messages(GROUP, 1))[0]
    await desk.deliver(tg.make_callback_update(AGENT, "dk:resolve:1", card.message_id, chat_id=GROUP))
    await tg.wait_for_messages(CUSTOMER, 10)

    await desk.customer_says(OTHER_CUSTOMER, "/status")
    status = (await tg.wait_for_messages(OTHER_CUSTOMER, 1))[0]
    assert "KN-0001" not in status.text and "không có khiếu nại" in status.text
    for data in ("kn:r:1:5", "kn:re:1"):
        await desk.deliver(tg.make_callback_update(OTHER_CUSTOMER, data, 1))
    await asyncio.sleep(0.2)
    ticket = (await desk.rows("SELECT status, resolution_score, reopened_count FROM tickets"))[0]
    assert ticket == {"status": "resolved", "resolution_score": None, "reopened_count": 0}


async def test_reopen_within_the_window_after_a_low_resolution_score(desk, tg):
    await file_complaint_after_low_score(desk, tg)
    card = (await tg.wait_for_messages(GROUP, 1))[0]
    await desk.deliver(tg.make_callback_update(AGENT, "dk:resolve:1", card.message_id, chat_id=GROUP))
    question = (await tg.wait_for_messages(CUSTOMER, 10))[9]
    await desk.customer_taps(CUSTOMER, buttons(question)[1]["callback_data"], question.message_id)  # 2/5
    offer = (await tg.wait_for_messages(CUSTOMER, 11))[10]
    await desk.customer_taps(CUSTOMER, buttons(offer)[0]["callback_data"], offer.message_id)
    reopened = (await tg.wait_for_messages(CUSTOMER, 12))[11]
    assert "Đã mở lại khiếu nại KN-0001" in reopened.text
    ticket = (await desk.rows("SELECT status, reopened_count FROM tickets"))[0]
    assert ticket == {"status": "open", "reopened_count": 1}
    await desk.customer_says(CUSTOMER, "Vẫn chưa nhận được hàng bù")
    group = await tg.wait_for_messages(GROUP, 6)  # card, photo, resolved, rated, reopened, the message
    assert "mở lại KN-0001" in group[4].text and group[5].text.endswith("Vẫn chưa nhận được hàng bù")


async def test_sla_breach_re_escalates_once(desk, tg):
    await file_complaint_after_low_score(desk, tg)
    await tg.wait_for_messages(GROUP, 2)
    desk.clock.advance(hours(2.5))  # past the 2 h first-response target
    assert await desk.app.sla.watch_sla() == 1
    assert await desk.app.sla.watch_sla() == 0  # once per breach, not on every run
    alert = (await tg.wait_for_messages(GROUP, 3))[2]
    assert "quá hạn phản hồi đầu tiên" in alert.text and "@shop_lead" in alert.text
    assert (await tg.wait_for_messages(777, 1))[0].text == alert.text  # the owner hears too
    ticket = (await desk.rows("SELECT priority, first_response_breached_at FROM tickets"))[0]
    assert ticket["priority"] == "high" and ticket["first_response_breached_at"]

    desk.clock.advance(hours(48))
    assert await desk.app.sla.watch_sla() == 1  # the resolution target, once
    assert await desk.app.sla.watch_sla() == 0
    assert (await desk.rows("SELECT priority FROM tickets"))[0]["priority"] == "urgent"
    breaches = await desk.rows("SELECT body FROM ticket_events WHERE action = 'sla_breach' ORDER BY id")
    assert [b["body"] for b in breaches] == ["first_response", "resolution"]


async def test_a_burst_of_customer_messages_is_coalesced_not_lost(tmp_path, tg, clock):
    tg.make_group(GROUP, "Agents", members={AGENT: AGENT_NAME})
    tg.enforce_limits(global_per_second=30, per_chat_per_second=1, per_group_per_minute=20)
    # Telegram's real pacing: 1 msg/s per private chat, 20/min to the group.
    h = Harness(make_config(tmp_path, tg, agents={"chat_id": GROUP}, sender={"per_chat_interval": 1.0}), tg, clock)
    try:
        await h.start()
        await h.customer_says(CUSTOMER, "/complaint")
        ask_category = (await tg.wait_for_messages(CUSTOMER, 1))[0]
        await h.customer_taps(CUSTOMER, buttons(ask_category)[0]["callback_data"], ask_category.message_id)
        await h.customer_says(CUSTOMER, "Giao hàng quá chậm")
        ask_photos = (await tg.wait_for_messages(CUSTOMER, 3))[2]
        await h.customer_taps(CUSTOMER, buttons(ask_photos)[0]["callback_data"], ask_photos.message_id)
        confirm = (await tg.wait_for_messages(CUSTOMER, 4))[3]
        await h.customer_taps(CUSTOMER, buttons(confirm)[0]["callback_data"], confirm.message_id)
        await tg.wait_for_messages(GROUP, 1)  # the card

        for i in range(60):  # 60 messages in a burst
            await h.app.engine.receive("telegram", tg.make_message_update(CUSTOMER, f"tin {i:02d}"))
        deadline = asyncio.get_running_loop().time() + 20
        while asyncio.get_running_loop().time() < deadline:
            group_text = "\n".join(m.text or "" for m in tg.sent_messages(GROUP))
            if all(f"tin {i:02d}" in group_text for i in range(60)):
                break
            await asyncio.sleep(0.2)
        group_text = "\n".join(m.text or "" for m in tg.sent_messages(GROUP))
        assert all(f"tin {i:02d}" in group_text for i in range(60)), "a customer message was lost"
        assert len(tg.sent_messages(GROUP)) <= 4  # the card + a few merged messages, not 60
        assert tg.count_429 == 0
        order = [int(line.rsplit(" ", 1)[1]) for line in group_text.splitlines() if line.startswith("👤")]
        assert len(order) == 60
        assert order == sorted(order)
    finally:
        await h.close()


async def test_no_csat_survey_while_the_customer_has_an_open_complaint(desk, tg):
    await file_complaint_after_low_score(desk, tg)
    await desk.post_purchase("A-2002", customer={"external_id": "C-42", "name": "Nguyễn Thị Lan"},
                             purchased_at=desk.clock.now().isoformat())
    desk.clock.advance(hours(24 * 8))  # past the fatigue period too
    assert await desk.app.dispatcher.dispatch_due() == {"skipped_open_complaint": 1}


async def test_photos_sent_with_a_complaint_message_are_kept(tmp_path, tg, clock):
    tg.make_group(GROUP, "Agents", members={AGENT: AGENT_NAME})
    h = Harness(config(tmp_path, tg), tg, clock)
    try:
        await h.start()
        await h.deliver(tg.make_message_update(CUSTOMER, "", photo_file_ids=["PHOTO-CRACK"], caption="Ly bị vỡ khi nhận"))
        ask_category = (await tg.wait_for_messages(CUSTOMER, 1))[0]
        await h.customer_taps(CUSTOMER, buttons(ask_category)[1]["callback_data"], ask_category.message_id)
        ask_photos = (await tg.wait_for_messages(CUSTOMER, 2))[1]
        await h.customer_taps(CUSTOMER, buttons(ask_photos)[0]["callback_data"], ask_photos.message_id)
        confirm = (await tg.wait_for_messages(CUSTOMER, 3))[2]
        assert "Ly bị vỡ khi nhận" in confirm.text and "1 ảnh" in confirm.text
    finally:
        await h.close()


async def test_agent_photo_reaches_the_customer_and_escalate_raises_priority(desk, tg):
    await file_complaint_after_low_score(desk, tg)
    card = (await tg.wait_for_messages(GROUP, 1))[0]
    await desk.deliver(tg.make_message_update(AGENT, "", chat_id=GROUP, reply_to_message_id=card.message_id,
                                              photo_file_ids=["AGENT-RECEIPT"], caption=""))
    photo = (await tg.wait_for_messages(CUSTOMER, 10))[9]
    assert photo.method == "sendPhoto" and photo.params["photo"] == "AGENT-RECEIPT"
    assert "KN-0001" in photo.params["caption"]

    await desk.deliver(tg.make_callback_update(AGENT, "dk:esc:1", card.message_id, chat_id=GROUP))
    group = await tg.wait_for_messages(GROUP, 3)
    assert "Minh đã chuyển cấp KN-0001" in group[2].text and "ưu tiên cao" in group[2].text and "@shop_lead" in group[2].text
    assert (await desk.rows("SELECT priority FROM tickets"))[0]["priority"] == "high"
    assert (await tg.wait_for_messages(777, 1))[0].text == group[2].text


async def test_a_reply_that_cannot_reach_the_customer_is_told_to_the_agents(desk, tg):
    await file_complaint_after_low_score(desk, tg)
    card = (await tg.wait_for_messages(GROUP, 1))[0]
    tg.forbid_chat(CUSTOMER)  # she blocked the bot after complaining
    await desk.deliver(tg.make_message_update(AGENT, "Chị cho em xin số điện thoại ạ", chat_id=GROUP,
                                              reply_to_message_id=card.message_id))
    await desk.outbox_settled()
    group = await tg.wait_for_messages(GROUP, 3)
    alert = group[-1]
    assert "KN-0001" in alert.text and "không gửi được" in alert.text and "blocked" in alert.text
    assert alert.reply_to_message_id == card.message_id  # threaded under the ticket's card
    events = await desk.rows("SELECT actor, action FROM ticket_events WHERE action IN ('reply', 'reply_undelivered')"
                             " ORDER BY id")
    assert events == [{"actor": "agent", "action": "reply"}, {"actor": "system", "action": "reply_undelivered"}]
