"""The agents' card as the ticket moves (issue 15): escalation shows on it and pings once at the
top, a closed card loses its 🆕, and a button pressed in another group is refused and audited."""
from __future__ import annotations

import asyncio

from tests.e2e.test_complaints import AGENT, CUSTOMER, GROUP, desk, file_complaint_after_low_score  # noqa: F401

OWNER = 777
OTHER_GROUP = -1009999999999


async def card_edits(tg, count: int) -> list[str]:
    """The texts of the card's edits, once there are `count` of them."""
    for _ in range(100):
        edits = [r.params["text"] for r in tg.requests_for("editMessageText") if str(r.params.get("chat_id")) == str(GROUP)]
        if len(edits) >= count:
            return edits
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(edits)} card edits, expected {count}: {edits}")


async def test_escalate_shows_the_new_priority_on_the_card_and_pings_once_at_the_top(desk, tg):  # noqa: F811
    await file_complaint_after_low_score(desk, tg)
    card = (await tg.wait_for_messages(GROUP, 2))[0]  # the card and its photo
    assert card.text.startswith("🆕 KN-0001 · ưu tiên thường")

    await desk.deliver(tg.make_callback_update(AGENT, "dk:esc:1", card.message_id, chat_id=GROUP))
    assert (await card_edits(tg, 1))[0].startswith("🆕 KN-0001 · ưu tiên cao")
    await desk.deliver(tg.make_callback_update(AGENT, "dk:esc:1", card.message_id, chat_id=GROUP))
    assert (await card_edits(tg, 2))[1].startswith("🆕 KN-0001 · ưu tiên khẩn")
    await tg.wait_for_messages(OWNER, 2)
    await desk.outbox_settled()
    group_before, owner_before = len(tg.sent_messages(GROUP)), len(tg.sent_messages(OWNER))

    # Already urgent: recorded, the presser is told, nobody is pinged again.
    answered = len(tg.requests_for("answerCallbackQuery"))
    await desk.deliver(tg.make_callback_update(AGENT, "dk:esc:1", card.message_id, chat_id=GROUP))
    answer = (await tg.wait_for_requests("answerCallbackQuery", answered + 1))[-1]
    assert answer.params["text"].startswith("KN-0001 đã ở mức ưu tiên cao nhất")
    await desk.outbox_settled()
    assert (len(tg.sent_messages(GROUP)), len(tg.sent_messages(OWNER))) == (group_before, owner_before)
    escalations = await desk.rows("SELECT body FROM ticket_events WHERE action = 'escalated' ORDER BY id")
    assert [e["body"] for e in escalations] == ["high", "urgent", "urgent"]


async def test_a_claimed_or_resolved_card_loses_the_new_marker(desk, tg):  # noqa: F811
    await file_complaint_after_low_score(desk, tg)
    card = (await tg.wait_for_messages(GROUP, 1))[0]
    assert card.text.startswith("🆕 ")
    await desk.deliver(tg.make_callback_update(AGENT, "dk:claim:1", card.message_id, chat_id=GROUP))
    claimed = (await card_edits(tg, 1))[0]
    assert claimed.startswith("KN-0001 · ") and "Minh đang xử lý" in claimed
    await desk.deliver(tg.make_callback_update(AGENT, "dk:resolve:1", card.message_id, chat_id=GROUP))
    resolved = (await card_edits(tg, 2))[1]
    assert resolved.startswith("KN-0001 · ") and "Trạng thái: đã đóng" in resolved


async def test_a_button_pressed_in_another_group_is_answered_and_audited(desk, tg):  # noqa: F811
    await file_complaint_after_low_score(desk, tg)
    card = (await tg.wait_for_messages(GROUP, 1))[0]
    answered = len(tg.requests_for("answerCallbackQuery"))
    await desk.deliver(tg.make_callback_update(AGENT, "dk:resolve:1", card.message_id, chat_id=OTHER_GROUP))
    answer = (await tg.wait_for_requests("answerCallbackQuery", answered + 1))[-1]
    assert "không có quyền" in answer.params["text"]
    denied = await desk.rows("SELECT ticket_id, actor, actor_id, body FROM ticket_events WHERE action = 'denied'")
    assert denied == [{"ticket_id": 1, "actor": "agent", "actor_id": str(AGENT),
                       "body": f"button:dk:resolve:1 in chat {OTHER_GROUP}"}]
    assert (await desk.rows("SELECT status FROM tickets"))[0]["status"] == "open"
    # A button naming no ticket that exists is refused the same way, audited without one.
    await desk.deliver(tg.make_callback_update(AGENT, "dk:claim:99", card.message_id, chat_id=OTHER_GROUP))
    await tg.wait_for_requests("answerCallbackQuery", answered + 2)
    assert (await desk.rows("SELECT ticket_id FROM ticket_events WHERE action = 'denied' ORDER BY id"))[-1] == {"ticket_id": None}


async def test_escalating_on_the_agent_page_at_the_top_priority_pings_nobody_again(desk, tg):  # noqa: F811
    from tests.http.test_agent_page import AgentClient

    await file_complaint_after_low_score(desk, tg)
    await tg.wait_for_messages(GROUP, 2)
    agent = AgentClient(desk)
    try:
        await agent.login()
        for expected in ("Đã chuyển cấp KN-0001.", "Đã chuyển cấp KN-0001."):
            status, body = await agent.act(1, "escalate")
            assert (status, body["message"]) == (200, expected)
        await desk.outbox_settled()
        owner_before = len(tg.sent_messages(OWNER))
        status, body = await agent.act(1, "escalate")
        assert body["message"].startswith("KN-0001 đã ở mức ưu tiên cao nhất")
        await desk.outbox_settled()
        assert len(tg.sent_messages(OWNER)) == owner_before == 2
        assert (await card_edits(tg, 2))[-1].startswith("🆕 KN-0001 · ưu tiên khẩn")
    finally:
        await agent.close()
