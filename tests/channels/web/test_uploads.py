"""Web chat images (POST /chat/upload) on both backends: accepted only from a visitor's signed
session, from an allowed origin, within the size cap and the limits, and only when the bytes
are really an image; stored in the database, recorded like a Telegram photo (the complaint's
photos, a question, an open ticket's relay), shown on the agent page under the ticket's
visibility rules, sent to the agents' Telegram group as an upload, erased with the customer."""
from __future__ import annotations

import base64
import struct
from datetime import timedelta
from typing import Any, AsyncIterator

import pytest

from bot.channels.web.server import ID_HEADER, SESSION_HEADER, verify_session
from bot.http.body import whole_image_type
from testkit.telegram_api import UploadedFile, placeholder_png
from tests.channels.web.test_server import Visitor
from tests.conftest import BOTH, Harness, hours, make_config
from tests.http.test_agent_page import AgentClient
from tests.services.test_privacy import file_bytes

BACKENDS = BOTH
SHOP_ORIGIN = "https://shop.example"
GROUP = "-1001234567890"
IMAGE = placeholder_png("hộp bị móp", 32)  # a real PNG; its pixels are unique in the database file


@pytest.fixture
async def web(tmp_path, clock, database_url) -> AsyncIterator[Harness]:
    h = Harness(make_config(tmp_path, database_url=database_url,
                            web={"allowed_origins": [SHOP_ORIGIN], "max_upload_bytes": 64 * 1024,
                                 "uploads_per_minute": 3}), None, clock)
    await h.start()
    yield h
    await h.close()


async def send_image(h: Harness, v: Visitor | None, data: bytes, *, frame_id: str | None = None,
                     headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    sent = {SESSION_HEADER: v.session, ID_HEADER: frame_id or v.new_id()} if v is not None else {}
    # The Content-Type a browser claims is never trusted: text/plain for a PNG changes nothing.
    async with h.http.post(f"{h.url}/chat/upload?lang=vi", data=data,
                           headers={"Content-Type": "text/plain", **sent, **(headers or {})}) as resp:
        return resp.status, await resp.json()


async def complaint_at_photos_step(h: Harness) -> Visitor:
    """A customer from the purchase's web link (store Q1), at the complaint's photo step."""
    status, body = await h.post_purchase()
    assert status == 202
    h.clock.advance(hours(3))
    v = await Visitor.connect(h, start=body["links"]["web"].split("start=")[1])
    question = await v.message("hài lòng")
    await v.tap(question, question["buttons"][0][0]["label"])  # 1
    await v.tap(await v.message("Chuyện gì đã xảy ra"), "Gửi khiếu nại")
    await v.tap(await v.message("Vấn đề thuộc loại nào"), "Giao hàng")
    await v.message("mô tả")
    await v.say("Hộp bị móp khi nhận")
    await v.message("ảnh")
    return v


async def test_an_image_joins_the_complaint_and_the_agent_page_shows_it(web):
    v = await complaint_at_photos_step(web)
    status, body = await send_image(web, v, IMAGE)
    assert status == 200 and body["type"] == "accepted"
    echo = await v.next("visitor", id=body["id"])
    assert echo["upload"] and echo["text"] == ""
    await v.tap(await v.message("Đã nhận 1 ảnh"), "Tiếp tục")
    confirm = await v.message("Gửi khiếu nại này?")
    assert "1 ảnh" in confirm["text"]
    await v.tap(confirm, "Gửi")
    await v.message("Đã ghi nhận khiếu nại KN-")
    ticket = (await web.rows("SELECT id, photos FROM tickets"))[0]
    upload = (await web.rows("SELECT id, session_id, message_id, mime_type, size FROM web_uploads"))[0]
    assert ticket["photos"] == f'["web:{upload["id"]}"]'
    assert upload["message_id"] == echo["seq"] and upload["mime_type"] == "image/png" and upload["size"] == len(IMAGE)
    # The inbox keeps the reference, not the bytes.
    payloads = [r["payload"] for r in await web.rows("SELECT payload FROM inbox WHERE platform = 'web'")]
    assert any(f"web:{upload['id']}" in p for p in payloads) and not any(len(p) > 2000 for p in payloads)

    # The visitor's other tab (or a reload) gets the image back with the session.
    async with web.http.get(f"{web.url}/chat/upload/{echo['seq']}", headers={SESSION_HEADER: v.session}) as resp:
        assert resp.status == 200 and resp.content_type == "image/png" and await resp.read() == IMAGE
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    async with web.http.get(f"{web.url}/chat/upload/{echo['seq']}") as resp:
        assert resp.status == 404  # another visitor (no session) gets nothing

    agent, other, mine = AgentClient(web), AgentClient(web), AgentClient(web)
    try:
        await agent.login("Lan Anh")
        status, detail = await agent.get_json(f"/agent/api/tickets/{ticket['id']}")
        url = f"/agent/api/tickets/{ticket['id']}/photos/0"
        assert status == 200 and detail["ticket"]["photos"] == [url] and detail["ticket"]["photos_elsewhere"] == 0
        async with agent.http.get(f"{web.url}{url}") as resp:
            assert resp.status == 200 and resp.content_type == "image/png" and await resp.read() == IMAGE
            assert resp.headers["Cache-Control"] == "no-store" and resp.headers["X-Content-Type-Options"] == "nosniff"
        await other.login("Quản Lý Q3", role="manager", stores=("Q3",))
        async with other.http.get(f"{web.url}{url}") as resp:
            assert resp.status == 404  # another store's ticket: not even its existence
        await mine.login("Quản Lý Q1", role="manager", stores=("Q1",))
        async with mine.http.get(f"{web.url}{url}") as resp:
            assert resp.status == 200
        async with web.http.get(f"{web.url}{url}") as resp:
            assert resp.status == 401  # no agent session
    finally:
        for client in (agent, other, mine):
            await client.close()


async def test_an_image_alone_asks_a_question_and_more_go_to_the_open_ticket(web):
    v = await Visitor.connect(web)
    await v.message("Xin chào")
    status, _ = await send_image(web, v, IMAGE)
    assert status == 200
    await v.message("đã nhận câu hỏi")
    second = placeholder_png("thêm một ảnh", 16)
    assert (await send_image(web, v, second))[0] == 200
    await v.say("ảnh thứ hai đây")
    ticket = (await web.rows("SELECT id, kind, photos FROM tickets"))[0]
    ids = [r["id"] for r in await web.rows("SELECT id FROM web_uploads ORDER BY id")]
    assert ticket["kind"] == "question" and ticket["photos"] == f'["web:{ids[0]}", "web:{ids[1]}"]'
    agent = AgentClient(web)
    try:
        await agent.login("Lan Anh")
        _, detail = await agent.get_json(f"/agent/api/tickets/{ticket['id']}")
        assert len(detail["ticket"]["photos"]) == 2
        async with agent.http.get(f"{web.url}{detail['ticket']['photos'][1]}") as resp:
            assert await resp.read() == second
        assert any(e["body"] == "[1 photo(s)]" for e in detail["events"])
    finally:
        await agent.close()


def text_file_named_png() -> bytes:
    return "Xin chào, đây là một tệp văn bản đổi tên thành .png\n".encode()


def png_header_then_html() -> bytes:
    return IMAGE[:33] + b"<html><script>alert(1)</script></html>"


@pytest.mark.parametrize("data", [text_file_named_png(), png_header_then_html(), b"GIF89a<svg onload=alert(1)>",
                                  b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"%PDF-1.7\n"],
                         ids=["text", "png-header-html", "gif-header", "svg", "pdf"])
async def test_what_is_not_really_an_image_is_refused_with_415_and_nothing_is_kept(web, data):
    v = await Visitor.connect(web)
    await v.message("Xin chào")
    status, body = await send_image(web, v, data, headers={"Content-Type": "image/png"})
    assert (status, body["code"]) == (415, "not_image")
    assert await web.rows("SELECT id FROM web_uploads") == []
    assert await web.rows("SELECT id FROM web_messages WHERE kind = 'visitor'") == []


async def test_refusals_too_big_no_session_wrong_origin_bad_id_rate_limit(web):
    v = await Visitor.connect(web)
    await v.message("Xin chào")
    big = IMAGE[:-12] + b"\x00" * (64 * 1024) + IMAGE[-12:]  # still a PNG, over web.max_upload_bytes
    assert whole_image_type(big) == "image/png"
    assert (await send_image(web, v, big))[1]["code"] == "too_large"
    assert (await send_image(web, v, big))[0] == 413

    status, body = await send_image(web, None, IMAGE)
    assert (status, body["code"]) == (401, "no_session")
    forged = v.session.split(".")[0] + ".AAAA"
    assert (await send_image(web, None, IMAGE, headers={SESSION_HEADER: forged, ID_HEADER: "x1"}))[0] == 401
    # A correctly signed session that never talked over the socket: no way around its limits.
    secret = (await web.rows("SELECT value FROM settings WHERE key = 'web_session_secret'"))[0]["value"]
    from bot.channels.web.server import sign_session
    unused = sign_session(secret, "AAAAAAAAAAAAAAAAAAAAAAAA")
    assert (await send_image(web, None, IMAGE, headers={SESSION_HEADER: unused, ID_HEADER: "x2"}))[0] == 401

    status, body = await send_image(web, v, IMAGE, headers={"Origin": "https://evil.example"})
    assert (status, body["code"]) == (403, "origin")
    assert (await send_image(web, v, IMAGE, frame_id="bad id!"))[0] == 400
    assert await web.rows("SELECT id FROM web_uploads") == []

    # The shop's site (an allowed origin) may send, and read the answer (CORS).
    async with web.http.options(f"{web.url}/chat/upload", headers={
            "Origin": SHOP_ORIGIN, "Access-Control-Request-Method": "POST"}) as resp:
        assert resp.status == 204 and resp.headers["Access-Control-Allow-Origin"] == SHOP_ORIGIN
        assert SESSION_HEADER in resp.headers["Access-Control-Allow-Headers"]
    async with web.http.options(f"{web.url}/chat/upload", headers={"Origin": "https://evil.example"}) as resp:
        assert resp.status == 403
    results = [await send_image(web, v, IMAGE, headers={"Origin": SHOP_ORIGIN}) for _ in range(4)]
    assert [s for s, _ in results] == [200, 200, 200, 429]  # web.uploads_per_minute = 3
    assert results[3][1]["code"] == "rate_limited"
    assert len(await web.rows("SELECT id FROM web_uploads")) == 3


async def test_a_retried_upload_is_stored_once(web):
    v = await Visitor.connect(web)
    await v.message("Xin chào")
    assert (await send_image(web, v, IMAGE, frame_id="same"))[0] == 200
    assert (await send_image(web, v, IMAGE, frame_id="same"))[0] == 200
    assert len(await web.rows("SELECT id FROM web_uploads")) == 1
    assert len(await web.rows("SELECT id FROM inbox WHERE platform = 'web' AND text = ''")) == 1


async def test_erasure_deletes_the_images_export_names_them_and_retention_purges_old_ones(web):
    v = await complaint_at_photos_step(web)
    assert (await send_image(web, v, IMAGE))[0] == 200
    await v.message("Đã nhận 1 ảnh")
    upload_id = (await web.rows("SELECT id FROM web_uploads"))[0]["id"]
    contact = (await web.rows("SELECT id FROM contacts WHERE channel = 'web'"))[0]["id"]
    document = await web.app.privacy.export(f"contact:{contact}")
    exported = document["tables"]["web_uploads"]
    assert [(r["ref"], r["mime_type"], r["size"]) for r in exported] == [(f"web:{upload_id}", "image/png", len(IMAGE))]
    assert "data" not in exported[0]
    assert IMAGE in await file_bytes(web)  # the check below can fail
    await web.app.privacy.erase(f"contact:{contact}")
    assert await web.rows("SELECT id FROM web_uploads") == []
    assert IMAGE not in await file_bytes(web)  # no page of the database's files keeps the bytes

    # Retention: another visitor's image, a year old, goes with the log.
    w = await Visitor.connect(web)
    await w.message("Xin chào")
    assert (await send_image(web, w, IMAGE))[0] == 200
    web.clock.advance(timedelta(days=400))
    counts = await web.app.privacy.purge()
    assert counts["web_uploads"] == 1 and await web.rows("SELECT id FROM web_uploads") == []


async def test_the_agents_telegram_group_gets_the_image_uploaded(tmp_path, tg, clock, database_url):
    h = Harness(make_config(tmp_path, tg, database_url=database_url, agents={"chat_id": int(GROUP)}), tg, clock)
    await h.start()
    try:
        v = await Visitor.connect(h)
        await v.message("Xin chào")
        assert (await send_image(h, v, IMAGE))[0] == 200
        photo = (await tg.wait_for_messages(int(GROUP), 2))[-1]  # the question's card, then the image
        assert photo.method == "sendPhoto" and isinstance(photo.params["photo"], UploadedFile)
        assert photo.params["photo"].data == IMAGE and photo.params["photo"].filename == "photo.png"
        # The copy in the group's outbox row goes with the customer's erasure too.
        copy = base64.b64encode(IMAGE).decode()
        assert any(copy in r["payload"] for r in await h.rows("SELECT payload FROM outbox"))
        contact = (await h.rows("SELECT id FROM contacts WHERE channel = 'web'"))[0]["id"]
        await h.app.privacy.erase(f"contact:{contact}")
        assert not any(copy in r["payload"] for r in await h.rows("SELECT payload FROM outbox"))
    finally:
        await h.close()


def test_whole_image_type_needs_the_whole_frame():
    assert whole_image_type(IMAGE) == "image/png"
    assert whole_image_type(IMAGE[:-12]) is None  # cut: no end chunk
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 100 + b"\xff\xd9"
    assert whole_image_type(jpeg) == "image/jpeg" and whole_image_type(jpeg[:-2] + b"<html>") is None
    gif = b"GIF89a" + b"\x01\x00\x01\x00\x00\x00\x00" + b"," + b"\x00" * 9 + b"\x02\x02D\x01\x00" + b";"
    assert whole_image_type(gif) == "image/gif" and whole_image_type(gif[:-1] + b"<") is None
    body = b"WEBPVP8 " + struct.pack("<I", 4) + b"\x00" * 4
    webp = b"RIFF" + struct.pack("<I", len(body)) + body
    assert whole_image_type(webp) == "image/webp" and whole_image_type(webp + b"<html>") is None
    assert whole_image_type(b"") is None and verify_session("s", None) is None
