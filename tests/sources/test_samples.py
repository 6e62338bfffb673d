"""Each platform module against the vendors' published example deliveries (fixtures/README.md
gives each file's origin and caveats)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.sources import haravan, sapo, shopify, woocommerce
from bot.sources.base import BadPayload

SAMPLES = Path(__file__).parent / "fixtures"


def sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


def test_shopify_test_notifications_trust_the_topic():
    """HookDeck's Shopify orders/paid and orders/fulfilled (API 2024-10 and 2023-01): one canned
    order, "voided" and cancelled, for every topic."""
    for name, signal in (("shopify-orders-paid-1.json", "paid"), ("shopify-orders-paid-2.json", "paid"),
                         ("shopify-orders-fulfilled-1.json", "fulfilled"),
                         ("shopify-orders-fulfilled-2.json", "fulfilled")):
        s = sample(name)
        topic = shopify.topic(s["headers"], s["body"])
        [event] = shopify.events(topic, s["body"])
        assert event.signals == {signal}
        assert event.order_id == "820982911946154508"  # from admin_graphql_api_id: `id` was rounded by the relay
        assert event.code == "#9999"
        assert event.phone is None  # "555-555-SHIP" and "123-123-1234" are not phone numbers
        assert shopify.delivery_id(s["headers"], b"") == s["headers"]["x-shopify-webhook-id"]


def test_shopify_fulfillment_events_carry_no_order():
    s = sample("shopify-fulfillment_events-create-1.json")
    assert shopify.events(shopify.topic(s["headers"], s["body"]), s["body"]) == []


@pytest.mark.parametrize("name", ["woocommerce-order.updated-1.json", "woocommerce-order.updated-2.json",
                                  "woocommerce-order.updated-3.json"])
def test_woocommerce_deliveries_legacy_and_modern(name):
    s = sample(name)
    topic = woocommerce.topic(s["headers"], s["body"])
    [event] = woocommerce.events(topic, s["body"])
    assert "completed" in event.signals
    assert event.order_id in ("118", "3080")
    assert event.phone is None  # "(555) 555-5555" is not a phone number; -3 has none
    assert woocommerce.delivery_id(s["headers"], b"")


def test_haravan_order_objects():
    """Haravan's published order objects (API responses wrapped in {"order": ...})."""
    pos = haravan.events("orders/create", sample("reference/haravan-api-order-create-response-1.json")["body"])[0]
    assert (pos.order_id, pos.code, pos.channel, pos.phone) == ("1456389374", "#100811", "pos", "+84909090909")
    online = haravan.events("orders/updated", sample("reference/haravan-api-order-update-response-1.json")["body"])[0]
    assert {"paid", "fulfilled", "delivered"} <= online.signals and online.phone is None


def test_sapo_go_truncated_captures_are_bad_payloads_but_their_headers_give_a_delivery_id():
    s = sample("partial/sapo-go-orders-update-1.json")
    assert sapo.delivery_id(s["headers"], b"") == "1776794576:5629605907"
    assert sapo.topic(s["headers"], None) == "orders/update"
    with pytest.raises((BadPayload, ValueError)):
        sapo.events("orders/update", json.loads(s["body"]))


def test_haravan_names_put_the_family_name_first():
    """Haravan splits "Nguyễn Văn A" into last_name "Nguyễn Văn" and first_name "A", and writes
    the whole name family first (its own address `name`: "Nguyễn Văn A")."""
    s = sample("reference/haravan-api-order-create-response-1.json")
    [event] = haravan.events("orders/create", s["body"])
    assert event.customer_name == s["body"]["order"]["billing_address"]["name"] == "Nguyễn Văn A"
