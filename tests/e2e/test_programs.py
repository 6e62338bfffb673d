"""Survey programs end to end: the real app, each kind asked and answered on Telegram (the fake
Bot API) and on the web chat (a real WebSocket), the triggers (on demand through the API,
N days after a purchase, after a complaint is resolved, every N days), the global limit
across programs, /gopy ideas routed to a department's chat, and a purchase CSAT that only
a csat program asks."""
from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest

from bot.channels.web.server import customer_token
from storage import settings
from storage.timefmt import to_db
from tests.channels.web.test_server import Visitor
from tests.conftest import API_TOKEN, BOTH, Harness, hours, make_config, purchase_body

BACKENDS = BOTH

USER = 555021
DEPARTMENT = -1009990001

PROGRAMS = [
    {"name": "csat_store", "kind": "csat", "trigger": "after_purchase", "delay": "2h", "touchpoints": ["in_store"]},
    {"name": "csat_recent", "kind": "csat", "trigger": "on_demand", "vi": {"question": "Gần đây bạn thấy {shop} thế nào?"}},
    {"name": "nps", "kind": "nps", "trigger": "on_demand", "fatigue_days": 90},
    {"name": "ces", "kind": "ces", "trigger": "complaint_resolved", "delay": "1h"},
    {"name": "usage", "kind": "usage", "trigger": "days_after_purchase", "days": 14,
     "vi": {"options": ["Uống hằng ngày", "Tiếp khách"]}},
    {"name": "brand", "kind": "brand", "trigger": "on_demand", "max_lateness": "10d"},
    {"name": "ideas", "kind": "ideas", "trigger": "on_demand"},
    {"name": "nps_every", "kind": "nps", "trigger": "every", "every_days": 30, "stores": ["Q9"]},
]


def programs_config(tmp_path, tg=None, database_url=None):
    return make_config(tmp_path, tg, database_url=database_url, arrays={
        "programs": PROGRAMS,
        "departments": [{"name": "product", "chat_id": DEPARTMENT, "idea_topics": ["product"], "categories": ["delivery"]}],
    })


class TelegramCustomer:
    def __init__(self, h: Harness) -> None:
        self.h = h
        self.seen = 0

    async def begin(self) -> None:
        status, _ = await self.h.post_purchase(customer={**purchase_body()["customer"], "telegram_user_id": USER})
        assert status == 202
        await self.h.customer_says(USER, "/start")
        await self.message("")

    async def message(self, containing: str) -> dict:
        while True:
            messages = await self.h.tg.wait_for_messages(USER, self.seen + 1)
            m = messages[self.seen]
            self.seen += 1
            if containing in m.text:
                return {"text": m.text, "id": m.message_id,
                        "buttons": [[{"label": b["text"], "data": b["callback_data"]} for b in row]
                                    for row in (m.reply_markup or {}).get("inline_keyboard", [])]}

    async def tap(self, message: dict, label: str) -> None:
        data = next(b["data"] for row in message["buttons"] for b in row if b["label"] == label)
        await self.h.customer_taps(USER, data, message["id"])

    async def say(self, text: str) -> None:
        await self.h.customer_says(USER, text)


class WebCustomer:
    def __init__(self, h: Harness) -> None:
        self.h = h
        self.visitor: Visitor | None = None

    async def begin(self) -> None:
        status, _ = await self.h.post_purchase()
        assert status == 202
        async with self.h.app.db.transaction() as tx:
            secret = await settings.get(tx, "web_customer_token_secret")
        # Logged in on the shop's site: the session is the customer's.
        self.visitor = await Visitor.connect(self.h, customer_token=customer_token(secret, "C-42", int(time.time()) + 3600))
        await self.visitor.message("Nguyễn Thị Lan")

    async def message(self, containing: str) -> dict:
        assert self.visitor is not None
        return await self.visitor.message(containing)

    async def tap(self, message: dict, label: str) -> None:
        assert self.visitor is not None
        assert (await self.visitor.tap(message, label))["type"] == "accepted"

    async def say(self, text: str) -> None:
        assert self.visitor is not None
        assert (await self.visitor.say(text))["type"] == "accepted"


@pytest.fixture(params=["telegram", "web"])
async def shop(request, tmp_path, tg, clock, database_url):
    h = Harness(programs_config(tmp_path, tg if request.param == "telegram" else None, database_url), tg, clock)
    await h.start()
    customer = TelegramCustomer(h) if request.param == "telegram" else WebCustomer(h)
    await customer.begin()
    yield h, customer
    if isinstance(customer, WebCustomer) and customer.visitor is not None:
        await customer.visitor.close()
    await h.close()


async def ask(h: Harness, program: str, customers=("C-42",)) -> dict:
    async with h.http.post(f"{h.url}/api/v1/programs/{program}/send", json={"customers": list(customers)},
                           headers={"Authorization": f"Bearer {API_TOKEN}"}) as resp:
        assert resp.status == 202, await resp.text()
        body = await resp.json()
    return body


async def dispatch(h: Harness) -> dict:
    return dict(await h.app.programs.dispatch_due())


async def answer_row(h: Harness, program: str) -> dict:
    for _ in range(100):
        rows = await h.rows("SELECT * FROM program_surveys WHERE program = ? ORDER BY id DESC", (program,))
        if rows and rows[0]["status"] == "answered":
            return rows[0]
        await asyncio.sleep(0.02)
    raise AssertionError(rows)


async def test_nps_on_demand_score_then_why(shop):
    h, c = shop
    assert (await ask(h, "nps", ("C-42", "nobody")))["customers"] == {"C-42": "scheduled", "nobody": "unknown_customer"}
    assert (await dispatch(h))["sent"] == 1
    q = await c.message("giới thiệu")
    assert [b["label"] for row in q["buttons"] for b in row] == [str(i) for i in range(11)]
    await c.tap(q, "9")
    await c.message("Vì sao")
    await c.say("Trà thơm, đóng gói đẹp")
    await c.message("Cảm ơn bạn")
    row = await answer_row(h, "nps")
    assert (row["kind"], row["score"], row["comment"]) == ("nps", 9, "Trà thơm, đóng gói đẹp")


async def test_csat_program_with_the_shops_own_question(shop):
    h, c = shop
    await ask(h, "csat_recent")
    await dispatch(h)
    q = await c.message("Gần đây bạn thấy Shop An thế nào?")
    await c.tap(q, "2")
    await c.message("chưa hài lòng")
    await c.say("Hết hàng hoài")
    row = await answer_row(h, "csat_recent")
    assert (row["score"], row["comment"]) == (2, "Hết hàng hoài")


async def test_usage_fourteen_days_after_the_purchase_with_other(shop):
    h, c = shop
    assert not (await h.rows("SELECT * FROM program_surveys WHERE program = 'usage' AND status = 'sent'"))
    h.clock.advance(timedelta(days=14, hours=1))
    await h.app.dispatcher.dispatch_due()  # the purchase CSAT (none: only in-store purchases get it)
    assert (await dispatch(h))["sent"] == 1
    q = await c.message("chủ yếu vào việc gì")
    assert [b["label"] for row in q["buttons"] for b in row] == ["Uống hằng ngày", "Tiếp khách", "Khác…"]
    await c.tap(q, "Khác…")
    await c.message("Bạn dùng vào việc gì")
    await c.say("Pha trà sữa bán online")
    row = await answer_row(h, "usage")
    assert (row["choice"], row["comment"]) == ("other", "Pha trà sữa bán online")


async def test_brand_source_then_one_word(shop):
    h, c = shop
    await ask(h, "brand")
    await dispatch(h)
    q = await c.message("lần đầu qua đâu")
    await c.tap(q, "TikTok")
    await c.message("từ nào")
    await c.say("thơm")
    row = await answer_row(h, "brand")
    assert (row["choice"], row["comment"]) == ("TikTok", "thơm")


async def test_ideas_program_answer_becomes_an_idea(shop):
    h, c = shop
    await ask(h, "ideas")
    await dispatch(h)
    await c.message("bán thêm gì")
    await c.say("Bán thêm trà ô long")
    await c.message("Cảm ơn bạn đã góp ý")
    row = await answer_row(h, "ideas")
    assert row["comment"] == "Bán thêm trà ô long"
    ideas = await h.rows("SELECT topic, text, program_survey_id FROM ideas")
    assert ideas == [{"topic": "other", "text": "Bán thêm trà ô long", "program_survey_id": row["id"]}]


async def test_ces_after_a_complaint_is_resolved(shop):
    h, c = shop
    customer_id = (await h.rows("SELECT id FROM customers"))[0]["id"]
    contact_id = (await h.rows("SELECT id FROM contacts WHERE customer_id = ?", (customer_id,)))[0]["id"]
    now = h.clock.now()
    async with h.app.db.transaction() as tx:
        await tx.execute(
            "INSERT INTO tickets (contact_id, customer_id, source, category, description, tier, priority, status,"
            " created_at, resolved_at, first_response_due_at, resolution_due_at) VALUES"
            " (?, ?, 'command', 'delivery', 'Giao trễ', 'regular', 'normal', 'resolved', ?, ?, ?, ?)",
            (contact_id, customer_id, to_db(now), to_db(now), to_db(now), to_db(now)))
    assert "sent" not in await dispatch(h)  # scheduled 1 h after the resolution
    h.clock.advance(hours(1))
    assert (await dispatch(h))["sent"] == 1
    q = await c.message("có dễ dàng không")
    assert [b["label"] for row in q["buttons"] for b in row] == [str(i) for i in range(1, 8)]
    await c.tap(q, "6")
    await c.message("dễ hơn nữa")
    row = await answer_row(h, "ces")
    assert row["score"] == 6 and row["ticket_id"] is not None
    assert (await dispatch(h)).get("sent") is None  # one CES per ticket


async def test_the_global_limit_holds_across_programs_and_the_most_valuable_goes_first(shop):
    h, c = shop
    await ask(h, "brand")  # priority 20
    await ask(h, "nps")  # priority 40: wins
    outcome = await dispatch(h)
    assert outcome["sent"] == 1 and outcome["postponed"] == 1  # brand waits for the next free slot
    sent = await h.rows("SELECT program FROM program_surveys WHERE status = 'sent'")
    assert sent == [{"program": "nps"}]
    await c.message("giới thiệu")
    # a day later nothing more goes out (one question per 7 days), on any program: ideas'
    # question would be too late by the next free slot (3 days of lateness), so it is dropped
    h.clock.advance(timedelta(days=1))
    await ask(h, "ideas")
    assert await dispatch(h) == {"skipped_fatigue": 1}
    # the purchase CSAT counts too: an in-store purchase's survey is held back by the same limit
    await h.post_purchase("A-2002", touchpoint="in_store")
    h.clock.advance(hours(2))
    assert (await h.app.dispatcher.dispatch_due()) == {"skipped_fatigue": 1}
    # a week after the NPS question, the waiting brand question goes out
    h.clock.advance(timedelta(days=6))
    assert (await dispatch(h))["sent"] == 1
    await c.message("lần đầu qua đâu")
    assert len(await h.rows("SELECT id FROM program_surveys WHERE sent_at IS NOT NULL")) == 2


async def test_gopy_idea_is_routed_to_the_departments_chat(shop):
    h, c = shop
    await c.say("/gopy")
    topics = await c.message("Ý tưởng của bạn về điều gì")
    await c.tap(topics, "Sản phẩm mới")
    await c.message("viết ý tưởng")
    await c.say("Nên có trà sen hộp nhỏ, lỗi ship chậm quá")  # words of a complaint, still an idea
    await c.message("Cảm ơn bạn đã góp ý")
    assert await h.rows("SELECT topic, text FROM ideas") == [
        {"topic": "product", "text": "Nên có trà sen hộp nhỏ, lỗi ship chậm quá"}]
    assert not await h.rows("SELECT id FROM tickets")
    routed = await h.rows("SELECT chat_id, payload FROM outbox WHERE chat_id = ?", (str(DEPARTMENT),))
    if h.tg is not None and h.app.telegram is not None:
        assert len(routed) == 1 and "Nên có trà sen" in routed[0]["payload"]
    else:
        assert routed == []  # no Telegram: no department chat to send to


async def test_purchase_csat_only_where_a_csat_program_asks(shop):
    h, c = shop
    _, online = await h.post_purchase("A-3003", touchpoint="online")
    assert online["survey"]["status"] == "skipped" and online["survey"]["skip_reason"] == "no_program"
    _, store = await h.post_purchase("A-3004", touchpoint="in_store", staff="Hùng", stage="order")
    assert store["survey"]["status"] == "scheduled"
    assert store["survey"]["due_at"].startswith("2026-11-23T11:00:00+07:00")  # the program's 2 h, not survey.delay
    h.clock.advance(hours(2))
    assert await h.app.dispatcher.dispatch_due() == {"sent": 1}
    q = await c.message("ghé Shop An")  # the in-store wording
    assert "#A-3004" in q["text"]
    staff = await h.rows("SELECT staff, stage FROM purchases WHERE order_id = 'A-3004'")
    assert staff == [{"staff": "Hùng", "stage": "order"}]


async def test_every_n_days_for_active_customers_of_a_store(shop):
    h, c = shop
    assert (await dispatch(h)).get("scheduled_nps_every") is None  # C-42 bought at Q1, the program is Q9's
    await h.post_purchase("A-9", customer={"external_id": "C-9", "name": "Minh"}, store="Q9")
    first = await dispatch(h)
    assert first["scheduled_nps_every"] == 1
    assert (await dispatch(h)).get("scheduled_nps_every") is None  # not again within 30 days
    h.clock.advance(timedelta(days=31))
    assert (await dispatch(h))["scheduled_nps_every"] == 1
