#!/usr/bin/env python3
"""Benchmark: outgoing webhook deliveries (bot/webhooks/worker.py) to a local receiver.

The receiver (aiohttp, answers 200, counts, checks every 1000th signature) runs in a child
process; this process runs the real worker against a real database (SQLite in a temp dir, or
PostgreSQL with --database-url). Two phases:

1. throughput: N events written, then drained by the worker: deliveries per second;
2. backlog: 100,000 events written first (the receiver was down), then drained, printing
   the worker process's RSS along the way: memory must stay flat (it claims batches, it
   never loads the backlog).

    .venv/bin/python bench/outgoing_webhooks.py [--events 5000] [--backlog 100000] [--database-url URL]

The machine is shared: read the figures as noisy.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench.harness as h  # noqa: E402  (sets sys.path and NO_PROXY)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from bot.clock import SystemClock  # noqa: E402
from bot.webhooks import events, signing  # noqa: E402
from bot.webhooks.worker import WebhookSettings, WebhookWorker  # noqa: E402
from storage import webhooks  # noqa: E402
from storage.db import open_database  # noqa: E402

WRITE_BATCH = 500  # events per transaction while filling the backlog
SAMPLE = {"survey_id": 1, "kind": "csat", "order_id": "A-1001", "score": 4, "comment": "Giao nhanh, đóng gói cẩn thận",
          "touchpoint": "delivery", "store": "Q1", "channel": "telegram", "language": "vi",
          "customer": {"id": "C-42", "name": "Nguyễn Thị Lan", "phone": "+84912345678"}}


# ------------------------------------------------------------------ the receiver (child)


async def receive(secret: str) -> None:
    count = 0
    bad = 0

    async def hook(request: web.Request) -> web.Response:
        nonlocal count, bad
        body = await request.read()
        count += 1
        if count % 1000 == 1:  # the signature, checked on a sample
            expected = signing.sign(secret, request.headers["webhook-id"], int(request.headers["webhook-timestamp"]), body)
            if expected not in request.headers["webhook-signature"].split(" "):
                bad += 1
        return web.Response(text="ok")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"count": count, "bad_signatures": bad})

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(json.dumps({"port": site._server.sockets[0].getsockname()[1]}), flush=True)  # type: ignore[union-attr]
    await asyncio.Event().wait()


# ------------------------------------------------------------------ the worker (this process)


async def fill(db, n: int) -> float:
    started = time.perf_counter()
    now = SystemClock().now()
    for first in range(0, n, WRITE_BATCH):
        async with db.transaction() as tx:
            for i in range(first, min(n, first + WRITE_BATCH)):
                await events.emit(tx, events.SURVEY_ANSWERED, {**SAMPLE, "survey_id": i}, now)
    return time.perf_counter() - started


async def unfinished(db) -> int:
    row = await db.fetchone("SELECT COUNT(*) FROM webhook_deliveries WHERE status IN ('pending', 'sending')")
    return row[0]


async def drain(db, settings: WebhookSettings, total: int, report_every: float | None) -> tuple[float, list[float]]:
    worker = WebhookWorker(db, SystemClock(), settings)
    task = asyncio.create_task(worker.run())
    started = time.perf_counter()
    rss: list[float] = [h.rss_mib()[0]]
    last = started
    try:
        while await unfinished(db):
            await asyncio.sleep(0.2)
            if task.done():
                raise RuntimeError(f"the worker stopped: {task.exception()!r}")
            if report_every and time.perf_counter() - last >= report_every:
                last = time.perf_counter()
                rss.append(h.rss_mib()[0])
                elapsed = last - started
                print(f"  {elapsed:6.1f}s  delivered {worker.delivered:>7}/{total}  {worker.delivered / elapsed:7.0f}/s"
                      f"  RSS {rss[-1]:6.1f} MiB", flush=True)
        elapsed = time.perf_counter() - started
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
    rss.append(h.rss_mib()[0])
    if worker.failed:
        print(f"  {worker.failed} failed attempts")
    return elapsed, rss


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000, help="events in the throughput phase (default 5000)")
    parser.add_argument("--backlog", type=int, default=100_000, help="events in the backlog phase (default 100000; 0: skip)")
    parser.add_argument("--concurrency", type=int, default=16, help="deliveries in flight (webhooks.concurrency; default 16)")
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a SQLite file in a temp dir)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(h.host_line())
    print("shared machine: figures are noisy")
    secret = signing.new_secret()
    child = subprocess.Popen([sys.executable, __file__, "--receive", secret], stdout=subprocess.PIPE, text=True)
    try:
        port = json.loads(child.stdout.readline())["port"]  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}"
        settings = WebhookSettings(concurrency=args.concurrency, poll_interval=timedelta(seconds=0.2))
        with tempfile.TemporaryDirectory() as tmp:
            async with open_database(Path(tmp) / "bench.db", args.database_url) as db:
                print(f"database: {'PostgreSQL' if args.database_url else 'SQLite (WAL)'}; concurrency {args.concurrency}")
                async with db.transaction() as tx:
                    await webhooks.add_endpoint(tx, url + "/hook", events.EVENT_TYPES, secret, "bench",
                                                datetime.now(timezone.utc))
                wrote = await fill(db, args.events)
                print(f"throughput: {args.events} events written in {wrote:.1f}s ({args.events / wrote:.0f}/s)")
                elapsed, _ = await drain(db, settings, args.events, None)
                print(f"throughput: {args.events} deliveries in {elapsed:.1f}s = {args.events / elapsed:.0f} deliveries/s")
                if args.backlog:
                    wrote = await fill(db, args.backlog)
                    print(f"backlog: {args.backlog} events written in {wrote:.1f}s ({args.backlog / wrote:.0f}/s); draining")
                    elapsed, rss = await drain(db, settings, args.backlog, 5.0)
                    print(f"backlog: {args.backlog} deliveries in {elapsed:.1f}s = {args.backlog / elapsed:.0f}/s;"
                          f" RSS at start {rss[0]:.1f} MiB, max {max(rss):.1f}, at end {rss[-1]:.1f}"
                          f" (peak of the process {h.rss_mib()[1]:.1f} MiB)")
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/stats") as resp:
                stats = await resp.json()
        expected = args.events + args.backlog
        print(f"receiver: {stats['count']} requests (expected {expected}), {stats['bad_signatures']} bad signatures in the sample")
        return 0 if stats["count"] >= expected and not stats["bad_signatures"] else 1
    finally:
        child.terminate()
        child.wait()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--receive":
        asyncio.run(receive(sys.argv[2]))
    else:
        sys.exit(asyncio.run(main()))
