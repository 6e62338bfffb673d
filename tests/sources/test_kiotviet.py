"""KiotViet against the fake KiotViet API: invoices without a phone fetch the customer with the
source's OAuth credentials (token cached, fetched again after a 401); every documented or
seen X-Hub-Signature form is accepted, and a source can be pinned to one."""
from __future__ import annotations

import dataclasses
from typing import AsyncIterator

import pytest

from bot.sources import kiotviet
from bot.sources.kiotviet_api import KiotVietClient, KiotVietError
from bot.sources.settings import parse_sources
from testkit import orders as kit
from testkit.kiotviet_api import FakeKiotViet
from tests.conftest import make_config
from tests.sources.conftest import SECRETS, OrdersHarness

SECRET = SECRETS["kiotviet"]


@pytest.fixture
async def kv() -> AsyncIterator[FakeKiotViet]:
    async with FakeKiotViet() as server:
        server.customers["5501"] = {"id": 5501, "code": "KH000042", "name": "Phạm Văn Bình",
                                    "contactNumber": "0987 654 321"}
        yield server


@pytest.fixture
async def app(tmp_path, clock, kv) -> AsyncIterator[OrdersHarness]:
    config = make_config(tmp_path, orders={"kiotviet_token_url": kv.token_url, "kiotviet_api_url": kv.api_url})
    config = dataclasses.replace(config, sources=parse_sources([
        {"name": "kv", "platform": "kiotviet", "secret": SECRET, "retailer": kv.retailer,
         "client_id": kv.client_id, "client_secret": kv.client_secret},
        {"name": "kv-strict", "platform": "kiotviet", "secret": SECRET, "signature": "sha256-base64"},
    ]))
    h = OrdersHarness(config, None, clock)
    await h.start()
    yield h
    await h.close()


async def test_an_invoice_without_phone_fetches_the_customer_once_per_token(app, kv):
    for n in range(2):
        body = kit.kiotviet_invoice(invoice_id=100 + n, code=f"HD00010{n}", notification_id=f"n{n}")
        headers, raw = kit.signed("kiotviet", SECRET, body)
        assert (await app.deliver("kv", headers, raw))[0] == 200
    rows = await app.purchases()
    assert [(r["order_id"], r["phone"]) for r in rows] == [("kv:HD000100", "+84987654321"), ("kv:HD000101", "+84987654321")]
    assert kv.token_requests == 1 and kv.customer_requests == 2


async def test_a_delivery_with_a_contact_number_needs_no_lookup(app, kv):
    body = kit.kiotviet_invoice(delivery={"Status": 3, "ContactNumber": "+84 912 000 111", "Receiver": "Bình"})
    headers, raw = kit.signed("kiotviet", SECRET, body)
    assert (await app.deliver("kv", headers, raw))[0] == 200
    [row] = await app.purchases()
    assert row["phone"] == "+84912000111" and row["touchpoint"] == "delivery"
    assert kv.customer_requests == 0


async def test_a_revoked_token_is_replaced_after_a_401(kv):
    client = KiotVietClient(client_id=kv.client_id, client_secret=kv.client_secret, retailer=kv.retailer,
                            token_url=kv.token_url, api_url=kv.api_url)
    try:
        assert (await client.customer_phone("5501"))[0] == "0987 654 321"
        kv.revoke_tokens()
        assert (await client.customer_phone("5501"))[0] == "0987 654 321"
        assert kv.token_requests == 2
    finally:
        await client.close()


async def test_an_expiring_token_is_fetched_again_before_it_runs_out(kv):
    now = [0.0]
    client = KiotVietClient(client_id=kv.client_id, client_secret=kv.client_secret, retailer=kv.retailer,
                            token_url=kv.token_url, api_url=kv.api_url, clock=lambda: now[0])
    try:
        first = await client.token()
        now[0] = 86400 - 600  # within the refresh margin of the 24 h token
        assert await client.token() == first
        now[0] = 86400 - 100
        assert await client.token() != first
    finally:
        await client.close()


async def test_wrong_client_credentials_are_an_error(kv):
    client = KiotVietClient(client_id="x", client_secret="y", retailer=kv.retailer, token_url=kv.token_url,
                            api_url=kv.api_url)
    try:
        with pytest.raises(KiotVietError, match="client id"):
            await client.token()
    finally:
        await client.close()


@pytest.mark.parametrize("form", ["sha256-base64", "sha256-hex", "sha1-hex"])
async def test_every_signature_form_is_accepted_and_named(app, form):
    body = kit.kiotviet_invoice(delivery={"Status": 3, "ContactNumber": "0912000111"}, notification_id=form)
    headers, raw = kit.signed("kiotviet", SECRET, body, kiotviet_form=form)
    assert (await app.deliver("kv", headers, raw))[0] == 200
    [delivery] = await app.rows("SELECT signature FROM order_deliveries")
    assert delivery["signature"].startswith(form)


async def test_a_source_pinned_to_one_form_refuses_the_others_with_200(app):
    body = kit.kiotviet_invoice(delivery={"Status": 3, "ContactNumber": "0912000111"})
    headers, raw = kit.signed("kiotviet", SECRET, body, kiotviet_form="sha1-hex")
    assert (await app.deliver("kv-strict", headers, raw))[0] == 200  # never a 4xx to KiotViet
    assert await app.purchases() == []


def test_the_retailer_suffix_of_action_is_ignored():
    body = kit.kiotviet_invoice(retailer_id=777)
    assert kiotviet.topic({}, body) == "invoice.update"
    [event] = kiotviet.events("invoice.update", body)
    assert event.code == "HD000123" and "completed" in event.signals
