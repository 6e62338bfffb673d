"""The agents' web page (/agent) against the real app: sign-in, CSRF, the ticket list, and
agents' actions reaching the customer on the fake Telegram chat; with and without a group."""
from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import pytest

from bot.http.auth import COOKIE, CSRF_HEADER
from tests.conftest import API_TOKEN, Harness, hours, make_config
from tests.http.accounts import PASSWORD, ensure_account, login_of

CUSTOMER = 555001
GROUP = -1001234567890
AGENT_NAME = "Lan Anh"


class AgentClient:
    """One browser-like agent: its own cookie jar (cookies from 127.0.0.1 allowed)."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def close(self) -> None:
        await self.http.close()

    async def login(self, name: str = AGENT_NAME, password: str = PASSWORD, role: str = "agent",
                    stores: tuple[str, ...] = (), **headers: str) -> tuple[int, str]:
        """Signs in as the account named `name` (created first, with PASSWORD, if missing)."""
        await ensure_account(self.h, name, role, stores)
        async with self.http.post(f"{self.h.url}/login", data={"login": login_of(name), "password": password},
                                  headers=headers, allow_redirects=False) as resp:
            body = await resp.text()
            if resp.status == 303:
                self.csrf = (await self.get_json("/agent/api/session"))[1]["csrf"]
            return resp.status, body

    async def get_json(self, path: str) -> tuple[int, Any]:
        async with self.http.get(f"{self.h.url}{path}", allow_redirects=False) as resp:
            return resp.status, await resp.json()

    async def tickets(self) -> list[dict]:
        status, body = await self.get_json("/agent/api/tickets")
        assert status == 200, body
        return body["tickets"]

    async def act(self, ticket_id: int | str, action: str, text: str | None = None, csrf: str | None = None) -> tuple[int, Any]:
        headers = {CSRF_HEADER: self.csrf if csrf is None else csrf}
        body = {"text": text} if text is not None else {}
        async with self.http.post(f"{self.h.url}/agent/api/tickets/{ticket_id}/{action}", json=body,
                                  headers=headers, allow_redirects=False) as resp:
            return resp.status, await resp.json()


def buttons(message):
    return [b for row in message.reply_markup["inline_keyboard"] for b in row]


async def file_complaint(h: Harness, tg, description: str = "Shipper giao trễ 2 ngày, hộp bị móp") -> None:
    """A linked customer files a delivery complaint about order A-1001 with /complaint."""
    _, body = await h.post_purchase("A-1001", customer={"external_id": "C-42", "name": "Nguyễn Thị Lan", "phone": "+84 912 345 678",
                                                        "telegram_user_id": CUSTOMER})  # her own chat
    await h.customer_says(CUSTOMER, f"/start {body['links']['telegram'].split('start=')[1]}")
    await tg.wait_for_messages(CUSTOMER, 1)
    await h.customer_says(CUSTOMER, "/complaint")
    ask_order = (await tg.wait_for_messages(CUSTOMER, 2))[1]
    await h.customer_taps(CUSTOMER, buttons(ask_order)[0]["callback_data"], ask_order.message_id)
    ask_category = (await tg.wait_for_messages(CUSTOMER, 3))[2]
    delivery = next(b for b in buttons(ask_category) if b["text"] == "Giao hàng")
    await h.customer_taps(CUSTOMER, delivery["callback_data"], ask_category.message_id)
    await tg.wait_for_messages(CUSTOMER, 4)
    await h.customer_says(CUSTOMER, description)
    ask_photos = (await tg.wait_for_messages(CUSTOMER, 5))[4]
    await h.customer_taps(CUSTOMER, buttons(ask_photos)[0]["callback_data"], ask_photos.message_id)
    confirm = (await tg.wait_for_messages(CUSTOMER, 6))[5]
    await h.customer_taps(CUSTOMER, buttons(confirm)[0]["callback_data"], confirm.message_id)
    opened = (await tg.wait_for_messages(CUSTOMER, 7))[6]
    assert "KN-0001" in opened.text
    await h.outbox_settled()  # the last button's answer too: tests compare the outbox before and after


@pytest.fixture
async def solo(tmp_path, tg, clock):
    """Telegram for customers, but no agents' group: agents use the page."""
    h = Harness(make_config(tmp_path, tg), tg, clock)
    await h.start()
    agent = AgentClient(h)
    yield h, agent
    await agent.close()
    await h.close()


async def events(h: Harness) -> list[dict]:
    return await h.rows("SELECT ticket_id, actor, actor_id, actor_name, action, body FROM ticket_events ORDER BY id")


async def test_pages_and_json_refuse_requests_without_a_session(solo):
    h, agent = solo
    async with agent.http.get(f"{h.url}/agent", allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/login?next=/agent"
    for path in ("/agent/api/tickets", "/agent/api/tickets/1", "/agent/api/session"):
        status, body = await agent.get_json(path)
        assert status == 401 and body["error"]["status"] == 401, path
    status, _ = await agent.act(1, "claim", csrf="anything")
    assert status == 401
    # A made-up cookie is no session either (the server knows its sessions).
    agent.http.cookie_jar.update_cookies({COOKIE: "TGFu.9999999999.abc.0123"}, aiohttp.client.URL(h.url + "/agent"))
    assert (await agent.get_json("/agent/api/tickets"))[0] == 401
    async with agent.http.get(f"{h.url}/agent/login") as resp:  # the old address leads to the sign-in form
        form = await resp.text()
    assert resp.status == 200 and '<html lang="vi">' in form and str(resp.url).endswith("/login?next=/agent")
    assert '<label for="login">' in form and '<label for="password">' in form and 'type="password"' in form
    assert "Content-Security-Policy" in resp.headers


async def test_sign_in_sets_a_strict_httponly_cookie_and_sign_out_clears_it(solo):
    h, agent = solo
    status, _ = await agent.login()
    assert status == 303
    cookie = next(c for c in agent.http.cookie_jar if c.key == COOKIE)
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/" and int(cookie["max-age"]) == 12 * 3600
    status, info = await agent.get_json("/agent/api/session")
    assert status == 200 and info["agent"] == AGENT_NAME and info["language"] == "vi"
    assert info["strings"]["action.resolve"] == "✅ Đã xong"
    async with agent.http.get(f"{h.url}/agent") as resp:
        page = await resp.text()
    assert resp.status == 200 and "/agent/static/app.js" in page and '<html lang="vi">' in page
    # Sign out needs the CSRF token too; then the session is gone.
    async with agent.http.post(f"{h.url}/agent/logout", data={"csrf": "wrong"}, allow_redirects=False) as resp:
        assert resp.status == 403
    async with agent.http.post(f"{h.url}/agent/logout", data={"csrf": agent.csrf}, allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/login"
    assert (await agent.get_json("/agent/api/tickets"))[0] == 401
    # Sessions expire.
    await agent.login()
    assert (await agent.get_json("/agent/api/tickets"))[0] == 200
    h.clock.advance(hours(12.01))
    assert (await agent.get_json("/agent/api/tickets"))[0] == 401


async def test_wrong_password_is_refused_and_the_account_locks_after_five(solo):
    h, agent = solo
    status, body = await agent.login(password="not-the-password")
    assert status == 401 and "Sai tên đăng nhập hoặc mật khẩu" in body and 'value="lan.anh"' in body
    assert not [c for c in agent.http.cookie_jar if c.key == COOKIE]
    assert (await agent.get_json("/agent/api/tickets"))[0] == 401
    status, _ = await agent.login(Origin="http://evil.example")  # a cross-site form post
    assert status == 403
    status, _ = await agent.login(Origin="null")  # e.g. from a sandboxed frame
    assert status == 403
    for _ in range(4):
        assert (await agent.login(password="guess-guess"))[0] in (401, 429)
    status, body = await agent.login()  # five wrong passwords: even the right one waits now
    assert status == 429 and "tạm khoá" in body
    assert not [c for c in agent.http.cookie_jar if c.key == COOKIE]
    # Per account: a colleague signing in from the same place is not locked out.
    other = AgentClient(h)
    try:
        assert (await other.login("Bình"))[0] == 303
    finally:
        await other.close()
    h.clock.advance(hours(0.26))  # the lockout (15 min) is over
    assert (await agent.login())[0] == 303
    actions = [r["action"] for r in await h.rows("SELECT action FROM account_events WHERE login = 'lan.anh' ORDER BY id")]
    assert actions == ["created", "wrong_password", "wrong_password", "wrong_password", "wrong_password", "locked",
                       "sign_in_refused", "signed_in"]


async def test_the_api_token_no_longer_signs_in_and_says_what_to_do(solo):
    h, agent = solo
    async with agent.http.post(f"{h.url}/agent/login", data={"name": "Lan Anh", "token": API_TOKEN}, allow_redirects=False) as resp:
        body = await resp.text()  # the old form, e.g. a password manager filling it
    assert resp.status == 401 and "Không còn đăng nhập bằng mã API" in body and "feedbot user add" in body
    async with agent.http.post(f"{h.url}/login", data={"login": "lan", "password": API_TOKEN}, allow_redirects=False) as resp:
        body = await resp.text()
    assert resp.status == 401 and "Không còn đăng nhập bằng mã API" in body
    assert not [c for c in agent.http.cookie_jar if c.key == COOKIE]
    # The HTTP API still takes it.
    async with agent.http.get(f"{h.url}/api/v1/reports/weekly", headers={"Authorization": f"Bearer {API_TOKEN}"}) as resp:
        assert resp.status == 200


async def test_state_changes_need_the_csrf_token(solo):
    h, agent = solo
    await file_complaint(h, h.tg)
    await agent.login()
    assert (await agent.act(1, "claim", csrf=""))[0] == 403
    assert (await agent.act(1, "claim", csrf="0" * 40))[0] == 403
    assert (await agent.act(1, "reply", "xin chào", csrf="nope"))[0] == 403
    # Another agent's CSRF token does not fit this session.
    other = AgentClient(h)
    try:
        await other.login("Bình")
        assert (await agent.act(1, "claim", csrf=other.csrf))[0] == 403
    finally:
        await other.close()
    ticket = (await h.rows("SELECT status, assignee_name FROM tickets"))[0]
    assert ticket == {"status": "open", "assignee_name": None}
    assert [e["action"] for e in await events(h)] == ["opened"]


async def test_no_group_list_reply_note_claim_resolve(solo):
    h, agent = solo
    tg = h.tg
    await file_complaint(h, tg)
    await agent.login()

    [listed] = await agent.tickets()
    assert listed["number"] == "KN-0001" and listed["status"] == "open" and listed["status_label"] == "Chờ nhận"
    assert listed["customer"] == "Nguyễn Thị Lan" and listed["channel"] == "telegram" and listed["order_id"] == "A-1001"
    assert (listed["priority"], listed["priority_label"]) == ("normal", "thường")
    assert (listed["tier"], listed["category"], listed["category_label"]) == ("regular", "delivery", "Giao hàng")
    assert listed["first_response_due"] == "11:00 23/11" and listed["resolution_due"] == "09:00 25/11"  # shop time
    assert listed["assignee"] is None and listed["breached"] is False and listed["escalated"] is False

    status, detail = await agent.get_json("/agent/api/tickets/1")
    assert status == 200 and detail["ticket"]["description"] == "Shipper giao trễ 2 ngày, hộp bị móp"
    assert detail["customer"]["phone"] == "+84 912 345 678" and detail["order"]["order_id"] == "A-1001"
    assert detail["order"]["amount"] == "250.000" and detail["order"]["purchased_at"] == "09:00 23/11"
    assert [(e["action"], e["who"]) for e in detail["events"]] == [("opened", "Nguyễn Thị Lan")]

    # A reply reaches the customer's Telegram chat exactly like a reply in the group, and takes the ticket.
    status, body = await agent.act(1, "reply", "  Chào chị, shop gửi bù hộp mới hôm nay ạ ")
    assert status == 200 and body["message"] == "Đã gửi cho khách." and body["ticket"]["status"] == "claimed"
    relayed = (await tg.wait_for_messages(CUSTOMER, 8))[7]
    assert relayed.text == "💬 Shop An (KN-0001): Chào chị, shop gửi bù hộp mới hôm nay ạ"

    # The customer answers: the page sees it (the since= cursor returns only what is new).
    last = body["events"][-1]["id"]
    await h.customer_says(CUSTOMER, "Cảm ơn shop")
    status, news = await agent.get_json(f"/agent/api/tickets/1?since={last}")
    assert [(e["action"], e["body"]) for e in news["events"]] == [("customer_message", "Cảm ơn shop")]

    # An internal note never reaches the customer; claiming one's own ticket again changes nothing.
    assert (await agent.act(1, "note", "khách VIP tiềm năng"))[0] == 200
    assert (await agent.act(1, "claim"))[0] == 200
    status, body = await agent.act(1, "resolve")
    assert status == 200 and body["ticket"]["status"] == "resolved" and body["message"].startswith("Đã đóng KN-0001")
    question = (await tg.wait_for_messages(CUSTOMER, 9))[8]
    assert "KN-0001 đã được xử lý xong" in question.text and len(buttons(question)) == 5
    await asyncio.sleep(0.2)
    assert not any("VIP tiềm năng" in (m.text or "") for m in tg.sent_messages(CUSTOMER))
    assert len(tg.sent_messages(CUSTOMER)) == 9
    assert not [r for r in tg.requests if str(r.params.get("chat_id", "")).startswith("-")]  # no group anywhere

    ticket = (await h.rows("SELECT status, assignee_id, assignee_name, first_response_at, resolved_at FROM tickets"))[0]
    assert ticket["status"] == "resolved" and ticket["assignee_id"] == "account:1" and ticket["assignee_name"] == "Lan Anh"
    assert ticket["first_response_at"] and ticket["resolved_at"]
    assert [(e["action"], e["actor"], e["actor_id"], e["actor_name"]) for e in await events(h)] == [
        ("opened", "customer", "1", "Nguyễn Thị Lan"),
        ("reply", "agent", "account:1", "Lan Anh"),
        ("customer_message", "customer", "1", "Nguyễn Thị Lan"),
        ("note", "agent", "account:1", "Lan Anh"),
        ("resolved", "agent", "account:1", "Lan Anh"),
    ]
    [listed] = await agent.tickets()  # recently resolved tickets stay listed
    assert listed["status"] == "resolved" and listed["assignee"] == "Lan Anh"

    # The customer rates the handling as usual.
    await h.customer_taps(CUSTOMER, buttons(question)[4]["callback_data"], question.message_id)
    assert (await h.rows("SELECT resolution_score FROM tickets"))[0]["resolution_score"] == 5


async def test_claim_tells_the_customer_and_refusals_are_audited(solo):
    h, agent = solo
    await file_complaint(h, h.tg)
    await agent.login()
    status, body = await agent.act(1, "claim")
    assert status == 200 and body["ticket"]["assignee"] == AGENT_NAME and body["message"] == "Bạn đã nhận xử lý KN-0001."
    told = (await h.tg.wait_for_messages(CUSTOMER, 8))[7]
    assert told.text == "KN-0001: nhân viên Lan Anh đang xử lý khiếu nại của bạn."

    other = AgentClient(h)
    try:
        await other.login("Bình")
        status, body = await other.act(1, "claim")
        assert status == 409 and body["error"]["message"] == "Lan Anh đang xử lý KN-0001."
        assert (await other.act(1, "reply", ""))[0] == 400  # empty text: nothing to send
        assert (await other.act(1, "escalate"))[0] == 200
    finally:
        await other.close()
    assert (await agent.act(1, "resolve"))[0] == 200
    status, body = await agent.act(1, "reply", "thêm một câu")
    assert status == 409 and body["error"]["message"] == "KN-0001 đã đóng."
    assert (await agent.act(1, "note", "ghi chú sau khi đóng"))[0] == 200  # notes are fine on resolved tickets
    rows = [(e["action"], e["actor_name"], e["body"]) for e in await events(h)]
    assert rows == [
        ("opened", "Nguyễn Thị Lan", "Shipper giao trễ 2 ngày, hộp bị móp"),
        ("claimed", "Lan Anh", None),
        ("denied", "Bình", "claim"),
        ("escalated", "Bình", "high"),
        ("resolved", "Lan Anh", None),
        ("denied", "Lan Anh", "reply"),
        ("note", "Lan Anh", "ghi chú sau khi đóng"),
    ]
    [listed] = await agent.tickets()
    assert listed["escalated"] is True and listed["priority"] == "high"
    _, news = await agent.get_json("/agent/api/tickets/1?since=999")
    assert news["events"] == [] and news["ticket"]["escalated"] is True


async def test_a_missing_ticket_is_404_and_changes_nothing(solo):
    h, agent = solo
    await file_complaint(h, h.tg)
    await agent.login()
    before = (await events(h), await h.rows("SELECT id, status FROM outbox ORDER BY id"), await h.rows("SELECT * FROM tickets"))
    for action in ("reply", "note", "claim", "resolve", "escalate"):
        status, body = await agent.act(42, action, "xin chào" if action in ("reply", "note") else None)
        assert status == 404 and body["error"]["message"] == "Không tìm thấy khiếu nại.", action
    assert (await agent.act("abc", "claim"))[0] == 404
    assert (await agent.act(1, "delete"))[0] == 404  # not an action
    assert (await agent.get_json("/agent/api/tickets/42"))[0] == 404
    after = (await events(h), await h.rows("SELECT id, status FROM outbox ORDER BY id"), await h.rows("SELECT * FROM tickets"))
    assert after == before


async def test_breach_marker_after_the_first_response_target(solo):
    h, agent = solo
    await file_complaint(h, h.tg)
    await agent.login()
    assert (await agent.tickets())[0]["breached"] is False
    h.clock.advance(hours(2.5))  # past the 2 h first-response target, before the watchdog ran
    assert (await agent.tickets())[0]["breached"] is True
    await h.app.sla.watch_sla()  # no group: the watchdog still records the breach, posts nowhere
    listed = (await agent.tickets())[0]
    assert listed["breached"] is True and listed["escalated"] is True and listed["priority"] == "high"
    assert [e["action"] for e in await events(h)] == ["opened", "sla_breach"]


async def test_customer_text_is_data_never_markup(solo):
    h, agent = solo
    nasty = 'Hộp bị móp <script>alert("x")</script> <img src=x onerror=alert(1)>'
    await file_complaint(h, h.tg, nasty)
    await agent.login()
    async with agent.http.get(f"{h.url}/agent/api/tickets/1") as resp:
        assert resp.content_type == "application/json" and resp.headers["X-Content-Type-Options"] == "nosniff"
        detail = await resp.json()
    assert detail["ticket"]["description"] == nasty  # as data; the page puts it in with textContent
    async with agent.http.get(f"{h.url}/agent") as resp:
        page = await resp.text()
    assert "<script>alert" not in page and "onerror" not in page
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]  # no inline script could run anyway
    stranger = AgentClient(h)
    async with stranger.http.post(f"{h.url}/login", data={"login": '<b onmouseover="x">', "password": "wrong"}) as resp:
        status, body = resp.status, await resp.text()
    await stranger.close()
    assert status == 401 and '<b onmouseover' not in body and "&lt;b onmouseover=&quot;x&quot;&gt;" in body
    script = (await (await agent.http.get(f"{h.url}/agent/static/app.js")).text())
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script


async def test_with_a_group_the_card_follows_the_web_agent(tmp_path, tg, clock):
    tg.make_group(GROUP, "Agents", is_forum=False, members={9001: "Minh"})
    config = make_config(tmp_path, tg, agents={"chat_id": GROUP}, sender={"group_messages_per_minute": 600})
    h = Harness(config, tg, clock)
    await h.start()
    agent = AgentClient(h)
    try:
        await file_complaint(h, tg)
        card = (await tg.wait_for_messages(GROUP, 1))[0]
        assert "KN-0001" in card.text
        for _ in range(100):  # the card's message id is stored once it is sent
            if (await h.rows("SELECT card_message_id FROM tickets"))[0]["card_message_id"]:
                break
            await asyncio.sleep(0.02)
        await agent.login()
        assert (await agent.act(1, "claim"))[0] == 200
        said = (await tg.wait_for_messages(GROUP, 2))[1]
        assert said.text == "✋ Lan Anh nhận xử lý KN-0001."
        edits: list[str] = []
        for _ in range(100):
            edits = [r.params["text"] for r in tg.requests_for("editMessageText") if str(r.params.get("chat_id")) == str(GROUP)]
            if edits:
                break
            await asyncio.sleep(0.05)
        assert edits and "Lan Anh đang xử lý" in edits[-1]
        assert str(card.message_id) == str(tg.requests_for("editMessageText")[-1].params["message_id"])
        # And the page sees what agents do in the group: a reply to the card.
        await h.deliver(tg.make_message_update(9001, "Shop gọi lại cho chị nhé", chat_id=GROUP, reply_to_message_id=card.message_id))
        _, detail = await agent.get_json("/agent/api/tickets/1")
        assert [(e["action"], e["who"]) for e in detail["events"]][-1] == ("reply", "Minh")
    finally:
        await agent.close()
        await h.close()


async def test_behind_an_https_proxy_the_cookie_is_secure_and_the_public_origin_may_sign_in(tmp_path, tg, clock):
    config = make_config(tmp_path, tg, http={"public_url": "https://shop.example/bot"}, telegram={"mode": "polling"})
    h = Harness(config, tg, clock)
    await h.start()
    agent = AgentClient(h)
    try:
        await ensure_account(h, "An")
        async with agent.http.post(f"{h.url}/login", data={"login": "an", "password": PASSWORD},
                                   headers={"Origin": "https://shop.example"}, allow_redirects=False) as resp:
            assert resp.status == 303
            assert "Secure" in resp.headers["Set-Cookie"] and "SameSite=Strict" in resp.headers["Set-Cookie"]
            assert "HttpOnly" in resp.headers["Set-Cookie"]
    finally:
        await agent.close()
        await h.close()


async def test_disabled_page_is_not_served(tmp_path, tg, clock):
    h = Harness(make_config(tmp_path, tg, agent_page={"enabled": False}), tg, clock)
    await h.start()
    try:
        async with h.http.get(f"{h.url}/agent/login") as resp:
            assert resp.status == 404
    finally:
        await h.close()


def test_english_catalog_has_every_key():
    from flows.agent_page import CATALOG

    assert set(CATALOG["en"]) == set(CATALOG["vi"])
    for language, strings in CATALOG.items():
        for key, value in strings.items():
            assert set(re.findall(r"{(\w+)}", value)) == set(re.findall(r"{(\w+)}", CATALOG["vi"][key])), (language, key)


async def test_without_telegram_at_all_in_english(tmp_path, clock):
    h = Harness(make_config(tmp_path, agents={"language": "en"}), None, clock)
    await h.start()
    agent = AgentClient(h)
    try:
        async with agent.http.get(f"{h.url}/agent/login") as resp:
            form = await resp.text()
        assert '<html lang="en">' in form and "Password" in form
        status, body = await agent.login(password="wrong-password")
        assert status == 401 and "Wrong login or password" in body
        assert (await agent.login())[0] == 303
        _, info = await agent.get_json("/agent/api/session")
        assert info["language"] == "en" and info["strings"]["action.claim"] == "✋ Claim"
        assert await agent.tickets() == []
        status, body = await agent.act(1, "claim")
        assert status == 404 and body["error"]["message"] == "Complaint not found."
    finally:
        await agent.close()
        await h.close()


async def test_english_page_writes_dates_as_english_readers_do(tmp_path, tg, clock):
    h = Harness(make_config(tmp_path, tg, agents={"language": "en"}), tg, clock)
    await h.start()
    agent = AgentClient(h)
    try:
        await file_complaint(h, tg)
        await agent.login()
        [listed] = await agent.tickets()
        assert listed["first_response_due"] == "11:00, 23 Nov" and listed["resolution_due"] == "09:00, 25 Nov"
    finally:
        await agent.close()
        await h.close()


def test_refusal_rules():
    from flows.agent_page import MAX_TEXT, refusal
    from flows.desk import DeskTicket

    open_ = DeskTicket(1, "KN-0001", "open", "normal")
    mine = DeskTicket(1, "KN-0001", "claimed", "normal", "web:An", "An")
    done = DeskTicket(1, "KN-0001", "resolved", "normal", "web:An", "An")
    assert refusal("reply", open_, "web:An", "xin chào") is None
    assert refusal("reply", open_, "web:An", "x" * (MAX_TEXT + 1)) == ("refused.too_long", {"max": MAX_TEXT})
    assert refusal("note", open_, "web:An", "  ") == ("refused.empty", {})
    assert refusal("claim", mine, "web:An") is None and refusal("claim", mine, "web:Bình")[0] == "refused.claimed"
    assert refusal("resolve", mine, "web:Bình") is None  # any agent may resolve, as in the group
    for action in ("reply", "claim", "resolve", "escalate"):
        assert refusal(action, done, "web:An", "x") == ("refused.resolved", {"number": "KN-0001"})
    assert refusal("note", done, "web:An", "ghi chú") is None
