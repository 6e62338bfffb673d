"""Order deliveries as each sales system sends them (headers, signature, body), for tests and
bench/. Bodies follow the field names in ../shared/facts/shop-webhooks.md and the vendors'
published examples (tests/sources/fixtures/ cites each one's origin). Signatures are made
as each platform documents them, so a test fails if our check drifts from theirs."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any


def b64_hmac(secret: str, raw: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


def signed(platform: str, secret: str, body: Any, *, topic: str = "", delivery_id: str = "",
           kiotviet_form: str = "sha256-base64") -> tuple[dict[str, str], bytes]:
    """(headers, raw body) of one delivery, signed with `secret` the platform's way."""
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"}
    if platform == "shopify":
        headers.update({"X-Shopify-Hmac-Sha256": b64_hmac(secret, raw), "X-Shopify-Topic": topic or "orders/fulfilled",
                        "X-Shopify-Webhook-Id": delivery_id or hashlib.md5(raw).hexdigest()})
    elif platform == "haravan":
        headers.update({"X-Haravan-HmacSha256": b64_hmac(secret, raw), "X-Haravan-Topic": topic or "orders/updated"})
        if delivery_id:
            headers["X-Haravan-Webhook-Id"] = delivery_id
    elif platform == "sapo":
        headers.update({"X-Sapo-Hmac-Sha256": b64_hmac(secret, raw), "X-Sapo-Topic": topic or "orders/updated"})
        if delivery_id:
            headers["X-Sapo-Webhook-Id"] = delivery_id
    elif platform == "woocommerce":
        headers.update({"X-WC-Webhook-Signature": b64_hmac(secret, raw), "X-WC-Webhook-Topic": topic or "order.updated",
                        "X-WC-Webhook-Resource": "order", "X-WC-Webhook-Event": "updated",
                        "X-WC-Webhook-Delivery-ID": delivery_id or hashlib.md5(raw).hexdigest()})
    elif platform == "kiotviet":
        digest = hmac.new(secret.encode(), raw, hashlib.sha256)
        headers["X-Hub-Signature"] = {
            "sha256-base64": base64.b64encode(digest.digest()).decode(),
            "sha256-hex": "sha256=" + digest.hexdigest(),
            "sha1-hex": "sha1=" + hmac.new(secret.encode(), raw, hashlib.sha1).hexdigest(),
        }[kiotviet_form]
    else:
        raise ValueError(platform)
    return headers, raw


# --- bodies: one order per platform, with the fields each platform documents ---------------------


def shopify_order(order_id: int = 450789469, *, name: str = "#1001", phone: str | None = "0912 345 678",
                  source_name: str = "web", financial_status: str = "paid", fulfillment_status: str | None = "fulfilled",
                  cancelled_at: str | None = None) -> dict[str, Any]:
    return {
        "id": order_id, "admin_graphql_api_id": f"gid://shopify/Order/{order_id}", "name": name, "order_number": 1001,
        "created_at": "2026-11-23T09:00:00+07:00", "currency": "VND", "total_price": "250000.00",
        "financial_status": financial_status, "fulfillment_status": fulfillment_status, "cancelled_at": cancelled_at,
        "source_name": source_name, "location_id": None, "phone": None,
        "customer": {"id": 115310627314723954, "first_name": "Lan", "last_name": "Nguyễn Thị", "phone": phone},
        "shipping_address": {"name": "Nguyễn Thị Lan", "phone": phone, "address1": "12 Lê Lợi", "city": "Hồ Chí Minh"},
        "line_items": [{"sku": "TEA-01", "name": "Trà sen", "quantity": 2, "price": "125000.00"}],
    }


def haravan_order(order_id: int = 1456389374, *, name: str = "#100811", source_name: str = "pos",
                  carrier_status: str | None = None, phone: str | None = "0909090909",
                  financial_status: str = "paid", fulfillment_status: str = "fulfilled",
                  cancelled_status: str = "uncancelled") -> dict[str, Any]:
    """The shape of Haravan's published order object (docs.haravan.com, orders: "Create a new
    order", a POS order), bare as a webhook sends it."""
    fulfillments = [{"id": 1, "carrier_status_code": carrier_status, "carrier_status_name": None}] if carrier_status else []
    return {
        "id": order_id, "name": name, "order_number": name, "created_at": "2026-11-23T02:00:00.000Z", "currency": "VND",
        "total_price": 455000.0, "financial_status": financial_status, "fulfillment_status": fulfillment_status,
        "cancelled_status": cancelled_status, "cancelled_at": None, "source_name": source_name, "location_id": 895636,
        "customer": {"id": 1002345, "first_name": "Minh", "last_name": "Trần", "phone": phone},
        "billing_address": {"phone": phone, "name": "Trần Minh"},
        "shipping_address": {"phone": phone, "name": "Trần Minh"} if source_name != "pos" else None,
        "fulfillments": fulfillments,
        "line_items": [{"sku": "SP01", "title": "Áo thun", "quantity": 1, "price": 455000.0}],
    }


def sapo_go_order(order_id: int = 1776794576, *, code: str = "SON687458", status: str = "completed",
                  phone: str = "0889580689") -> dict[str, Any]:
    """Sapo GO's orders/update: the first fields as in the published captures
    (../shared/samples/orders/partial/sapo-go-orders-update-1.json); status, totals and lines
    after the third-party copy of Sapo GO's API doc (status, fulfillment_status, payment_status)."""
    return {
        "id": order_id, "tenant_id": 737184, "location_id": 711291, "code": code,
        "created_on": "2026-11-23T01:33:18Z", "issued_on": "2026-11-23T01:33:18Z",
        "customer_id": 858174729,
        "customer_data": {"id": 858174729, "name": "Nguyễn Anh Khoa", "phone_number": phone},
        "status": status, "fulfillment_status": "shipped" if status == "completed" else "unshipped",
        "payment_status": "paid", "total": 320000,
        "order_line_items": [{"sku": "CF-02", "product_name": "Cà phê", "quantity": 2, "price": 160000}],
    }


def woocommerce_order(order_id: int = 3080, *, status: str = "completed", phone: str = "0912345678") -> dict[str, Any]:
    """Modern wc/v3 payload, as the published WC 10.2.1 delivery
    (../shared/samples/orders/woocommerce-order.updated-3.json), with a Vietnamese customer."""
    return {
        "id": order_id, "parent_id": 0, "status": status, "currency": "VND", "number": str(order_id),
        "date_created": "2026-11-23T09:00:00", "date_created_gmt": "2026-11-23T02:00:00",
        "total": "180000", "customer_id": 1377, "created_via": "checkout",
        "billing": {"first_name": "Hoa", "last_name": "Lê", "phone": phone, "email": "hoa@example.com"},
        "shipping": {"first_name": "Hoa", "last_name": "Lê", "address_1": "5 Hai Bà Trưng", "phone": ""},
        "date_paid": "2026-11-23T09:00:01", "date_completed": "2026-11-23T09:30:00" if status == "completed" else None,
        "line_items": [{"id": 469, "name": "Bánh", "sku": "BK-1", "quantity": 3, "price": 60000}],
        "shipping_lines": [{"method_id": "flat_rate", "total": "0"}],
    }


def kiotviet_invoice(invoice_id: int = 180093, *, code: str = "HD000123", status: int = 1,
                     delivery: dict[str, Any] | None = None, customer_id: int | None = 5501,
                     retailer_id: int = 500255439, notification_id: str = "a1b2c3") -> dict[str, Any]:
    """KiotViet's invoice.update, after the official template's field names (docs/webhooks.md
    of the public API docs; no published real delivery exists) and the Action suffix seen in
    third-party captures ("invoice.update.500255439")."""
    data = {
        "Id": invoice_id, "Code": code, "PurchaseDate": "2026-11-23T09:00:00.0000000", "BranchId": 1,
        "BranchName": "Chi nhánh Quận 1", "CustomerId": customer_id, "CustomerCode": "KH000042",
        "CustomerName": "Phạm Văn Bình", "Total": 150000, "TotalPayment": 150000, "Status": status,
        "StatusValue": {1: "Hoàn thành", 2: "Đã hủy", 3: "Đang xử lý"}.get(status, ""),
        "InvoiceDetails": [{"ProductId": 1, "ProductCode": "SP000001", "ProductName": "Sữa tươi", "Quantity": 3,
                            "Price": 50000}],
    }
    if delivery is not None:
        data["InvoiceDelivery"] = delivery
    return {"Id": notification_id, "Attempt": 1,
            "Notifications": [{"Action": f"invoice.update.{retailer_id}", "Data": [data]}]}
