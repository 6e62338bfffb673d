"""Demo purchases: a new user tries the whole flow without a shop system (`feedbot demo`,
or the page's "try a demo survey" button). Same code path as the purchase API; the
customer is new each time (no survey fatigue) and their survey is due at once, quiet
hours or not (a demo at 22:00 must still show something)."""
from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import time, timedelta

from bot.clock import Clock
from bot.services.purchases import PurchaseOutcome, parse_purchase, record_purchase
from flows.holidays import NO_BLACKOUTS
from flows.schedule import SurveyPolicy
from storage.db import Database

DEMO_PREFIX = "demo-"  # external ids of demo customers


def demo_policy(policy: SurveyPolicy) -> SurveyPolicy:
    """No delay, no quiet hours (equal start and end), no holidays: whoever tries the demo gets it now."""
    return replace(policy, delay=timedelta(0), quiet_start=time(0, 0), quiet_end=time(0, 0), blackouts=NO_BLACKOUTS)


def is_demo_customer(external_id: str) -> bool:
    return external_id.startswith(DEMO_PREFIX)


async def create_demo_purchase(
    db: Database, clock: Clock, policy: SurveyPolicy, touchpoints: tuple[str, ...]
) -> PurchaseOutcome:
    suffix = secrets.token_hex(4)
    now = clock.now()
    body = {
        "order_id": f"DEMO-{suffix.upper()}",
        "customer": {"external_id": f"{DEMO_PREFIX}{suffix}", "name": "Khách demo"},
        "amount": 150000,
        "currency": "VND",
        "items": [{"sku": "DEMO-01", "name": "Trà sữa (demo)", "qty": 1}],
        "touchpoint": touchpoints[0],
        "purchased_at": now.isoformat(),
    }
    data = parse_purchase(body, touchpoints=touchpoints, timezone=policy.timezone, now=now)
    return await record_purchase(db, clock, demo_policy(policy), data, demo=True)
