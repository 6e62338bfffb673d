#!/usr/bin/env python3
"""Benchmark: sales-system order webhooks ingested per second, end to end: signature check ->
delivery recorded -> mapped -> purchase stored -> survey scheduled, at C deliveries in flight.

The bot runs in a child process (`--serve`: the real FeedbotApp on a fresh SQLite file, one
source per platform, no Telegram); this process signs N
distinct orders the way each platform does (testkit/orders.py), spread over the five
platforms, and posts them C at a time. A request's latency is until its answer, which comes
once the delivery is handled (within the 1 s budget). At the end the purchases and scheduled
surveys are counted in the database: each delivery must have made exactly one of each.

    .venv/bin/python bench/order_webhooks.py [--deliveries N] [--concurrency C] [--rounds R]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench.harness as h  # noqa: E402  (sets sys.path and NO_PROXY)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sqlite3  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402

import aiohttp  # noqa: E402

from bot.app import FeedbotApp  # noqa: E402
from bot.config import parse_config  # noqa: E402
from bot.sources.settings import parse_sources  # noqa: E402
from testkit import orders as kit  # noqa: E402

SECRETS = {"haravan": "hrv-bench-secret-1", "sapo": "sapo-bench-secret", "kiotviet": "kv-bench-secret-1",
           "shopify": "shopify-bench-key", "woocommerce": "wc-bench-secret-1"}
PLATFORMS = tuple(SECRETS)


def delivery(n: int, when: str) -> tuple[str, dict[str, str], bytes]:
    platform = PLATFORMS[n % len(PLATFORMS)]
    phone = f"09{n:08d}"
    if platform == "haravan":
        body = kit.haravan_order(100000 + n, name=f"#B{n}", phone=phone) | {"created_at": when}
        topic = "orders/paid"
    elif platform == "sapo":
        body = kit.sapo_go_order(200000 + n, code=f"SON{n}", phone=phone) | {"issued_on": when}
        topic = "orders/update"
    elif platform == "kiotviet":
        body = kit.kiotviet_invoice(300000 + n, code=f"HD{n}", notification_id=f"kv-{n}",
                                    delivery={"Status": 3, "ContactNumber": phone})
        body["Notifications"][0]["Data"][0]["PurchaseDate"] = when
        topic = ""
    elif platform == "shopify":
        body = kit.shopify_order(400000 + n, name=f"#S{n}", phone=phone) | {"created_at": when}
        topic = "orders/fulfilled"
    else:
        body = kit.woocommerce_order(500000 + n, phone=phone) | {"date_created_gmt": when[:19]}
        topic = "order.updated"
    headers, raw = kit.signed(platform, SECRETS[platform], body, topic=topic, delivery_id=f"bench-{n}")
    return platform, headers, raw


async def serve(db_path: str, database_url: str) -> None:
    logging.basicConfig(level=logging.WARNING)
    raw = {
        "shop": {"name": "Shop An"},
        "database": {"path": db_path, "url": database_url},
        "http": {"port": 0, "api_token": "bench-api-token-0123456789"},
        "survey": {"quiet_hours": "00:00-00:00", "max_lateness": "48h"},
        "web": {"enabled": False},
        "agent_page": {"enabled": False},
    }
    config = parse_config(raw, {})
    config = dataclasses.replace(config, sources=parse_sources(
        [{"name": p, "platform": p, "secret": s} for p, s in SECRETS.items()]))
    app = FeedbotApp(config)
    await app.start(scheduler=False)
    print(json.dumps({"url": app.base_url}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # until the parent is done
    await app.stop()


async def round_(deliveries: int, concurrency: int, database_url: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        db_path = str(Path(tmp) / "feedbot.db")
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--serve", db_path, database_url,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert child.stdout is not None and child.stdin is not None
        url = json.loads(await child.stdout.readline())["url"]
        when = (datetime.now(timezone.utc) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        prepared = [delivery(n, when) for n in range(deliveries)]
        latencies: list[float] = []
        errors: list[str] = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
            async def send(item: tuple[str, dict[str, str], bytes]) -> None:
                platform, headers, raw = item
                began = time.perf_counter()
                async with http.post(f"{url}/webhooks/orders/{platform}", data=raw, headers=headers) as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{resp.status} {body[:200]!r}")
                latencies.append(time.perf_counter() - began)

            await h.run_pool(prepared[:50], concurrency, send, errors)  # warm-up (connections, caches)
            latencies.clear()
            began = time.perf_counter()
            await h.run_pool(prepared[50:], concurrency, send, errors)
            elapsed = time.perf_counter() - began
        if errors:
            raise h.BenchError(errors[0])
        await asyncio.sleep(1.5)  # anything handled in the background after its answer
        child.stdin.write(b"\n")
        await child.stdin.drain()
        await child.wait()
        if database_url:
            import asyncpg

            conn = await asyncpg.connect(database_url)
            purchases = await conn.fetchval("SELECT COUNT(*) FROM purchases")
            scheduled = await conn.fetchval("SELECT COUNT(*) FROM surveys WHERE status = 'scheduled'")
            await conn.close()
        else:
            with sqlite3.connect(db_path) as conn:
                purchases = conn.execute("SELECT COUNT(*) FROM purchases").fetchone()[0]
                scheduled = conn.execute("SELECT COUNT(*) FROM surveys WHERE status = 'scheduled'").fetchone()[0]
    if purchases != deliveries or scheduled != deliveries:
        raise h.BenchError(f"{deliveries} deliveries made {purchases} purchases, {scheduled} surveys scheduled")
    measured = deliveries - 50
    return {"rate": measured / elapsed, "p50": h.pct(latencies, 50), "p99": h.pct(latencies, 99)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(h.host_line())
    print(f"{args.deliveries} signed order deliveries over 5 platforms, {args.concurrency} in flight, "
          f"{args.rounds} rounds (SQLite)")
    for n in range(args.rounds):
        r = await round_(args.deliveries, args.concurrency, "")
        print(f"  round {n + 1}: {r['rate']:.0f} webhooks/s, p50 {r['p50'] * 1000:.1f} ms, p99 {r['p99'] * 1000:.1f} ms"
              f" (each made one purchase and one scheduled survey)")
    print(h.host_line())


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        asyncio.run(serve(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else ""))
    else:
        asyncio.run(main())
