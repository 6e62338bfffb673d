"""A complaint's card always reaches the agents (issue 15): forum topics that cannot be made,
cards that cannot be delivered, and what the customer is told meanwhile, on the fake Bot API."""
from __future__ import annotations

import asyncio

import pytest

from tests.conftest import Harness, make_config
from tests.http.test_agent_page import AgentClient

CUSTOMER = 555001
GROUP = -1001234567890
OWNER = 777
AGENT, AGENT_NAME = 9001, "Minh"
CARD_BUTTONS = ["✋ Nhận xử lý", "✅ Đã xong", "⏫ Chuyển cấp"]


def config(tmp_path, tg, agent_page: bool = True):
    return make_config(
        tmp_path, tg,
        agents={"chat_id": GROUP, "owner_chat_ids": [OWNER]},
        sender={"group_messages_per_minute": 600},
        agent_page={"enabled": agent_page},
    )


def buttons(message):
    return [b for row in message.reply_markup["inline_keyboard"] for b in row]


def transcript(tg) -> str:
    """What the customer, the group and the owner saw, in the order the bot sent it."""
    who = {CUSTOMER: "customer", GROUP: "group", OWNER: "owner"}
    lines = []
    for m in tg.sent_messages():
        chat = int(m.params["chat_id"])
        place = f" [topic {m.thread_id}]" if m.thread_id else (f" [reply to {m.reply_to_message_id}]" if m.reply_to_message_id else "")
        keys = f" {[b['text'] for b in buttons(m)]}" if m.reply_markup else ""
        lines.append(f"{who.get(chat, chat)}{place}: {m.text}{keys}")
    return "\n".join(lines)


async def file_complaint(h: Harness, tg, user: int = CUSTOMER, before_send=lambda: None) -> None:
    """A message with complaint words -> category -> no photos -> Send."""
    await h.customer_says(user, "Hàng bị hỏng rồi, giao chậm nữa")
    ask_category = (await tg.wait_for_messages(user, 1))[0]
    await h.customer_taps(user, buttons(ask_category)[0]["callback_data"], ask_category.message_id)
    ask_photos = (await tg.wait_for_messages(user, 2))[1]
    await h.customer_taps(user, buttons(ask_photos)[0]["callback_data"], ask_photos.message_id)
    confirm = (await tg.wait_for_messages(user, 3))[2]
    before_send()
    await h.customer_taps(user, buttons(confirm)[0]["callback_data"], confirm.message_id)


@pytest.mark.parametrize("fault", ["500 always", "500 twice", "timeout", "400", "404"])
async def test_the_card_arrives_whatever_createForumTopic_answers(tmp_path, tg, clock, fault):
    tg.make_group(GROUP, "Agents", is_forum=True, members={AGENT: AGENT_NAME})
    match fault:
        case "500 always":
            tg.fail_next("createForumTopic", 500, times=100)
        case "500 twice":
            tg.fail_next("createForumTopic", 500, times=2)
        case "timeout":  # longer than sender.request_timeout (2 s in tests): the topic may exist
            tg.delay_next("createForumTopic", 3.0)
        case "400":
            tg.fail_next("createForumTopic", 400, description="Bad Request: not enough rights to create a topic")
        case "404":  # a self-hosted Bot API server without the method
            tg.disable_method("createForumTopic")
    h = Harness(config(tmp_path, tg), tg, clock)
    try:
        await h.start()
        await file_complaint(h, tg)
        opened = (await tg.wait_for_messages(CUSTOMER, 4))[3]
        assert opened.text.startswith("Đã ghi nhận khiếu nại KN-0001")  # the agent page shows it at once

        card = (await tg.wait_for_messages(GROUP, 1, timeout=10))[0]
        assert card.text.startswith("🆕 KN-0001") and [b["text"] for b in buttons(card)] == CARD_BUTTONS
        in_topic = fault == "500 twice"  # retried like any send, then made
        assert (card.thread_id is not None) == in_topic
        assert ("Nhắn trong chủ đề này" if in_topic else "Trả lời (reply) tin này") in card.text

        # The customer's next message reaches the group too: in the topic, or under the card.
        await h.customer_says(CUSTOMER, "Shop ơi, có ai không?")
        back = (await tg.wait_for_messages(GROUP, 2, timeout=10))[1]
        assert "(KN-0001): Shop ơi, có ai không?" in back.text
        if in_topic:
            assert back.thread_id == card.thread_id
        else:
            assert back.reply_to_message_id == card.message_id and back.thread_id is None

        # An agent's answer in reply mode still reaches the customer.
        answer = {"message_thread_id": card.thread_id} if in_topic else {"reply_to_message_id": card.message_id}
        await h.deliver(tg.make_message_update(AGENT, "Shop đây ạ", chat_id=GROUP, **answer))
        relayed = (await tg.wait_for_messages(CUSTOMER, 5))[4]
        assert relayed.text.endswith("Shop đây ạ")

        rows = await h.outbox_settled()
        assert all(r["status"] in ("sent", "failed", "unknown") for r in rows)
        assert [r["status"] for r in rows if r["method"] == "send_text" and r["chat_id"] == str(GROUP)][0] == "sent"
        ticket = (await h.rows("SELECT thread_id, card_message_id, card_undelivered FROM tickets"))[0]
        assert ticket["card_message_id"] == str(card.message_id) and ticket["card_undelivered"] is None
        events = [r["action"] for r in await h.rows("SELECT action FROM ticket_events ORDER BY id")]
        assert ("topic_failed" in events) == (not in_topic)
        assert len(tg.requests_for("createForumTopic")) == {"500 always": 5, "500 twice": 3}.get(fault, 1)
        assert not tg.sent_messages(OWNER)  # nothing to alert: the card is there
        print(f"--- createForumTopic {fault} ---\n{transcript(tg)}")
    finally:
        await h.close()


async def test_no_topic_is_asked_for_in_a_plain_group(tmp_path, tg, clock):
    tg.make_group(GROUP, "Agents", is_forum=False, members={AGENT: AGENT_NAME})
    h = Harness(config(tmp_path, tg), tg, clock)
    try:
        await h.start()  # getChat: no forum
        await file_complaint(h, tg)
        card = (await tg.wait_for_messages(GROUP, 1, timeout=10))[0]
        assert card.thread_id is None and "Trả lời (reply) tin này" in card.text
        assert not tg.requests_for("createForumTopic")
        assert {r["status"] for r in await h.outbox_settled()} == {"sent"}
    finally:
        await h.close()


async def test_a_server_without_topics_is_not_asked_again_until_a_restart(tmp_path, tg, clock):
    tg.make_group(GROUP, "Agents", is_forum=True, members={AGENT: AGENT_NAME})
    tg.disable_method("createForumTopic")  # a self-hosted server without topics
    h = Harness(config(tmp_path, tg), tg, clock)
    try:
        await h.start()
        await file_complaint(h, tg)
        await tg.wait_for_messages(GROUP, 1, timeout=10)
        await file_complaint(h, tg, user=CUSTOMER + 1)  # not asked again
        await tg.wait_for_messages(GROUP, 2, timeout=10)
        assert len(tg.requests_for("createForumTopic")) == 1
        await h.app.stop()  # e.g. after the server was upgraded: the group says it is a forum, so ask once more
        await h.start()
        await file_complaint(h, tg, user=CUSTOMER + 2)
        await file_complaint(h, tg, user=CUSTOMER + 3)
        await tg.wait_for_messages(GROUP, 4, timeout=10)
        assert len(tg.requests_for("createForumTopic")) == 2
    finally:
        await h.close()


async def test_the_confirmation_waits_for_the_card_without_an_agent_page(tmp_path, tg, clock):
    tg.make_group(GROUP, "Agents", is_forum=True, members={AGENT: AGENT_NAME})
    tg.fail_next("createForumTopic", 500, times=2)
    tg.fail_next("sendMessage", 502, times=1)  # the card's first try, after the topic
    h = Harness(config(tmp_path, tg, agent_page=False), tg, clock)
    try:
        await h.start()
        await file_complaint(h, tg)
        opened = (await tg.wait_for_messages(CUSTOMER, 4, timeout=10))[3]
        card = (await tg.wait_for_messages(GROUP, 1))[0]
        assert opened.text.startswith("Đã ghi nhận khiếu nại KN-0001")
        sent = tg.sent_messages()
        assert sent.index(card) < sent.index(opened)  # told "received" only once the agents have the card
    finally:
        await h.close()


@pytest.mark.parametrize("agent_page", [True, False])
async def test_an_undeliverable_card_alerts_the_owner_and_shows_on_the_agent_page(tmp_path, tg, clock, agent_page):
    tg.make_group(GROUP, "Agents", is_forum=False, members={AGENT: AGENT_NAME})
    tg.forbid_chat(GROUP)  # the bot was removed from the group
    h = Harness(config(tmp_path, tg, agent_page=agent_page), tg, clock)
    agent = AgentClient(h)
    try:
        await h.start()
        await file_complaint(h, tg)
        alert = (await tg.wait_for_messages(OWNER, 1, timeout=10))[0]
        assert alert.text.startswith("⚠️ Thẻ KN-0001 không gửi được vào nhóm nhân viên")
        opened = (await tg.wait_for_messages(CUSTOMER, 4))[3]
        await h.outbox_settled()
        ticket = (await h.rows("SELECT card_undelivered FROM tickets"))[0]
        assert ticket["card_undelivered"].startswith("failed: forbidden")
        if agent_page:  # the agents see it there: the customer was told at once, and the page flags it
            assert opened.text.startswith("Đã ghi nhận khiếu nại KN-0001") and "/agent" in alert.text
            await agent.login()
            listed = (await agent.tickets())[0]
            assert listed["number"] == "KN-0001" and listed["card_undelivered"] is True
        else:  # no agent can see it: the customer hears the truth, not "received"
            assert opened.text.startswith("Chúng tôi đã lưu khiếu nại KN-0001 của bạn, nhưng hiện chưa chuyển được")
            assert "Đã ghi nhận" not in opened.text
        print(f"--- card undeliverable, agent page {agent_page} ---\n{transcript(tg)}")
    finally:
        await agent.close()
        await h.close()


async def test_a_question_whose_card_cannot_be_delivered_is_not_called_received(tmp_path, tg, clock):
    tg.make_group(GROUP, "Agents", is_forum=False, members={AGENT: AGENT_NAME})
    tg.forbid_chat(GROUP)
    h = Harness(config(tmp_path, tg, agent_page=False), tg, clock)
    try:
        await h.start()
        await h.customer_says(CUSTOMER, "Shop có bán trà ô long không?")
        told = (await tg.wait_for_messages(CUSTOMER, 1, timeout=10))[0]
        assert told.text.startswith("Chúng tôi đã lưu câu hỏi CH-0001 của bạn, nhưng hiện chưa chuyển được")
        alert = (await tg.wait_for_messages(OWNER, 1))[0]
        assert alert.text.startswith("⚠️ Thẻ CH-0001 không gửi được vào nhóm nhân viên")
    finally:
        await h.close()


async def test_a_card_whose_send_timed_out_is_flagged_as_maybe_not_delivered(tmp_path, tg, clock):
    tg.make_group(GROUP, "Agents", is_forum=False, members={AGENT: AGENT_NAME})
    h = Harness(config(tmp_path, tg, agent_page=False), tg, clock)  # the confirmation waits for the card
    try:
        await h.start()
        # The card is the next sendMessage: no answer within sender.request_timeout (2 s).
        await file_complaint(h, tg, before_send=lambda: tg.delay_next("sendMessage", 3.0))
        alert = (await tg.wait_for_messages(OWNER, 1, timeout=10))[0]
        assert alert.text.startswith("⚠️ Không chắc thẻ KN-0001 đã tới nhóm nhân viên")
        told = (await tg.wait_for_messages(CUSTOMER, 4))[3]
        assert told.text.startswith("Chúng tôi đã lưu khiếu nại KN-0001 của bạn, nhưng hiện chưa chuyển được")
        assert (await h.rows("SELECT card_undelivered FROM tickets"))[0]["card_undelivered"].startswith("unknown: ")
    finally:
        await h.close()
