"""`feedbot demo` and `feedbot web-token`: the web chat's commands."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from bot.clock import SystemClock
from bot.config import Config
from bot.services.demo import create_demo_purchase
from bot.channels.web.server import chat_url, customer_token, expiry, load_secrets

COMMANDS = ("demo", "web-token")


def add_parsers(sub: Any, config_help: str) -> None:
    demo = sub.add_parser(
        "demo", help="create a demo purchase and print its web survey link",
        description="Create a demo purchase for a new demo customer (through the same code as the purchase API) "
        "with its survey due now, and print the web chat link that opens the survey (and the Telegram deep "
        "link if a bot username is known). The running bot (`feedbot run`) serves the page.",
    )
    demo.add_argument("--config", help=config_help)
    token = sub.add_parser(
        "web-token", help="print a signed customer token for the web chat widget",
        description="Print the token the shop's site passes to the widget (data-customer-token) for a logged-in "
        "customer, linking the web chat to that customer: base64url(external_id).expiry.base64url(HMAC-SHA256("
        "secret, 'customer:' + external_id + ':' + expiry)), padding stripped, expiry in unix seconds (0: never).",
    )
    token.add_argument("external_id", nargs="?", help="the customer's id in the shop's system (customer.external_id)")
    token.add_argument("--days", type=int, default=30, help="valid for this many days (0: no expiry; default 30)")
    token.add_argument("--show-secret", action="store_true", help="print the signing secret instead (for the shop's site)")
    token.add_argument("--config", help=config_help)


async def run(config: Config, args: argparse.Namespace) -> int:
    if not config.web.enabled:
        print("feedbot: the web chat is off (web.enabled = false)", file=sys.stderr)
        return 2
    clock = SystemClock()
    async with config.database.open() as db:
        async with db.transaction() as tx:
            secrets = await load_secrets(tx, config)
        if args.command == "web-token":
            if args.show_secret:
                print(secrets.customer)
            elif not args.external_id:
                print("feedbot: web-token needs the customer's external_id (or --show-secret)", file=sys.stderr)
                return 2
            else:
                print(customer_token(secrets.customer, args.external_id, expiry(clock.now(), args.days)))
            return 0
        outcome = await create_demo_purchase(db, clock, config.survey_policy(), config.survey.touchpoints)
    base = config.local_url()
    print(f"demo order {outcome.order_id}: survey due now")
    print(f"web: {chat_url(base, outcome.link_token)}")
    username = config.telegram.bot_username.lstrip("@")
    if username:
        print(f"telegram: https://t.me/{username}?start={outcome.link_token}")
    return 0
