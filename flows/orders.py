"""Orders from sales systems, platform-neutral: what an order event means for feedbot (a
purchase whose survey is scheduled, a cancellation, or nothing), Vietnamese phone numbers
in E.164, and the touchpoint an order's channel stands for. Pure: each platform's wire
format is read in bot/sources/<platform>.py and handed here as an OrderEvent."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# What an order shows, as each platform's adapter reads it. "delivered": the customer has the
# goods (a carrier said so, or a completed counter sale); "fulfilled": shipped or handed over;
# "completed": closed as done (WooCommerce, KiotViet Status 1); "paid"; "cancelled" / "refunded".
SIGNALS = ("paid", "fulfilled", "completed", "delivered", "cancelled", "refunded")
DELIVERED_ON = ("paid", "fulfilled", "completed", "delivered")  # a source's choice of "the customer has the goods"
IN_STORE = "in_store"


@dataclass(frozen=True)
class OrderEvent:
    """One order as a delivery (or an imported row) shows it, before validation."""

    order_id: str  # the platform's stable id (dedupe)
    code: str  # the number people read ("#100811", "HD000123"); the purchase's order id is built from it
    signals: frozenset[str]
    customer_id: str | None = None
    customer_name: str | None = None
    phone: str | None = None  # as given; normalised by normalise_phone
    amount: Any = None
    currency: str = "VND"
    items: tuple[dict[str, Any], ...] = ()
    store: str | None = None
    channel: str | None = None  # the platform's source/channel name ("pos", "web", ...)
    shipped: bool = False  # it has a delivery address or a carrier: online with delivery
    purchased_at: str | None = None  # ISO 8601 (with or without offset)
    needs_customer_lookup: bool = False  # KiotViet: no phone in the event, fetch the customer
    extra: dict[str, Any] = field(default_factory=dict)


# --- what an event does ----------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    kind: str  # "purchase" | "cancel" | "ignore"
    reason: str


def decide(event: OrderEvent, delivered_on: str, touchpoint: str) -> Action:
    """A cancelled or refunded order cancels; an order showing the source's "delivered" signal
    is a purchase; anything else is recorded and ignored. A counter sale (in store) has the
    goods once it is paid, fulfilled or completed, whatever the source waits for online."""
    signals = event.signals
    if "cancelled" in signals or "refunded" in signals:
        return Action("cancel", "cancelled" if "cancelled" in signals else "refunded")
    if delivered_on in signals:
        return Action("purchase", delivered_on)
    if delivered_on == "delivered" and "completed" in signals:
        return Action("purchase", "completed")  # closed as done implies the goods were handed over
    if touchpoint == IN_STORE and signals & {"paid", "fulfilled", "completed"}:
        return Action("purchase", "in_store")
    waiting = ", ".join(sorted(signals)) or "nothing yet"
    return Action("ignore", f"waiting for {delivered_on} (order shows {waiting})")


def touchpoint_for(event: OrderEvent, touchpoints: tuple[str, ...]) -> str:
    """pos/counter sales are in_store; web/app orders delivered by a carrier are delivery,
    others online; a name not among the configured touchpoints falls back to the first one."""
    channel = (event.channel or "").lower()
    if channel in ("pos", "in_store", "store", "counter", "offline", "ban_tai_quay", "tai_quay"):
        wanted = IN_STORE
    elif event.shipped:
        wanted = "delivery"
    else:
        wanted = "online"
    if wanted in touchpoints:
        return wanted
    if wanted == "online" and "delivery" in touchpoints:
        return "delivery"
    return touchpoints[0]


# --- phone numbers ------------------------------------------------------------------------

_SEPARATORS = re.compile(r"[\s().\-/]")
# Vietnamese numbers after the 0 / +84: mobiles 3x 5x 7x 8x 9x (9 digits), landlines 2xx (10 digits).
_VN_NATIONAL = re.compile(r"^(?:[35789]\d{8}|2\d{9})$")


def normalise_phone(raw: Any) -> str | None:
    """A phone number as E.164 (+84912345678); Vietnamese numbers by default (0912 345 678,
    84912345678, +84 912 345 678, 0084...). Another country's +number is kept as given
    (digits only). None: empty, or not a phone number at all."""
    if raw is None:
        return None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        raw = str(int(raw))  # spreadsheets turn 0912345678 into the number 912345678
    if not isinstance(raw, str):
        return None
    text = _SEPARATORS.sub("", raw.strip())
    if not text:
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    if text.startswith("+"):
        digits = text[1:]
        if not digits.isdigit():
            return None
        if digits.startswith("84"):
            national = digits[2:].lstrip("0")  # "+84 (0) 912..." is written too
            return f"+84{national}" if _VN_NATIONAL.match(national) else None
        return f"+{digits}" if 8 <= len(digits) <= 15 else None
    if not text.isdigit():
        return None
    if text.startswith("84") and _VN_NATIONAL.match(text[2:].lstrip("0")):
        return f"+84{text[2:].lstrip('0')}"  # "(84) 0912..." as "+84 (0) 912..." above
    national = text[1:] if text.startswith("0") else text
    return f"+84{national}" if _VN_NATIONAL.match(national) else None
