"""`feedbot` command line: run the bot, check the config, migrate the database, show the API token."""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Sequence

from bot import logs
from bot.app import FeedbotApp, StartupError
from bot.config import ENV_SECRETS, Config, ConfigError, load_config
from storage import settings
from storage.db import Database, MigrationError

log = logging.getLogger("feedbot")

EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feedbot",
        description="Self-hosted customer feedback bot: CSAT surveys after each purchase, over Telegram.",
    )
    config_help = "TOML config file (default: $FEEDBOT_CONFIG, else ./config.toml if present, else built-in defaults)"
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the bot (HTTP API, Telegram, scheduler) until Ctrl-C",
                         description="Run the bot until interrupted (Ctrl-C or SIGTERM).")
    run.add_argument("--config", help=config_help)

    check = sub.add_parser("check-config", help="validate the config and print what it sets",
                           description="Validate the config file; exit 2 naming the bad key if it is invalid.")
    check.add_argument("--config", help=config_help)

    db = sub.add_parser("db", help="database commands", description="Database commands.")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    migrate = db_sub.add_parser("migrate", help="apply pending migrations (also done at start)",
                                description="Apply every SQL migration not applied yet, in order.")
    migrate.add_argument("--config", help=config_help)

    token = sub.add_parser("api-token", help="print the HTTP API bearer token",
                           description="Print the bearer token the shop's systems use for the HTTP API "
                           "(the configured one, else the one generated and kept in the database).")
    token.add_argument("--config", help=config_help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"feedbot: invalid config: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logs.setup(config.get("logging", "level"), _secrets(config))
    if args.command == "run":
        return asyncio.run(_run(config))
    if args.command == "check-config":
        return _check_config(config)
    if args.command == "db":
        return asyncio.run(_migrate(config))
    if args.command == "api-token":
        return asyncio.run(_api_token(config))
    raise AssertionError(args.command)


def _secrets(config: Config) -> list[str]:
    return [config.get(section, key) for section, key in ENV_SECRETS]


def _check_config(config: Config) -> int:
    telegram = "off (no telegram.token)"
    if config.telegram_enabled:
        telegram = "webhook" if config.telegram_webhook else "long polling"
    print(f"config OK ({config.source})")
    print(f"  shop: {config.get('shop', 'name')} ({config.get('shop', 'timezone')}, {config.get('shop', 'language')})")
    print(f"  database: {config.get('database', 'path')}")
    print(f"  HTTP API: http://{config.get('http', 'host')}:{config.get('http', 'port')}")
    print(f"  telegram: {telegram}")
    s = config.section("survey")
    print(f"  surveys: {s['delay']} after purchase, quiet hours {s['quiet_hours'][0]:%H:%M}-{s['quiet_hours'][1]:%H:%M},"
          f" expire after {s['expires_after']}, at most one per {s['fatigue_days']} days")
    return 0


async def _migrate(config: Config) -> int:
    db = Database(config.get("database", "path"))
    try:
        await db.open(migrate=False)
        applied = await db.migrate()
    except MigrationError as exc:
        print(f"feedbot: {exc}", file=sys.stderr)
        return 1
    finally:
        await db.close()
    print(f"applied: {', '.join(applied)}" if applied else "database is up to date")
    return 0


async def _api_token(config: Config) -> int:
    if config.get("http", "api_token"):
        print(config.get("http", "api_token"))
        return 0
    import secrets as random_secrets

    async with Database(config.get("database", "path")) as db:
        async with db.transaction() as tx:
            token = await settings.get_or_create(tx, "api_token", lambda: random_secrets.token_urlsafe(24))
    print(token)
    return 0


async def _run(config: Config) -> int:
    app = FeedbotApp(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await app.start()
    except StartupError as exc:
        print(f"feedbot: cannot start: {exc}", file=sys.stderr)
        await app.stop()
        return EXIT_CONFIG
    telegram = "not configured (set telegram.token or $FEEDBOT_TELEGRAM_TOKEN)"
    if app.telegram is not None:
        telegram = f"@{app.bot_username} by {'webhook' if config.telegram_webhook else 'long polling'}"
    log.info("feedbot is running: HTTP API on %s, Telegram %s, database %s (config: %s)",
             app.base_url, telegram, config.get("database", "path"), config.source)
    log.info("the API bearer token: run `feedbot api-token`; post purchases to %s/api/v1/purchases", app.base_url)
    await stop.wait()
    log.info("stopping...")
    await app.stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
