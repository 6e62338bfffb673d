"""Purchase events from the shop's systems: validation, then one survey per order."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta, tzinfo
from datetime import timezone as dt_timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from bot.clock import Clock
from flows.schedule import SurveyPolicy, due_time, is_too_late
from storage import contacts, customers, purchases, start_tokens, surveys
from storage.db import Database, encodable

MAX_FUTURE = timedelta(hours=1)  # tolerated clock skew of the shop's system
EARLIEST = datetime(2000, 1, 1, tzinfo=dt_timezone.utc)  # older purchased_at: a typo or a placeholder
# The largest amount of one order, per currency: beyond it a value is a mistake or an attack
# (and it must stay a finite float in SQLite: 1E+999999999 would be stored as inf). Currencies
# whose unit is small get a larger cap; any other 3-letter code gets the default.
MAX_AMOUNT_DEFAULT = Decimal(10) ** 9
MAX_AMOUNT = {code: Decimal(10) ** 12 for code in ("VND", "IDR", "LAK", "KHR", "MMK", "UZS", "IRR", "KRW", "PYG", "GNF")}
MAX_AMOUNT.update({code: Decimal(10) ** 10 for code in ("JPY", "HUF", "CLP", "COP", "ISK", "TZS", "UGX", "NGN", "PHP", "THB", "INR")})
MAX_DECIMALS = 4
_ID = re.compile(r"[A-Za-z0-9._:/#-]{1,64}")  # fullmatch: "$" would let a trailing newline through


def is_identifier(value: str) -> bool:
    """An order or customer id as the API takes them (a lookup by anything else finds nothing)."""
    return bool(_ID.fullmatch(value))


class InputError(ValueError):
    """Bad input from outside: names the field so the caller can fix it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PurchaseConflict(Exception):
    pass


@dataclass(frozen=True)
class PurchaseInput:
    order_id: str
    customer_external_id: str
    customer_name: str
    phone: str | None
    telegram_user_id: str | None
    amount: Decimal
    currency: str
    items: list[Any]
    store: str | None
    touchpoint: str
    purchased_at: datetime
    zalo_user_id: str | None = None
    staff: str | None = None  # who served: a cashier, a shipper, a consultant (their name or code)
    stage: str | None = None  # the journey stage the purchase's survey is about (survey.stages)

    def fingerprint(self) -> str:
        """The one stored: the time in UTC, so the same instant written as +07:00, Z or shop
        time without an offset is the same order (a retry in UTC is not a 409)."""
        return self._fingerprint(self.purchased_at.astimezone(dt_timezone.utc))

    def fingerprints(self, tz: tzinfo) -> set[str]:
        """What an order already stored may carry: fingerprints written before the time was
        taken in UTC kept it as posted (usually shop time): those still match a retry."""
        return {self.fingerprint(), self._fingerprint(self.purchased_at), self._fingerprint(self.purchased_at.astimezone(tz))}

    def _fingerprint(self, purchased_at: datetime) -> str:
        canonical = asdict(self)
        for later in ("zalo_user_id", "staff", "stage"):  # fingerprints of orders posted before these stay the same
            if canonical[later] is None:
                del canonical[later]
        canonical["amount"] = str(self.amount)
        canonical["purchased_at"] = purchased_at.isoformat()
        return hashlib.sha256(json.dumps(canonical, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def parse_purchase(
    body: Any, *, touchpoints: tuple[str, ...], timezone: tzinfo, now: datetime, stages: tuple[str, ...] = (),
) -> PurchaseInput:
    if not isinstance(body, dict):
        raise InputError("body", "expected a JSON object")
    if not encodable(body):  # (a Telegram update like that is kept, with its error: not here)
        raise InputError("body", "a string with an unpaired surrogate (like \\ud800) or a NUL character: not text")
    customer = body.get("customer")
    if not isinstance(customer, dict):
        raise InputError("customer", "required, an object with external_id and name")
    touchpoint = _required_str(body, "touchpoint", max_len=32)
    if touchpoint not in touchpoints:
        raise InputError("touchpoint", f"expected one of {', '.join(touchpoints)}, got {touchpoint!r}")
    purchased_at = _time(body, "purchased_at", timezone)
    if purchased_at > now + MAX_FUTURE:
        raise InputError("purchased_at", "is in the future")
    if purchased_at < EARLIEST:
        raise InputError("purchased_at", f"before {EARLIEST.date().isoformat()}: not a real purchase time")
    currency = _currency(body.get("currency", "VND"))
    return PurchaseInput(
        order_id=_identifier(body, "order_id"),
        customer_external_id=_identifier(customer, "external_id", "customer.external_id"),
        customer_name=_required_str(customer, "name", "customer.name", max_len=200),
        phone=_phone(customer.get("phone")),
        telegram_user_id=_telegram_user_id(customer.get("telegram_user_id")),
        amount=_amount(body.get("amount"), currency),
        currency=currency,
        items=_items(body.get("items", [])),
        store=_optional_str(body, "store", max_len=100),
        touchpoint=touchpoint,
        purchased_at=purchased_at,
        zalo_user_id=_zalo_user_id(customer.get("zalo_user_id")),
        staff=_optional_str(body, "staff", max_len=100),
        stage=_stage(body.get("stage"), stages),
    )


def _stage(value: Any, stages: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value not in stages:
        raise InputError("stage", f"expected one of {', '.join(stages) or '(none configured: survey.stages)'}, got {value!r}")
    return value


def _identifier(obj: dict, key: str, name: str | None = None) -> str:
    name = name or key
    value = obj.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # POS systems often number their orders
    if value is None:
        raise InputError(name, "required")
    if not isinstance(value, str) or not is_identifier(value):
        raise InputError(name, "expected a string of 1-64 letters, digits or . _ : / # -")
    return value


def _required_str(obj: dict, key: str, name: str | None = None, *, max_len: int) -> str:
    name = name or key
    value = obj.get(key)
    if value is None:
        raise InputError(name, "required")
    if not isinstance(value, str) or not value.strip():
        raise InputError(name, "expected a non-empty string")
    if len(value) > max_len:
        raise InputError(name, f"longer than {max_len} characters")
    return value.strip()


def _optional_str(obj: dict, key: str, *, max_len: int) -> str | None:
    if obj.get(key) is None:
        return None
    return _required_str(obj, key, max_len=max_len)


def _time(obj: dict, key: str, tz: tzinfo) -> datetime:
    value = obj.get(key)
    if value is None:
        raise InputError(key, "required (ISO 8601, e.g. 2026-11-23T10:00:00+07:00)")
    if not isinstance(value, str):
        raise InputError(key, "expected an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value)
        parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)  # no offset: shop time
        parsed.astimezone(dt_timezone.utc)  # year 1 or 9999 with an offset: out of range in UTC
    except (ValueError, OverflowError):
        raise InputError(key, f"not an ISO 8601 time: {value[:40]!r}") from None
    return parsed


def _amount(value: Any, currency: str) -> Decimal:
    if value is None:
        raise InputError("amount", "required")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InputError("amount", "expected a number")
    if isinstance(value, str) and len(value) > 40:
        raise InputError("amount", "expected a number, got a string of more than 40 characters")
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):  # ValueError: an int of more digits than str() allows
        raise InputError("amount", f"expected a number, got {str(value)[:40]!r}") from None
    if not amount.is_finite() or amount < 0:
        raise InputError("amount", "expected a finite number zero or above")
    limit = MAX_AMOUNT.get(currency, MAX_AMOUNT_DEFAULT)
    if amount > limit:
        raise InputError("amount", f"larger than {limit:,} {currency}: not a real order amount")
    if amount != amount.quantize(Decimal(1).scaleb(-MAX_DECIMALS)):  # within 17 digits: the cap above
        raise InputError("amount", f"more than {MAX_DECIMALS} decimal places")
    return amount


def _currency(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Z]{3}", value):
        raise InputError("currency", "expected a 3-letter ISO 4217 code like 'VND'")
    return value


def _phone(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"\+?[0-9 ().-]{6,20}", value):
        raise InputError("customer.phone", "expected a phone number like '+84 912 345 678'")
    return value


def _telegram_user_id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError("customer.telegram_user_id", "expected a positive integer")
    return str(value)


def _zalo_user_id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        value = str(value)
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{1,32}", value):
        raise InputError("customer.zalo_user_id", "expected the customer's Zalo user id (digits, as a string)")
    return value


def _items(value: Any) -> list[Any]:
    if not isinstance(value, list) or not all(isinstance(i, dict) for i in value):
        raise InputError("items", "expected a list of objects")
    if len(value) > 500:
        raise InputError("items", "more than 500 items")
    return value


@dataclass(frozen=True)
class PurchaseOutcome:
    order_id: str
    created: bool  # False: the same order was posted before
    survey_id: int
    survey_status: str
    skip_reason: str | None
    due_at: datetime
    link_token: str  # the order's start token (its receipt link)


def parse_revoke_link(body: Any) -> bool:
    """`"revoke_link": true` on a re-post: the order's receipt link is replaced by a new one."""
    value = body.get("revoke_link", False) if isinstance(body, dict) else False
    if not isinstance(value, bool):
        raise InputError("revoke_link", "expected true or false")
    return value


class PurchasePrograms(Protocol):
    """What survey programs (bot/services/programs.py) add to a purchase: whether its CSAT is
    asked (and when), and the other programs it starts."""

    def csat_delay(self, touchpoint: str, store: str | None) -> timedelta | None: ...

    async def on_purchase(self, tx: Any, *, purchase_id: int, customer_id: int, touchpoint: str,
                          store_name: str | None, purchased_at: datetime, now: datetime) -> int: ...


async def record_purchase(
    db: Database, clock: Clock, policy: SurveyPolicy, data: PurchaseInput, *, demo: bool = False,
    revoke_link: bool = False, programs: PurchasePrograms | None = None,
) -> PurchaseOutcome:
    """Store the purchase and schedule its survey; the same order twice schedules one survey.
    A demo purchase marks its customer: their surveys and tickets stay out of every figure.
    A re-post (same details) answers the same link, or with `revoke_link` a new one: the old
    one stops working and the chats that opened it lose what it gave them. A new order always
    gets a new link; `revoke_link` on it changes nothing."""
    async with db.transaction() as tx:
        return await record_purchase_in(tx, clock.now(), policy, data, demo=demo, revoke_link=revoke_link,
                                        programs=programs)


async def record_purchase_in(
    tx: Any, now: datetime, policy: SurveyPolicy, data: PurchaseInput, *, demo: bool = False, revoke_link: bool = False,
    programs: PurchasePrograms | None = None, goods_at: datetime | None = None,
) -> PurchaseOutcome:
    """record_purchase inside the caller's transaction (order webhooks and imports write their
    own records in the same one). `goods_at`: when the customer had the goods, if later than
    the purchase (an online order's delivery): the survey's delay counts from then."""
    fingerprint = data.fingerprint()
    existing = await purchases.by_order_id(tx, data.order_id)
    if existing is not None:
        if existing.fingerprint not in data.fingerprints(policy.timezone):
            raise PurchaseConflict(f"order {data.order_id} was already posted with different details")
        survey = await surveys.by_purchase(tx, existing.id)
        assert survey is not None
        token = await start_tokens.current(tx, existing.id) if not revoke_link else None
        if token is None:
            token = await start_tokens.rotate(tx, existing.id, existing.customer_id, now)
        return PurchaseOutcome(
            data.order_id, False, survey.id, survey.status, survey.skip_reason, survey.due_at, token
        )
    customer = await customers.upsert(
        tx,
        external_id=data.customer_external_id,
        name=data.customer_name,
        phone=data.phone,
        telegram_user_id=data.telegram_user_id,
        now=now,
        zalo_user_id=data.zalo_user_id,
    )
    if data.telegram_user_id is not None:
        # A customer who already chats with the bot is linked now: the survey goes to that chat.
        await contacts.link_existing(tx, "telegram", data.telegram_user_id, customer.id)
    if demo:
        await customers.mark_demo(tx, customer.id)
    if customer.zalo_user_id is not None:
        # A Zalo follower can get customer-care messages without writing to us first.
        await contacts.ensure_linked(tx, "zalo", customer.zalo_user_id, customer.id, now)
    purchase_id = await purchases.insert(
        tx,
        order_id=data.order_id,
        customer_id=customer.id,
        amount=data.amount,
        currency=data.currency,
        items=data.items,
        store=data.store,
        touchpoint=data.touchpoint,
        purchased_at=data.purchased_at,
        fingerprint=fingerprint,
        now=now,
        staff=data.staff,
        stage=data.stage,
    )
    token = await start_tokens.create(tx, purchase_id, customer.id, now)
    start = max(data.purchased_at, goods_at) if goods_at is not None else data.purchased_at
    delay = programs.csat_delay(data.touchpoint, data.store) if programs is not None else policy.delay
    due_at = due_time(start, replace(policy, delay=delay if delay is not None else policy.delay))
    too_late = is_too_late(now, due_at, policy)
    status, reason = ("skipped", "too_late") if too_late else ("scheduled", None)
    if delay is None:  # programs are configured and none asks about this purchase
        status, reason = "skipped", "no_program"
    survey_id = await surveys.insert(
        tx,
        purchase_id=purchase_id,
        customer_id=customer.id,
        touchpoint=data.touchpoint,
        store=data.store,
        due_at=due_at,
        status=status,
        skip_reason=reason,
        now=now,
    )
    if programs is not None:
        await programs.on_purchase(tx, purchase_id=purchase_id, customer_id=customer.id, touchpoint=data.touchpoint,
                                   store_name=data.store, purchased_at=start, now=now)
    return PurchaseOutcome(data.order_id, True, survey_id, status, reason, due_at, token)
