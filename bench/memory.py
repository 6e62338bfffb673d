#!/usr/bin/env python3
"""Benchmark: the bot's memory with N open conversations.

The bot (the real FeedbotApp, webhook mode, real SQLite file, system clock) runs alone in a
child process; this process runs the fake Bot API and drives N simulated customers through the
HTTP API and the webhook, C at a time, leaving each one mid-conversation:

* a third wait for their score: purchase (made 3 h ago, so its survey is due) -> "/start
  <token>" -> welcome + survey question;
* a third wait for their comment: the same, then a low score tapped -> the follow-up question;
* a third are mid-complaint: the same as the first, then "/complaint" -> the bot asks which
  order.

The sender delivers everything as it comes (limits lifted: 1000 msg/s). Reported: the bot
process's RSS before, along the way and after, its peak RSS (VmHWM), RSS growth per open
conversation, the conversations by state, and the sender's per-chat memory (send times kept for
pacing) a moment after the last send: it must not hold one entry per customer ever served
(exit status 1 if it does, or if a customer did not get the expected messages).

    .venv/bin/python bench/memory.py [--conversations N] [--concurrency C]
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
from datetime import datetime, timedelta, timezone  # noqa: E402
from types import SimpleNamespace  # noqa: E402
from typing import Any  # noqa: E402

import aiohttp  # noqa: E402

from bot.app import FeedbotApp  # noqa: E402

SCRIPT = str(Path(__file__).resolve())
LAST_SENT_BOUND = 2048  # the sender's per-chat memory after an idle moment must stay under this


async def serve(args: argparse.Namespace) -> None:
    fake = SimpleNamespace(api_root=args.api)
    app = FeedbotApp(h.make_config(Path(args.dir), fake, polling=False, sender=h.UNTHROTTLED))  # type: ignore[arg-type]
    await app.start(scheduler=False)

    async def stats(_: dict[str, Any]) -> dict[str, Any]:
        app.sender.wake()  # one more pass: the sender forgets chats whose pacing has passed
        await asyncio.sleep(0.3)
        states = {r[0]: r[1] for r in await app.db.fetchall("SELECT state, COUNT(*) FROM conversations GROUP BY state")}
        inbox = tuple(await app.db.fetchone(
            "SELECT COUNT(*), COALESCE(SUM(processed_at IS NULL), 0), COALESCE(SUM(error IS NOT NULL), 0) FROM inbox"
        ))
        rss, hwm = h.rss_mib()
        return {
            "rss": rss, "hwm": hwm, "cpu_s": h.cpu_seconds(), "states": states, "inbox": inbox,
            "last_sent": len(app.sender.limiter), "in_flight": len(app.sender._in_flight),
        }

    try:
        await h.serve_commands({"port": app.port}, {"stats": stats})
    finally:
        await app.stop()


async def drive(args: argparse.Namespace) -> int:
    load_before = h.host_line()
    problems: list[str] = []
    samples: list[tuple[int, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="feedbot-memory-") as tmp:
        tg = h.BenchTelegramServer(h.BOT_TOKEN)
        await tg.start()
        child = await h.Child.spawn(SCRIPT, ["--api", tg.api_root, "--dir", tmp])
        try:
            base_url = f"http://127.0.0.1:{child.hello['port']}"
            samples.append((0, await child.ask({"cmd": "stats"})))
            purchased_at = (datetime.now(timezone.utc) - h.SURVEY_DELAY - timedelta(minutes=5)).isoformat()
            done = 0
            step = max(1, args.conversations // 10)
            t0 = time.monotonic()
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency + 8)) as http:
                hook = f"{base_url}{h.TELEGRAM_WEBHOOK_PATH}"

                async def webhook(update: dict[str, Any]) -> None:
                    async with http.post(hook, json=update, headers={h.TELEGRAM_SECRET_HEADER: h.WEBHOOK_SECRET}) as r:
                        await r.read()
                        if r.status != 200:
                            raise h.BenchError(f"webhook answered {r.status}")

                async def customer(i: int) -> None:
                    nonlocal done
                    uid = h.FIRST_USER_ID + i
                    token = await h.post_purchase(http, base_url, i, purchased_at)
                    await webhook(h.text_update(tg, uid, f"/start {token}"))
                    await tg.wait_chat(uid, 2, args.timeout)  # welcome, question
                    if i % 3 == 1:
                        await webhook(h.tap_update(tg, uid, 2))
                        await tg.wait_chat(uid, 3, args.timeout)  # the follow-up asks for a comment
                    elif i % 3 == 2:
                        await webhook(h.text_update(tg, uid, "/complaint"))
                        await tg.wait_chat(uid, 3, args.timeout)  # which order?
                    done += 1

                async def sampled(i: int) -> None:
                    await customer(i)
                    if done % step == 0:
                        samples.append((done, await child.ask({"cmd": "stats"})))

                errors: list[str] = []
                await h.run_pool(list(range(args.conversations)), args.concurrency, sampled, errors)
                problems += [f"customer {e}" for e in errors[:5]]
            drive_s = time.monotonic() - t0
            await asyncio.sleep(1.5)  # past the pacing interval of every chat
            final = await child.ask({"cmd": "stats"})
            samples.append((done, final))
        finally:
            await child.close()
            await tg.stop()

    base = samples[0][1]
    open_conversations = sum(v for k, v in final["states"].items() if k != "idle")
    if open_conversations != args.conversations:
        problems.append(f"{open_conversations} open conversations for {args.conversations} customers: {final['states']}")
    total, unprocessed, failed = final["inbox"]
    if unprocessed or failed:
        problems.append(f"inbox: {total} rows, {unprocessed} unprocessed, {failed} failed")
    if final["last_sent"] > LAST_SENT_BOUND:
        problems.append(f"the sender keeps {final['last_sent']} per-chat entries after an idle moment (bound {LAST_SENT_BOUND})")
    n = max(1, args.conversations)
    growth = (final["rss"] - base["rss"]) * 1024 / n
    tenth = next((s for c, s in samples if c >= n // 10 and c > 0), None)
    steady = ((final["rss"] - tenth["rss"]) * 1024 / (n - n // 10)) if tenth and n > 10 else float("nan")
    lines = [
        f"conversations: {args.conversations} open (a third each: awaiting a score, awaiting a comment, "
        f"mid-complaint), {args.concurrency} customers in flight, driven in {drive_s:.1f} s",
        "processes: the bot alone in a child process (measured); fake Bot API + simulated customers in this one",
        f"before: {load_before}",
        f"after:  {h.host_line()}",
        "bot RSS along the way (conversations: MiB): "
        + ", ".join(f"{c}: {s['rss']:.0f}" for c, s in samples),
        f"bot RSS: {base['rss']:.1f} MiB at start -> {final['rss']:.1f} MiB with {args.conversations} open conversations; "
        f"peak RSS (VmHWM) {final['hwm']:.1f} MiB",
        f"RSS growth per conversation: {growth:.2f} KiB overall, {steady:.2f} KiB after the first 10% (steady state)",
        f"conversations by state: {final['states']}",
        f"sender per-chat memory: {final['last_sent']} entries a moment after the last send "
        f"(bound {LAST_SENT_BOUND}); in flight {final['in_flight']}",
        f"bot CPU: {final['cpu_s'] - base['cpu_s']:.1f} s for {total} updates and their replies",
    ]
    lines.append("correctness: " + ("FAILED" if problems else "OK (every customer mid-conversation, every update "
                                    "processed, per-chat memory bounded)"))
    lines += [f"  - {p}" for p in problems]
    print(h.summary("memory: the bot process with open conversations", lines), flush=True)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="memory.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--conversations", "-n", type=int, default=10_000, metavar="N",
                   help="open conversations to create (default 10000)")
    p.add_argument("--concurrency", "-c", type=int, default=32, metavar="C", help="customers in flight (default 32)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for one reply (default 120)")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--api", help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return asyncio.run(serve(args) if args.serve else drive(args))


if __name__ == "__main__":
    sys.exit(main())
