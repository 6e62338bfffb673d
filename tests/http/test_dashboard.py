"""The dashboard's JSON and page against the real app: CSAT from the rollups with the previous
period and breakdowns, comments with Vietnamese search, a customer's history, complaint figures;
roles: a manager sees only their stores through every route, an agent none of it."""
from __future__ import annotations

import json

import aiohttp
import pytest

from storage import tickets

from tests.conftest import Harness, make_config
from tests.digest_data import ShopData, local
from tests.http.accounts import PASSWORD, ensure_account, login_of


class Browser:
    def __init__(self, h: Harness) -> None:
        self.h = h
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def sign_in(self, name: str, role: str, stores: tuple[str, ...] = ()) -> None:
        await ensure_account(self.h, name, role, stores)
        async with self.http.post(f"{self.h.url}/login", data={"login": login_of(name), "password": PASSWORD},
                                  allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()

    async def get(self, path: str) -> tuple[int, object]:
        async with self.http.get(f"{self.h.url}{path}", allow_redirects=False) as resp:
            body = await resp.text()
            return resp.status, json.loads(body) if resp.content_type == "application/json" else body


BACKENDS = ("sqlite", "postgresql")  # every dashboard query on both


@pytest.fixture
async def shop(tmp_path, tg, clock, database_url):
    """November 2026: answers in stores Q1 and Q3, comments in Vietnamese, complaints."""
    h = Harness(make_config(tmp_path, tg, database_url=database_url), tg, clock)
    await h.start()
    data = ShopData(h.app.db)
    q1_customer = await data.customer("Nguyễn Thị Lan")
    q3_customer = await data.customer("Trần Văn Bình")
    await data.survey(sent_at=local(3, 9), answered_at=local(3, 10), score=5, comment="Đóng gói rất đẹp, giao nhanh",
                      store="Q1", customer_id=q1_customer)
    await data.survey(sent_at=local(10, 9), answered_at=local(10, 10), score=2, comment="Hộp bị móp, đợi lâu",
                      store="Q1", customer_id=q1_customer, touchpoint="in_store")
    await data.survey(sent_at=local(11, 9), answered_at=local(11, 10), score=1, comment="Bí mật của cửa hàng Q3",
                      store="Q3", customer_id=q3_customer)
    await data.survey(sent_at=local(20, 9), answered_at=local(20, 23, 30), score=4, store="Q3", customer_id=q3_customer)
    await data.survey(sent_at=local(5, 9, month=10), answered_at=local(5, 10, month=10), score=3, store="Q1",
                      customer_id=q1_customer)  # October: the previous period of November
    await data.survey(sent_at=local(25, 9), store="Q1", customer_id=q1_customer)  # sent, never answered
    yield h
    await h.close()


async def test_owner_sees_csat_previous_period_breakdowns_and_groups(shop):
    h = shop
    owner = Browser(h)
    try:
        await owner.sign_in("Chủ Shop", "owner")
        status, d = await owner.get("/dashboard/api/csat?from=2026-11-01&to=2026-11-30&group=week")
        assert status == 200
        # 5 surveys sent in November (one unanswered), 4 answers: a response rate of 80 %.
        assert d["totals"] == {"answers": 4, "csat": 50.0, "mean": 3.0, "dissatisfied": 50.0, "sent": 5, "response_rate": 80.0}
        assert (d["previous_from"], d["previous_to"]) == ("2026-10-02", "2026-10-31")
        assert d["previous_totals"]["answers"] == 1 and d["previous_totals"]["mean"] == 3.0
        assert d["series"][0]["period"] == "2026-10-26"  # weeks start on Monday
        assert sum(p["answers"] for p in d["series"]) == 4
        assert sum(p["previous"]["answers"] for p in d["series"]) == 1
        stores = {r["key"]: r for r in d["breakdowns"]["store"]}
        assert stores["Q1"]["answers"] == 2 and stores["Q3"]["csat"] == 50.0
        assert (stores["Q1"]["sent"], stores["Q1"]["response_rate"]) == (3, 66.7) and stores["Q3"]["response_rate"] == 100.0
        assert d["previous_totals"]["response_rate"] == 100.0
        _, vip = await owner.get("/dashboard/api/csat?from=2026-11-01&to=2026-11-30&tier=regular")
        assert vip["totals"]["answers"] == 4 and vip["totals"]["response_rate"] is None  # sends are not split by tier
        assert {r["key"] for r in d["breakdowns"]["touchpoint"]} == {"delivery", "in_store"}
        assert {r["key"] for r in d["breakdowns"]["channel"]} == {""} and {r["key"] for r in d["breakdowns"]["tier"]} == {"regular"}
        # 23:30 shop time on the 20th counts on the 20th (shop days, not UTC days).
        _, days = await owner.get("/dashboard/api/csat?from=2026-11-20&to=2026-11-20&group=day")
        assert days["totals"]["answers"] == 1
        # Breakdowns add whole months (csat_months) to the days around them (csat_rollups).
        _, wide = await owner.get("/dashboard/api/csat?from=2026-10-05&to=2026-12-02")
        assert {r["key"]: r["answers"] for r in wide["breakdowns"]["store"]} == {"Q1": 3, "Q3": 2}
        _, edge = await owner.get("/dashboard/api/csat?from=2026-10-06&to=2026-11-30")
        assert {r["key"]: r["answers"] for r in edge["breakdowns"]["store"]} == {"Q1": 2, "Q3": 2}
        _, months = await owner.get("/dashboard/api/csat?from=2026-11-01&to=2026-11-30&group=month&store=Q3")
        assert [p["period"] for p in months["series"]] == ["2026-11-01"] and months["totals"]["answers"] == 2
        for bad in ("from=2026-13-01", "from=2026-11-30&to=2026-11-01", "from=2023-01-01&to=2026-11-30", "group=year", "by=colour"):
            status, body = await owner.get(f"/dashboard/api/csat?{bad}")
            assert status == 400 and body["error"]["message"], bad
    finally:
        await owner.http.close()


async def test_comment_search_matches_with_or_without_diacritics_and_d(shop):
    owner = Browser(shop)
    try:
        await owner.sign_in("Chủ Shop", "owner")
        for q in ("dong goi", "ĐÓNG GÓI", "đong gói", "Đóng   gói"):
            _, d = await owner.get(f"/dashboard/api/comments?from=2026-11-01&to=2026-11-30&q={q}")
            assert [c["comment"] for c in d["comments"]] == ["Đóng gói rất đẹp, giao nhanh"], q
        _, d = await owner.get("/dashboard/api/comments?from=2026-11-01&to=2026-11-30&q=hop mop")
        assert [c["score"] for c in d["comments"]] == [2]
        _, d = await owner.get("/dashboard/api/comments?from=2026-11-01&to=2026-11-30&q=100%25")  # LIKE's % is literal
        assert d["comments"] == []
        _, d = await owner.get("/dashboard/api/comments?from=2026-11-01&to=2026-11-30&score=1&score=2")
        assert sorted(c["score"] for c in d["comments"]) == [1, 2]
        _, d = await owner.get("/dashboard/api/comments?from=2026-11-01&to=2026-11-30&complaint=yes")
        assert d["comments"] == []
        _, d = await owner.get("/dashboard/api/comments?from=2026-11-01&to=2026-11-30")
        first = d["comments"][0]
        assert first["comment"] == "Bí mật của cửa hàng Q3"  # newest first
        status, history = await owner.get(f"/dashboard/api/customers/{first['customer_id']}")
        assert status == 200 and history["name"] == "Trần Văn Bình" and len(history["orders"]) == 2
        assert (await owner.get("/dashboard/api/customers/99999"))[0] == 404
        assert (await owner.get("/dashboard/api/comments?score=9"))[0] == 400
    finally:
        await owner.http.close()


async def test_complaint_figures(shop):
    h = shop
    data = ShopData(h.app.db)
    await data.ticket(created_at=local(2, 10), first_response_at=local(2, 11), resolved_at=local(3, 10))
    await data.ticket(created_at=local(4, 10), category="product", first_response_at=local(4, 15))  # late and still open
    for i, (agent, name, score) in enumerate([("a1", "Lan", 5), ("a1", "Lan", 2), ("a2", "Bình", 4)]):  # rated resolutions
        rated = await data.ticket(created_at=local(15 + i, 10), first_response_at=local(15 + i, 10, 30),
                                  resolved_at=local(15 + i, 12))
        async with h.app.db.transaction() as tx:
            await tickets.update(tx, rated, assignee_id=agent, assignee_name=name, resolution_score=score)
    owner = Browser(h)
    try:
        await owner.sign_in("Chủ Shop", "owner")
        _, d = await owner.get("/dashboard/api/complaints?from=2026-11-01&to=2026-11-10")
        assert (d["opened"], d["resolved"]) == (2, 1)
        # 1 h and 5 h, 24 h: read from the rollups' buckets ([1 h, 2 h), [4 h, 6 h), [24 h, 36 h)), each given as its middle.
        assert d["first_response_hours"] == {"median": 1.5, "p90": 5.0}
        assert d["resolution_hours"] == {"median": 30.0, "p90": 30.0} and d["sla_compliance"] == 100.0
        assert [(x["day"], x["opened"], x["resolved"], x["open"]) for x in d["over_time"][1:5]] == [
            ("2026-11-02", 1, 0, 1), ("2026-11-03", 0, 1, 0), ("2026-11-04", 1, 0, 1), ("2026-11-05", 0, 0, 1)]
        assert {c["key"]: c["count"] for c in d["by_category"]} == {"delivery": 1, "product": 1}
        assert [o["number"] for o in d["oldest_open"]] == ["KN-0002"] and d["reopen_rate"] == 0.0
        assert d["by_agent"] == []  # the rated ones were resolved on the 15th to 17th
        _, d = await owner.get("/dashboard/api/complaints?from=2026-11-01&to=2026-11-30")
        assert (d["opened"], d["resolved"]) == (5, 4) and 0.5 <= d["first_response_hours"]["median"] < 0.75  # 30 min: [30, 45) min
        assert [(a["key"], a["name"], a["answers"], a["csat"], a["mean"]) for a in d["by_agent"]] == [
            ("a1", "Lan", 2, 50.0, 3.5), ("a2", "Bình", 1, 100.0, 4.0)]
    finally:
        await owner.http.close()


async def test_a_manager_sees_only_their_stores_through_every_route(shop):
    h = shop
    manager = Browser(h)
    try:
        await manager.sign_in("Quản Lý Q1", "manager", ("Q1",))
        q3_customer = 2
        routes = h.app.dashboard.routes()
        walked = set()
        for store in ("", "&store=Q3", "&store=Q1&store=Q3"):
            for path in routes:
                url = path.replace("{customer_id}", str(q3_customer)) + "?from=2026-10-01&to=2026-11-30" + store
                status, body = await manager.get(url)
                walked.add(path)
                text = json.dumps(body, ensure_ascii=False)
                assert "Q3" not in text and "Bí mật" not in text and "Trần Văn Bình" not in text, (url, text[:300])
                if path.endswith("{customer_id}"):
                    assert status == 404
                else:
                    assert status == 200, (url, body)
        assert walked == set(routes)
        _, d = await manager.get("/dashboard/api/csat?from=2026-11-01&to=2026-11-30")
        assert d["totals"]["answers"] == 2 and [r["key"] for r in d["breakdowns"]["store"]] == ["Q1"]
        _, info = await manager.get("/dashboard/api/session")
        assert info["stores"] == ["Q1"]
        status, page = await manager.get("/dashboard")
        assert status == 200 and "/dashboard/static/app.js" in page
        # The agent page too: only tickets about orders of their stores.
        _, tickets = await manager.get("/agent/api/tickets")
        assert tickets["tickets"] == []
    finally:
        await manager.http.close()


async def test_an_agent_cannot_reach_the_dashboard_and_nobody_without_a_session(shop):
    h = shop
    agent, nobody = Browser(h), Browser(h)
    try:
        await agent.sign_in("Minh", "agent")
        status, _ = await agent.get("/dashboard")
        assert status == 403
        for path in h.app.dashboard.routes():
            url = path.replace("{customer_id}", "1")
            assert (await agent.get(url))[0] == 403, url
            assert (await nobody.get(url))[0] == 401, url
        async with nobody.http.get(f"{h.url}/dashboard", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/login?next=/dashboard"
    finally:
        await agent.http.close()
        await nobody.http.close()


async def test_dates_at_the_calendar_edges_and_huge_customer_ids_are_400_or_404_not_500(shop):
    """The previous period before 0001-01-01, the day after 9999-12-31, a shop midnight before
    year 1 in UTC, a customer id past 64 bits: each raised (OverflowError) and answered 500."""
    h = shop
    owner = Browser(h)
    try:
        await owner.sign_in("Chủ Shop", "owner")
        routes = [p for p in (*h.app.dashboard.routes(), *h.app.dashboard_programs.routes()) if "{" not in p]
        for query in ("from=0001-01-01&to=0001-01-02", "to=9999-12-31", "from=9999-12-30&to=9999-12-31"):
            for path in routes:
                status, _ = await owner.get(f"{path}?{query}")
                assert status in (200, 400), (path, query, status)
        assert (await owner.get("/dashboard/api/customers/99999999999999999999999"))[0] == 404
    finally:
        await owner.http.close()


async def test_a_nul_character_in_a_filter_is_a_400_not_a_500(shop):
    """PostgreSQL's text cannot hold U+0000, and the comment search's index took none either:
    ?q=a%00b, ?store=%00, ?touchpoint=%00... answered 500 with a traceback."""
    h = shop
    owner = Browser(h)
    try:
        await owner.sign_in("Chủ Shop", "owner")
        routes = [p for p in (*h.app.dashboard.routes(), *h.app.dashboard_programs.routes()) if "{" not in p]
        for query in ("q=a%00b", "store=%00", "touchpoint=%00", "channel=%00", "tier=%00"):
            for path in routes:
                status, _ = await owner.get(f"{path}?{query}")
                assert status in (200, 400), (path, query, status)
        assert (await owner.get("/dashboard/api/comments?q=a%00b"))[0] == 400
    finally:
        await owner.http.close()
