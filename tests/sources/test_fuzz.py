"""Each platform's mapping on arbitrary JSON (a signed delivery is still outside input): it
either gives OrderEvents or says BadPayload/ValueError, and what it gives always goes
through prepare() (validation) without raising; the phone normaliser takes anything."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.services.orders import OrderIntake
from bot.sources.base import BadPayload
from bot.sources.settings import PLATFORMS
from flows.orders import normalise_phone
from flows.schedule import SurveyPolicy
from testkit import orders as kit
from tests.faults.test_fuzz import json_values

FAST = settings(max_examples=150, deadline=None, database=None, derandomize=True)
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
BASES = {"haravan": kit.haravan_order(), "sapo": kit.sapo_go_order(), "shopify": kit.shopify_order(),
         "woocommerce": kit.woocommerce_order(), "kiotviet": kit.kiotviet_invoice()}
FIELDS = {"haravan": ["id", "name", "customer", "total_price", "created_at", "fulfillments", "line_items", "currency"],
          "sapo": ["id", "code", "customer_data", "total", "issued_on", "status", "order_line_items"],
          "shopify": ["id", "admin_graphql_api_id", "name", "customer", "total_price", "created_at", "line_items",
                      "currency", "shipping_address"],
          "woocommerce": ["id", "number", "billing", "total", "date_created_gmt", "status", "line_items", "currency"],
          "kiotviet": ["Id", "Notifications"]}
intake = OrderIntake(None, None, SurveyPolicy(), ("delivery", "in_store", "online"))


@st.composite
def bodies(draw: st.DrawFn, platform: str) -> object:
    if draw(st.integers(0, 4)) == 0:
        return draw(json_values)
    body = dict(BASES[platform])
    for key in draw(st.lists(st.sampled_from(FIELDS[platform]), min_size=1, max_size=3)):
        if draw(st.booleans()):
            body[key] = draw(json_values)
        else:
            body.pop(key, None)
    return body


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_mapping_never_raises_anything_else(platform):
    module = PLATFORMS[platform]

    @FAST
    @given(body=bodies(platform), topic=st.sampled_from(["orders/updated", "orders/paid", "order.updated", "", None]))
    def check(body, topic):
        try:
            events = module.events(topic, body)
            module.topic({}, body)
            module.delivery_id({}, b"{}", body)
        except (BadPayload, ValueError):
            return
        for event in events:
            prepared = intake.prepare(platform, module.default_delivered_on, event, NOW)
            assert prepared.error is not None or prepared.data is not None or prepared.action.kind != "purchase"

    check()


@FAST
@given(raw=json_values)
def test_phone_normalising_takes_anything(raw):
    result = normalise_phone(raw)
    assert result is None or (result.startswith("+") and result[1:].isdigit())
