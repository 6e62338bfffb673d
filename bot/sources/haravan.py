"""Haravan: Shopify-shaped orders. `X-Haravan-Hmacsha256` (any case) = base64(HMAC-SHA256(key,
raw body)), the key being the app's client secret or the "webhook authentication string" on
Settings → Notifications; the topic in `X-Haravan-Topic`. Apps subscribing through the API
are first sent a GET with `hub.mode=subscribe`, `hub.verify_token`, `hub.challenge`: the
challenge is echoed when the token is ours. A delivered order shows
`fulfillments[].carrier_status_code = "delivered"`; whether an event fires on it is not
documented, so a source may wait for "fulfilled" instead (delivered_on)."""
from __future__ import annotations

from typing import Any, Mapping

from bot.sources import shopify
from bot.sources.base import Handshake, body_digest, header, obj, same, verify_sha256_base64
from flows.orders import OrderEvent

name = "haravan"
punishes_4xx = False
default_delivered_on = "delivered"
signature_header = "X-Haravan-Hmacsha256"
test_header = None
admin_steps = {
    "vi": "Haravan admin → Cấu hình (Settings) → Thông báo (Notifications) → Webhooks → Tạo webhook:\n"
          "  Sự kiện: Cập nhật đơn hàng (orders/updated) và Hủy đơn hàng (orders/cancelled), Định dạng: JSON,\n"
          "  URL: {url}\n"
          "  Chép \"chuỗi xác thực webhook\" hiện trên trang đó làm secret của nguồn này.",
    "en": "Haravan admin → Settings → Notifications → Webhooks → Create webhook:\n"
          "  Events: Order updated (orders/updated) and Order cancelled (orders/cancelled), Format: JSON,\n"
          "  URL: {url}\n"
          "  Use the \"webhook authentication string\" shown on that page as this source's secret.",
}
TOPIC_SIGNALS = {"orders/paid": "paid", "orders/fulfilled": "fulfilled", "orders/cancelled": "cancelled",
                 "orders/delete": "cancelled"}


def verify(headers: Mapping[str, str], raw: bytes, secret: str, form: str = "any") -> str | None:
    return verify_sha256_base64(headers, raw, secret, signature_header)


def handshake(method: str, query: Mapping[str, str], headers: Mapping[str, str], raw: bytes,
              verify_token: str) -> Handshake | None:
    if method != "GET":
        return None
    challenge = query.get("hub.challenge")
    if query.get("hub.mode") != "subscribe" or not challenge:
        return Handshake(400, "expected hub.mode=subscribe and hub.challenge")
    if not verify_token or not same(query.get("hub.verify_token", ""), verify_token):
        return Handshake(401, "wrong hub.verify_token")
    return Handshake(200, challenge)


def delivery_id(headers: Mapping[str, str], raw: bytes, body: Any = None) -> str:
    return header(headers, "X-Haravan-Webhook-Id") or body_digest(raw)


def topic(headers: Mapping[str, str], body: Any) -> str | None:
    return header(headers, "X-Haravan-Topic") or None


def events(topic_name: str | None, body: Any) -> list[OrderEvent]:
    order = obj(body).get("order") if isinstance(obj(body).get("order"), dict) else body
    signals = shopify.body_signals(obj(order))
    if str(obj(order).get("cancelled_status") or "").lower() == "cancelled":
        signals.add("cancelled")
    if topic_name in TOPIC_SIGNALS:
        signals.add(TOPIC_SIGNALS[topic_name])
    return [shopify.order_event(body, signals, family_first=True)]
