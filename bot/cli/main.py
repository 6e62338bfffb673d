"""`feedbot` command line: run the bot, check the config, migrate the database, show the API token,
the weekly digest and exports."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

from bot import logs
from bot.cli import backup as backup_cli, order_import as import_cli, privacy as privacy_cli, sources as sources_cli, users as users_cli, web as web_cli, webhooks as webhooks_cli, zalo as zalo_cli
from bot.app import FeedbotApp, StartupError
from bot.clock import SystemClock
from bot.config import Config, ConfigError, load_config
from bot.durations import format_duration
from flows.digest import Week, parse_week, render_text, to_json, week_bounds
from flows.texts import SUPPORTED
from storage import settings
from bot.services.backups import Backups, BackupSettings
from storage.backup import BackupError
from storage.db import MigrationError

log = logging.getLogger("feedbot")

EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feedbot",
        description="Self-hosted customer feedback bot: CSAT surveys after each purchase, over Telegram.",
    )
    config_help = "TOML config file (default: $FEEDBOT_CONFIG, else ./config.toml if present, else built-in defaults)"
    # Accepted before the command too (`feedbot --config X run`); the one after it wins.
    parser.add_argument("--config", dest="global_config", metavar="CONFIG", help=config_help)
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
    copy = db_sub.add_parser(
        "copy", help="copy a SQLite database into PostgreSQL, verified",
        description="Copy every table of a feedbot SQLite file into a PostgreSQL database (migrated first), "
        "in batches, with progress on stderr; run it again to resume. Then prints each table's row counts and "
        "checksums on both sides; exit 1 if any differ. Stop the bot first (see the README, PostgreSQL).")
    copy.add_argument("--from", dest="source", required=True, metavar="FILE", help="the SQLite file (database.path)")
    copy.add_argument("--to", dest="target", required=True, metavar="URL", help="postgresql://user@host:5432/dbname")
    copy.add_argument("--batch", type=int, default=5000, help="rows per batch (default: 5000)")
    copy.add_argument("--config", help=config_help)
    backup_cli.add_commands(db_sub, config_help)

    token = sub.add_parser("api-token", help="print the HTTP API bearer token",
                           description="Print the bearer token the shop's systems use for the HTTP API "
                           "(the configured one, else the one generated and kept in the database).")
    token.add_argument("--config", help=config_help)

    digest = sub.add_parser(
        "digest", help="print, save or send the owners' weekly digest",
        description="The weekly digest (CSAT, complaints, what customers said, alerts) for one ISO week, shop time. "
        "Prints it as text or JSON (the same JSON as GET /api/v1/reports/weekly), saves its chart as PNG, "
        "or queues it for the owner chats (--send; the running bot delivers it, once per owner and week).",
    )
    digest.add_argument("--week", type=_week_arg, metavar="YYYY-Www",
                        help="ISO week like 2026-W47 (default: the last complete week)")
    digest.add_argument("--format", choices=("text", "json", "png"), default="text", help="default: text")
    digest.add_argument("--language", choices=SUPPORTED, help="language of the text and chart (default: digest.language)")
    digest.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout (png: default digests/digest-<week>.png next to the database)")
    digest.add_argument("--send", action="store_true",
                        help="also queue it for every owner chat (agents.owner_chat_ids) that has not had this week")
    digest.add_argument("--slices", action="store_true",
                        help="print the owners' feedback page and each department's and store's digest instead "
                        "(survey programs, ideas, the journey view, staff; text only)")
    digest.add_argument("--config", help=config_help)

    export = sub.add_parser(
        "export", help="export surveys, tickets or messages of a date range as CSV or JSON Lines",
        description="Export the rows created from --from to --to (whole days, shop time, both included), "
        "oldest first, streamed in batches with progress on stderr. Times are ISO 8601 in shop time. "
        "messages: what customers sent (inbox) and what the bot sent (outbox). "
        "A CSV file written with --output starts with a UTF-8 BOM so spreadsheet apps read Vietnamese right.",
    )
    export.add_argument("--from", dest="start", type=_date_arg, required=True, metavar="YYYY-MM-DD", help="first day")
    export.add_argument("--to", dest="end", type=_date_arg, required=True, metavar="YYYY-MM-DD", help="last day (included)")
    export.add_argument("--what", choices=("surveys", "tickets", "messages"), required=True)
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="default: csv")
    export.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    export.add_argument("--config", help=config_help)
    web_cli.add_parsers(sub, config_help)
    privacy_cli.add_commands(sub, config_help)
    sources_cli.add_parsers(sub, config_help)
    import_cli.add_parsers(sub, config_help)
    users_cli.add_commands(sub, config_help)
    rollups = sub.add_parser("rollups", help="the dashboard's and digests' rollups",
                             description="The rollups: CSAT answers per shop day, store, touchpoint, tier, channel;"
                             " surveys sent; complaints; the purchase CSAT per journey stage and staff; program answers.")
    rollups_sub = rollups.add_subparsers(dest="rollups_command", required=True, metavar="ROLLUPS_COMMAND")
    rebuild = rollups_sub.add_parser(
        "rebuild", help="recompute every rollup row from the surveys and tickets",
        description="Recompute the rollups from the surveys, program surveys and tickets in one transaction (the bot does it by itself at start "
        "when shop.timezone or the VIP rule changed). Safe while the bot runs: answers wait for it.")
    rebuild.add_argument("--config", help=config_help)
    webhooks_cli.add_commands(sub, config_help)
    zalo_cli.register(sub, config_help)
    return parser


def _week_arg(value: str) -> Week:
    try:
        return parse_week(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# Export days: both ends become UTC times (shop time, the day after --to): dates far out
# would overflow, and nothing the bot stores is older or newer anyway.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9998, 12, 31)


def _date_arg(value: str) -> date:
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-11-30, got {value[:40]!r}") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise argparse.ArgumentTypeError(f"expected a date from {FIRST_DAY} to {LAST_DAY}, got {value[:40]!r}")
    return day


async def _rebuild_rollups(config: Config) -> int:
    from bot.services import rollups as rollup_service

    async with config.database.open() as db:
        written = await rollup_service.rebuild(db, config.rollup_rule())
    print(f"rollups rebuilt (CSAT, sends, complaints, journey and staff, programs): {written} rows")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(getattr(args, "config", None) or args.global_config)
    except ConfigError as exc:
        print(f"feedbot: invalid config: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logs.setup(config.logging.level, _secrets(config))
    if args.command == "run":
        return asyncio.run(_run(config))
    if args.command == "check-config":
        return _check_config(config)
    if args.command == "db":
        if args.db_command in backup_cli.COMMANDS:
            return asyncio.run(backup_cli.run(config, args))
        return asyncio.run(_db_copy(args) if args.db_command == "copy" else _migrate(config))
    if args.command == "api-token":
        return asyncio.run(_api_token(config))
    if args.command in web_cli.COMMANDS:
        return asyncio.run(web_cli.run(config, args))
    if args.command in ("digest", "export"):
        try:
            return asyncio.run(_digest(config, args) if args.command == "digest" else _export(config, args))
        except BrokenPipeError:
            # The reader went away (`feedbot export ... | head`): stop quietly like other tools.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    if args.command in zalo_cli.COMMANDS:
        return asyncio.run(zalo_cli.run(config, args))
    if args.command in ("customer", "privacy"):
        return asyncio.run(privacy_cli.run(config, args))
    if args.command in sources_cli.COMMANDS:
        return asyncio.run(sources_cli.run(config, args))
    if args.command in import_cli.COMMANDS:
        return asyncio.run(import_cli.run(config, args))
    if args.command == "rollups":
        return asyncio.run(_rebuild_rollups(config))
    if args.command in users_cli.COMMANDS:
        return asyncio.run(users_cli.run(config, args))
    if args.command == "webhooks":
        return asyncio.run(webhooks_cli.run(config, args))
    raise AssertionError(args.command)


def _secrets(config: Config) -> list[str]:
    return config.secrets()


def _check_config(config: Config) -> int:
    telegram = "off (no telegram.token)"
    if config.telegram_enabled:
        telegram = "webhook" if config.telegram_webhook else "long polling"
    print(f"config OK ({config.source})")
    print(f"  shop: {config.shop.name} ({config.shop.timezone}, {config.shop.language})")
    print(f"  database: {config.database.describe()}")
    print(f"  HTTP API: http://{config.http.host}:{config.http.port}")
    print(f"  telegram: {telegram}")
    if config.web.enabled:
        print(f"  web chat: /chat and /widget.js{', demo mode' if config.web_demo else ''}")
    s = config.survey
    quiet_start, quiet_end = s.quiet_hours
    quiet = "none" if quiet_start == quiet_end else f"{quiet_start:%H:%M}-{quiet_end:%H:%M}"
    print(f"  surveys: {format_duration(s.delay)} after purchase, quiet hours {quiet},"
          f" expire after {format_duration(s.expires_after)}, at most {s.max_per_period} per {s.fatigue_days} days"
          " across every program and channel")
    feedback = config.feedback
    for p in feedback.programs:
        print(f"  program {p.name}: {p.kind}, {p.trigger.kind}, priority {p.priority}")
    if not feedback.programs:
        print("  programs: none (the purchase CSAT only)")
    h = config.holidays
    if h.tet:
        from flows.holidays import lunar_new_year

        year = SystemClock().now().year
        tet = [lunar_new_year(y) for y in (year, year + 1)]
        print(f"  holidays: Tết ({', '.join(d.isoformat() for d in tet)}; {h.tet_days_before} day(s) before,"
              f" {h.tet_days_after} after) and {len(h.dates)} other date(s)")
    for d in feedback.routes.departments:
        print(f"  department {d.name}: chat {d.chat_id}, categories {', '.join(d.categories) or '-'},"
              f" idea topics {', '.join(d.idea_topics) or '-'}")
    for m in feedback.routes.stores:
        print(f"  store {m.store}: manager chat {m.chat_id}")
    for line in Backups(BackupSettings.from_config(config), SystemClock()).describe():
        print(line)
    print(f"  survey routes: {', '.join(_routes(config))}")
    return 0


def _routes(config: Config) -> list[str]:
    """What a survey can take: the chats, Zalo CS inside the window, ZNS by phone."""
    routes = []
    if config.telegram_enabled:
        routes.append("Telegram chat")
    if config.zalo_enabled:
        routes.append("Zalo CS message (inside the 7-day interaction window)")
        zns = config.zns_policy()
        if zns.enabled:
            limits = [f"{zns.daily_messages}/day" if zns.daily_messages else "",
                      f"{zns.daily_budget_vnd} VND/day" if zns.daily_budget_vnd else ""]
            shown = ", ".join(x for x in limits if x) or "no daily limit of ours"
            routes.append(f"ZNS template by phone ({', '.join(f'{l}={t}' for l, t in zns.survey_templates)};"
                          f" {shown}; no sends {zns.night_start:%H:%M}-{zns.night_end:%H:%M})")
            if zns.resolution_usable:
                routes.append("resolution rating by ZNS where the chat is closed"
                              f" ({', '.join(f'{l}={t}' for l, t in zns.resolution_templates)})")
            else:
                routes.append("resolution rating: in the ticket's chat only (no zalo.zns.resolution_templates)")
        else:
            routes.append("ZNS off: buyers outside the window are skipped as unreachable")
    if config.web.enabled:
        routes.append("web chat (receipt link)")
    return routes or ["none"]


async def _migrate(config: Config) -> int:
    db = config.database.open()
    before = None
    try:
        await db.open(migrate=False)
        before = await Backups(BackupSettings.from_config(config), SystemClock()).before_migrating(db)
        if before is not None:
            print(f"backup taken before migrating: {before.path}")
        applied = await db.migrate()
    except BackupError as exc:
        print(f"feedbot: the backup before migrating failed, nothing was changed: {exc}", file=sys.stderr)
        return 1
    except MigrationError as exc:
        print(f"feedbot: {exc}", file=sys.stderr)
        if before is not None:
            print(f"feedbot: to go back: run the feedbot version you had before, or `feedbot db restore {before.path}`",
                  file=sys.stderr)
        return 1
    finally:
        await db.close()
    print(f"applied: {', '.join(applied)}" if applied else "database is up to date")
    return 0


async def _db_copy(args: argparse.Namespace) -> int:
    from storage.copy import CopyError, copy_database  # asyncpg only when asked for
    from storage.pg import is_url

    if not is_url(args.target):
        print(f"feedbot: --to: expected a postgresql:// URL, got {args.target!r}", file=sys.stderr)
        return EXIT_CONFIG
    if args.batch < 1:
        print("feedbot: --batch: expected a positive number of rows", file=sys.stderr)
        return EXIT_CONFIG
    try:
        checks = await copy_database(args.source, args.target, batch=args.batch)
    except CopyError as exc:
        print(f"feedbot: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"{'table':<16} {'rows (sqlite)':>13} {'rows (pg)':>10}  {'checksum (sqlite)':<17} {'checksum (pg)':<17} ok")
    for c in checks:
        print(f"{c.table:<16} {c.source_rows:>13} {c.target_rows:>10}  {c.source_sum:<17} {c.target_sum:<17}"
              f" {'yes' if c.ok else 'NO'}")
    bad = [c.table for c in checks if not c.ok]
    print(f"feedbot: copy differs in {', '.join(bad)}" if bad else "copy verified: every table matches",
          file=sys.stderr if bad else sys.stdout)
    return 1 if bad else 0


async def _api_token(config: Config) -> int:
    if config.http.api_token:
        print(config.http.api_token)
        return 0
    import secrets as random_secrets

    async with config.database.open() as db:
        async with db.transaction() as tx:
            token = await settings.get_or_create(tx, "api_token", lambda: random_secrets.token_urlsafe(24))
    print(token)
    return 0


async def _digest(config: Config, args: argparse.Namespace) -> int:
    from bot.services.digest import default_png_path, service_for  # matplotlib only when asked for

    if args.send and not (config.telegram_enabled and config.agents.owner_chat_ids):
        print("feedbot: --send needs telegram.token and agents.owner_chat_ids", file=sys.stderr)
        return EXIT_CONFIG
    clock = SystemClock()
    async with config.database.open() as db:
        service = service_for(config, db, clock, owners=args.send)
        week = args.week or service.default_week()
        if args.send and week_bounds(week, config.tz)[1] > clock.now():
            print(f"feedbot: --send: week {week} is not over yet", file=sys.stderr)
            return EXIT_CONFIG
        if args.slices:
            from bot.app import feedback_digest_for

            pages = await feedback_digest_for(config, db, clock, telegram=True).texts(week)
            print("\n\n".join(f"--- {slice_} ({recipient})\n{body}" for recipient, slice_, _, body in pages)
                  or f"nothing to show for {week}: no programs, stages, staff, departments or stores")
            return 0
        language = args.language or config.digest.language
        digest = await service.build(week)
        if args.format == "png":
            path = Path(args.output) if args.output else default_png_path(week, config.database.path)
            path.write_bytes(await service.chart(digest, language))
            print(f"chart for {week} written to {path}")
        else:
            body = render_text(digest, language) if args.format == "text" else json.dumps(to_json(digest), ensure_ascii=False, indent=2)
            if args.output:
                Path(args.output).write_text(body + "\n", encoding="utf-8")
            else:
                print(body)
        if args.send:
            queued = await service.send(week, args.language)
            print(f"digest {week} queued for {queued} owner chat(s)" if queued
                  else f"digest {week} was already sent to every owner chat", file=sys.stderr)
    return 0


async def _export(config: Config, args: argparse.Namespace) -> int:
    from bot.services.export import export

    if args.end < args.start:
        print("feedbot: --to is before --from", file=sys.stderr)
        return EXIT_CONFIG
    tz = config.tz
    start = datetime.combine(args.start, datetime.min.time(), tzinfo=tz).astimezone(timezone.utc)
    end = datetime.combine(args.end + timedelta(days=1), datetime.min.time(), tzinfo=tz).astimezone(timezone.utc)
    async with config.database.open() as db:
        if not args.output:
            count = await export(db, args.what, args.format, start, end, sys.stdout, tz)
        else:
            # Written aside and renamed at the end: a failed export leaves no half file behind.
            target = Path(args.output)
            partial = target.with_name(target.name + ".part")
            encoding = "utf-8-sig" if args.format == "csv" else "utf-8"
            with partial.open("w", encoding=encoding, newline="") as out:
                count = await export(db, args.what, args.format, start, end, out, tz)
            os.replace(partial, target)
    print(f"exported {count} {args.what} row(s)" + (f" to {args.output}" if args.output else ""), file=sys.stderr)
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
    except BaseException:
        await app.stop()  # its threads would keep the process alive: a supervisor must see it exit
        raise
    telegram = "not configured (set telegram.token or $FEEDBOT_TELEGRAM_TOKEN)"
    if app.telegram is not None:
        telegram = f"@{app.bot_username} by {'webhook' if config.telegram_webhook else 'long polling'}"
    log.info("feedbot is running: HTTP API on %s, Telegram %s, database %s (config: %s)",
             app.base_url, telegram, config.database.describe(),
             config.source)
    log.info("the API bearer token: run `feedbot api-token`; post purchases to %s/api/v1/purchases", app.base_url)
    if app.web is not None:
        print(f"Web chat: {app.web_chat_url()}", flush=True)
        log.info("web chat: open %s (agents: %s/agent, sign in with an account: `feedbot user add`, or the setup link above); "
                 "a demo survey: `feedbot demo`%s", app.web_chat_url(),
                 app.base_url, " or the page's demo button" if config.web_demo else "")
    await stop.wait()
    log.info("stopping...")
    await app.stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
