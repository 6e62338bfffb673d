"""The agent page's photos, canned replies and who sees what, against the real app on both
backends; and every /agent route walked with each role and without a session."""
from __future__ import annotations

import json

import pytest

from bot.http.agent_page import AGENT_BODY_MAX
from bot.http.auth import CSRF_HEADER
from testkit.telegram_api import placeholder_png
from tests.conftest import BOTH, Harness, make_config
from tests.digest_data import local
from tests.http.agent_data import Desk
from tests.http.test_agent_page import AgentClient

BACKENDS = BOTH
PHOTO = "AgACAgIAAxkBAAIBd2VhY2hQaG90bzE"


@pytest.fixture
async def shop(tmp_path, tg, clock, database_url):
    """Q1's customer complained with a photo about a Q1 order; Q3's customer about a Q3 order;
    Q1's customer (last bought in Q1) wrote about no order; a stranger with no purchase."""
    h = Harness(make_config(tmp_path, tg, database_url=database_url), tg, clock)
    await h.start()
    desk = Desk(h.app.db)
    lan = await desk.customer("Nguyễn Thị Lan")
    binh = await desk.customer("Trần Văn Bình")
    await desk.purchase(lan, local(1), store="Q3")  # earlier in Q3: her latest purchase decides
    q1 = await desk.purchase(lan, local(20), store="Q1")
    q3 = await desk.purchase(binh, local(20), store="Q3")
    tg.register_file_id(PHOTO)
    ids = {
        "q1": await desk.complaint(customer_id=lan, purchase_id=q1, user=801, photos=(PHOTO,)),
        "q3": await desk.complaint(customer_id=binh, purchase_id=q3, user=802, description="Bí mật Q3"),
        "q1_no_order": await desk.complaint(customer_id=lan, purchase_id=None, user=803),
        "stranger": await desk.complaint(customer_id=None, purchase_id=None, user=804, description="Người lạ"),
    }
    yield h, ids
    await h.close()


async def post(client: AgentClient, path: str, body: dict | None = None, csrf: str | None = None) -> tuple[int, dict]:
    headers = {CSRF_HEADER: client.csrf if csrf is None else csrf}
    async with client.http.post(f"{client.h.url}{path}", json=body or {}, headers=headers, allow_redirects=False) as resp:
        return resp.status, await resp.json()


async def test_a_manager_sees_tickets_without_an_order_by_the_customers_latest_purchase(shop):
    h, ids = shop
    manager, agent = AgentClient(h), AgentClient(h)
    try:
        await manager.login("Quản Lý Q1", role="manager", stores=("Q1",))
        assert {t["id"] for t in await manager.tickets()} == {ids["q1"], ids["q1_no_order"]}
        assert (await manager.get_json(f"/agent/api/tickets/{ids['q1_no_order']}"))[0] == 200
        for hidden in ("q3", "stranger"):
            assert (await manager.get_json(f"/agent/api/tickets/{ids[hidden]}"))[0] == 404
        await agent.login("Lan Anh")  # agents and owners see every ticket
        assert {t["id"] for t in await agent.tickets()} == set(ids.values())
    finally:
        await manager.close()
        await agent.close()


async def test_a_telegram_photo_is_shown_through_the_bot_and_the_token_never_reaches_the_page(shop, tg):
    h, ids = shop
    agent = AgentClient(h)
    try:
        await agent.login("Lan Anh")
        status, detail = await agent.get_json(f"/agent/api/tickets/{ids['q1']}")
        url = f"/agent/api/tickets/{ids['q1']}/photos/0"
        assert status == 200 and detail["ticket"]["photos"] == [url] and detail["ticket"]["photos_elsewhere"] == 0
        async with agent.http.get(f"{h.url}{url}") as resp:
            assert resp.status == 200 and resp.content_type == "image/png"
            assert resp.headers["Cache-Control"] == "no-store"
            assert await resp.read() == placeholder_png(PHOTO)
        assert [r.params["file_id"] for r in tg.requests_for("getFile")] == [PHOTO]
        assert h.config.telegram.token not in json.dumps(detail)
        for missing in (f"/agent/api/tickets/{ids['q1']}/photos/1", f"/agent/api/tickets/{ids['q3']}/photos/0"):
            async with agent.http.get(f"{h.url}{missing}") as resp:
                assert resp.status == 404, missing
        # Bytes that are not an image are never served from our origin.
        tg.set_file_content(PHOTO, b"<html><script>alert(1)</script></html>")
        async with agent.http.get(f"{h.url}{url}") as resp:
            assert resp.status == 502 and "Ảnh 1" in (await resp.json())["error"]["message"]
    finally:
        await agent.close()


async def test_a_photo_is_not_served_to_a_manager_of_another_store_nor_without_a_session(shop):
    h, ids = shop
    manager, nobody = AgentClient(h), AgentClient(h)
    try:
        await manager.login("Quản Lý Q3", role="manager", stores=("Q3",))
        url = f"{h.url}/agent/api/tickets/{ids['q1']}/photos/0"
        async with manager.http.get(url) as resp:
            assert resp.status == 404
        async with nobody.http.get(url) as resp:
            assert resp.status == 401
    finally:
        await manager.close()
        await nobody.close()


async def test_owners_manage_canned_replies_agents_insert_them_filled(shop):
    h, ids = shop
    owner, agent = AgentClient(h), AgentClient(h)
    try:
        await owner.login("Chủ Shop", role="owner")
        status, body = await post(owner, "/agent/api/canned", {"title": "Xin lỗi",
                                                                "body": "Chào {ten_khach}, shop xin lỗi về {ma_phieu}."})
        assert status == 200 and body["message"] == "Đã thêm mẫu “Xin lỗi”."
        reply_id = body["id"]
        status, body = await post(owner, "/agent/api/canned", {"title": "Sai", "body": "Chào {ten_khach} {ten}"})
        assert status == 400 and "{ten}" not in body["error"]["message"] and "ten" in body["error"]["message"]
        assert (await post(owner, "/agent/api/canned", {"title": " ", "body": "x"}))[0] == 400
        assert (await post(owner, "/agent/api/canned", {"title": "x" * 61, "body": "x"}))[0] == 400
        assert (await post(owner, "/agent/api/canned", {"title": "x", "body": "x"}, csrf="wrong"))[0] == 403

        await agent.login("Lan Anh")
        status, detail = await agent.get_json(f"/agent/api/tickets/{ids['q1']}")
        assert detail["canned"] == [{"id": reply_id, "title": "Xin lỗi",
                                     "text": "Chào Nguyễn Thị Lan, shop xin lỗi về KN-0001."}]
        for path, body in (("/agent/api/canned", {"title": "a", "body": "b"}), (f"/agent/api/canned/{reply_id}", {"title": "a", "body": "b"}),
                           (f"/agent/api/canned/{reply_id}/delete", {})):
            assert (await post(agent, path, body))[0] == 403, path  # owners only
        assert (await agent.get_json("/agent/api/canned"))[0] == 200

        status, body = await post(owner, f"/agent/api/canned/{reply_id}", {"title": "Xin lỗi", "body": "Dạ {ma_phieu} ạ"})
        assert status == 200
        _, detail = await agent.get_json(f"/agent/api/tickets/{ids['q3']}")
        assert detail["canned"][0]["text"] == "Dạ KN-0002 ạ"
        assert (await post(owner, f"/agent/api/canned/{reply_id}/delete"))[0] == 200
        assert (await post(owner, f"/agent/api/canned/{reply_id}/delete"))[0] == 404
        assert (await agent.get_json("/agent/api/canned"))[1]["replies"] == []
        trail = await h.rows("SELECT login, action, detail, by_login FROM account_events WHERE action LIKE 'canned%' ORDER BY id")
        assert trail == [
            {"login": "chu.shop", "action": "canned_reply.added", "detail": f"#{reply_id} Xin lỗi", "by_login": "chu.shop"},
            {"login": "chu.shop", "action": "canned_reply.changed", "detail": f"#{reply_id} Xin lỗi", "by_login": "chu.shop"},
            {"login": "chu.shop", "action": "canned_reply.deleted", "detail": f"#{reply_id} Xin lỗi", "by_login": "chu.shop"},
        ]
    finally:
        await owner.close()
        await agent.close()


def _agent_routes(h: Harness) -> list[tuple[str, str]]:
    """Every route under /agent/ the app serves (new ones are walked without editing this test)."""
    routes = []
    for route in h.app._runner.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or ""
        if path.startswith("/agent/api/") and route.method in ("GET", "POST"):
            routes.append((route.method, path))
    return sorted(set(routes))


def _fill(path: str, ticket_id: int) -> str:
    return (path.replace("{ticket_id}", str(ticket_id)).replace("{n}", "0").replace("{action}", "note")
            .replace("{reply_id}", "1").replace("{name}", "app.js"))


async def test_every_agent_route_respects_roles(shop):
    """A Q1 manager never gets Q3's ticket or the store-less stranger's through any /agent route;
    agents and managers cannot change canned replies; nobody without a session gets anything."""
    h, ids = shop
    routes = _agent_routes(h)
    assert ("GET", "/agent/api/stream") in routes and ("POST", "/agent/api/canned/{reply_id}/delete") in routes
    owner, manager, agent, nobody = (AgentClient(h) for _ in range(4))
    try:
        await owner.login("Chủ Shop", role="owner")
        await post(owner, "/agent/api/canned", {"title": "Mẫu", "body": "Chào {ten_khach}"})
        await manager.login("Quản Lý Q1", role="manager", stores=("Q1",))
        await agent.login("Lan Anh")
        owners_only = {"/agent/api/canned", "/agent/api/canned/{reply_id}", "/agent/api/canned/{reply_id}/delete"}
        walked = set()
        for method, path in routes:
            body = {"text": "ghi chú", "title": "Mẫu", "body": "Chào"}
            for client in (manager, agent, nobody):
                url = _fill(path, ids["q3"] if client is manager else ids["q1"])
                if method == "GET" and path == "/agent/api/stream":
                    async with client.http.get(f"{h.url}{url}", timeout=None) as resp:
                        assert resp.status == (401 if client is nobody else 200)
                    continue
                if method == "GET":
                    status, answer = await _get(client, url)
                else:
                    status, answer = await post(client, url, body)
                text = json.dumps(answer, ensure_ascii=False)
                if client is nobody:
                    assert status == 401, (method, url)
                elif method == "POST" and path in owners_only:
                    assert status == 403, (client, method, url)
                elif client is manager and "{ticket_id}" in path:
                    assert status == 404, (method, url)  # Q3's ticket: as if it did not exist
                else:
                    assert status in (200, 502), (method, url, status, text[:200])
                if client is manager:
                    assert "Bí mật Q3" not in text and "Trần Văn Bình" not in text and "Người lạ" not in text, (url, text[:300])
            walked.add((method, path))
        assert walked == set(routes)
        assert (await post(owner, "/agent/api/canned/1", {"title": "Mẫu", "body": "Dạ"}))[0] == 200
    finally:
        for client in (owner, manager, agent, nobody):
            await client.close()


async def _get(client: AgentClient, url: str) -> tuple[int, object]:
    async with client.http.get(f"{client.h.url}{url}", allow_redirects=False) as resp:
        body = await resp.read()
        if resp.content_type == "application/json":
            return resp.status, json.loads(body)
        return resp.status, body.decode("latin-1")


async def test_agent_bodies_are_read_with_the_apis_reader_and_limit(shop):
    """Replies, notes and canned replies: JSON only (415), valid JSON (400), at most
    AGENT_BODY_MAX bytes (413, refused before it is read whole)."""
    h, ids = shop
    owner = AgentClient(h)
    try:
        await owner.login("Chủ Shop", role="owner")
        headers = {CSRF_HEADER: owner.csrf}
        for path in (f"/agent/api/tickets/{ids['q1']}/note", "/agent/api/canned"):
            async def send(data: bytes, content_type: str = "application/json") -> tuple[int, dict]:
                async with owner.http.post(f"{h.url}{path}", data=data,
                                           headers={**headers, "Content-Type": content_type}) as resp:
                    return resp.status, await resp.json()
            status, body = await send(b'{"text": "x"}', "text/plain")
            assert status == 415, path
            status, body = await send(b'{"text": ')
            assert status == 400 and "not valid JSON" in body["error"]["message"], path
            status, body = await send(b'{"text": "' + b"a" * AGENT_BODY_MAX + b'"}')
            assert status == 413, path
    finally:
        await owner.close()


async def test_a_lone_surrogate_or_nul_in_a_reply_note_or_canned_reply_is_a_400_not_a_500(shop, tg):
    """"\\ud800" and "\\u0000" are valid JSON but no text the database can store (a 500 and a traceback)."""
    h, ids = shop
    owner = AgentClient(h)
    try:
        await owner.login("Chủ Shop", role="owner")
        for path, body in (("/agent/api/canned", {"title": "Xin \ud800", "body": "x"}),
                           ("/agent/api/canned", {"title": "x", "body": "\udfff"}),
                           (f"/agent/api/tickets/{ids['q1']}/reply", {"text": "Dạ \ud83d"}),
                           (f"/agent/api/tickets/{ids['q1']}/note", {"text": "\ud800 ghi chú"}),
                           (f"/agent/api/tickets/{ids['q1']}/note", {"text": "ghi chú\x00"}),  # PostgreSQL: no NUL
                           ("/agent/api/canned", {"title": "x", "body": "\x00"})):
            status, answer = await post(owner, path, body)
            assert status == 400, (path, status, answer)
        assert (await owner.get_json("/agent/api/canned"))[1]["replies"] == []
        _, detail = await owner.get_json(f"/agent/api/tickets/{ids['q1']}")
        assert [e["action"] for e in detail["events"]] == ["opened"]
    finally:
        await owner.close()
