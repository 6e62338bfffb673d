"""`feedbot source add|list|status|remove`: connect a sales system (see bot/sources/)."""
from __future__ import annotations

import argparse
import secrets
import sys
from typing import Any

from bot.clock import SystemClock
from bot.config import Config
from bot.sources.kiotviet_api import KiotVietError
from bot.sources.registry import SourceRegistry, client_for
from bot.sources.settings import PLATFORMS, SourceError, SourceSettings, parse_source
from bot.sources import kiotviet
from flows.orders import DELIVERED_ON
from storage import orders

COMMANDS = ("source",)
EXIT_USAGE = 2
GENERATED_SECRET = ("woocommerce", "kiotviet")  # we choose the secret and the shop pastes it (or we register it)


def add_parsers(sub: Any, config_help: str) -> None:
    source = sub.add_parser(
        "source", help="connect a sales system (Haravan, Sapo, KiotViet, Shopify, WooCommerce)",
        description="Order sources: each sales system's order webhooks start surveys by themselves. Sources come "
        "from [[sources]] in the config file or are added here (kept in the database; the running bot picks them "
        "up within seconds).")
    source_sub = source.add_subparsers(dest="source_command", required=True, metavar="SOURCE_COMMAND")
    add = source_sub.add_parser(
        "add", help="add a source and print its webhook URL and where to paste it",
        description="Add an order source and print the webhook URL (<http.public_url>/webhooks/orders/<name>) "
        "and the click path in the platform's admin, in Vietnamese and English. KiotViet is registered by this "
        "command through its API (--retailer, --client-id, --client-secret). For WooCommerce and KiotViet a "
        "secret is generated if none is given.")
    add.add_argument("platform", choices=sorted(PLATFORMS), help="the sales system")
    add.add_argument("--name", help="the source's name, in its URL (default: the platform's name)")
    add.add_argument("--secret", help="the key the platform signs with (Haravan: the webhook authentication "
                     "string; Shopify: the key shown under Webhooks; Sapo: the app's secret)")
    add.add_argument("--delivered-on", choices=DELIVERED_ON,
                     help="what counts as 'the customer has the goods' (default per platform, see the README)")
    add.add_argument("--verify-token", help="Haravan: the hub.verify_token of API subscriptions (default: the secret)")
    add.add_argument("--retailer", help="KiotViet: the shop's retailer name (the part before .kiotviet.vn)")
    add.add_argument("--client-id", help="KiotViet: the API client id")
    add.add_argument("--client-secret", help="KiotViet: the API client secret")
    add.add_argument("--config", help=config_help)
    listing = source_sub.add_parser("list", help="list the sources and their webhook URLs",
                                    description="List every order source (config file and added), its webhook URL.")
    listing.add_argument("--config", help=config_help)
    status = source_sub.add_parser(
        "status", help="what each source delivered, and refused requests",
        description="Per source: deliveries by status, purchases made, the last delivery (and for KiotViet which "
        "signature form matched), refused requests (bad signature, bad body) with the last reason.")
    status.add_argument("name", nargs="?", help="one source (default: all)")
    status.add_argument("--config", help=config_help)
    remove = source_sub.add_parser("remove", help="remove a source added with `source add`",
                                   description="Remove a source added with `feedbot source add` (a source in the "
                                   "config file is removed by editing the file). Its history stays.")
    remove.add_argument("name")
    remove.add_argument("--config", help=config_help)


async def run(config: Config, args: argparse.Namespace) -> int:
    async with config.database.open() as db:
        registry = SourceRegistry(db, config.sources)
        sources = await registry.load()
        command = args.source_command
        if command == "add":
            return await _add(config, db, sources, args)
        if command == "list":
            return _list(config, sources)
        if command == "remove":
            return await _remove(config, db, args.name)
        return await _status(db, sources, args.name)


def _base_url(config: Config) -> tuple[str, bool]:
    public = config.http.public_url
    return (public, True) if public else (f"http://{config.http.host}:{config.http.port}", False)


async def _add(config: Config, db: Any, sources: dict[str, SourceSettings], args: argparse.Namespace) -> int:
    name = args.name or args.platform
    if name in sources:
        where = "the config file" if sources[name].origin == "config" else "an earlier `source add`"
        print(f"feedbot: --name: a source named {name!r} exists already (from {where})", file=sys.stderr)
        return EXIT_USAGE
    secret = args.secret
    generated = False
    if not secret:
        if args.platform not in GENERATED_SECRET:
            print(f"feedbot: --secret: required for {args.platform} (the key {args.platform} signs its webhooks "
                  "with; see --help)", file=sys.stderr)
            return EXIT_USAGE
        secret, generated = secrets.token_urlsafe(24), True
    raw: dict[str, Any] = {"name": name, "platform": args.platform, "secret": secret}
    for key in ("delivered_on", "verify_token", "retailer", "client_id", "client_secret"):
        if getattr(args, key):
            raw[key] = getattr(args, key)
    try:
        source = parse_source(raw, "source", "cli")
    except SourceError as exc:
        print(f"feedbot: {str(exc).removeprefix('source.').replace('_', '-', 1)}", file=sys.stderr)
        return EXIT_USAGE
    base, public = _base_url(config)
    url = source.webhook_url(base)
    if args.platform == "kiotviet":
        missing = [flag for flag, value in (("--retailer", source.retailer), ("--client-id", source.client_id),
                                            ("--client-secret", source.client_secret)) if not value]
        if missing:
            print(f"feedbot: {missing[0]}: KiotViet is registered through its API; give --retailer, --client-id "
                  "and --client-secret (Store settings → API connection settings)", file=sys.stderr)
            return EXIT_USAGE
        if not public:
            print("feedbot: http.public_url: KiotViet must reach the bot; set the public https address first",
                  file=sys.stderr)
            return EXIT_USAGE
        client = client_for(source, (config.orders.kiotviet_token_url, config.orders.kiotviet_api_url))
        try:
            for kind in kiotviet.WEBHOOK_TYPES:
                await client.register_webhook(kind, url, source.secret)
        except KiotVietError as exc:
            print(f"feedbot: KiotViet did not register the webhook: {exc}; nothing was added", file=sys.stderr)
            return 1
        finally:
            await client.close()
    async with db.transaction() as tx:
        await orders.add_source(tx, name, args.platform, source.as_stored(), SystemClock().now())
    print(f"source {name} ({args.platform}) added; surveys start on: {source.delivered_on}")
    print(f"webhook URL: {url}")
    if not public:
        print("  (http.public_url is not set: the platform must reach this address; set the public https URL)")
    if generated:
        print(f"secret: {secret}")
    if args.platform == "kiotviet":
        print(f"KiotViet: webhook {', '.join(kiotviet.WEBHOOK_TYPES)} registered to {url}")
    for lang, label in (("vi", "Tiếng Việt"), ("en", "English")):
        print(f"\n[{label}]")
        print(source.module.admin_steps[lang].format(url=url))
    return 0


def _list(config: Config, sources: dict[str, SourceSettings]) -> int:
    if not sources:
        print("no order sources (add one: feedbot source add <platform>, or [[sources]] in the config file)")
        return 0
    base, _ = _base_url(config)
    for source in sources.values():
        state = "" if source.enabled else ", disabled"
        print(f"{source.name}\t{source.platform}\tdelivered on {source.delivered_on}\t"
              f"({source.origin}{state})\t{source.webhook_url(base)}")
    return 0


async def _remove(config: Config, db: Any, name: str) -> int:
    if any(s.name == name for s in config.sources):
        print(f"feedbot: {name!r} is in the config file: remove its [[sources]] entry there", file=sys.stderr)
        return EXIT_USAGE
    async with db.transaction() as tx:
        removed = await orders.remove_source(tx, name)
    if not removed:
        print(f"feedbot: no source named {name!r} was added with `source add`", file=sys.stderr)
        return EXIT_USAGE
    print(f"source {name} removed")
    return 0


async def _status(db: Any, sources: dict[str, SourceSettings], name: str | None) -> int:
    if name is not None and name not in sources:
        print(f"feedbot: no source named {name!r} (see `feedbot source list`)", file=sys.stderr)
        return EXIT_USAGE
    chosen = [sources[name]] if name else list(sources.values())
    if not chosen:
        print("no order sources")
        return 0
    async with db.transaction() as tx:
        for source in chosen:
            st = await orders.status(tx, source.name)
            counts = ", ".join(f"{k} {v}" for k, v in sorted(st["deliveries"].items())) or "none yet"
            print(f"{source.name} ({source.platform}): deliveries: {counts}; purchases: {st['purchases']}")
            last = st["last_delivery"]
            if last:
                signature = f", signature {last['signature']}" if source.platform == "kiotviet" else ""
                print(f"  last delivery {last['at']:%Y-%m-%d %H:%M} UTC: {last['status']} ({last['outcome'] or '-'}){signature}")
            if st["rejected"]:
                lr = st["last_rejected"]
                print(f"  ⚠ refused requests: {st['rejected']}, last {lr['at']:%Y-%m-%d %H:%M} UTC: {lr['reason']}")
    return 0
