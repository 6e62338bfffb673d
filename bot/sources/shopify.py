"""Shopify: `X-Shopify-Hmac-Sha256` = base64(HMAC-SHA256(app secret or the key shown in the
admin, raw body)); dedupe on `X-Shopify-Webhook-Id`; the topic in `X-Shopify-Topic`.
Test notifications send one canned order for every orders/* topic (`orders/paid` arrives
"voided"), so a topic that says what happened is trusted over the body.

Also the reader of Shopify-shaped orders, shared with Haravan and Sapo Web (same fields:
id, name, customer, shipping_address, line_items, financial_status, fulfillment_status)."""
from __future__ import annotations

from typing import Any, Mapping

from bot.sources.base import (BadPayload, body_digest, dicts, first, full_name, header, no_handshake, obj, text,
                              verify_sha256_base64)
from flows.orders import OrderEvent, normalise_phone

name = "shopify"
punishes_4xx = False  # retried 8 times over 4 h; a 401 is shown in the app's webhook log
default_delivered_on = "fulfilled"  # "delivered" is a fulfillment event without the order's customer
signature_header = "X-Shopify-Hmac-Sha256"
test_header = "X-Shopify-Test"  # "Send test notification": a canned order (John Smith, #9999)
admin_steps = {
    "vi": "Shopify admin → Settings (Cài đặt) → Notifications (Thông báo) → Webhooks → Create webhook:\n"
          "  Event: Order fulfillment (và Order cancellation), Format: JSON, URL: {url}\n"
          "  Chép khoá ký hiện ở cuối trang (\"Your webhooks will be signed with ...\") làm secret của nguồn này.",
    "en": "Shopify admin → Settings → Notifications → Webhooks → Create webhook:\n"
          "  Event: Order fulfillment (and Order cancellation), Format: JSON, URL: {url}\n"
          "  Use the signing key shown under the list (\"Your webhooks will be signed with ...\") as this source's secret.",
}

# Topics that say what happened, whatever the (possibly canned) body says.
TOPIC_SIGNALS = {
    "orders/paid": "paid", "orders/fulfilled": "fulfilled", "orders/cancelled": "cancelled",
    "orders/delete": "cancelled", "refunds/create": "refunded",
}


def verify(headers: Mapping[str, str], raw: bytes, secret: str, form: str = "any") -> str | None:
    return verify_sha256_base64(headers, raw, secret, signature_header)

handshake = no_handshake


def delivery_id(headers: Mapping[str, str], raw: bytes, body: Any = None) -> str:
    return header(headers, "X-Shopify-Webhook-Id") or header(headers, "X-Shopify-Event-Id") or body_digest(raw)


def topic(headers: Mapping[str, str], body: Any) -> str | None:
    return header(headers, "X-Shopify-Topic") or None


def events(topic_name: str | None, body: Any) -> list[OrderEvent]:
    if topic_name and topic_name.startswith("fulfillment_events/"):
        return []  # no customer in it: subscribe to orders/fulfilled instead
    if topic_name == "refunds/create":
        order_id = text(obj(body).get("order_id"))
        if not order_id:
            raise BadPayload("refund without order_id")
        return [OrderEvent(order_id=order_id, code=order_id, signals=frozenset({"refunded"}))]
    signals = {TOPIC_SIGNALS[topic_name]} if topic_name in TOPIC_SIGNALS else body_signals(obj(body))
    return [order_event(body, signals)]


def body_signals(order: dict[str, Any]) -> set[str]:
    signals: set[str] = set()
    financial = str(order.get("financial_status") or "").lower()
    if financial == "paid":
        signals.add("paid")
    elif financial == "refunded":
        signals.add("refunded")
    elif financial == "voided":
        signals.add("cancelled")
    if str(order.get("fulfillment_status") or "").lower() == "fulfilled":
        signals.add("fulfilled")
    if order.get("cancelled_at"):
        signals.add("cancelled")
    for fulfillment in dicts(order.get("fulfillments")):
        if "delivered" in (str(fulfillment.get("shipment_status") or "").lower(),
                           str(fulfillment.get("carrier_status_code") or "").lower()):
            signals.add("delivered")
    return signals


def order_event(body: Any, signals: set[str], *, family_first: bool = False) -> OrderEvent:
    """A Shopify-shaped order (bare, or wrapped in {"order": ...}). `family_first`: the platform
    writes a whole name as last_name first_name (Haravan: "Nguyễn Văn" + "A" = "Nguyễn Văn A")."""
    if not isinstance(body, dict):
        raise BadPayload("expected a JSON object (an order)")
    order = obj(body.get("order")) if "order" in body and "id" not in body else body
    gid = text(order.get("admin_graphql_api_id"))
    # The GraphQL id keeps big ids exact where a JavaScript relay rounded `id`.
    order_id = gid.rsplit("/", 1)[-1] if gid and gid.startswith("gid://") else text(order.get("id"))
    if not order_id:
        raise BadPayload("no order id")
    customer = obj(order.get("customer"))
    shipping = obj(order.get("shipping_address"))
    billing = obj(order.get("billing_address"))
    default = obj(customer.get("default_address"))
    phones = (order.get("phone"), customer.get("phone"), shipping.get("phone"), billing.get("phone"), default.get("phone"))
    phone = next((p for p in map(normalise_phone, phones) if p), None)
    items = tuple(
        {k: v for k, v in (("sku", obj(i).get("sku")), ("name", obj(i).get("name") or obj(i).get("title")),
                           ("qty", obj(i).get("quantity")), ("price", obj(i).get("price"))) if v not in (None, "")}
        for i in dicts(order.get("line_items"))
    )
    return OrderEvent(
        order_id=order_id,
        code=text(order.get("name")) or text(order.get("order_number")) or order_id,
        signals=frozenset(signals),
        customer_id=text(customer.get("id")),
        customer_name=full_name(*((customer.get("last_name"), customer.get("first_name")) if family_first
                                  else (customer.get("first_name"), customer.get("last_name"))))
        or text(customer.get("name")) or text(billing.get("name")) or text(shipping.get("name")),
        phone=phone,
        amount=first(order.get("total_price"), order.get("current_total_price")),
        currency=text(order.get("currency")) or "VND",
        items=items,
        store=text(order.get("location_name")) or text(order.get("location_id")),
        channel=text(order.get("source_name")),
        shipped=bool(shipping) or bool(order.get("shipping_lines")),
        purchased_at=text(order.get("created_at")) or text(order.get("processed_at")),
    )
