"""Order webhooks of each sales system through the real app: a signed delivery becomes exactly
one purchase with the right customer, phone, store and touchpoint and a scheduled survey;
the same delivery again and the same order re-sent with another status change nothing; a
bad signature, another platform's delivery, malformed JSON and a huge body are answered as
the platform needs (200 where a 4xx makes it stop sending) and store nothing; handshakes;
a cancelled order cancels its survey not yet sent."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from testkit import orders as kit
from tests.conftest import BOTH
from tests.sources.conftest import SECRETS

BACKENDS = BOTH

# platform -> (first delivery's body, its topic, the same order with another status, expected purchase)
CASES = {
    "haravan": (
        kit.haravan_order(), "orders/paid",
        kit.haravan_order(financial_status="paid", fulfillment_status="fulfilled"),
        {"order_id": "haravan:#100811", "store": "895636", "touchpoint": "in_store", "name": "Trần Minh",
         "phone": "+84909090909", "external_id": "haravan:1002345"},
    ),
    "sapo": (
        kit.sapo_go_order(), "orders/update",
        kit.sapo_go_order(status="completed") | {"payment_status": "unpaid"},
        {"order_id": "sapo:SON687458", "store": "711291", "touchpoint": "online", "name": "Nguyễn Anh Khoa",
         "phone": "+84889580689", "external_id": "sapo:858174729"},
    ),
    "kiotviet": (
        kit.kiotviet_invoice(delivery=None), "",
        kit.kiotviet_invoice(notification_id="other-notification"),
        {"order_id": "kiotviet:HD000123", "store": "Chi nhánh Quận 1", "touchpoint": "in_store",
         "name": "Phạm Văn Bình", "phone": None, "external_id": "kiotviet:5501"},
    ),
    "shopify": (
        kit.shopify_order(), "orders/fulfilled",
        kit.shopify_order(financial_status="paid"),
        {"order_id": "shopify:#1001", "store": None, "touchpoint": "delivery", "name": "Lan Nguyễn Thị",
         "phone": "+84912345678", "external_id": "shopify:115310627314723954"},
    ),
    "woocommerce": (
        kit.woocommerce_order(), "order.updated",
        kit.woocommerce_order() | {"date_modified": "2026-11-23T10:00:00"},
        {"order_id": "woocommerce:3080", "store": None, "touchpoint": "delivery", "name": "Hoa Lê",
         "phone": "+84912345678", "external_id": "woocommerce:1377"},
    ),
}
PUNISHES_4XX = {"kiotviet", "woocommerce"}


@pytest.mark.parametrize("platform", list(CASES))
async def test_a_signed_delivery_becomes_one_purchase_and_repeats_change_nothing(orders_app, platform):
    body, topic, resent, expected = CASES[platform]
    headers, raw = kit.signed(platform, SECRETS[platform], body, topic=topic, delivery_id="d-1")
    status, text = await orders_app.deliver(platform, headers, raw)
    assert status == 200, text
    rows = await orders_app.purchases()
    assert len(rows) == 1
    row = rows[0]
    assert {k: row[k] for k in expected} == expected
    assert row["status"] == "scheduled"
    # The same delivery again (a retry): answered 200, nothing new.
    status, text = await orders_app.deliver(platform, headers, raw)
    assert status == 200 and json.loads(text)["duplicate"] is True
    # The same order re-sent as another delivery with another status change: nothing new.
    headers, raw = kit.signed(platform, SECRETS[platform], resent, topic=topic, delivery_id="d-2")
    status, _ = await orders_app.deliver(platform, headers, raw)
    assert status == 200
    assert await orders_app.purchases() == rows
    deliveries = await orders_app.rows("SELECT status, outcome, body FROM order_deliveries ORDER BY id")
    assert [d["status"] for d in deliveries] == ["done", "ignored"]
    assert all(d["body"] is None for d in deliveries)  # names and phones are not kept once handled


@pytest.mark.parametrize("platform", list(CASES))
async def test_refused_requests_store_nothing_and_answer_as_the_platform_needs(orders_app, platform):
    body, topic, _, _ = CASES[platform]
    refused = 200 if platform in PUNISHES_4XX else None
    # A bad signature (signed with another key).
    headers, raw = kit.signed(platform, "not-the-secret-123", body, topic=topic)
    status, _ = await orders_app.deliver(platform, headers, raw)
    assert status == (refused or 401)
    # Another platform's delivery sent to this source (its own header, our secret).
    other = "shopify" if platform != "shopify" else "woocommerce"
    headers, raw = kit.signed(other, SECRETS[platform], body, topic=topic)
    status, _ = await orders_app.deliver(platform, headers, raw)
    assert status == (refused or 401)
    # Correctly signed, but not JSON.
    headers, raw = kit.signed(platform, SECRETS[platform], b'{"id": 1, "name": ', topic=topic)
    status, _ = await orders_app.deliver(platform, headers, raw)
    assert status == (refused or 400)
    # A huge body (over the 1 MiB cap).
    headers, raw = kit.signed(platform, SECRETS[platform], {"pad": "x" * (1024 * 1024 + 10)}, topic=topic)
    status, _ = await orders_app.deliver(platform, headers, raw)
    assert status == (refused or 413)
    assert await orders_app.purchases() == []
    assert await orders_app.rows("SELECT * FROM order_deliveries") == []
    health = await orders_app.rows("SELECT rejected, last_reason, alerted_at FROM order_source_health")
    assert health[0]["rejected"] == 4 and health[0]["alerted_at"] is not None


async def test_an_unknown_source_is_404(orders_app):
    headers, raw = kit.signed("shopify", SECRETS["shopify"], kit.shopify_order())
    status, _ = await orders_app.deliver("nope", headers, raw)
    assert status == 404


async def test_haravan_handshake_echoes_the_challenge_for_our_token_only(orders_app):
    params = {"hub.mode": "subscribe", "hub.verify_token": SECRETS["haravan"], "hub.challenge": "8f3c1a"}
    status, text = await orders_app.deliver("haravan", {}, b"", method="GET", params=params)
    assert (status, text) == (200, "8f3c1a")
    status, _ = await orders_app.deliver("haravan", {}, b"", method="GET", params=params | {"hub.verify_token": "x"})
    assert status == 401


async def test_woocommerce_ping_gets_200_and_stores_nothing(orders_app):
    status, _ = await orders_app.deliver("woocommerce", {"Content-Type": "application/x-www-form-urlencoded"},
                                         b"webhook_id=16")
    assert status == 200
    assert await orders_app.rows("SELECT * FROM order_deliveries") == []


@pytest.mark.parametrize("platform,cancelled", [
    ("haravan", kit.haravan_order(cancelled_status="cancelled")),
    ("shopify", kit.shopify_order(cancelled_at="2026-11-23T10:00:00+07:00", financial_status="voided")),
    ("woocommerce", kit.woocommerce_order(status="refunded")),
    ("kiotviet", kit.kiotviet_invoice(status=2, notification_id="cancel-1")),
    ("sapo", kit.sapo_go_order(status="cancelled")),
])
async def test_a_cancelled_or_refunded_order_cancels_the_survey_not_yet_sent(orders_app, platform, cancelled):
    body, topic, _, _ = CASES[platform]
    headers, raw = kit.signed(platform, SECRETS[platform], body, topic=topic, delivery_id="first")
    assert (await orders_app.deliver(platform, headers, raw))[0] == 200
    cancel_topic = {"shopify": "orders/cancelled", "haravan": "orders/cancelled"}.get(platform, topic)
    headers, raw = kit.signed(platform, SECRETS[platform], cancelled, topic=cancel_topic, delivery_id="second")
    assert (await orders_app.deliver(platform, headers, raw))[0] == 200
    rows = await orders_app.purchases()
    assert len(rows) == 1 and rows[0]["status"] == "skipped" and rows[0]["skip_reason"].startswith("order_")
    # A delivered event arriving after the cancellation does not bring the survey back.
    headers, raw = kit.signed(platform, SECRETS[platform], body, topic=topic, delivery_id="third")
    assert (await orders_app.deliver(platform, headers, raw))[0] == 200
    assert (await orders_app.purchases())[0]["status"] == "skipped"


async def test_an_order_not_yet_delivered_waits(orders_app):
    """Haravan's default waits for the carrier's "delivered"; an online order only shipped is recorded, not a purchase."""
    shipped = kit.haravan_order(source_name="web", carrier_status="delivering")
    headers, raw = kit.signed("haravan", SECRETS["haravan"], shipped, delivery_id="a")
    assert (await orders_app.deliver("haravan", headers, raw))[0] == 200
    assert await orders_app.purchases() == []
    delivered = kit.haravan_order(source_name="web", carrier_status="delivered")
    headers, raw = kit.signed("haravan", SECRETS["haravan"], delivered, delivery_id="b")
    assert (await orders_app.deliver("haravan", headers, raw))[0] == 200
    rows = await orders_app.purchases()
    assert [(r["order_id"], r["touchpoint"]) for r in rows] == [("haravan:#100811", "delivery")]


async def test_the_same_delivery_five_times_at_once_makes_one_purchase(orders_app):
    import asyncio

    headers, raw = kit.signed("shopify", SECRETS["shopify"], kit.shopify_order(), delivery_id="same")
    answers = await asyncio.gather(*(orders_app.deliver("shopify", headers, raw) for _ in range(5)))
    assert [a[0] for a in answers] == [200] * 5
    assert len(await orders_app.purchases()) == 1
    assert len(await orders_app.rows("SELECT * FROM order_deliveries")) == 1


async def test_a_delivery_recorded_before_a_stop_is_handled_at_start(orders_app):
    """Recorded, then the bot stopped before handling it (a KiotViet lookup under way): at the
    next start it is handled, once."""
    from storage import orders as order_rows

    body = json.dumps(kit.woocommerce_order(order_id=4750))
    async with orders_app.app.db.transaction() as tx:
        await order_rows.record_delivery(tx, "woocommerce", "left-pending", "order.updated", body, "sha256-base64",
                                         orders_app.clock.now())
    await orders_app.stop()
    await orders_app.start()
    rows = await orders_app.purchases()
    assert [r["order_id"] for r in rows] == ["woocommerce:4750"]
    [delivery] = await orders_app.rows("SELECT status FROM order_deliveries")
    assert delivery["status"] == "done"
    await orders_app.stop()
    await orders_app.start()
    assert len(await orders_app.purchases()) == 1


@pytest.mark.sqlite_only
async def test_owners_are_told_once_per_source_about_refused_requests(tmp_path, tg, clock):
    import dataclasses

    from bot.sources.settings import parse_sources
    from tests.conftest import make_config
    from tests.sources.conftest import OrdersHarness, sources

    owner = 777001
    config = make_config(tmp_path, tg, agents={"owner_chat_ids": [owner]})
    h = OrdersHarness(dataclasses.replace(config, sources=parse_sources(sources())), tg, clock)
    await h.start()
    try:
        for n in range(3):
            headers, raw = kit.signed("kiotviet", "wrong-secret-0000", kit.kiotviet_invoice(notification_id=f"x{n}"))
            assert (await h.deliver("kiotviet", headers, raw))[0] == 200
        [alert] = await tg.wait_for_messages(owner, 1)
        assert "kiotviet" in alert.text and "X-Hub-Signature" in alert.text
        await h.outbox_settled()
        assert len(await h.rows("SELECT * FROM outbox WHERE chat_id = ?", (str(owner),))) == 1
    finally:
        await h.close()


async def test_woocommerce_deliveries_in_the_same_second_are_not_duplicates(orders_app):
    """WooCommerce's X-WC-Webhook-Delivery-ID is wp_hash(webhook id . strtotime('now')): every
    delivery of one webhook within the same second carries the same id (a bulk "Mark complete"
    sends many). Two orders with one id are two purchases; the same bytes again stay one."""
    first = kit.signed("woocommerce", SECRETS["woocommerce"], kit.woocommerce_order(order_id=3080),
                       delivery_id="4a8d4394fa7b1c883747ad86babf922b")
    second = kit.signed("woocommerce", SECRETS["woocommerce"], kit.woocommerce_order(order_id=3081),
                        delivery_id="4a8d4394fa7b1c883747ad86babf922b")
    for headers, raw in (first, second, first):
        assert (await orders_app.deliver("woocommerce", headers, raw))[0] == 200
    rows = await orders_app.purchases()
    assert [r["order_id"] for r in rows] == ["woocommerce:3080", "woocommerce:3081"]
    assert len(await orders_app.rows("SELECT * FROM order_deliveries")) == 2


@pytest.mark.parametrize("platform,test_header", [("shopify", "X-Shopify-Test"), ("sapo", "X-Sapo-Test")])
async def test_a_test_notification_is_recorded_but_makes_no_purchase(orders_app, platform, test_header):
    """Shopify's "Send test notification" posts a canned order (John Smith, "#9999") with
    `X-Shopify-Test: true` (../shared/samples/orders/shopify-*.json); Sapo marks its
    deliveries `X-Sapo-Test`. A test shows the connection works (`source status`) and makes
    no purchase: no fake customer in the figures, and the real order #9999 later is not
    refused as "already posted with different details"."""
    from tests.sources.test_samples import sample

    canned = sample("shopify-orders-fulfilled-1.json")["body"] if platform == "shopify" else kit.sapo_go_order()
    headers, raw = kit.signed(platform, SECRETS[platform], canned, topic="orders/fulfilled", delivery_id="test-1")
    status, _ = await orders_app.deliver(platform, headers | {test_header: "true"}, raw)
    assert status == 200
    assert await orders_app.purchases() == []
    [delivery] = await orders_app.rows("SELECT status, outcome FROM order_deliveries")
    assert delivery["status"] == "ignored" and "test" in delivery["outcome"]
    # The same order for real ("false", as Sapo sends on every real delivery) is a purchase.
    headers, raw = kit.signed(platform, SECRETS[platform], canned, topic="orders/fulfilled", delivery_id="real-1")
    assert (await orders_app.deliver(platform, headers | {test_header: "false"}, raw))[0] == 200
    assert len(await orders_app.purchases()) == 1


@pytest.mark.parametrize("topic,body", [
    # Shopify's orders/delete carries the id alone (hookdeck/webhook-samples
    # providers/shopify/2024-10/orders.delete.json: {"id": ...}, content-length 30).
    ("orders/delete", {"id": 450789469}),
    # refunds/create is a refund object naming its order by order_id.
    ("refunds/create", {"id": 509562969, "order_id": 450789469, "note": "wrong size", "refund_line_items": []}),
])
async def test_a_shopify_delete_or_refund_without_the_order_name_cancels_the_survey(orders_app, topic, body):
    """The purchase is "shopify:#1001" (the order's name); these payloads have no name, only the
    order's id: the survey is found by that id."""
    headers, raw = kit.signed("shopify", SECRETS["shopify"], kit.shopify_order(), topic="orders/fulfilled",
                              delivery_id="fulfilled")
    assert (await orders_app.deliver("shopify", headers, raw))[0] == 200
    headers, raw = kit.signed("shopify", SECRETS["shopify"], body, topic=topic, delivery_id="after")
    assert (await orders_app.deliver("shopify", headers, raw))[0] == 200
    [row] = await orders_app.purchases()
    assert row["order_id"] == "shopify:#1001"
    assert (row["status"], row["skip_reason"]) == ("skipped", "order_cancelled" if topic == "orders/delete"
                                                   else "order_refunded")


async def test_a_nul_character_in_an_order_is_dropped_not_a_500(orders_app):
    """JSON may carry "\\u0000" in a string; PostgreSQL text cannot hold it. A signed order with
    one is still a purchase (a 500 would have the platform resend it for hours, in vain)."""
    body = kit.shopify_order()
    body["customer"]["first_name"] = "La\u0000n"
    body["line_items"][0]["name"] = "Trà\u0000 sen"
    headers, raw = kit.signed("shopify", SECRETS["shopify"], body, delivery_id="nul")
    assert b"\\u0000" in raw
    status, text = await orders_app.deliver("shopify", headers, raw)
    assert status == 200, text
    [row] = await orders_app.purchases()
    assert row["name"] == "Lan Nguyễn Thị"
    [items] = await orders_app.rows("SELECT items FROM purchases")
    assert "\\u0000" not in str(items["items"]) and "\x00" not in str(items["items"])


async def test_a_survey_waits_for_the_goods_not_for_the_order_time(orders_app):
    """An online Haravan order placed Monday and delivered by the carrier on Thursday (COD
    deliveries take days): "delivered" is when the survey starts, so it is due `survey.delay`
    after the delivery arrived, not skipped as too late for the order's creation time. The
    purchase keeps the order's time."""
    from datetime import timedelta

    order = kit.haravan_order(source_name="web", carrier_status="delivered")  # created 2026-11-23T02:00Z
    orders_app.clock.advance(timedelta(days=3, hours=2))
    headers, raw = kit.signed("haravan", SECRETS["haravan"], order, delivery_id="delivered")
    assert (await orders_app.deliver("haravan", headers, raw))[0] == 200
    [row] = await orders_app.purchases()
    assert (row["status"], row["skip_reason"]) == ("scheduled", None)
    [times] = await orders_app.rows("SELECT p.purchased_at, s.due_at FROM purchases p JOIN surveys s"
                                    " ON s.purchase_id = p.id")
    from storage.timefmt import from_db

    assert from_db(times["purchased_at"]) == datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)
    assert from_db(times["due_at"]) >= orders_app.clock.now()


async def test_an_old_order_edited_long_after_is_not_surveyed_now(orders_app):
    """An order from two months before the source was connected, edited now (orders/updated
    carries it whole, delivered long ago): recorded, its survey skipped as too late."""
    from datetime import timedelta

    order = kit.haravan_order(source_name="web", carrier_status="delivered")  # created 2026-11-23T02:00Z
    orders_app.clock.advance(timedelta(days=60))
    headers, raw = kit.signed("haravan", SECRETS["haravan"], order, delivery_id="edited")
    assert (await orders_app.deliver("haravan", headers, raw))[0] == 200
    [row] = await orders_app.purchases()
    assert (row["status"], row["skip_reason"]) == ("skipped", "too_late")


@pytest.mark.parametrize("raw", [
    b'{"Id": "a\\u0000b", "Notifications": []}',
    b'{"Id": "x", "Notifications": [{"Action": "invoice.update\\u0000.1", "Data": []}]}',
])
async def test_a_nul_character_in_a_delivery_id_or_topic_is_not_a_500(orders_app, raw):
    """KiotViet's delivery id and topic come from the body: a NUL there is dropped too."""
    headers, body = kit.signed("kiotviet", SECRETS["kiotviet"], raw)
    status, text = await orders_app.deliver("kiotviet", headers, body)
    assert status == 200 and json.loads(text)["duplicate"] is False
    [delivery] = await orders_app.rows("SELECT delivery_id, topic FROM order_deliveries")
    assert "\x00" not in delivery["delivery_id"] + (delivery["topic"] or "")


async def test_a_delivery_handled_after_a_restart_counts_from_when_it_came(orders_app):
    """Recorded Thursday 09:00, handled at the start 20 h later: the survey counts from the
    delivery's arrival, as it would have had it been handled at once."""
    from datetime import timedelta

    from storage import orders as order_rows
    from storage.timefmt import from_db

    order = kit.haravan_order(source_name="web", carrier_status="delivered")  # created 2026-11-23T02:00Z
    orders_app.clock.advance(timedelta(days=3))
    received = orders_app.clock.now()
    async with orders_app.app.db.transaction() as tx:
        await order_rows.record_delivery(tx, "haravan", "left-pending", "orders/updated", json.dumps(order),
                                         "sha256-base64", received)
    await orders_app.stop()
    orders_app.clock.advance(timedelta(hours=20))
    await orders_app.start()
    [times] = await orders_app.rows("SELECT s.due_at FROM surveys s")
    assert from_db(times["due_at"]) == received + orders_app.config.survey.delay


async def test_a_source_turned_off_takes_nothing_but_keeps_the_platforms_webhook_alive(tmp_path, clock, database_url):
    # A 404 would end the webhook: KiotViet stops for good, Shopify and WooCommerce drop it.
    import dataclasses

    from bot.sources.settings import parse_sources
    from tests.conftest import make_config
    from tests.sources.conftest import OrdersHarness, sources

    config = make_config(tmp_path, None, database_url=database_url)
    off = {p: {"enabled": False} for p in CASES}
    h = OrdersHarness(dataclasses.replace(config, sources=parse_sources(sources(**off))), None, clock)
    await h.start()
    try:
        for platform, (body, topic, _, _) in CASES.items():
            headers, raw = kit.signed(platform, SECRETS[platform], body, topic=topic, delivery_id="d-1")
            status, text = await h.deliver(platform, headers, raw)
            assert status == 200 and "turned off" in text, (platform, text)
        assert await h.purchases() == [] and await h.rows("SELECT * FROM order_deliveries") == []
    finally:
        await h.close()
