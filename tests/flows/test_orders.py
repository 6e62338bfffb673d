"""flows/orders.py: Vietnamese phone numbers to E.164, what an order event does, touchpoints."""
from __future__ import annotations

import pytest

from flows.orders import OrderEvent, decide, normalise_phone, touchpoint_for


@pytest.mark.parametrize("raw,expected", [
    ("0912345678", "+84912345678"), ("0912 345 678", "+84912345678"), ("+84 912 345 678", "+84912345678"),
    ("84912345678", "+84912345678"), ("0084912345678", "+84912345678"), ("+84 (0) 912-345-678", "+84912345678"),
    ("(84) 0912 345 678", "+84912345678"), ("840912345678", "+84912345678"),  # the "+" left out, the 0 kept
    (912345678, "+84912345678"),  # a spreadsheet dropped the leading 0
    ("0889580689", "+84889580689"), ("0347011532", "+84347011532"),  # Sapo GO captures
    ("02838123456", "+842838123456"),  # a Ho Chi Minh City landline
    ("+1 415 555 2671", "+14155552671"),
    ("555-555-SHIP", None), ("(555) 555-5555", None), ("", None), (None, None), ("12345", None), ("999999", None),
])
def test_phones_become_e164(raw, expected):
    assert normalise_phone(raw) == expected


def event(*signals: str, channel: str | None = None, shipped: bool = False) -> OrderEvent:
    return OrderEvent(order_id="1", code="#1", signals=frozenset(signals), channel=channel, shipped=shipped)


def test_decide():
    assert decide(event("delivered"), "delivered", "delivery").kind == "purchase"
    assert decide(event("fulfilled"), "delivered", "delivery").kind == "ignore"
    assert decide(event("completed"), "delivered", "delivery").kind == "purchase"
    assert decide(event("paid"), "delivered", "in_store").kind == "purchase"  # a counter sale
    assert decide(event("paid", "cancelled"), "paid", "delivery").kind == "cancel"
    assert decide(event("refunded"), "fulfilled", "delivery").reason == "refunded"
    assert decide(event(), "completed", "online").kind == "ignore"


def test_touchpoints():
    tps = ("delivery", "in_store", "online")
    assert touchpoint_for(event(channel="pos"), tps) == "in_store"
    assert touchpoint_for(event(channel="web", shipped=True), tps) == "delivery"
    assert touchpoint_for(event(channel="web"), tps) == "online"
    assert touchpoint_for(event(channel="web"), ("delivery", "in_store")) == "delivery"
    assert touchpoint_for(event(channel="pos"), ("shop",)) == "shop"
