#!/usr/bin/env python3
"""Benchmark: N surveys due at once, drained by the real sender against a fake Bot API that
enforces Telegram's flood limits.

Setup (not measured): N customers, each with a purchase (the real purchase path,
bot.services.purchases.record_purchase) and a chat linked by "/start <token>" (engine.receive, as the
webhook would call it), on a real SQLite file; the welcome messages are marked sent in the
database (the sender is held meanwhile), so the outbox then holds nothing but what is measured.

Measured: the fake clock moves past the survey delay, `dispatch_due()` writes the N survey
questions to the outbox, and the app's sender (default config: 30 msg/s overall, 1 s per chat)
delivers them to the in-process fake Bot API, which answers 429 with retry_after above
30 msg/s overall or 3 messages in 3 s per chat. Reported: time from the first to the last
sendMessage, achieved msg/s as a share of the 30 msg/s cap (goal >= 0.95), the number of 429s
(goal 0), and a check that every survey went out exactly once (exit status 1 otherwise).

    .venv/bin/python bench/outbound_drain.py [--surveys N]   # default 10000: about 6 minutes
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
from collections import Counter  # noqa: E402
from datetime import timedelta  # noqa: E402

from bot.app import FeedbotApp  # noqa: E402
from testkit.clock import FakeClock  # noqa: E402
from bot.services.purchases import parse_purchase, record_purchase  # noqa: E402

CAP = 30.0


async def setup(app: FeedbotApp, tg: h.BenchTelegramServer, clock: FakeClock, n: int) -> list[int]:
    """N customers with a linked chat and a survey due SURVEY_DELAY after now; returns user ids."""
    policy = app.config.survey_policy()
    touchpoints = app.config.survey.touchpoints
    users = [h.FIRST_USER_ID + i for i in range(n)]

    async def customer(i: int) -> None:
        body = {
            "order_id": f"D-{i:06d}",
            "customer": {"external_id": f"DC-{i:06d}", "name": f"Khách {i}"},
            "amount": 120000,
            "currency": "VND",
            "touchpoint": touchpoints[0],
            "purchased_at": clock.now().isoformat(),
        }
        data = parse_purchase(body, touchpoints=touchpoints, timezone=policy.timezone, now=clock.now())
        outcome = await record_purchase(app.db, clock, policy, data)
        update = h.text_update(tg, users[i], f"/start {outcome.link_token}")
        if not await app.engine.receive("telegram", update):
            raise h.BenchError(f"/start of customer {i} was not new")

    await h.gather_limited(range(n), 16, customer)
    async with app.db.transaction() as tx:  # the welcomes: not part of the measurement
        await tx.execute("UPDATE outbox SET status = 'sent' WHERE status = 'pending'")
    return users


async def run(args: argparse.Namespace) -> int:
    load_before = h.host_line()
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="feedbot-outbound-") as tmp:
        tg = h.BenchTelegramServer(h.BOT_TOKEN)
        await tg.start()
        clock = FakeClock(h.START)
        sender_cfg = {"messages_per_second": args.rate, "per_chat_interval": 1.0}
        app = FeedbotApp(h.make_config(Path(tmp), tg, polling=False, sender=sender_cfg), clock=clock)
        await app.start(scheduler=False)
        try:
            sender = app.sender

            async def hold() -> float:
                return 1.0

            sender.pump = hold  # type: ignore[method-assign]
            print(f"outbound_drain: setting up {args.surveys} customers with a linked chat ...", flush=True)
            t0 = time.monotonic()
            users = await setup(app, tg, clock, args.surveys)
            print(f"  set up in {time.monotonic() - t0:.1f} s", flush=True)
            tg.enforce_limits()  # Telegram's: 30/s overall, 3 per 3 s per chat, 429 + retry_after above
            tg.requests.clear()
            tg.count_429 = 0
            clock.advance(h.SURVEY_DELAY + timedelta(minutes=1))
            t_dispatch = time.monotonic()
            outcome = await app.dispatcher.dispatch_due()
            dispatch_s = time.monotonic() - t_dispatch
            if dict(outcome) != {"sent": args.surveys}:
                problems.append(f"dispatch_due: {dict(outcome)} (expected {args.surveys} sent)")
            print(f"  dispatch_due: {dict(outcome)} in {dispatch_s:.1f} s; draining at up to {args.rate:g} msg/s ...",
                  flush=True)
            del sender.pump
            sender.wake()
            deadline = time.monotonic() + args.surveys / args.rate * 2 + 120
            last_report = time.monotonic()
            while True:
                left = (await app.db.fetchone("SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending')"))[0]
                if left == 0:
                    break
                if time.monotonic() > deadline:
                    problems.append(f"outbox not drained in time: {left} left")
                    break
                if time.monotonic() - last_report > 30:
                    last_report = time.monotonic()
                    print(f"  {args.surveys - left} sent, {left} left, 429s so far {tg.count_429}", flush=True)
                await asyncio.sleep(0.2)
            await sender.stop()

            sends = [r for r in tg.requests if r.method == "sendMessage" and r.ok]
            times = sorted(r.time for r in sends)
            span = times[-1] - times[0] if len(times) > 1 else float("nan")
            achieved = (len(times) - 1) / span if len(times) > 1 else float("nan")
            per_chat = Counter(r.params.get("chat_id") for r in sends)
            questions = Counter(m.chat_id for m in tg.sent_messages() if h.score_buttons(m))
            not_once = [u for u in users if questions.get(u, 0) != 1]
            if not_once:
                problems.append(f"{len(not_once)} customer(s) did not get exactly one survey, e.g. "
                                f"{[(u, questions.get(u, 0)) for u in not_once[:3]]}")
            extra = {c: k for c, k in per_chat.items() if k != 1}
            if extra:
                problems.append(f"{len(extra)} chat(s) got other than one message: {list(extra.items())[:3]}")
            statuses = {r[0]: r[1] for r in await app.db.fetchall("SELECT status, COUNT(*) FROM surveys GROUP BY status")}
            if statuses != {"sent": args.surveys}:
                problems.append(f"surveys by status: {statuses}")
            outbox = {r[0]: r[1] for r in await app.db.fetchall("SELECT status, COUNT(*) FROM outbox GROUP BY status")}
            if set(outbox) != {"sent"}:
                problems.append(f"outbox rows not sent: {outbox}")
            if tg.internal_errors:
                problems.append(f"fake Bot API internal errors: {tg.internal_errors[:3]}")
            busiest = max(sum(1 for t in times if s <= t < s + 1.0) for s in times[:: max(1, len(times) // 500)]) if times else 0
            lines = [
                f"surveys: {args.surveys} due at once; sender {args.rate:g} msg/s overall (paces {h.fmt_s(sender.limiter.interval)} "
                f"apart), 1 s per chat; fake Bot API: 30 msg/s overall, 3 per 3 s per chat, 429 above",
                "process: one (bot + fake Bot API in-process; the fake costs little at 30 msg/s)",
                f"before: {load_before}",
                f"after:  {h.host_line()}",
                f"dispatch_due: {args.surveys} surveys to the outbox in {dispatch_s:.1f} s",
                f"first -> last sendMessage: {span:.1f} s for {len(times)} messages",
                f"achieved: {achieved:.2f} msg/s = {achieved / CAP:.3f} of the {CAP:g} msg/s cap (goal >= 0.95: "
                f"{'met' if achieved / CAP >= 0.95 else 'NOT met'}); busiest 1-s window {busiest}",
                f"429 answers: {tg.count_429} (goal 0: {'met' if tg.count_429 == 0 else 'NOT met'}); sender {dict(sender.stats)}",
                f"sender per-chat memory after the drain: {len(sender.limiter)} entries",
            ]
        finally:
            await app.stop()
            await tg.stop()
    lines.append("correctness: " + ("FAILED" if problems else "OK (every survey sent exactly once, outbox all sent)"))
    lines += [f"  - {p}" for p in problems]
    print(h.summary("outbound: due surveys drained against the fake Bot API's flood limits", lines), flush=True)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="outbound_drain.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--surveys", "-n", type=int, default=10_000, metavar="N", help="surveys due at once (default 10000)")
    p.add_argument("--rate", type=float, default=CAP, help="sender.messages_per_second (default 30)")
    args = p.parse_args(argv)
    if args.surveys < 2:
        p.error("--surveys must be at least 2")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
