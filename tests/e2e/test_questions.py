"""Questions end to end (issue 15): a message no flow waits for reaches a person, on Telegram
(fake Bot API), on the web chat (WebSocket) and on the agent page; relayed both ways,
closed by an agent, a follow-up joins it again; in exports and the weekly digest.
Also: a purchase's telegram_user_id links a chat that already talks to the bot."""
from __future__ import annotations

import asyncio
import csv
import io
from datetime import timedelta

from bot.services.export import export
from flows.digest import render_text, to_json
from tests.conftest import Harness, hours, make_config
from tests.http.test_agent_page import AgentClient
from tests.channels.web.test_server import Visitor

CUSTOMER = 555001
GROUP = -1001234567890
AGENT, AGENT_NAME = 9001, "Minh"


def buttons(message):
    return [b for row in (message.reply_markup or {}).get("inline_keyboard", []) for b in row]


def with_group(tmp_path, tg, **sections):
    return make_config(
        tmp_path, tg, agents={"chat_id": GROUP}, sender={"group_messages_per_minute": 600}, **sections,
    )


class Transcript:
    """What the customer and the group saw, message by message (printed with -s)."""

    def __init__(self, tg) -> None:
        self.tg = tg
        self.lines: list[str] = []
        self.seen: set[tuple[int, int]] = set()

    def said(self, who: str, body: str) -> None:
        self.lines.append(f"{who:>16} > {body}")

    def collect(self) -> None:
        for m in sorted(self.tg.sent_messages(), key=lambda m: m.message_id):
            if (m.chat_id, m.message_id) in self.seen or m.chat_id not in (CUSTOMER, GROUP):
                continue
            self.seen.add((m.chat_id, m.message_id))
            to = "bot → customer" if m.chat_id == CUSTOMER else "bot → group"
            keys = " ".join(f"[{b['text']}]" for b in buttons(m))
            self.lines.append(f"{to:>16} > {m.params.get('text', '')}" + (f"  {keys}" if keys else ""))

    def __str__(self) -> str:
        return "\n".join(self.lines)


async def until(check, timeout: float = 5.0):
    """Poll until check() is truthy (the sender works asynchronously)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check() if asyncio.iscoroutinefunction(check) else check()
        if value or loop.time() > deadline:
            return value
        await asyncio.sleep(0.05)


async def test_a_question_on_telegram_reaches_the_group_is_answered_closed_and_followed_up(tmp_path, tg, clock):
    tg.make_group(GROUP, "Agents", is_forum=False, members={AGENT: AGENT_NAME})
    h = Harness(with_group(tmp_path, tg), tg, clock)
    await h.start()
    log = Transcript(tg)
    try:
        log.said("customer", "Shop có bán trà ô long không?")
        await h.customer_says(CUSTOMER, "Shop có bán trà ô long không?")
        told = (await tg.wait_for_messages(CUSTOMER, 1))[0]
        assert "CH-0001" in told.text and "trong khoảng 4 giờ" in told.text and "trước 13:00 23/11" in told.text
        assert "phản hồi sớm" not in told.text
        card = (await tg.wait_for_messages(GROUP, 1))[0]
        assert card.text.startswith("❓ Câu hỏi CH-0001") and "Shop có bán trà ô long không?" in card.text
        assert [b["text"] for b in buttons(card)] == ["✋ Nhận xử lý", "✅ Đã xong"]
        log.collect()

        # Half an hour later the agent replies to the card: the customer gets it.
        h.clock.advance(timedelta(minutes=30))
        answer = "Dạ có ạ, trà ô long Cầu Đất 150.000đ/hộp"
        log.said(f"agent {AGENT_NAME}", f"(reply to the card) {answer}")
        await h.deliver(tg.make_message_update(AGENT, answer, chat_id=GROUP, reply_to_message_id=card.message_id))
        relayed = (await tg.wait_for_messages(CUSTOMER, 2))[1]
        assert relayed.text == f"💬 Shop An (CH-0001): {answer}"
        log.collect()

        # The customer's follow-up goes to the group, threaded under the card.
        log.said("customer", "Còn hàng không shop?")
        await h.customer_says(CUSTOMER, "Còn hàng không shop?")
        back = (await tg.wait_for_messages(GROUP, 2))[1]
        assert back.text.endswith("(CH-0001): Còn hàng không shop?") and back.reply_to_message_id == card.message_id
        assert len(tg.sent_messages(CUSTOMER)) == 2  # no "received" noise for each message
        log.collect()

        # Closed by the agent: the customer is told, with no rating question.
        log.said(f"agent {AGENT_NAME}", "[✅ Đã xong]")
        await h.deliver(tg.make_callback_update(AGENT, "dk:resolve:1", card.message_id, chat_id=GROUP))
        closed = (await tg.wait_for_messages(CUSTOMER, 3))[2]
        assert "CH-0001 đã được đóng" in closed.text and not buttons(closed)
        await tg.wait_for_messages(GROUP, 3)
        log.collect()
        # The weekly digest: the question counted with its first response, and not as a complaint.
        digest = await h.app.digests.build(_week_of(clock.now(), h.app.config.tz))
        assert digest.questions.opened == 1 and digest.questions.first_response.median_s == 1800.0
        assert digest.complaints.now.opened == 0 and not digest.empty
        assert "❓ Câu hỏi của khách: 1 · thời gian phản hồi đầu (trung vị): 30 phút" in render_text(digest, "vi")
        assert to_json(digest)["questions"] == {"opened": 1, "first_response": {"count": 1, "median_s": 1800, "p90_s": 1800}}

        # A follow-up within the window joins the same question (reopens it).
        h.clock.advance(hours(2))
        log.said("customer", "Cho mình đặt 2 hộp nhé")
        await h.customer_says(CUSTOMER, "Cho mình đặt 2 hộp nhé")
        joined = (await tg.wait_for_messages(CUSTOMER, 4))[3]
        assert "CH-0001" in joined.text and "chuyển cho nhân viên" in joined.text
        group = await tg.wait_for_messages(GROUP, 5)
        assert group[3].text == "🔁 Khách đã mở lại CH-0001."
        assert group[4].text.endswith("(CH-0001): Cho mình đặt 2 hộp nhé")
        log.collect()
        print("\n--- question on Telegram, as the customer and the group saw it ---\n" + str(log))

        rows = await h.rows("SELECT kind, status, category, source, description, first_response_at FROM tickets")
        assert rows == [{"kind": "question", "status": "open", "category": "question", "source": "message",
                         "description": "Shop có bán trà ô long không?", "first_response_at": None}]
        actions = [r["action"] for r in await h.rows("SELECT action FROM ticket_events ORDER BY id")]
        assert actions == ["opened", "reply", "customer_message", "resolved", "follow_up", "customer_message"]

        # Another answer and close; a message after the window opens a new question.
        await h.deliver(tg.make_message_update(AGENT, "Dạ shop giao chiều nay", chat_id=GROUP, reply_to_message_id=card.message_id))
        await h.deliver(tg.make_callback_update(AGENT, "dk:resolve:1", card.message_id, chat_id=GROUP))
        await tg.wait_for_messages(CUSTOMER, 6)
        h.clock.advance(hours(25))
        await h.customer_says(CUSTOMER, "Shop có giao tới Thủ Đức không?")
        assert "CH-0002" in (await tg.wait_for_messages(CUSTOMER, 7))[6].text
        kinds = await h.rows("SELECT id, kind, status FROM tickets ORDER BY id")
        assert kinds == [{"id": 1, "kind": "question", "status": "resolved"}, {"id": 2, "kind": "question", "status": "open"}]

        # Exports show the kind and the number; the digest counts questions, not complaints.
        out = io.StringIO()
        start = clock.now() - timedelta(days=3)
        await export(h.app.db, "tickets", "csv", start, clock.now() + timedelta(days=1), out, h.app.config.tz,
                     progress_stream=io.StringIO())
        exported = list(csv.DictReader(io.StringIO(out.getvalue())))
        assert [(r["number"], r["kind"]) for r in exported] == [("CH-0001", "question"), ("CH-0002", "question")]
        digest = await h.app.digests.build(_week_of(clock.now(), h.app.config.tz))
        assert digest.questions.opened == 2 and digest.complaints.now.opened == 0
    finally:
        await h.close()


def _week_of(at, tz):
    from flows.digest import week_of

    return week_of(at, tz)


async def test_a_question_while_a_survey_waits_for_its_score_is_answered_and_the_survey_stays_open(tmp_path, tg, clock):
    tg.make_group(GROUP, "Agents", is_forum=False, members={AGENT: AGENT_NAME})
    h = Harness(with_group(tmp_path, tg), tg, clock)
    await h.start()
    try:
        _, body = await h.post_purchase("A-1001")
        await h.customer_says(CUSTOMER, f"/start {body['links']['telegram'].split('start=')[1]}")
        h.clock.advance(hours(3))
        await h.app.dispatcher.dispatch_due()
        survey = (await tg.wait_for_messages(CUSTOMER, 2))[1]
        assert "#A-1001" in survey.text
        await h.customer_says(CUSTOMER, "Shop ơi, trà này pha nước bao nhiêu độ?")
        told = (await tg.wait_for_messages(CUSTOMER, 3))[2]
        assert "CH-0001" in told.text
        assert "trà này pha nước bao nhiêu độ?" in (await tg.wait_for_messages(GROUP, 1))[0].text
        # The survey is still open: a typed score counts.
        await h.customer_says(CUSTOMER, "5")
        await tg.wait_for_messages(CUSTOMER, 4)
        assert (await h.rows("SELECT status, score FROM surveys"))[0] == {"status": "answered", "score": 5}
    finally:
        await h.close()


async def test_an_open_question_does_not_hold_back_a_survey(tmp_path, tg, clock):
    h = Harness(make_config(tmp_path, tg), tg, clock)
    await h.start()
    try:
        _, body = await h.post_purchase("A-1001")
        await h.customer_says(CUSTOMER, f"/start {body['links']['telegram'].split('start=')[1]}")
        await h.customer_says(CUSTOMER, "Shop mở cửa tới mấy giờ?")
        h.clock.advance(hours(3))
        await h.app.dispatcher.dispatch_due()
        assert (await h.rows("SELECT status, skip_reason FROM surveys"))[0] == {"status": "sent", "skip_reason": None}
    finally:
        await h.close()


async def test_a_question_on_the_web_chat_answered_and_closed_from_the_agent_page(tmp_path, clock):
    h = Harness(make_config(tmp_path), None, clock)  # no Telegram: agents use the page
    await h.start()
    agent = AgentClient(h)
    try:
        v = await Visitor.connect(h)
        await v.message("Xin chào")
        await v.say("Shop có bán trà ô long không?")
        told = await v.message("CH-0001")
        assert "trong khoảng 4 giờ" in told["text"]
        await agent.login()
        listed = await agent.tickets()
        assert [(t["number"], t["kind"], t["kind_label"], t["category_label"]) for t in listed] == [
            ("CH-0001", "question", "Câu hỏi", "Câu hỏi")
        ]
        status, detail = await agent.act(1, "reply", "Dạ có ạ, 150.000đ một hộp")
        assert status == 200, detail
        assert (await v.message("CH-0001): Dạ có"))["text"] == "💬 Shop An (CH-0001): Dạ có ạ, 150.000đ một hộp"
        await v.say("Cảm ơn shop")
        _, detail = await agent.get_json("/agent/api/tickets/1")
        assert [e["label"] for e in detail["events"]] == ["Khách hỏi", "Trả lời khách", "Khách"]
        status, detail = await agent.act(1, "resolve")
        assert status == 200 and detail["message"] == "Đã đóng CH-0001."
        assert "CH-0001 đã được đóng" in (await v.message("đã được đóng"))["text"]
        assert (await h.rows("SELECT kind, status FROM tickets")) == [{"kind": "question", "status": "resolved"}]
    finally:
        await agent.close()
        await h.close()


async def test_a_telegram_question_on_the_agent_page_with_the_group_in_sync(tmp_path, tg, clock):
    tg.make_group(GROUP, "Agents", is_forum=False, members={AGENT: AGENT_NAME})
    h = Harness(with_group(tmp_path, tg), tg, clock)
    await h.start()
    agent = AgentClient(h)
    try:
        await h.customer_says(CUSTOMER, "Cuối tuần shop có mở cửa không?")
        await tg.wait_for_messages(GROUP, 1)
        await agent.login()
        assert (await agent.act(1, "reply", "Dạ có, 8h-21h ạ"))[0] == 200
        relayed = (await tg.wait_for_messages(CUSTOMER, 2))[1]
        assert relayed.text == "💬 Shop An (CH-0001): Dạ có, 8h-21h ạ"
        assert (await agent.act(1, "resolve"))[0] == 200
        closed = (await tg.wait_for_messages(CUSTOMER, 3))[2]
        assert "CH-0001 đã được đóng" in closed.text
        card_edits = await until(lambda: [
            r.params["text"] for r in tg.requests_for("editMessageText") if "đã đóng" in r.params.get("text", "")
        ])
        assert card_edits and card_edits[-1].startswith("❓ Câu hỏi CH-0001")
    finally:
        await agent.close()
        await h.close()


# --- item 3 of issue 15: customer.telegram_user_id links a chat that already talks to the bot ---


async def test_a_purchase_with_telegram_user_id_links_an_existing_chat_at_once(tmp_path, tg, clock):
    h = Harness(make_config(tmp_path, tg), tg, clock)
    await h.start()
    try:
        await h.customer_says(43, "/start")  # talks to the bot before any purchase
        customer = {"external_id": "C-43", "name": "Trần Văn Hùng", "telegram_user_id": 43}
        status, _ = await h.post_purchase("E-3001", customer=customer)
        assert status == 202
        linked = await h.rows("SELECT c.external_id FROM contacts ct JOIN customers c ON c.id = ct.customer_id"
                              " WHERE ct.platform_user_id = '43'")
        assert linked == [{"external_id": "C-43"}]
        h.clock.advance(hours(3))
        await h.app.dispatcher.dispatch_due()  # no message from the customer needed
        assert (await h.rows("SELECT status FROM surveys"))[0]["status"] == "sent"
        assert "#E-3001" in (await tg.wait_for_messages(43, 2))[1].text
    finally:
        await h.close()


async def test_any_later_message_links_and_releases_a_survey_waiting_for_the_chat(tmp_path, tg, clock):
    h = Harness(make_config(tmp_path, tg), tg, clock)
    await h.start()
    try:
        customer = {"external_id": "C-43", "name": "Trần Văn Hùng", "telegram_user_id": 43}
        await h.post_purchase("E-3001", customer=customer)
        h.clock.advance(hours(3))
        await h.app.dispatcher.dispatch_due()
        assert (await h.rows("SELECT status FROM surveys"))[0]["status"] == "awaiting_contact"
        await h.customer_says(43, "/status")  # not /start
        assert (await h.rows("SELECT status FROM surveys"))[0]["status"] == "sent"
        got = await tg.wait_for_messages(43, 2)
        assert "#E-3001" in got[1].text
    finally:
        await h.close()


async def test_without_an_agents_group_or_the_agent_page_no_answer_is_promised(tmp_path, tg, clock):
    h = Harness(make_config(tmp_path, tg, agent_page={"enabled": False}), tg, clock)
    await h.start()
    try:
        await h.customer_says(CUSTOMER, "Shop có bán trà ô long không?")
        told = (await tg.wait_for_messages(CUSTOMER, 1))[0]
        assert "chưa có nhân viên" in told.text and "trả lời trong khoảng" not in told.text
        assert await h.rows("SELECT id FROM tickets") == []
    finally:
        await h.close()
