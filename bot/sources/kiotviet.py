"""KiotViet: webhooks are registered through its Public API (the command `feedbot source add
kiotviet` does it: OAuth2 client credentials at id.kiotviet.vn, then POST /webhooks with
`{"Webhook": {"Type", "Url", "IsActive", "Secret"}}`, the Secret sent base64-encoded).
A delivery: `{"Id", "Attempt", "Notifications": [{"Action": "invoice.update.<retailer id>",
"Data": [invoice, ...]}]}`. `X-Hub-Signature`: the official doc says HMAC SHA-256 with the
Secret; third-party receivers expect `sha1=<hex>`. Unresolved, so every form is tried
(base64 or hex SHA-256, `sha256=`/`sha1=` hex; the secret as given or base64-encoded) unless
the source names one (`signature`), and the one that matched is logged and shown by
`feedbot source status`. KiotViet stops sending to an endpoint that answers 400, 401, 403,
404 or 405: every answer is a 200. An invoice has no customer phone (only a delivery's
`ContactNumber`): the customer is fetched through the API (bot/sources/kiotviet_api.py).
No published example delivery exists; the fixtures follow the documented field names."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any, Mapping

from bot.sources.base import BadPayload, body_digest, dicts, first, header, no_handshake, obj, same, text
from flows.orders import OrderEvent, normalise_phone

name = "kiotviet"
punishes_4xx = True
default_delivered_on = "completed"
signature_header = "X-Hub-Signature"
test_header = None
SIGNATURE_FORMS = ("any", "sha256-base64", "sha256-hex", "sha1-hex")
# Invoices only: an order (đặt hàng) that completes becomes an invoice, which is the sale.
WEBHOOK_TYPES = ("invoice.update",)
admin_steps = {
    "vi": "KiotViet: Thiết lập cửa hàng → Thiết lập kết nối API → lấy Client Id và Mã bảo mật (Client Secret),\n"
          "  rồi chạy: feedbot source add kiotviet --name <tên> --retailer <tên gian hàng> --client-id ... --client-secret ...\n"
          "  Lệnh tự đăng ký webhook invoice.update tới {url}",
    "en": "KiotViet: Store settings → API connection settings → copy the Client Id and Client Secret,\n"
          "  then run: feedbot source add kiotviet --name <name> --retailer <retailer> --client-id ... --client-secret ...\n"
          "  The command registers the invoice.update webhook to {url} itself.",
}
# Invoice Status: 1 completed, 2 cancelled, 3 in progress, 5 not deliverable. Delivery Status 3: delivered.
INVOICE_SIGNALS = {1: "completed", 2: "cancelled"}
DELIVERED = 3


def _keys(secret: str) -> list[bytes]:
    keys = [secret.encode(), base64.b64encode(secret.encode())]
    try:
        keys.append(base64.b64decode(secret, validate=True))
    except (binascii.Error, ValueError):
        pass
    return keys


def verify(headers: Mapping[str, str], raw: bytes, secret: str, form: str = "any") -> str | None:
    given = header(headers, signature_header).strip()
    if not given or not secret:
        return None
    for key_name, key in zip(("secret", "secret-base64", "secret-decoded"), _keys(secret)):
        sha256 = hmac.new(key, raw, hashlib.sha256).digest()
        candidates = {
            "sha256-base64": [base64.b64encode(sha256).decode()],
            "sha256-hex": [sha256.hex(), "sha256=" + sha256.hex()],
            "sha1-hex": ["sha1=" + hmac.new(key, raw, hashlib.sha1).hexdigest()],
        }
        for name_, values in candidates.items():
            if form not in ("any", name_):
                continue
            if any(same(given.lower() if name_ != "sha256-base64" else given, v) for v in values):
                return f"{name_} ({key_name})"
    return None

handshake = no_handshake


def delivery_id(headers: Mapping[str, str], raw: bytes, body: Any = None) -> str:
    given = text(obj(body).get("Id"))
    return given or body_digest(raw)


def topic(headers: Mapping[str, str], body: Any) -> str | None:
    actions = [text(n.get("Action")) for n in dicts(obj(body).get("Notifications"))]
    return ",".join(sorted({_kind(a) for a in actions if a})) or None


def _kind(action: str) -> str:
    """`invoice.update.500255439` -> `invoice.update` (the retailer id is a suffix)."""
    return ".".join(action.split(".")[:2])


def events(topic_name: str | None, body: Any) -> list[OrderEvent]:
    if not isinstance(body, dict) or not isinstance(body.get("Notifications"), list):
        raise BadPayload("expected {\"Notifications\": [...]}")
    found: list[OrderEvent] = []
    for notification in body["Notifications"]:
        kind = _kind(text(obj(notification).get("Action")) or "")
        if kind not in WEBHOOK_TYPES:
            continue
        for data in dicts(obj(notification).get("Data")):
            found.append(_event(kind, data))
    return found


def _event(kind: str, data: dict[str, Any]) -> OrderEvent:
    order_id = text(data.get("Id"))
    if not order_id:
        raise BadPayload(f"{kind} without Id")
    status = data.get("Status")
    signals = {INVOICE_SIGNALS.get(status, "")} - {""}
    delivery = obj(data.get("InvoiceDelivery"))
    if delivery.get("Status") == DELIVERED:
        signals.add("delivered")
    if first(data.get("TotalPayment"), 0) and data.get("TotalPayment") == data.get("Total"):
        signals.add("paid")
    phone = normalise_phone(first(delivery.get("ContactNumber"), data.get("ContactNumber")))
    items = tuple(
        {k: v for k, v in (("sku", obj(i).get("ProductCode")), ("name", obj(i).get("ProductName")),
                           ("qty", obj(i).get("Quantity")), ("price", obj(i).get("Price"))) if v not in (None, "")}
        for i in dicts(data.get("InvoiceDetails"))
    )
    purchased = text(data.get("PurchaseDate")) or text(data.get("CreatedDate"))
    customer_id = text(data.get("CustomerId"))
    return OrderEvent(
        order_id=order_id,
        code=text(data.get("Code")) or order_id,
        signals=frozenset(signals),
        customer_id=customer_id,
        customer_name=text(data.get("CustomerName")) or text(delivery.get("Receiver")),
        phone=phone,
        amount=first(data.get("Total"), data.get("TotalPayment")),
        currency="VND",
        items=items,
        store=text(data.get("BranchName")) or text(data.get("BranchId")),
        channel="pos" if not delivery else "delivery",
        shipped=bool(delivery),
        purchased_at=_seven_digits(purchased),
        needs_customer_lookup=phone is None and customer_id is not None,
    )


def _seven_digits(value: str | None) -> str | None:
    """.NET writes 7 fractional digits ("2026-11-23T10:00:00.1234567"); ISO parsing wants 6 at most."""
    if value and "." in value:
        head, _, tail = value.partition(".")
        digits = "".join(c for c in tail if c.isdigit())
        rest = tail[len(digits):]
        return f"{head}.{digits[:6]}{rest}"
    return value
