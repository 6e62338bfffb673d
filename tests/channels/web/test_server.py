"""The web chat channel: the WebSocket protocol against the real app (no Telegram), identity,
limits, resume after a disconnect, the same survey and complaint flows as on Telegram."""
from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Any, AsyncIterator
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from bot.channels.web.server import COOKIE, OLD_COOKIE, customer_token, verify_customer_token, verify_session
from storage import settings
from tests.conftest import API_TOKEN, BOTH, Harness, hours, make_config

VN = ZoneInfo("Asia/Ho_Chi_Minh")
OUTCOME = ("accepted", "error")  # the server's answer to a visitor's frame


class Visitor:
    """A browser tab's side of the protocol, over a real WebSocket."""

    def __init__(self, h: Harness, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.h = h
        self.ws = ws
        self.frames: list[dict[str, Any]] = []  # everything received
        self.unread: list[dict[str, Any]] = []
        self.session: str | None = None
        self._n = 0

    @classmethod
    async def connect(cls, h: Harness, *, headers: dict | None = None, **hello: Any) -> "Visitor":
        ws = await h.http.ws_connect(f"{h.url}/chat/ws", headers=headers or {})
        visitor = cls(h, ws)
        await ws.send_json({"type": "hello", **hello})
        welcome = await visitor.next("welcome")
        visitor.session = welcome["session"]
        return visitor

    async def next(self, kind: str | tuple[str, ...] | None = None, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        """The first unread frame of this kind (frames skipped over stay unread)."""
        def wanted(frame: dict[str, Any]) -> bool:
            kinds = (kind,) if isinstance(kind, str) else kind
            return (kinds is None or frame["type"] in kinds) and all(frame.get(k) == v for k, v in match.items())

        for frame in self.unread:
            if wanted(frame):
                self.unread.remove(frame)
                return frame
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise AssertionError(f"socket closed: {msg.type} {msg.data} {msg.extra}")
                frame = json.loads(msg.data)
                self.frames.append(frame)
                if wanted(frame):
                    return frame
                self.unread.append(frame)

    async def message(self, containing: str = "") -> dict[str, Any]:
        while True:
            frame = await self.next("message")
            if containing in frame["text"]:
                return frame

    def new_id(self) -> str:
        self._n += 1
        return f"{id(self):x}-{self._n}"  # unique per tab, like the page's ids

    async def say(self, text: str, frame_id: str | None = None) -> dict[str, Any]:
        frame_id = frame_id or self.new_id()
        await self.ws.send_json({"type": "text", "id": frame_id, "text": text})
        return await self.next(OUTCOME, id=frame_id)

    async def tap(self, message: dict[str, Any], label: str) -> dict[str, Any]:
        button = next(b for row in message["buttons"] for b in row if b["label"] == label)
        frame_id = self.new_id()
        await self.ws.send_json({"type": "choice", "id": frame_id, "data": button["data"], "message_id": message["seq"]})
        return await self.next(OUTCOME, id=frame_id)

    async def close(self) -> None:
        await self.ws.close()


@pytest.fixture
async def web(tmp_path, clock) -> AsyncIterator[Harness]:
    h = Harness(make_config(tmp_path, web={"messages_per_minute": 20, "allowed_origins": ["https://shop.example"]}),
                None, clock)
    await h.start()
    yield h
    await h.close()


async def inbox_count(h: Harness) -> int:
    return (await h.rows("SELECT COUNT(*) AS n FROM inbox WHERE platform = 'web'"))[0]["n"]


async def test_purchase_api_links_the_web_survey_and_the_page_runs_survey_and_complaint(web):
    status, body = await web.post_purchase()
    assert status == 202
    token = body["links"]["web"].split("start=")[1]
    assert body["links"]["web"] == f"{web.url}/chat?start={token}" and body["links"]["telegram"] is None
    web.clock.advance(hours(3))  # the survey is due
    v = await Visitor.connect(web, start=token)
    greeting = (await v.message("Xin chào"))["text"]  # like a Telegram deep link: this order, no name
    assert "#A-1001" in greeting and "Nguyễn Thị Lan" not in greeting
    question = await v.message("hài lòng")
    assert [b["label"] for b in question["buttons"][0]][0].startswith("1")
    assert (await v.tap(question, question["buttons"][0][1]["label"]))["type"] == "accepted"  # score 2
    edit = await v.next("edit")
    assert edit["target"] == question["seq"] and edit["buttons"] == []
    followup = await v.message("Chuyện gì đã xảy ra")
    await v.tap(followup, "Gửi khiếu nại")
    category = await v.message("Vấn đề thuộc loại nào")
    await v.tap(category, "Giao hàng")
    await v.message("mô tả")
    assert (await v.say("Giao trễ 3 ngày, hộp bị móp"))["type"] == "accepted"
    photos = await v.message("ảnh")
    await v.tap(photos, "Tiếp tục")
    confirm = await v.message("Gửi khiếu nại này?")
    await v.tap(confirm, "Gửi")
    opened = await v.message("Đã ghi nhận khiếu nại KN-")
    survey = (await web.rows("SELECT score FROM surveys"))[0]
    ticket = (await web.rows("SELECT t.category, t.description, p.order_id FROM tickets t"
                             " JOIN purchases p ON p.id = t.purchase_id"))[0]
    assert survey["score"] == 2
    assert ticket == {"category": "delivery", "description": "Giao trễ 3 ngày, hộp bị móp", "order_id": "A-1001"}
    contact = (await web.rows("SELECT channel, customer_id FROM contacts"))[0]
    assert contact["channel"] == "web" and contact["customer_id"] is None  # the receipt gave its order, not the customer
    # Reading again from the start shows the whole conversation, the visitor's own text included.
    again = await Visitor.connect(web, session=v.session, resume=0)
    await again.next("message", text=opened["text"])
    assert any(f["type"] == "visitor" and f["text"] == "Giao trễ 3 ngày, hộp bị móp" for f in again.frames)


async def test_a_first_visit_is_greeted_and_the_cookie_session_is_used(web):
    async with web.http.get(f"{web.url}/chat") as resp:
        assert resp.status == 200 and 'lang="vi"' in await resp.text()
        cookie = resp.cookies[COOKIE]
        assert cookie["httponly"] and cookie.value.count(".") == 1
    v = await Visitor.connect(web, headers={"Cookie": f"{COOKIE}={cookie.value}"})
    assert v.session == cookie.value
    assert "Shop An" in (await v.message("Xin chào"))["text"]


async def test_a_chat_cookie_under_the_old_name_keeps_its_session(web):
    """Chat cookies were named like the sign-in's once: a visitor who has one keeps their chat."""
    first = await Visitor.connect(web)
    async with web.http.get(f"{web.url}/chat", headers={"Cookie": f"{OLD_COOKIE}={first.session}"}) as resp:
        assert resp.cookies[COOKIE].value == first.session
    again = await Visitor.connect(web, headers={"Cookie": f"{OLD_COOKIE}={first.session}"})
    assert again.session == first.session


async def test_signed_values_with_letters_outside_ascii_are_refused_not_a_crash(web):
    """hmac.compare_digest raises TypeError for a str that is not ASCII: a session or customer
    token with an "é" in its signature broke the socket (and GET /chat, and uploads) with a 500."""
    alice = await Visitor.connect(web)
    session_id, mac = alice.session.split(".")
    assert verify_session("secret", f"{session_id}.é") is None
    assert verify_customer_token("secret", "QS0x.0.é", time.time()) is None
    mallory = await Visitor.connect(web, session=f"{session_id}.{mac[:-1]}é", resume=0)
    assert mallory.session.split(".")[0] != session_id
    await mallory.message("Xin chào")
    other = await Visitor.connect(web, customer_token="QS0x.0.é")
    await other.message("Xin chào")
    async with web.http.get(f"{web.url}/chat", headers={"Cookie": f"{COOKIE}={session_id}.é"}) as resp:
        assert resp.status == 200 and resp.cookies[COOKIE].value.split(".")[0] != session_id
    async with web.http.post(f"{web.url}/chat/upload", data=b"x",
                             headers={"X-Feedbot-Session": f"{session_id}.é", "X-Feedbot-Id": "u1"}) as resp:
        assert resp.status == 401 and (await resp.json())["code"] == "no_session"


async def test_what_arrives_while_offline_is_delivered_on_resume_in_order(web):
    v = await Visitor.connect(web)
    greeting = await v.message("Xin chào")
    await v.close()
    session_id = verify_session((await web.rows("SELECT value FROM settings WHERE key = 'web_session_secret'"))[0]["value"], v.session)
    for n in (1, 2):
        await web.app.web.deliver("send_text", session_id, {"text": f"offline {n}", "buttons": []})
    back = await Visitor.connect(web, session=v.session, resume=greeting["seq"])
    assert [(await back.next("message"))["text"] for _ in range(2)] == ["offline 1", "offline 2"]
    assert not any(f.get("seq") == greeting["seq"] for f in back.frames)  # not sent twice


async def test_a_resent_frame_is_recorded_once(web):
    v = await Visitor.connect(web)
    await v.message("Xin chào")
    before = await inbox_count(web)
    assert (await v.say("xin chào shop", "same-id"))["type"] == "accepted"
    await v.message("đã nhận câu hỏi")
    assert (await v.say("xin chào shop", "same-id"))["type"] == "accepted"  # reconnect resend: a no-op
    assert await inbox_count(web) == before + 1
    assert len(await web.rows("SELECT id FROM web_messages WHERE kind = 'visitor'")) == 1


@pytest.mark.parametrize("raw", [
    "not json", "[1, 2]", '{"no": "type"}', '{"type": "shout"}', '{"type": "text", "text": "hi"}',
    '{"type": "text", "id": "bad id!", "text": "hi"}', '{"type": "text", "id": "x1", "text": 42}',
    '{"type": "text", "id": "x1", "text": "   "}', '{"type": "choice", "id": "x1", "data": "csat:1:5"}',
    '{"type": "choice", "id": "x1", "data": "", "message_id": 3}',
])
async def test_malformed_frames_get_an_error_record_nothing_and_the_socket_stays_usable(web, raw):
    v = await Visitor.connect(web)
    await v.message("Xin chào")
    before = await inbox_count(web)
    await v.ws.send_str(raw)
    error = await v.next("error")
    assert error["code"] == "malformed"
    assert (await v.say("vẫn dùng được"))["type"] == "accepted"
    assert await inbox_count(web) == before + 1  # only the good one


async def test_binary_frames_are_refused_but_the_socket_stays(web):
    v = await Visitor.connect(web)
    await v.ws.send_bytes(b"\x00\x01")
    assert (await v.next("error"))["code"] == "malformed"
    await v.ws.send_json({"type": "ping"})
    await v.next("pong")


async def test_oversized_messages_and_frames(tmp_path, clock):
    h = Harness(make_config(tmp_path, web={"max_message_chars": 50, "max_frame_bytes": 2048}), None, clock)
    await h.start()
    try:
        v = await Visitor.connect(h)
        await v.message("Xin chào")
        before = await inbox_count(h)
        too_long = await v.say("x" * 51)
        assert too_long["type"] == "error" and too_long["code"] == "too_long"
        await v.ws.send_str(json.dumps({"type": "text", "id": "big", "text": "y" * 3000}))
        assert (await v.next("error"))["code"] == "too_large"
        assert (await v.say("x" * 50))["type"] == "accepted"
        assert await inbox_count(h) == before + 1
        # Far over the limit: closed with 1009 (message too big), nothing recorded.
        await v.ws.send_str("z" * 9000)
        closing = await v.ws.receive()
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED) and v.ws.close_code == 1009
        assert await inbox_count(h) == before + 1
    finally:
        await h.close()


async def test_reconnecting_with_survey_links_counts_against_the_message_limit(tmp_path, clock):
    """A hello's survey link (start) is a message to the engine: reconnecting the same session with
    a new link each time recorded one per socket, past messages_per_minute, at connection speed."""
    h = Harness(make_config(tmp_path, web={"messages_per_minute": 3}), None, clock)
    await h.start()
    try:
        one = await Visitor.connect(h)
        await one.message("Xin chào")
        await one.close()
        before = await inbox_count(h)
        answers = []
        for n in range(5):
            v = await Visitor.connect(h, session=one.session, resume=10**6, start=f"guessed-link-{n}")
            await v.ws.send_json({"type": "ping"})
            await v.next("pong")  # the hello's link is handled before the next frame
            answers.append(next((f["code"] for f in v.frames if f["type"] == "error"), "ok"))
            await v.close()
        assert answers == ["ok", "ok", "ok", "rate_limited", "rate_limited"]
        assert await inbox_count(h) == before + 3
    finally:
        await h.close()


async def test_rate_limit_per_session_across_tabs(tmp_path, clock):
    h = Harness(make_config(tmp_path, web={"messages_per_minute": 3}), None, clock)
    await h.start()
    try:
        one = await Visitor.connect(h)
        await one.message("Xin chào")
        two = await Visitor.connect(h, session=one.session)
        before = await inbox_count(h)
        assert (await one.say("một"))["type"] == "accepted"
        assert (await two.say("hai"))["type"] == "accepted"
        assert (await one.say("ba"))["type"] == "accepted"
        refused = await two.say("bốn")
        assert refused["type"] == "error" and refused["code"] == "rate_limited"
        assert await inbox_count(h) == before + 3
        other = await Visitor.connect(h)  # another visitor is not limited by this one
        assert (await other.say("xin chào"))["type"] == "accepted"
    finally:
        await h.close()


async def test_the_first_frame_must_be_hello(web):
    ws = await web.http.ws_connect(f"{web.url}/chat/ws")
    await ws.send_json({"type": "text", "id": "a", "text": "hi"})
    assert json.loads((await ws.receive()).data)["code"] == "malformed"
    assert (await ws.receive()).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == 1008
    assert await inbox_count(web) == 0


async def test_a_visitor_never_reads_another_visitors_conversation(web):
    alice = await Visitor.connect(web)
    await alice.message("Xin chào")
    await alice.say("số điện thoại của tôi là 0912345678")
    await alice.message("đã nhận câu hỏi")
    session_id, mac = alice.session.split(".")
    forged = [f"{session_id}.{'A' * len(mac)}", session_id, f"{session_id}.{mac}x", None]
    for claimed in forged:
        mallory = await Visitor.connect(web, session=claimed, resume=0)
        assert mallory.session.split(".")[0] != session_id  # a fresh session, not Alice's
        await mallory.message("Xin chào")
        assert not any("0912345678" in f.get("text", "") for f in mallory.frames)
        await mallory.close()
    # The cookie is checked the same way.
    cookie = await Visitor.connect(web, headers={"Cookie": f"{COOKIE}={session_id}.{'B' * len(mac)}"}, resume=0)
    assert cookie.session.split(".")[0] != session_id


async def test_widget_origins(web):
    for origin, allowed in (("https://shop.example", True), (web.url, True), ("https://evil.example", False)):
        try:
            ws = await web.http.ws_connect(f"{web.url}/chat/ws", headers={"Origin": origin})
        except aiohttp.WSServerHandshakeError as exc:
            assert not allowed and exc.status == 403
        else:
            assert allowed
            await ws.close()


async def test_customer_token_links_the_visitor_to_the_shops_customer(web):
    await web.post_purchase()
    async with web.app.db.transaction() as tx:
        secret = await settings.get(tx, "web_customer_token_secret")
    good = customer_token(secret, "C-42", int(time.time()) + 3600)
    assert verify_customer_token(secret, good, time.time()) == "C-42"
    bad = [customer_token("wrong-secret", "C-42", 0), customer_token(secret, "C-42", int(time.time()) - 10),
           good.replace("Qy00Mg", "Qy00Mw"), "garbage"]
    for token in bad:
        v = await Visitor.connect(web, customer_token=token)
        await v.message("Xin chào")
        await v.close()
    assert all(r["customer_id"] is None for r in await web.rows("SELECT customer_id FROM contacts"))
    v = await Visitor.connect(web, customer_token=good)
    assert "Nguyễn Thị Lan" in (await v.message("Xin chào Nguyễn"))["text"]
    linked = await web.rows("SELECT c.platform_user_id FROM contacts c JOIN customers u ON u.id = c.customer_id"
                            " WHERE u.external_id = 'C-42'")
    assert [r["platform_user_id"] for r in linked] == [v.session.split(".")[0]]
    # Next page load with the same token: already linked, no second greeting.
    again = await Visitor.connect(web, session=v.session, customer_token=good, resume=10_000)
    await again.ws.send_json({"type": "ping"})
    await again.next("pong")
    assert not [f for f in again.frames if f["type"] == "message"]


async def test_demo_button_sends_a_survey_even_in_quiet_hours(web):
    web.clock.set(datetime(2026, 11, 23, 23, 30, tzinfo=VN))
    v = await Visitor.connect(web)
    await v.message("Xin chào")
    await v.ws.send_json({"type": "demo"})
    question = await v.message("hài lòng")
    await v.tap(question, question["buttons"][0][4]["label"])
    await v.message("Cảm ơn bạn đã chấm 5/5")
    survey = (await web.rows("SELECT s.score, u.external_id FROM surveys s JOIN customers u ON u.id = s.customer_id"))[0]
    assert survey["score"] == 5 and survey["external_id"].startswith("demo-")
    # The demo customer is made up for this visitor: the page is its chat, greeted by its name.
    chat = (await web.rows("SELECT verified_by FROM contacts WHERE customer_id IS NOT NULL"))
    assert chat == [{"verified_by": "first_token"}]
    assert any(f["type"] == "message" and "Xin chào Khách demo" in f["text"] for f in v.frames)


async def test_demo_is_off_with_a_telegram_token_unless_configured(tmp_path, tg, clock):
    h = Harness(make_config(tmp_path, tg), tg, clock)
    await h.start()
    try:
        ws = await h.http.ws_connect(f"{h.url}/chat/ws")
        await ws.send_json({"type": "hello"})
        assert json.loads((await ws.receive()).data)["demo"] is False
        await ws.send_json({"type": "demo"})
        while (frame := json.loads((await ws.receive()).data))["type"] != "error":
            pass
        assert frame["code"] == "unavailable"
    finally:
        await h.close()


async def test_agent_photo_is_a_caption_and_a_note(web):
    v = await Visitor.connect(web)
    await v.message("Xin chào")
    session_id = v.session.split(".")[0]
    await web.app.web.deliver("send_photo", session_id, {"file_id": "AgAD-telegram", "text": "📷 Shop An (KN-0001) gửi ảnh"})
    photo = await v.message("gửi ảnh")
    assert photo["photo"] == "unavailable" and "AgAD" not in json.dumps(photo)


async def test_page_and_widget_files_are_served(web):
    for path, kind in (("/chat", "text/html"), ("/widget.js", "application/javascript"),
                       ("/chat/static/chat.js", "application/javascript"), ("/chat/static/chat.css", "text/css")):
        async with web.http.get(f"{web.url}{path}") as resp:
            assert resp.status == 200 and resp.content_type == kind, path
            if path == "/chat":  # its address may hold a survey link's token
                assert resp.headers["Referrer-Policy"] == "same-origin" and resp.headers["X-Content-Type-Options"] == "nosniff"
    for path in ("/chat/static/chat.html", "/chat/static/..%2F..%2Fapp.py", "/chat/static/nope.js"):
        async with web.http.get(f"{web.url}{path}") as resp:
            assert resp.status == 404, path


async def test_web_channel_can_be_turned_off(tmp_path, clock):
    h = Harness(make_config(tmp_path, web={"enabled": False}), None, clock)
    await h.start()
    try:
        async with h.http.get(f"{h.url}/chat") as resp:
            assert resp.status == 404
        _, body = await h.post_purchase()
        assert body["links"]["web"] is None
    finally:
        await h.close()



async def test_agent_relay_both_ways_between_the_web_and_the_agents_telegram_group(tmp_path, tg, clock):
    group, agent = -1001234567890, 9001
    tg.make_group(group, "Agents", is_forum=False, members={agent: "Minh"})
    h = Harness(make_config(tmp_path, tg, agents={"chat_id": group}, sender={"group_messages_per_minute": 600}), tg, clock)
    await h.start()
    try:
        v = await Visitor.connect(h)
        await v.message("Xin chào")
        await v.say("/complaint")
        await v.tap(await v.message("Vấn đề thuộc loại nào"), "Chất lượng sản phẩm")
        await v.message("mô tả")
        await v.say("Áo bị rách ở tay áo")
        await v.tap(await v.message("ảnh"), "Tiếp tục")
        await v.tap(await v.message("Gửi khiếu nại này?"), "Gửi")
        await v.message("KN-0001")
        card = (await tg.wait_for_messages(group, 1))[0]
        assert "KN-0001" in card.text and "Áo bị rách" in card.text
        await h.deliver(tg.make_message_update(agent, "Shop đổi áo mới cho bạn nhé", chat_id=group,
                                               reply_to_message_id=card.message_id))
        assert (await v.message("KN-0001): Shop đổi áo"))["text"] == "💬 Shop An (KN-0001): Shop đổi áo mới cho bạn nhé"
        await v.say("Cảm ơn shop")
        back = (await tg.wait_for_messages(group, 2))[1]
        assert back.text.endswith("(KN-0001): Cảm ơn shop") and back.reply_to_message_id == card.message_id
    finally:
        await h.close()


def test_rate_limit_window_slides():
    from bot.channels.web.server import RateLimiter

    now = [1000.0]
    limiter = RateLimiter(2, monotonic=lambda: now[0])
    assert limiter.allow("s") and limiter.allow("s") and not limiter.allow("s")
    assert limiter.allow("other")
    now[0] += 59.0
    assert not limiter.allow("s")
    now[0] += 1.5  # the first two are more than a minute old
    assert limiter.allow("s") and limiter.allow("s") and not limiter.allow("s")


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_a_nul_character_in_a_frame_gets_an_error_frame_on_both_backends(tmp_path, clock, database_url, caplog):
    """PostgreSQL's text cannot hold U+0000 ("\\u0000" is valid JSON): on PostgreSQL the frame's
    insert failed and the visitor's socket ended in a 500 with a traceback."""
    h = Harness(make_config(tmp_path, database_url=database_url), None, clock)
    await h.start()
    try:
        v = await Visitor.connect(h)
        await v.message("Xin chào")
        await v.ws.send_json({"type": "text", "id": "nul", "text": "giao trễ\x00"})
        assert (await v.next("error"))["code"] == "malformed"
        assert (await v.say("giao trễ"))["type"] == "accepted"  # the socket goes on
        ws = await h.http.ws_connect(f"{h.url}/chat/ws")
        await ws.send_str('{"type": "hello", "start": "x", "lang": "vi\\u0000"}')
        assert json.loads((await ws.receive()).data)["type"] == "error"
        await ws.close()
        assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    finally:
        await h.close()
