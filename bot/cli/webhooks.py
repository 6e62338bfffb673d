"""`feedbot webhooks list|add|remove|enable|test|redeliver|rotate-secret|deliveries|secret`
(registered by bot/cli/main.py): the shop's outgoing webhook endpoints."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bot.clock import SystemClock
from bot.config import Config
from bot.webhooks.admin import BadInput, WebhookAdmin, parse_events, parse_url
from bot.webhooks.events import EVENT_TYPES
from bot.webhooks.worker import WebhookSettings
from storage.timefmt import to_db

EXIT_BAD_INPUT = 2
EXIT_NOT_FOUND = 1
STATUSES = ("pending", "sending", "delivered", "dead")


def _id(value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise argparse.ArgumentTypeError(f"expected an endpoint id (a number, see `feedbot webhooks list`), got {value[:40]!r}")
    return int(value)


def add_commands(sub: Any, config_help: str) -> None:
    hooks = sub.add_parser(
        "webhooks", help="outgoing webhooks: the shop's other tools get answers, complaints, digests",
        description="Endpoints that receive events as signed HTTP POSTs (Standard Webhooks v1: headers webhook-id, "
        "webhook-timestamp, webhook-signature). Event types: " + ", ".join(EVENT_TYPES) + ". The running bot "
        "delivers them, retrying for about 3 days; see the README for the payloads.",
    )
    hsub = hooks.add_subparsers(dest="webhooks_command", required=True, metavar="WEBHOOKS_COMMAND")

    def command(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        p = hsub.add_parser(name, help=help_text, description=description)
        p.add_argument("--config", help=config_help)
        return p

    p = command("list", "the endpoints, their events and queues", "List the endpoints: id, status, URL, events, "
                "deliveries pending and dead, the secret shortened.")
    p.add_argument("--json", action="store_true", help="as JSON (secrets shortened too)")
    p = command("add", "subscribe a URL to events; prints its whsec_ secret",
                "Add an endpoint and print its signing secret (whsec_...): give it to the receiver to verify "
                "each request (`feedbot webhooks secret <id>` prints it again).")
    p.add_argument("url", help="where to POST, https:// recommended")
    p.add_argument("--events", required=True, help="comma-separated event types, or * for all: " + ",".join(EVENT_TYPES))
    p.add_argument("--description", default="", help="a note for yourself (e.g. 'Google Sheet of answers')")
    p.add_argument("--redirect-ok", action="store_true",
                   help="count a 3xx answer as received (never followed): for a Google Apps Script web app, which "
                   "answers a POST with a redirect after running the script")
    p = command("remove", "remove an endpoint and its queued deliveries", "Remove an endpoint; what it has not "
                "received yet is dropped.")
    p.add_argument("id", type=_id)
    p = command("enable", "re-enable an endpoint (after it answered 410 Gone)", "Re-enable an endpoint disabled "
                "because it answered 410 Gone. Its dead letters stay dead: `redeliver` them if wanted.")
    p.add_argument("id", type=_id)
    p = command("test", "send a webhook.test event now and print the answer",
                "Send a signed webhook.test event to the endpoint now and print its answer. Exit 0 on 2xx, 1 "
                "otherwise (the bot retries it like any other).")
    p.add_argument("id", type=_id)
    p = command("redeliver", "queue a delivery (or every delivery of an event) again",
                "Queue again, now and with a fresh retry schedule, a delivery (its id, from `deliveries`) or "
                "every endpoint's delivery of one event (its webhook-id, msg_...). Same webhook-id: receivers "
                "that already have it can skip it.")
    p.add_argument("id", help="a delivery id or a webhook-id (msg_...)")
    p = command("rotate-secret", "give an endpoint a new secret (the old one signs too for a while)",
                "Generate a new secret and print it. For webhooks.rotation_overlap (default 24h) every request "
                "carries two signatures (v1,<new> v1,<old>): switch the receiver to the new secret meanwhile.")
    p.add_argument("id", type=_id)
    p = command("secret", "print an endpoint's current secret", "Print the endpoint's current whsec_ secret.")
    p.add_argument("id", type=_id)
    p = command("deliveries", "recent deliveries: status, attempts, last answer (dead letters too)",
                "Show recent deliveries, newest first.")
    p.add_argument("--status", choices=STATUSES, help="only these (dead: the dead letters)")
    p.add_argument("--endpoint", type=_id, help="only to this endpoint")
    p.add_argument("--limit", type=int, default=50, help="how many (default 50)")


def _short(secret: str) -> str:
    return secret[:10] + "…"


async def run(config: Config, args: argparse.Namespace) -> int:
    settings = WebhookSettings.from_config(config)
    async with config.database.open() as db:
        admin = WebhookAdmin(db, SystemClock(), settings)
        try:
            return await _run(admin, args)
        except BadInput as exc:
            print(f"feedbot: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT


def _missing(endpoint_id: int) -> int:
    print(f"feedbot: no webhook endpoint {endpoint_id} (see `feedbot webhooks list`)", file=sys.stderr)
    return EXIT_NOT_FOUND


async def _run(admin: WebhookAdmin, args: argparse.Namespace) -> int:
    cmd = args.webhooks_command
    if cmd == "list":
        endpoints, counts = await admin.list()
        rows = [{
            "id": e.id, "status": e.status, "url": e.url, "events": list(e.events), "description": e.description,
            "pending": counts.get((e.id, "pending"), 0) + counts.get((e.id, "sending"), 0),
            "delivered": counts.get((e.id, "delivered"), 0), "dead": counts.get((e.id, "dead"), 0),
            "secret": _short(e.secret), "disabled_reason": e.disabled_reason,
        } for e in endpoints]
        if args.json:
            print(json.dumps(rows, ensure_ascii=False, indent=2))
        elif not rows:
            print("no webhook endpoints (add one: feedbot webhooks add URL --events survey.answered,...)")
        for r in rows if not args.json else []:
            state = r["status"] + (f" ({r['disabled_reason']})" if r["disabled_reason"] else "")
            print(f"{r['id']}  {state}  {r['url']}  {','.join(r['events'])}  pending {r['pending']}, delivered "
                  f"{r['delivered']}, dead {r['dead']}  secret {r['secret']}" + (f"  # {r['description']}" if r["description"] else ""))
        return 0
    if cmd == "add":
        url = parse_url(args.url)
        if url.startswith("http://"):
            print("feedbot: warning: http:// sends customers' data unencrypted; use https:// outside your own network",
                  file=sys.stderr)
        endpoint = await admin.add(url, parse_events(args.events), args.description.strip(), redirect_ok=args.redirect_ok)
        print(f"endpoint {endpoint.id}: {endpoint.url}")
        print(f"events: {', '.join(endpoint.events)}")
        print(f"secret: {endpoint.secret}")
        return 0
    if cmd == "remove":
        return 0 if await admin.remove(args.id) else _missing(args.id)
    if cmd == "enable":
        return 0 if await admin.enable(args.id) else _missing(args.id)
    if cmd == "secret":
        endpoint = await admin.get(args.id)
        if endpoint is None:
            return _missing(args.id)
        print(endpoint.secret)
        return 0
    if cmd == "rotate-secret":
        rotated = await admin.rotate(args.id)
        if rotated is None:
            return _missing(args.id)
        endpoint, until = rotated
        print(f"secret: {endpoint.secret}")
        print(f"the previous secret also signs until {to_db(until)} (UTC)")
        return 0
    if cmd == "test":
        result = await admin.test(args.id)
        if result is None:
            return _missing(args.id)
        attempt = result.attempt
        if attempt is None:
            print(f"{result.msg_id}: not sent now (the endpoint asked to wait); the bot will deliver it")
            return 1
        if attempt.ok:
            print(f"{result.msg_id}: HTTP {attempt.status} in {attempt.elapsed_ms:.0f} ms")
            return 0
        print(f"{result.msg_id}: failed: {attempt.error} (the bot retries it, delivery {result.delivery_id})")
        return 1
    if cmd == "redeliver":
        queued = await admin.redeliver(args.id)
        if not queued:
            print(f"feedbot: nothing to redeliver for {args.id} (unknown, in flight, or its payload was purged)",
                  file=sys.stderr)
            return EXIT_NOT_FOUND
        print(f"queued again: {', '.join(map(str, queued))}")
        return 0
    if cmd == "deliveries":
        if args.limit < 1:
            raise BadInput("--limit must be at least 1")
        for d in await admin.deliveries(status=args.status, endpoint_id=args.endpoint, limit=args.limit):
            when = to_db(d.delivered_at) if d.delivered_at else f"next {to_db(d.next_attempt_at)}" if d.status == "pending" else ""
            print(f"{d.id}  {d.status}  {d.msg_id}  {d.type}  endpoint {d.endpoint_id}  attempts {d.attempts}  "
                  f"{when}  {d.last_error or ''}".rstrip())
        return 0
    raise AssertionError(cmd)
