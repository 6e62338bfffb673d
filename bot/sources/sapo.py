"""Sapo: Sapo Web (`*.mysapo.net`, Shopify-shaped orders, topic orders/updated) and Sapo GO /
Omni (`*.mysapogo.com`, topic orders/update: `code`, `customer_data.phone_number`,
`created_on`, `status`, `fulfillment_status`, `payment_status`). `X-Sapo-Hmac-Sha256` =
base64(HMAC-SHA256(app secret, raw body)) (seen in third-party receivers, not in Sapo's own
docs); the topic in `X-Sapo-Topic`. GO deliveries carry `X-Sapo-Object-Id` and
`X-Event-Version` (together: the delivery id). Which GO status means "delivered" is not
published: the default waits for fulfilled (shipped) or completed.
Published example: real GO deliveries (truncated) in ../shared/samples/orders/partial/."""
from __future__ import annotations

from typing import Any, Mapping

from bot.sources import shopify
from bot.sources.base import (BadPayload, body_digest, dicts, first, header, no_handshake, obj, text,
                              verify_sha256_base64)
from flows.orders import OrderEvent, normalise_phone

name = "sapo"
punishes_4xx = False
default_delivered_on = "fulfilled"
signature_header = "X-Sapo-Hmac-Sha256"
test_header = "X-Sapo-Test"  # "false" on every real delivery (../shared/samples/orders/partial/)
admin_steps = {
    "vi": "Sapo: Ứng dụng (Apps) → Ứng dụng riêng (Private apps) → Tạo ứng dụng, cấp quyền Đơn hàng (đọc),\n"
          "  rồi đăng ký webhook bằng API: POST https://<cửa-hàng>.mysapo.net/admin/webhooks.json\n"
          "  {{\"webhook\": {{\"topic\": \"orders/updated\", \"address\": \"{url}\", \"format\": \"json\"}}}}\n"
          "  (Sapo GO/Omni: topic \"orders/update\"; thêm \"orders/cancelled\" nếu có). Secret = mã bí mật của ứng dụng.",
    "en": "Sapo: Apps → Private apps → Create app with Orders (read) access, then register the webhook\n"
          "  through the API: POST https://<shop>.mysapo.net/admin/webhooks.json\n"
          "  {{\"webhook\": {{\"topic\": \"orders/updated\", \"address\": \"{url}\", \"format\": \"json\"}}}}\n"
          "  (Sapo GO/Omni: topic \"orders/update\"; also \"orders/cancelled\" if offered). Secret = the app's secret.",
}
TOPIC_SIGNALS = {"orders/paid": "paid", "orders/fulfilled": "fulfilled", "orders/cancelled": "cancelled"}


def verify(headers: Mapping[str, str], raw: bytes, secret: str, form: str = "any") -> str | None:
    return verify_sha256_base64(headers, raw, secret, signature_header)

handshake = no_handshake


def delivery_id(headers: Mapping[str, str], raw: bytes, body: Any = None) -> str:
    given = header(headers, "X-Sapo-Webhook-Id")
    if given:
        return given
    object_id, version = header(headers, "X-Sapo-Object-Id"), header(headers, "X-Event-Version")
    return f"{object_id}:{version}" if object_id and version else body_digest(raw)


def topic(headers: Mapping[str, str], body: Any) -> str | None:
    return header(headers, "X-Sapo-Topic") or None


def events(topic_name: str | None, body: Any) -> list[OrderEvent]:
    if not isinstance(body, dict):
        raise BadPayload("expected a JSON object (an order)")
    order = obj(body.get("order")) if isinstance(body.get("order"), dict) else body
    if "customer_data" in order or "created_on" in order:
        event = _go_order(order)
    else:
        signals = shopify.body_signals(order)
        if topic_name in TOPIC_SIGNALS:
            signals.add(TOPIC_SIGNALS[topic_name])
        event = shopify.order_event(order, signals)
    return [event]


def _go_order(order: dict[str, Any]) -> OrderEvent:
    order_id = text(order.get("id"))
    if not order_id:
        raise BadPayload("no order id")
    customer = obj(order.get("customer_data"))
    signals: set[str] = set()
    status = str(order.get("status") or "").lower()
    if status in ("completed", "finished") or order.get("completed_on"):
        signals.add("completed")
    if status in ("cancelled", "canceled"):
        signals.add("cancelled")
    if str(order.get("payment_status") or "").lower() == "paid":
        signals.add("paid")
    if str(order.get("fulfillment_status") or "").lower() in ("shipped", "fulfilled", "delivered"):
        signals.add("fulfilled")
    lines = order.get("order_line_items") or order.get("line_items") or []
    items = tuple(
        {k: v for k, v in (("sku", obj(i).get("sku")), ("name", obj(i).get("product_name") or obj(i).get("variant_name")),
                           ("qty", obj(i).get("quantity")), ("price", obj(i).get("price"))) if v not in (None, "")}
        for i in dicts(lines)
    )
    addresses = order.get("shipping_address") or order.get("fulfillments")
    return OrderEvent(
        order_id=order_id,
        code=text(order.get("code")) or order_id,
        signals=frozenset(signals),
        customer_id=text(customer.get("id")) or text(order.get("customer_id")),
        customer_name=text(customer.get("name")),
        phone=normalise_phone(first(customer.get("phone_number"), obj(order.get("billing_address")).get("phone_number"))),
        amount=first(order.get("total"), order.get("total_amount")),
        currency="VND",
        items=items,
        store=text(order.get("location_name")) or text(order.get("location_id")),
        channel=text(order.get("source_name")) or text(order.get("channel")),
        shipped=bool(addresses),
        purchased_at=text(order.get("issued_on")) or text(order.get("created_on")),
    )
