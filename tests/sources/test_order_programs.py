"""An order from a sales system passes the survey programs like a purchase posted to the API:
a shop's program that follows a purchase (usage, 14 days later) is scheduled by the order
webhook and asked through the customer's chat; a purchase CSAT only where a csat program asks."""
from __future__ import annotations

import dataclasses
import time
from datetime import timedelta

from bot.channels.web.server import customer_token
from bot.sources.settings import parse_sources
from storage import settings
from testkit import orders as kit
from tests.channels.web.test_server import Visitor
from tests.conftest import BOTH, make_config
from tests.sources.conftest import SECRETS, OrdersHarness, sources

BACKENDS = BOTH

PROGRAMS = [
    {"name": "csat_store", "kind": "csat", "trigger": "after_purchase", "delay": "2h", "touchpoints": ["in_store"]},
    {"name": "usage", "kind": "usage", "trigger": "days_after_purchase", "days": 14,
     "vi": {"options": ["Uống hằng ngày", "Tiếp khách"]}},
]
CUSTOMER = "shopify:115310627314723954"  # testkit.orders.shopify_order's customer


async def test_an_order_webhook_starts_the_programs_that_follow_a_purchase(tmp_path, clock, database_url):
    config = make_config(tmp_path, None, database_url=database_url, arrays={"programs": PROGRAMS})
    h = OrdersHarness(dataclasses.replace(config, sources=parse_sources(sources())), None, clock)
    await h.start()
    visitor = None
    try:
        headers, raw = kit.signed("shopify", SECRETS["shopify"], kit.shopify_order(), topic="orders/fulfilled",
                                  delivery_id="d-1")
        status, text = await h.deliver("shopify", headers, raw)
        assert status == 200, text
        # An online order (touchpoint delivery): the in-store csat program does not ask about it.
        assert [(r["status"], r["skip_reason"]) for r in await h.purchases()] == [("skipped", "no_program")]
        rows = await h.rows("SELECT program, status, purchase_id FROM program_surveys")
        assert [(r["program"], r["status"]) for r in rows] == [("usage", "scheduled")] and rows[0]["purchase_id"]
        async with h.app.db.transaction() as tx:
            secret = await settings.get(tx, "web_customer_token_secret")
        visitor = await Visitor.connect(h, customer_token=customer_token(secret, CUSTOMER, int(time.time()) + 3600))
        await visitor.message("Lan Nguyễn Thị")  # greeted by name: the chat is linked to the customer
        assert (await h.app.programs.dispatch_due()).get("sent") is None  # 14 days after the purchase
        clock.advance(timedelta(days=14))
        assert (await h.app.programs.dispatch_due())["sent"] == 1
        question = await visitor.message("dùng sản phẩm")
        assert (await visitor.tap(question, "Tiếp khách"))["type"] == "accepted"
        answered = await h.rows("SELECT status, choice FROM program_surveys")
        assert answered == [{"status": "answered", "choice": "Tiếp khách"}]
    finally:
        if visitor is not None:
            await visitor.close()
        await h.close()
