"""`feedbot zalo status`: the token pair's age and last refresh, today's ZNS spend against the
limits, the survey routes of the last 7 days and the resolution ratings asked and answered by
ZNS (read from the database; nothing is sent)."""
from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone
from typing import Any

from bot.config import Config
from bot.durations import format_duration
from flows import survey_routes as routing
from storage import zns
from storage import zalo as zalo_store

COMMANDS = ("zalo",)


def register(sub: Any, config_help: str) -> None:
    zalo = sub.add_parser("zalo", help="Zalo OA and ZNS commands", description="Zalo OA and ZNS commands.")
    zsub = zalo.add_subparsers(dest="zalo_command", required=True, metavar="ZALO_COMMAND")
    status = zsub.add_parser(
        "status", help="token ages, last refresh, ZNS quota left today, survey routes (7 days)",
        description="Print the Zalo token pair's age and last refresh (or failure), today's ZNS messages and "
        "VND against [zalo.zns] limits, and the surveys sent per route over the last 7 days.")
    status.add_argument("--config", help=config_help)


def _age(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "never"
    hours = (now - at).total_seconds() / 3600
    return f"{at.isoformat(timespec='minutes')} ({hours:.1f} h ago)"


async def run(config: Config, args: argparse.Namespace | None, now: datetime | None = None) -> int:
    if not config.zalo_enabled:
        print("zalo: off (no zalo.app_id)")
        return 0
    policy = config.zns_policy()
    now = now or datetime.now(timezone.utc)
    db = config.database.open()
    await db.open()
    try:
        async with db.transaction() as tx:
            pair = await zalo_store.load_tokens(tx)
            rotated = await zalo_store.tokens_updated_at(tx)
            health = await zns.health(tx)
            spent = await zns.spend_of(tx, routing.quota_day(now, policy))
            routes = await zns.route_counts(tx, now - timedelta(days=7), now + timedelta(minutes=1))
            resolutions = await zns.resolution_counts(tx, now - timedelta(days=7), now + timedelta(minutes=1))
    finally:
        await db.close()
    every = format_duration(config.zalo.refresh_every)
    print(f"token pair: {'stored (rotated)' if pair else 'from the config (never rotated)'}, rotated {_age(rotated, now)}")
    if pair and pair.expires_at:
        print(f"access token expires: {pair.expires_at.isoformat(timespec='minutes')}")
    print(f"last scheduled refresh: {_age(health.refreshed_at, now)} (every {every})")
    if health.failed_at:
        print(f"LAST REFRESH FAILED: {_age(health.failed_at, now)}: {health.failure} -- re-authorize the app for the OA")
    if policy.enabled:
        left = "no limit" if not policy.daily_messages else str(max(0, policy.daily_messages - spent.messages))
        budget = "no limit" if not policy.daily_budget_vnd else f"{max(0, policy.daily_budget_vnd - spent.vnd)} VND"
        print(f"ZNS today: {spent.messages} messages, {spent.vnd} VND; left: {left} messages, {budget}")
    else:
        print("ZNS: off ([zalo.zns] enabled = false)")
    print("surveys sent per route (7 days): " + (", ".join(f"{k} {v}" for k, v in sorted(routes.items())) or "none"))
    if policy.resolution_usable or any(resolutions):
        print(f"resolution ratings by ZNS (7 days): {resolutions[0]} asked, {resolutions[1]} answered")
    return 0
