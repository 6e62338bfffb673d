"""WooCommerce: `X-WC-Webhook-Signature` = base64(HMAC-SHA256(the webhook's secret, raw
body)); dedupe on `X-WC-Webhook-Delivery-ID` with the body (the id is per webhook and
second, not per delivery); topic `X-WC-Webhook-Topic` (order.created,
order.updated, order.deleted). Creating a webhook sends a ping, a form body `webhook_id=N`,
which must get a 200. WooCommerce does not retry and disables a webhook after more than 5
failed deliveries in a row: every answer is a 200 (refusals are recorded and alerted).
Orders: modern (wc/v3, flat: `billing.phone`, `status`, `number`, `date_created_gmt`) and
legacy v3 (`{"order": {"billing_address": ...}}`). Done = `status` "completed".
Published examples: ../shared/samples/orders/woocommerce-order.updated-*.json."""
from __future__ import annotations

from typing import Any, Mapping

from bot.sources.base import (BadPayload, Handshake, body_digest, dicts, first, full_name, header, obj, text,
                              verify_sha256_base64)
from flows.orders import OrderEvent, normalise_phone

name = "woocommerce"
punishes_4xx = True
default_delivered_on = "completed"
signature_header = "X-WC-Webhook-Signature"
test_header = None
admin_steps = {
    "vi": "WordPress admin → WooCommerce → Cài đặt (Settings) → Nâng cao (Advanced) → Webhooks → Thêm webhook:\n"
          "  Trạng thái: Hoạt động, Chủ đề: Đã cập nhật đơn hàng (Order updated), API: WP REST API v3,\n"
          "  URL gửi: {url}\n"
          "  Bí mật (Secret): dán secret của nguồn này.",
    "en": "WordPress admin → WooCommerce → Settings → Advanced → Webhooks → Add webhook:\n"
          "  Status: Active, Topic: Order updated, API version: WP REST API v3,\n"
          "  Delivery URL: {url}\n"
          "  Secret: paste this source's secret.",
}
STATUS_SIGNALS = {"completed": "completed", "processing": "paid", "cancelled": "cancelled", "refunded": "refunded"}


def verify(headers: Mapping[str, str], raw: bytes, secret: str, form: str = "any") -> str | None:
    return verify_sha256_base64(headers, raw, secret, signature_header)


def handshake(method: str, query: Mapping[str, str], headers: Mapping[str, str], raw: bytes,
              verify_token: str) -> Handshake | None:
    if method == "POST" and raw.startswith(b"webhook_id=") and len(raw) < 64:
        return Handshake(200, "pong")
    return None


def delivery_id(headers: Mapping[str, str], raw: bytes, body: Any = None) -> str:
    # WooCommerce makes the id as wp_hash(webhook id . time in seconds): every delivery of one
    # webhook within a second shares it (a bulk "Mark complete"), so the body tells them apart.
    given = header(headers, "X-WC-Webhook-Delivery-ID")
    return f"{given}:{body_digest(raw)}" if given else body_digest(raw)


def topic(headers: Mapping[str, str], body: Any) -> str | None:
    return header(headers, "X-WC-Webhook-Topic") or None


def events(topic_name: str | None, body: Any) -> list[OrderEvent]:
    if not isinstance(body, dict):
        raise BadPayload("expected a JSON object (an order)")
    legacy = isinstance(body.get("order"), dict)
    order = body["order"] if legacy else body
    order_id = text(order.get("id"))
    if not order_id:
        raise BadPayload("no order id")
    billing = obj(order.get("billing_address") if legacy else order.get("billing"))
    shipping = obj(order.get("shipping_address") if legacy else order.get("shipping"))
    customer = obj(order.get("customer"))
    status = str(order.get("status") or "").lower()
    signals = {STATUS_SIGNALS[status]} if status in STATUS_SIGNALS else set()
    if topic_name == "order.deleted":
        signals = {"cancelled"}
    if order.get("date_paid") or order.get("paid_at") or order.get("completed_at"):
        signals.add("paid")
    items = tuple(
        {k: v for k, v in (("sku", obj(i).get("sku")), ("name", obj(i).get("name")), ("qty", obj(i).get("quantity")),
                           ("price", obj(i).get("price"))) if v not in (None, "")}
        for i in dicts(order.get("line_items"))
    )
    created = text(order.get("date_created_gmt"))
    created = f"{created}+00:00" if created and "+" not in created and not created.endswith("Z") else created
    return [OrderEvent(
        order_id=order_id,
        code=text(order.get("number")) or text(order.get("order_number")) or order_id,
        signals=frozenset(signals),
        customer_id=text(first(order.get("customer_id"), customer.get("id"))) if first(
            order.get("customer_id"), customer.get("id")) not in (0, "0") else None,
        customer_name=full_name(billing.get("first_name"), billing.get("last_name"))
        or full_name(shipping.get("first_name"), shipping.get("last_name")),
        phone=normalise_phone(first(billing.get("phone"), shipping.get("phone"))),
        amount=first(order.get("total"), order.get("total_amount")),
        currency=text(order.get("currency")) or "VND",
        items=items,
        channel=text(order.get("created_via")),
        shipped=bool(order.get("shipping_lines")) or bool(shipping.get("address_1")),
        purchased_at=created or text(order.get("created_at")) or text(order.get("date_created")),
    )]
