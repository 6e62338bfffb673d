""""Gửi khảo sát" on the agent page: a survey asked by hand, for a phone number or a chat, for a
shop with no sales system at all. It is a purchase like any other (order id
`manual:<time>-<random>`), through parse_purchase and record_purchase, its survey due now
(quiet hours and the one-survey-per-week rule still apply)."""
from __future__ import annotations

import dataclasses
import re
import secrets
from datetime import timedelta
from typing import Any

from bot.clock import Clock
from bot.services.orders import UNKNOWN_CUSTOMER
from bot.services.purchases import InputError, PurchaseOutcome, parse_purchase, record_purchase_in
from flows.orders import normalise_phone
from flows.schedule import SurveyPolicy
from storage import contacts, customers

_CHAT = re.compile(r"^(?:contact:)?(\d{1,12})$")


async def send_survey(
    db: Any, clock: Clock, policy: SurveyPolicy, touchpoints: tuple[str, ...], *, target: str, name: str = "",
    touchpoint: str = "", note: str = "",
) -> PurchaseOutcome:
    """`target`: a phone number (0912 345 678, +84...) or a chat (`contact:12`, as on a ticket).
    InputError naming the field when it is neither, or the chat is unknown."""
    target = target.strip()
    name = " ".join(name.split())[:200]
    touchpoint = touchpoint or touchpoints[0]
    now = clock.now()
    chat = _CHAT.match(target)
    phone = None if chat else normalise_phone(target)
    if chat is None and phone is None:
        raise InputError("target", "expected a phone number (0912 345 678) or a chat (contact:12)")
    order_id = f"manual:{now:%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
    body: dict[str, Any] = {"order_id": order_id, "amount": 0, "touchpoint": touchpoint,
                            "purchased_at": now.isoformat(), "items": [{"note": note[:200]}] if note.strip() else []}
    async with db.transaction() as tx:
        if chat is not None:
            contact = await contacts.by_id(tx, int(chat.group(1)))
            if contact is None:
                raise InputError("target", f"no chat contact:{chat.group(1)}")
            customer = await customers.by_id(tx, contact.customer_id) if contact.customer_id else None
            if customer is None:
                customer = await customers.upsert(tx, external_id=f"chat-{contact.id}",
                                                  name=name or contact.display_name or UNKNOWN_CUSTOMER, phone=None,
                                                  telegram_user_id=None, now=now)
                await contacts.link(tx, contact.id, customer.id, "agent")
            body["customer"] = {"external_id": customer.external_id, "name": name or customer.name}
        else:
            assert phone is not None
            existing = await customers.by_external_id(tx, f"tel-{phone.lstrip('+')}")
            body["customer"] = {"external_id": f"tel-{phone.lstrip('+')}", "phone": phone,
                                "name": name or (existing.name if existing else UNKNOWN_CUSTOMER)}
        data = parse_purchase(body, touchpoints=touchpoints, timezone=policy.timezone, now=now)
        return await record_purchase_in(tx, now, dataclasses.replace(policy, delay=timedelta(0)), data)
