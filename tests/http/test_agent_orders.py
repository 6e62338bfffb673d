"""/agent/orders: "Gửi khảo sát" for a phone or a chat, and the order import form; both behind
the session and its CSRF token; the survey of a chat reaches that chat on Telegram."""
from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import Harness, make_config
from tests.http.test_agent_page import AgentClient
from tests.services.test_order_import import KIOTVIET_CSV

CUSTOMER = 555002


@pytest.fixture
async def page(tmp_path, tg, clock):
    h = Harness(make_config(tmp_path, tg, survey={"quiet_hours": "00:00-00:00"}), tg, clock)
    await h.start()
    agent = AgentClient(h)
    await agent.login()
    yield h, agent
    await agent.close()
    await h.close()


async def post_form(agent: AgentClient, path: str, data) -> tuple[int, str]:
    async with agent.http.post(f"{agent.h.url}{path}", data=data, allow_redirects=False) as resp:
        return resp.status, await resp.text()


async def test_the_page_needs_a_session_and_links_from_the_index(page, tmp_path, tg, clock):
    h, agent = page
    async with agent.http.get(f"{h.url}/agent") as resp:
        assert 'href="/agent/orders"' in await resp.text()
    async with agent.http.get(f"{h.url}/agent/orders") as resp:
        text = await resp.text()
        assert resp.status == 200 and "Gửi khảo sát" in text and 'name="csrf"' in text
    async with aiohttp.ClientSession() as stranger:
        async with stranger.get(f"{h.url}/agent/orders", allow_redirects=False) as resp:
            assert resp.status == 303
    status, _ = await post_form(agent, "/agent/orders/survey", {"target": "0912345678", "csrf": "wrong"})
    assert status == 403
    assert await h.rows("SELECT * FROM purchases") == []


async def test_a_survey_for_a_phone(page):
    h, agent = page
    status, text = await post_form(agent, "/agent/orders/survey",
                                   {"target": "0912 345 678", "name": "Chị Mai", "touchpoint": "in_store",
                                    "csrf": agent.csrf})
    assert status == 200 and "manual:" in text
    [row] = await h.rows("SELECT p.order_id, p.touchpoint, c.phone, c.name, s.status FROM purchases p"
                         " JOIN customers c ON c.id = p.customer_id JOIN surveys s ON s.purchase_id = p.id")
    assert (row["touchpoint"], row["phone"], row["name"]) == ("in_store", "+84912345678", "Chị Mai")
    status, text = await post_form(agent, "/agent/orders/survey", {"target": "hello", "csrf": agent.csrf})
    assert status == 400 and "phone number" in text


async def test_a_survey_form_that_cannot_be_read_is_a_400_not_a_crash(page):
    h, agent = page
    body = f"target=0912345678&csrf={agent.csrf}".encode()
    async with agent.http.post(f"{h.url}/agent/orders/survey", data=body, allow_redirects=False,
                               headers={"Content-Type": "application/x-www-form-urlencoded; charset=bogus"}) as resp:
        assert resp.status == 400  # was a 500: request.post() raised LookupError
    assert await h.rows("SELECT * FROM purchases") == []


async def test_an_import_form_field_in_an_unknown_charset_is_a_400_not_a_crash(page):
    h, agent = page
    assert (await agent.login("Chủ Shop", role="owner"))[0] == 303
    body = (f'--b\r\nContent-Disposition: form-data; name="csrf"\r\nContent-Type: text/plain; charset=bogus\r\n\r\n'
            f'{agent.csrf}\r\n--b--\r\n').encode()
    async with agent.http.post(f"{h.url}/agent/orders/import", data=body, allow_redirects=False,
                               headers={"Content-Type": "multipart/form-data; boundary=b"}) as resp:
        assert resp.status == 400  # was a 500: the part's text() raised LookupError


async def test_a_survey_for_a_chat_goes_to_that_chat(page, tg):
    h, agent = page
    await h.customer_says(CUSTOMER, "xin chào")
    [contact] = await h.rows("SELECT id FROM contacts WHERE platform_user_id = ?", (str(CUSTOMER),))
    status, text = await post_form(agent, "/agent/orders/survey", {"target": f"contact:{contact['id']}",
                                                                   "csrf": agent.csrf})
    assert status == 200, text
    await h.app.dispatcher.dispatch_due()
    messages = await tg.wait_for_messages(CUSTOMER, 2)
    assert any("manual:" in m.text for m in messages)
    status, _ = await post_form(agent, "/agent/orders/survey", {"target": "contact:99999", "csrf": agent.csrf})
    assert status == 400


async def test_the_import_form_dry_run_then_for_real(page):
    h, agent = page

    def form(dry_run: bool) -> aiohttp.FormData:
        data = aiohttp.FormData()
        data.add_field("csrf", agent.csrf)
        data.add_field("kind", "kiotviet-export")
        if dry_run:
            data.add_field("dry_run", "1")
        data.add_field("file", KIOTVIET_CSV.encode(), filename="hoadon.csv", content_type="text/csv")
        return data

    status, _ = await post_form(agent, "/agent/orders/import", form(True))
    assert status == 403  # an agent may send a survey, not import a shop's orders
    assert (await agent.login("Chủ Shop", role="owner"))[0] == 303
    status, text = await post_form(agent, "/agent/orders/import", form(True))
    assert status == 200 and "kiotviet:HD000101" in text and "Dòng 5" in text
    assert await h.rows("SELECT * FROM purchases") == []
    status, text = await post_form(agent, "/agent/orders/import", form(False))
    assert status == 200 and "đã nhập 2" in text
    assert len(await h.rows("SELECT * FROM purchases")) == 2


async def test_a_store_manager_imports_the_orders_of_their_stores_only(page):
    h, agent = page
    assert (await agent.login("Quản Lý Q1", role="manager", stores=("Chi nhánh Q1",)))[0] == 303
    data = aiohttp.FormData()
    data.add_field("csrf", agent.csrf)
    data.add_field("kind", "kiotviet-export")
    data.add_field("file", KIOTVIET_CSV.encode(), filename="hoadon.csv", content_type="text/csv")
    status, text = await post_form(agent, "/agent/orders/import", data)
    assert status == 200 and "Chi nhánh Q3" in text  # the other store's order: an error of its line
    rows = await h.rows("SELECT order_id, store FROM purchases")
    assert rows == [{"order_id": "kiotviet:HD000101", "store": "Chi nhánh Q1"}]
