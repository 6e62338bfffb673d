"""The dashboard's programs page against the real app: each program's NPS and CES over the
range (hand-computed), the journey view with the stage where the drop started, CSAT per staff
member seen only by owners and that store's manager (every route walked as each role), and the
owners' editing of programs (CSRF, audit trail, applied at once, reset to config)."""
from __future__ import annotations

import json

import pytest

from bot.http.auth import CSRF_HEADER
from bot.services import rollups as rollup_service
from storage.timefmt import to_db
from tests.conftest import Harness, make_config
from tests.digest_data import local
from tests.e2e.test_programs import TelegramCustomer, ask, dispatch
from tests.http.test_dashboard import Browser

BACKENDS = ("sqlite", "postgresql")

PROGRAMS = [
    {"name": "csat_buy", "kind": "csat", "trigger": "after_purchase", "delay": "3h"},
    {"name": "nps", "kind": "nps", "trigger": "on_demand"},
    {"name": "ces", "kind": "ces", "trigger": "complaint_resolved"},
    {"name": "usage", "kind": "usage", "trigger": "days_after_purchase", "days": 14,
     "vi": {"options": ["Uống hằng ngày", "Tiếp khách"]}},
]
RANGE = "from=2026-11-01&to=2026-11-30"  # the previous period: 2026-10-02 to 2026-10-31


class Data:
    def __init__(self, h: Harness) -> None:
        self.db = h.app.db
        self.n = 0

    async def insert(self, sql: str, params: tuple) -> int:
        async with self.db.transaction() as tx:
            cur = await tx.execute(sql, params)
        return cur.lastrowid

    async def customer(self) -> int:
        self.n += 1
        at = to_db(local(1, month=1))
        return await self.insert("INSERT INTO customers (external_id, name, link_token, created_at, updated_at)"
                                 " VALUES (?, ?, ?, ?, ?)", (f"D-{self.n}", f"Khách {self.n}", f"dtok{self.n}", at, at))

    async def purchase(self, store: str, stage: str | None = None, staff: str | None = None, at=None) -> tuple[int, int]:
        at = at or local(10)
        customer = await self.customer()
        self.n += 1
        purchase = await self.insert(
            "INSERT INTO purchases (order_id, customer_id, amount, currency, items, store, touchpoint, purchased_at,"
            " fingerprint, created_at, staff, stage) VALUES (?, ?, 1000, 'VND', '[]', ?, 'delivery', ?, 'x', ?, ?, ?)",
            (f"D-{self.n}", customer, store, to_db(at), to_db(at), staff, stage))
        return customer, purchase

    async def csat(self, store: str, stage: str, score: int, staff: str | None = None, month: int = 11) -> None:
        at = local(10, month=month)
        customer, purchase = await self.purchase(store, stage, staff, at)
        await self.insert(
            "INSERT INTO surveys (purchase_id, customer_id, touchpoint, store, status, due_at, sent_at, answered_at,"
            " score, created_at) VALUES (?, ?, 'delivery', ?, 'answered', ?, ?, ?, ?, ?)",
            (purchase, customer, store, to_db(at), to_db(at), to_db(at), score, to_db(at)))

    async def program(self, program: str, kind: str, *, score: int | None = None, choice: str | None = None,
                      purchase: tuple[int, int] | None = None, ticket: int | None = None, customer: int | None = None) -> None:
        customer = purchase[0] if purchase else customer or await self.customer()
        at = to_db(local(12))
        await self.insert(
            "INSERT INTO program_surveys (program, kind, customer_id, purchase_id, ticket_id, status, priority, due_at,"
            " deadline_at, sent_at, answered_at, score, choice, created_at) VALUES"
            " (?, ?, ?, ?, ?, 'answered', 40, ?, ?, ?, ?, ?, ?, ?)",
            (program, kind, customer, purchase[1] if purchase else None, ticket, at, at, at, at, score, choice, at))

    async def complaint(self, store: str, stage: str, category: str) -> int:
        customer, purchase = await self.purchase(store, stage)
        at = to_db(local(11))
        contact = await self.insert(
            "INSERT INTO contacts (channel, platform_user_id, chat_id, customer_id, language, created_at, last_seen_at)"
            " VALUES ('telegram', ?, ?, ?, 'vi', ?, ?)", (f"9{self.n}", f"9{self.n}", customer, at, at))
        return await self.insert(
            "INSERT INTO tickets (contact_id, customer_id, purchase_id, source, category, description, tier, priority,"
            " status, created_at, resolved_at, first_response_due_at, resolution_due_at) VALUES"
            " (?, ?, ?, 'command', ?, 'x', 'regular', 'normal', 'resolved', ?, ?, ?, ?)",
            (contact, customer, purchase, category, at, at, at, at))


@pytest.fixture
async def shop(tmp_path, tg, clock, database_url):
    h = Harness(make_config(tmp_path, tg, database_url=database_url, arrays={"programs": PROGRAMS}), tg, clock)
    await h.start()
    d = Data(h)
    for stage in ("order", "delivery"):  # October: everyone satisfied
        for _ in range(5):
            await d.csat("Q1", stage, 5, month=10)
    for score, staff in ((5, "Hùng"), (4, "Hùng"), (2, "Hùng"), (2, None), (1, None)):  # November, order: 40%
        await d.csat("Q1", "order", score, staff)
    for score in (5, 5, 4, 2, 1):  # November, delivery: 60% in Q1
        await d.csat("Q1", "delivery", score)
    for _ in range(2):
        await d.csat("Q3", "delivery", 5, "Mai")
    for score in (10, 10, 9, 7, 5, 2):  # NPS after Q1 purchases
        await d.program("nps", "nps", score=score, purchase=await d.purchase("Q1"))
    await d.program("nps", "nps", score=10)  # asked on demand: about no purchase, no store
    for score in (7, 6, 5, 2):  # CES after Q1 complaints
        await d.program("ces", "ces", score=score, ticket=await d.complaint("Q1", "delivery", "delivery"))
    await d.complaint("Q1", "order", "price_billing")
    await d.complaint("Q3", "delivery", "product_quality")
    for _ in range(2):
        await d.program("usage", "usage", choice="Tiếp khách", purchase=await d.purchase("Q3"))
    # The answers above were written past the app's writes: the rollups the page reads are counted again.
    await rollup_service.rebuild(h.app.db, h.config.rollup_rule())
    yield h
    await h.close()


def by_name(rows, key="name"):
    return {r[key]: r for r in rows}


async def test_nps_ces_and_csat_per_program_by_hand(shop):
    owner = Browser(shop)
    manager = Browser(shop)
    try:
        await owner.sign_in("Chủ Shop", "owner")
        status, d = await owner.get(f"/dashboard/api/programs/figures?{RANGE}")
        assert status == 200
        p = by_name(d["programs"])
        # 7 answers: promoters 10, 10, 9, 10; passive 7; detractors 5, 2 -> (4 - 2) / 7 = 28.6
        assert p["nps"]["nps"] == {"score": 28.6, "promoters": 4, "passives": 1, "detractors": 2, "answers": 7}
        # 7, 6, 5, 2: mean 5.0; easy (5-7) 3 of 4 = 75 %
        assert p["ces"]["ces"] == {"mean": 5.0, "easy": 75.0, "easy_answers": 3, "hard_answers": 1, "answers": 4}
        assert p["usage"]["choices"] == [{"key": "Tiếp khách", "count": 2}]
        # A store's manager: the answers about their store's purchases only (6 NPS: (3 - 2) / 6 = 16.7)
        await manager.sign_in("Quản Lý Q1", "manager", ("Q1",))
        _, m = await manager.get(f"/dashboard/api/programs/figures?{RANGE}")
        p = by_name(m["programs"])
        assert p["nps"]["nps"]["score"] == 16.7 and p["nps"]["answers"] == 6
        assert "usage" not in p and p["ces"]["answers"] == 4
        _, empty = await owner.get("/dashboard/api/programs/figures?from=2026-10-01&to=2026-10-31")
        assert empty["programs"] == []
    finally:
        await owner.http.close()
        await manager.http.close()


async def test_journey_points_at_the_stage_where_the_drop_started(shop):
    owner = Browser(shop)
    try:
        await owner.sign_in("Chủ Shop", "owner")
        _, j = await owner.get(f"/dashboard/api/journey?{RANGE}")
        stages = by_name(j["stages"], "stage")
        assert [s["stage"] for s in j["stages"]] == ["order", "delivery"]  # journey order
        assert (stages["order"]["csat"], stages["order"]["previous_csat"], stages["order"]["answers"]) == (40.0, 100.0, 5)
        assert (stages["delivery"]["csat"], stages["delivery"]["answers"]) == (71.4, 7)  # 5 of 7 with Q3's
        assert stages["delivery"]["complaints"] == 5 and stages["delivery"]["top_category"] == "delivery"
        assert stages["delivery"]["categories"] == [{"key": "delivery", "count": 4}, {"key": "product_quality", "count": 1}]
        assert stages["order"]["categories"] == [{"key": "price_billing", "count": 1}]
        # Delivery fell too, but the drop started earlier in the journey: at the order.
        assert j["drop_started_at"] == "order"
        _, only_q3 = await owner.get(f"/dashboard/api/journey?{RANGE}&store=Q3")
        assert only_q3["drop_started_at"] is None and [s["stage"] for s in only_q3["stages"]] == ["delivery"]
    finally:
        await owner.http.close()


async def test_staff_figures_only_for_owners_and_that_stores_manager_every_route_as_each_role(shop):
    h = shop
    owner, q1, q3, agent, nobody = (Browser(h) for _ in range(5))
    try:
        await owner.sign_in("Chủ Shop", "owner")
        await q1.sign_in("Quản Lý Q1", "manager", ("Q1",))
        await q3.sign_in("Quản Lý Q3", "manager", ("Q3",))
        await agent.sign_in("Minh", "agent")
        _, s = await owner.get(f"/dashboard/api/staff?{RANGE}")
        assert s["staff"] == [
            {"store": "Q1", "staff": "Hùng", "answers": 3, "csat": 66.7, "mean": 3.67},
            {"store": "Q3", "staff": "Mai", "answers": 2, "csat": 100.0, "mean": 5.0},
        ]
        routes = h.app.dashboard_programs.routes()
        for path, (_, roles) in routes.items():
            for store in ("", "&store=Q3", "&store=Q1&store=Q3"):
                url = f"{path}?{RANGE}{store}"
                for browser, own, other in ((q1, "Hùng", "Mai"), (q3, "Mai", "Hùng")):
                    status, body = await browser.get(url)
                    text = json.dumps(body, ensure_ascii=False)
                    if "manager" not in roles:
                        assert status == 403, url
                        continue
                    assert status == 200, (url, body)
                    assert other not in text, (url, text[:300])  # never another store's staff
                    if path.endswith("/staff") and own == "Hùng" and "Q1" in store + "Q1" and store != "&store=Q3":
                        assert [r["staff"] for r in body["staff"]] == ["Hùng"]
                assert (await owner.get(url))[0] == 200, url
                assert (await agent.get(url))[0] == 403, url
                assert (await nobody.get(url))[0] == 401, url
        assert (await agent.get("/dashboard/programs"))[0] == 403
        assert (await q3.get("/dashboard/programs"))[0] == 200
        _, mai = await q3.get(f"/dashboard/api/staff?{RANGE}")
        assert [r["staff"] for r in mai["staff"]] == ["Mai"]
        # Changing programs is the owners' alone, whoever else holds a valid session and token.
        for browser in (q1, agent):
            async with browser.http.post(f"{h.url}/dashboard/api/programs/nps", json={"enabled": False},
                                         headers={CSRF_HEADER: "anything"}) as resp:
                assert resp.status == 403
    finally:
        for b in (owner, q1, q3, agent, nobody):
            await b.http.close()


async def test_owner_edits_a_program_with_csrf_audit_live_and_resets_it_to_config(shop):
    h = shop
    owner = Browser(h)
    customer = TelegramCustomer(h)
    try:
        await customer.begin()
        await owner.sign_in("Chủ Shop", "owner")
        _, listed = await owner.get("/dashboard/api/programs")
        csrf = listed["csrf"]
        nps = by_name(listed["programs"])["nps"]
        assert (nps["enabled"], nps["changes"], nps["trigger"]) == (True, {}, "on_demand")

        async def post(path, body, token=csrf):
            async with owner.http.post(f"{h.url}{path}", json=body, headers={CSRF_HEADER: token}) as resp:
                return resp.status, await resp.json()

        question = "Bạn có muốn giới thiệu {shop} cho bạn bè không?"
        assert (await post("/dashboard/api/programs/nps", {"changes": {"vi": {"question": question}}}, "wrong"))[0] == 403
        status, body = await post("/dashboard/api/programs/nps", {"changes": {"vi": {"question": question}}})
        assert status == 200 and by_name(body["programs"])["nps"]["changes"] == {"vi": {"question": question}}
        # Applied at once: the next question sent reads the owner's text.
        await ask(h, "nps")
        assert (await dispatch(h))["sent"] == 1
        sent = await customer.message("giới thiệu Shop An cho bạn bè")
        # Turned off: nothing new is sent, the question already out is still answered.
        assert (await post("/dashboard/api/programs/nps", {"enabled": False}))[0] == 200
        await customer.tap(sent, "9")
        await customer.message("")
        assert (await h.rows("SELECT score FROM program_surveys WHERE program = 'nps' AND customer_id ="
                             " (SELECT id FROM customers WHERE external_id = 'C-42')"))[0]["score"] == 9
        async with h.http.post(f"{h.url}/api/v1/programs/nps/send", json={"customers": ["C-42"]},
                               headers={"Authorization": "Bearer test-api-token-0123456789"}) as resp:
            assert resp.status == 404  # a program turned off takes no new surveys
        # Bad edits are refused with the key they are about, and change nothing.
        status, err = await post("/dashboard/api/programs/nps", {"changes": {"kind": "csat"}})
        assert status == 400 and "kind" in err["error"]["message"]
        status, err = await post("/dashboard/api/programs/csat_buy", {"changes": {"delay": "soon"}})
        assert status == 400 and "programs.csat_buy.delay" in err["error"]["message"]
        assert (await post("/dashboard/api/programs/nope", {"enabled": False}))[0] == 404
        # Reset to config: the config's program again, running.
        status, body = await post("/dashboard/api/programs/nps/reset", {})
        assert status == 200 and by_name(body["programs"])["nps"] | {"edited_at": None} == nps | {"edited_at": None}
        assert h.app.programs.settings.program("nps").texts == {}
        assert h.app.engine.feedback.program("nps") is not None
        events = await h.rows("SELECT action, detail, by_login FROM account_events WHERE action LIKE 'program%' ORDER BY id")
        assert [e["action"] for e in events] == ["program_edited", "program_edited", "program_reset"]
        assert all(e["by_login"] == "chu.shop" for e in events)
        assert json.loads(events[1]["detail"])["enabled"] is False
    finally:
        await owner.http.close()
