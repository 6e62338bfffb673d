#!/usr/bin/env python3
"""Benchmark: N due surveys split across the Zalo CS and ZNS routes, against the fake Zalo
server (testkit/zalo_api.py) with its quotas, drained by the real sender.

Setup (not measured): N customers with a purchase (the real purchase path). Half are Zalo
followers who wrote to the OA today (known to us only by the Zalo user id the shop gave, so
the route asks Zalo's user detail for their last interaction: CS); the other half have only a
phone number (ZNS). The ZNS template is registered in the fake (parameters checked), our
[zalo.zns] daily_messages is the ZNS half plus a margin, the fake's own daily quota above it.

Measured: `dispatch_due()` (the route decision for every survey, Zalo's user-detail lookups,
the ZNS spend reserved, the outbox written), then the drain: messages per second per route
from the first to the last arrival at the fake, as a share of each route's configured rate.
While draining, `--timeouts` ZNS sends are answered only after the request timed out (the
fake charges them): each is retried with the same tracking_id (our outbox id), and the fake
counts a second charge for a tracking id as a double charge (goal 0). Also: the pure route
decision (flows/survey_routes.choose_route) per survey, in microseconds.

    .venv/bin/python bench/zns_routes.py [--surveys N] [--cs-rate 50] [--zns-rate 50] [--timeouts 20]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench.harness as h  # noqa: E402  (sets sys.path and NO_PROXY)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import timedelta  # noqa: E402

from bot.app import FeedbotApp  # noqa: E402
from bot.config import parse_config  # noqa: E402
from bot.services.purchases import parse_purchase, record_purchase  # noqa: E402
from flows.survey_routes import Candidate, choose_route  # noqa: E402
from testkit.clock import FakeClock  # noqa: E402
from testkit.zalo_api import FakeZaloServer  # noqa: E402

TEMPLATE = "424242"
PARAMS = {"customer_name", "order_code", "shop_name", "survey_link"}
FIRST_ZALO_USER = 6_000_000_000_000_000_000


def config(tmp: Path, fake: FakeZaloServer, args: argparse.Namespace, zns_share: int):
    return parse_config({
        "shop": {"name": "Shop Bench"},
        "database": {"path": str(tmp / "feedbot.db")},
        "http": {"port": 0, "api_token": "bench-api-token-0123456789", "public_url": "https://shop.example"},
        "sender": {"messages_per_second": 1000, "per_chat_interval": 0.001, "request_timeout": 1.0,
                   "backoff_base": 0.2, "backoff_max": 2.0, "max_attempts": 8},
        "survey": {"quiet_hours": "00:00-00:00"},
        "zalo": {"app_id": fake.app_id, "oa_secret_key": fake.oa_secret_key, "app_secret": fake.app_secret,
                 "access_token": "AT-initial-0000000000", "refresh_token": "RT-initial-0000000000",
                 "api_base_url": fake.api_root, "oauth_base_url": fake.api_root, "messages_per_second": args.cs_rate,
                 "zns": {"enabled": True, "survey_templates": {"vi": TEMPLATE}, "api_base_url": fake.api_root,
                         "messages_per_second": args.zns_rate, "daily_messages": zns_share + 100,
                         "daily_budget_vnd": (zns_share + 100) * 200}},
    }, {})


async def setup(app: FeedbotApp, fake: FakeZaloServer, clock: FakeClock, n: int) -> tuple[int, int]:
    policy = app.config.survey_policy()
    touchpoints = app.config.survey.touchpoints
    cs = 0

    async def customer(i: int) -> None:
        nonlocal cs
        person: dict = {"external_id": f"ZC-{i:06d}", "name": f"Khách {i}"}
        if i % 2 == 0:
            user = str(FIRST_ZALO_USER + i)
            fake.add_follower(user)  # wrote to the OA today: inside the window
            person["zalo_user_id"] = user
            cs += 1
        else:
            person["phone"] = f"09{i:08d}"
        body = {"order_id": f"Z-{i:06d}", "customer": person, "amount": 120000, "currency": "VND",
                "touchpoint": touchpoints[0], "purchased_at": clock.now().isoformat()}
        data = parse_purchase(body, touchpoints=touchpoints, timezone=policy.timezone, now=clock.now())
        await record_purchase(app.db, clock, policy, data)

    await h.gather_limited(range(n), 16, customer)
    return cs, n - cs


def pure_route_cost(rounds: int = 200_000) -> float:
    """Microseconds per choose_route call over a mix of the cases."""
    now = h.START
    cases = [
        ([Candidate(1, "zalo", now - timedelta(days=1))], None),
        ([Candidate(1, "zalo", now - timedelta(days=9))], "84912345678"),
        ([], "84912345678"),
        ([Candidate(1, "zalo", None), Candidate(2, "telegram")], "84912345678"),
    ]
    t0 = time.perf_counter()
    for i in range(rounds):
        candidates, phone = cases[i & 3]
        choose_route(now=now, candidates=candidates, phone=phone, zns_usable=True)
    return (time.perf_counter() - t0) / rounds * 1e6


def rate(walls: list[float]) -> tuple[float, float]:
    walls = sorted(walls)
    span = walls[-1] - walls[0] if len(walls) > 1 else float("nan")
    return span, (len(walls) - 1) / span if len(walls) > 1 else float("nan")


async def run(args: argparse.Namespace) -> int:
    load_before = h.host_line()
    problems: list[str] = []
    clock = FakeClock(h.START)
    async with FakeZaloServer(clock) as fake:
        fake.register_template(TEMPLATE, PARAMS)
        fake.zns_daily_quota = args.surveys  # Zalo's own quota: above ours
        with tempfile.TemporaryDirectory(prefix="feedbot-zns-") as tmp:
            app = FeedbotApp(config(Path(tmp), fake, args, args.surveys // 2), clock=clock)
            await app.start(scheduler=False)
            try:
                sender = app.sender

                h.hold_sender(app)
                print(f"zns_routes: setting up {args.surveys} customers ...", flush=True)
                t0 = time.monotonic()
                cs_n, zns_n = await setup(app, fake, clock, args.surveys)
                print(f"  set up in {time.monotonic() - t0:.1f} s ({cs_n} Zalo followers, {zns_n} phone-only)", flush=True)
                clock.advance(timedelta(hours=3, minutes=1))
                t_dispatch = time.monotonic()
                outcome = await app.dispatcher.dispatch_due()
                dispatch_s = time.monotonic() - t_dispatch
                if dict(outcome) != {"sent": args.surveys}:
                    problems.append(f"dispatch_due: {dict(outcome)} (expected {args.surveys} sent)")
                lookups = app.routes.stats["lookups"] if app.routes else 0
                print(f"  dispatch_due: {dict(outcome)} in {dispatch_s:.1f} s ({lookups} user-detail lookups); draining ...",
                      flush=True)

                async def inject() -> None:
                    for _ in range(args.timeouts):
                        fake.zns_fail_next("timeout")
                        await asyncio.sleep(max(0.2, zns_n / args.zns_rate / max(1, args.timeouts) / 2))

                injector = asyncio.create_task(inject())
                h.release_sender(app)
                deadline = time.monotonic() + max(zns_n / args.zns_rate, cs_n / args.cs_rate) * 2 + 120
                while True:
                    left = (await app.db.fetchone("SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending')"))[0]
                    if left == 0 and injector.done():
                        break
                    if time.monotonic() > deadline:
                        problems.append(f"outbox not drained in time: {left} left")
                        break
                    await asyncio.sleep(0.2)
                injector.cancel()
                await sender.stop()
                cs_span, cs_rate = rate([m.wall for m in fake.messages])
                zns_span, zns_rate = rate([m.wall for m in fake.zns_messages])
                outbox = {r[0]: r[1] for r in await app.db.fetchall("SELECT status, COUNT(*) FROM outbox GROUP BY status")}
                routes = {r[0]: r[1] for r in await app.db.fetchall("SELECT route, COUNT(*) FROM surveys GROUP BY route")}
                if len(fake.messages) != cs_n or len(fake.zns_messages) != zns_n:
                    problems.append(f"delivered CS {len(fake.messages)}/{cs_n}, ZNS {len(fake.zns_messages)}/{zns_n}")
                if set(outbox) != {"sent"}:
                    problems.append(f"outbox rows not sent: {outbox}")
                if fake.double_charges:
                    problems.append(f"{fake.double_charges} double charge(s)")
                timed_out = args.timeouts - len(fake._zns_faults)
                retried = fake.zns_requests - len(fake.zns_messages)
            finally:
                await app.stop()
    pure_us = pure_route_cost()
    lines = [
        f"surveys: {args.surveys} due at once: {cs_n} by CS (followers inside the window), {zns_n} by ZNS (phone only)",
        "process: one (bot + fake Zalo server in-process; the machine is shared, figures are noisy)",
        f"before: {load_before}",
        f"after:  {h.host_line()}",
        f"dispatch_due: {dispatch_s:.2f} s = {dispatch_s / args.surveys * 1000:.3f} ms per survey (route decision,"
        f" {lookups} Zalo user-detail lookups outside the transaction, spend reserved, outbox written)",
        f"route decision, pure (choose_route): {pure_us:.2f} us per survey",
        f"CS:  {len(fake.messages)} messages in {cs_span:.1f} s = {cs_rate:.2f} msg/s = {cs_rate / args.cs_rate:.3f}"
        f" of the configured {args.cs_rate:g} msg/s",
        f"ZNS: {len(fake.zns_messages)} messages in {zns_span:.1f} s = {zns_rate:.2f} msg/s = {zns_rate / args.zns_rate:.3f}"
        f" of the configured {args.zns_rate:g} msg/s",
        f"ambiguous timeouts injected: {timed_out}; ZNS requests beyond one per message: {retried};"
        f" double charges: {fake.double_charges} (goal 0: {'met' if fake.double_charges == 0 else 'NOT met'})",
        f"routes recorded: {routes}; sender {dict(sender.stats)}",
    ]
    lines.append("correctness: " + ("FAILED" if problems else "OK (every survey delivered once on its route)"))
    lines += [f"  - {p}" for p in problems]
    print(h.summary("zns_routes: due surveys over the CS and ZNS routes against the fake Zalo server", lines), flush=True)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zns_routes.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--surveys", "-n", type=int, default=10_000, metavar="N", help="surveys due at once (default 10000)")
    p.add_argument("--cs-rate", type=float, default=50.0, help="zalo.messages_per_second (default 50)")
    p.add_argument("--zns-rate", type=float, default=50.0, help="zalo.zns.messages_per_second (default 50)")
    p.add_argument("--timeouts", type=int, default=20, help="ZNS sends answered after the timeout (default 20)")
    args = p.parse_args(argv)
    if args.surveys < 4:
        p.error("--surveys must be at least 4")
    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
