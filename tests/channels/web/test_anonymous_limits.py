"""Anonymous writes are limited (issue 19, item 3): new web sessions, demo surveys and
anonymous visitors' tickets per address and overall; sessions that never said anything
are purged; the agent page marks tickets from unverified anonymous visitors.

Every client address is on loopback (a socket bound to 127.0.0.2 is another client)."""
from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import aiohttp

from bot.channels.web.server import COOKIE
from tests.conftest import Harness, hours, make_config
from tests.http.test_agent_page import AgentClient
from tests.channels.web.test_server import Visitor


async def started(tmp_path, clock, **web: Any) -> Harness:
    h = Harness(make_config(tmp_path, web=web), None, clock)
    await h.start()
    return h


async def first_frame(http: aiohttp.ClientSession, h: Harness, **hello: Any) -> tuple[dict, aiohttp.ClientWebSocketResponse]:
    ws = await http.ws_connect(f"{h.url}/chat/ws")
    await ws.send_json({"type": "hello", **hello})
    msg = await ws.receive(timeout=5)
    return json.loads(msg.data), ws


def session_from(source: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0)))


async def count(h: Harness, table: str) -> int:
    return (await h.rows(f"SELECT COUNT(*) AS n FROM {table}"))[0]["n"]


async def test_new_sessions_are_limited_per_address_and_known_sessions_still_connect(tmp_path, clock):
    h = await started(tmp_path, clock, new_sessions_per_minute=3)
    try:
        sockets, tokens = [], []
        for _ in range(3):
            frame, ws = await first_frame(h.http, h)
            assert frame["type"] == "welcome"
            sockets.append(ws)
            tokens.append(frame["session"])
        frame, ws = await first_frame(h.http, h)
        assert frame == {"type": "error", "code": "rate_limited", "message": frame["message"]}
        assert (await ws.receive(timeout=5)).type == aiohttp.WSMsgType.CLOSE and ws.close_code == 4429
        while json.loads((await sockets[0].receive(timeout=5)).data)["type"] != "message":
            pass  # the greeting: now the session holds something
        frame, _ = await first_frame(h.http, h, session=tokens[0])  # a visitor coming back: not a new session
        assert frame["type"] == "welcome"
        async with session_from("127.0.0.2") as other:
            frame, _ = await first_frame(other, h)
            assert frame["type"] == "welcome"
        for _ in range(50):  # each welcome is followed by its greeting (a contact) being written
            if await count(h, "contacts") == 4:
                break
            await asyncio.sleep(0.05)
        assert await count(h, "contacts") == 4  # three from 127.0.0.1, one from 127.0.0.2
    finally:
        await h.close()


async def test_signed_sessions_from_the_page_count_as_new_until_they_hold_something(tmp_path, clock):
    """GET /chat hands out a signed session id in its cookie, as many as asked: one that
    nothing was stored for yet is a new session for the limit."""
    h = await started(tmp_path, clock, new_sessions_per_minute=2)
    try:
        answers = []
        for _ in range(3):
            async with h.http.get(f"{h.url}/chat") as resp:
                token = resp.cookies[COOKIE].value
            h.http.cookie_jar.clear()
            answers.append((await first_frame(h.http, h, session=token))[0]["type"])
        assert answers == ["welcome", "welcome", "error"]
    finally:
        await h.close()


async def test_new_sessions_are_limited_overall(tmp_path, clock):
    h = await started(tmp_path, clock, new_sessions_per_minute=5, new_sessions_per_minute_total=3)
    try:
        for source in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
            async with session_from(source) as http:
                assert (await first_frame(http, h))[0]["type"] == "welcome"
        async with session_from("127.0.0.5") as http:
            assert (await first_frame(http, h))[0]["code"] == "rate_limited"
    finally:
        await h.close()


async def test_demo_surveys_are_limited_per_address(tmp_path, clock):
    h = await started(tmp_path, clock, demos_per_minute=2)
    try:
        v = await Visitor.connect(h)
        await v.message("Xin chào")
        for _ in range(2):
            await v.ws.send_json({"type": "demo"})
            await v.message("hài lòng")
        await v.ws.send_json({"type": "demo"})
        assert (await v.next("error"))["code"] == "rate_limited"
        assert await count(h, "purchases") == 2 and await count(h, "surveys") == 2
    finally:
        await h.close()


async def complain(v: Visitor, description: str) -> str:
    """File a complaint from the chat; the bot's last word."""
    await v.say("/complaint")
    await v.tap(await v.message("Vấn đề thuộc loại nào"), "Giao hàng")
    await v.message("mô tả")
    await v.say(description)
    await v.tap(await v.message("ảnh"), "Tiếp tục")
    await v.tap(await v.message("Gửi khiếu nại này?"), "Gửi")
    while True:
        said = (await v.next("message"))["text"]
        if "KN-" in said or "quá nhiều yêu cầu" in said:
            return said


async def test_anonymous_tickets_are_limited_per_address_and_the_agent_page_marks_them(tmp_path, clock):
    h = await started(tmp_path, clock, anonymous_tickets_per_hour=1)
    agent = AgentClient(h)
    try:
        first = await Visitor.connect(h)
        assert "Đã ghi nhận khiếu nại KN-" in await complain(first, "Giao trễ 3 ngày, hộp bị móp")
        second = await Visitor.connect(h)  # a new session from the same address
        assert "quá nhiều yêu cầu" in await complain(second, "Lần nữa, lại giao trễ")
        assert await count(h, "tickets") == 1
        async with session_from("127.0.0.2") as other:
            third = await Visitor.connect(_with_http(h, other))
            assert "KN-" in await complain(third, "Một khách khác, giao trễ")
        # A customer the shop knows (a survey link) is not limited.
        status, body = await h.post_purchase()
        h.clock.advance(hours(3))
        linked = await Visitor.connect(h, start=body["links"]["web"].split("start=")[1])
        await linked.message("Xin chào")
        assert "KN-" in await complain_about_order(linked, "Hàng bị vỡ")
        assert await count(h, "tickets") == 3

        assert (await agent.login())[0] == 303
        marks = {t["number"]: t["unverified"] for t in await agent.tickets()}
        assert marks == {"KN-0001": True, "KN-0002": True, "KN-0003": False}
        _, detail = await agent.get_json("/agent/api/tickets/1")
        assert detail["ticket"]["unverified"] is True and detail["ticket"]["demo"] is False
    finally:
        await agent.close()
        await h.close()


def _with_http(h: Harness, http: aiohttp.ClientSession) -> Harness:
    """The same app seen through another client's connections (another address)."""
    other = Harness(h.config, None, h.clock)
    other.app, other.http = h.app, http
    return other


async def complain_about_order(v: Visitor, description: str) -> str:
    await v.say("/complaint")
    order = await v.message("đơn hàng nào")
    await v.tap(order, order["buttons"][0][0]["label"])
    await v.tap(await v.message("Vấn đề thuộc loại nào"), "Giao hàng")
    await v.message("mô tả")
    await v.say(description)
    await v.tap(await v.message("ảnh"), "Tiếp tục")
    await v.tap(await v.message("Gửi khiếu nại này?"), "Gửi")
    return (await v.message("KN-"))["text"]


async def test_sessions_that_never_said_anything_are_purged(tmp_path, clock):
    h = await started(tmp_path, clock)
    try:
        silent = [await Visitor.connect(h) for _ in range(5)]
        for v in silent:
            await v.message("Xin chào")
        talker = await Visitor.connect(h)
        await talker.message("Xin chào")
        assert (await talker.say("Cửa hàng mở cửa mấy giờ?"))["type"] == "accepted"
        await h.app.sender.drain()
        assert await count(h, "contacts") == 6
        h.clock.advance(timedelta(minutes=30))
        assert (await h.app.privacy.purge())["silent_web_sessions"] == 0  # not yet: they may still speak
        h.clock.advance(hours(2))
        assert (await h.app.privacy.purge())["silent_web_sessions"] == 5
        left = await h.rows("SELECT id FROM contacts")
        assert len(left) == 1
        assert await h.rows("SELECT 1 FROM inbox WHERE contact_id != ?", (left[0]["id"],)) == []
        assert await h.rows("SELECT 1 FROM outbox WHERE contact_id != ?", (left[0]["id"],)) == []
        sessions = {r["session_id"] for r in await h.rows("SELECT DISTINCT session_id FROM web_messages")}
        assert len(sessions) <= 2  # the talker's, and at most the table's last row (ids are never reused)
        # A purged visitor who comes back is greeted again, as on a first visit.
        back = await Visitor.connect(h, session=silent[0].session)
        await back.message("Xin chào")
    finally:
        await h.close()
