"""Issue 7, item 10: 8 concurrent writers on one SQLite file for 60 s, zero "database is locked".

The real app (its own Database class: WAL, busy_timeout, BEGIN IMMEDIATE behind a writer
lock) runs against the fake Bot API while eight writers hammer the same file:

1. inbox-chat      customers chatting: engine.receive (inbox row, flow, outbox, in one transaction)
2. inbox-complaint customers opening and cancelling complaints: engine.receive
3. purchases-api   the shop posting purchases over HTTP
4. sender          the app's own sender draining the outbox to the fake Bot API
5. scheduler       dispatch_due, expire, remind and the SLA watchdog, the clock moving on
6. digest          the weekly digest queued for the owners, week after week (chart included)
7. second-conn     another Database on the same file (as `feedbot digest --send` would be),
                   recording purchases: SQLite-level contention, not only our asyncio lock
8. other-process   a separate OS process inserting inbox rows through its own Database

Every writer counts what it did and every error; any "database is locked" anywhere (an
exception, a log line, an inbox or outbox error column) fails the test. The figures are
printed (run with -s to see them). Marked slow: it takes the 60 s the issue asks for
(FEEDBOT_WRITERS_SECONDS shortens it while developing); CI runs it.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from bot.services.purchases import parse_purchase, record_purchase
from flows.digest import Week
from storage.db import Database
from tests.conftest import API_TOKEN, Harness, make_config, purchase_body

ROOT = Path(__file__).resolve().parents[2]
SECONDS = float(os.environ.get("FEEDBOT_WRITERS_SECONDS", "60"))
OWNERS = [7001, 7002]
GROUP = -1005550001

OTHER_PROCESS = textwrap.dedent("""
    import asyncio, json, sys, time
    from datetime import datetime, timezone
    from storage import inbox
    from storage.db import Database

    async def main(path, seconds):
        done, locked, errors = 0, 0, []
        async with Database(path) as db:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    async with db.transaction() as tx:
                        await inbox.record(tx, "loadtest", f"p-{done}", {"n": done}, datetime.now(timezone.utc))
                    done += 1
                except Exception as exc:
                    locked += "database is locked" in str(exc)
                    errors.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.002)
        print(json.dumps({"done": done, "locked": locked, "errors": errors[:5]}))

    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
""")


class Tally:
    def __init__(self) -> None:
        self.done: Counter[str] = Counter()
        self.locked: Counter[str] = Counter()
        self.errors: dict[str, list[str]] = {}

    async def loop(self, name: str, step, stop: asyncio.Event, pause: float = 0.0) -> None:
        while not stop.is_set():
            try:
                self.done[name] += await step()
            except Exception as exc:
                if "database is locked" in str(exc):
                    self.locked[name] += 1
                self.errors.setdefault(name, []).append(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(pause)


class LockedLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage() + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        if "locked" in text.lower():
            self.lines.append(text[:300])


@pytest.mark.slow
async def test_eight_concurrent_writers_never_see_database_is_locked(tmp_path, tg, clock):
    tg.make_group(GROUP, "Agents", is_forum=False, members={9001: "Minh"})
    config = make_config(
        tmp_path, tg,
        agents={"chat_id": GROUP, "agent_ids": [9001], "owner_chat_ids": OWNERS},
        sender={"group_messages_per_minute": 6000, "messages_per_second": 200},
    )
    h = Harness(config, tg, clock)
    watcher = LockedLines()
    logging.getLogger().addHandler(watcher)
    tally = Tally()
    stop = asyncio.Event()
    try:
        app = await h.start()
        db_path = config.database.path
        other = subprocess.Popen(
            [sys.executable, "-c", OTHER_PROCESS, db_path, str(SECONDS)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        users = itertools.cycle(range(100_000, 100_200))
        complainers = itertools.cycle(range(200_000, 200_050))
        orders = itertools.count()
        second_orders = itertools.count()
        weeks = itertools.count()

        async def chat() -> int:
            return await app.engine.receive("telegram", tg.make_message_update(next(users), "xin chào shop"))

        async def complaint() -> int:
            user = next(complainers)
            await app.engine.receive("telegram", tg.make_message_update(user, "/complaint"))
            await app.engine.receive("telegram", tg.make_message_update(user, "/cancel"))
            return 2

        async def purchase() -> int:
            n = next(orders)
            body = purchase_body(f"W-{n}", customer={"external_id": f"C-W{n % 500}", "name": "Lan"},
                                 purchased_at=clock.now().isoformat())
            async with h.http.post(f"{h.url}/api/v1/purchases", json=body,
                                   headers={"Authorization": f"Bearer {API_TOKEN}"}) as resp:
                if resp.status not in (200, 202):
                    raise AssertionError(f"purchase {n}: HTTP {resp.status} {await resp.text()}")
            return 1

        async def sender_progress() -> int:
            before = app.sender.stats["sent"]
            await asyncio.sleep(1.0)
            return app.sender.stats["sent"] - before  # the running sender is the writer

        async def scheduler() -> int:
            clock.advance(timedelta(minutes=10))
            outcomes = await app.dispatcher.dispatch_due()
            expired = await app.dispatcher.expire()
            await app.dispatcher.remind()
            await app.sla.watch_sla()
            return 1 + sum(outcomes.values()) + sum(expired.values())

        async def digest() -> int:
            n = next(weeks)
            return await app.digests.send(Week(2020 + n // 52, n % 52 + 1))

        async with Database(db_path) as second:
            policy = config.survey_policy()

            async def second_connection() -> int:
                n = next(second_orders)
                body = purchase_body(f"X-{n}", customer={"external_id": f"C-X{n % 500}", "name": "Minh"},
                                     purchased_at=clock.now().isoformat())
                data = parse_purchase(body, touchpoints=config.survey.touchpoints, timezone=config.tz,
                                      now=clock.now())
                await record_purchase(second, clock, policy, data)
                return 1

            began = time.monotonic()
            loops = [
                tally.loop("inbox-chat", chat, stop),
                tally.loop("inbox-complaint", complaint, stop),
                tally.loop("purchases-api", purchase, stop),
                tally.loop("sender", sender_progress, stop),
                tally.loop("scheduler", scheduler, stop, pause=0.05),
                tally.loop("digest", digest, stop, pause=0.2),
                tally.loop("second-conn", second_connection, stop),
            ]
            tasks = [asyncio.create_task(c) for c in loops]
            await asyncio.sleep(SECONDS)
            stop.set()
            await asyncio.gather(*tasks)
            elapsed = time.monotonic() - began

        deadline = time.monotonic() + 30
        while other.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        out, err = other.communicate(timeout=5)
        assert other.returncode == 0, err
        proc = json.loads(out.strip().splitlines()[-1])
        tally.done["other-process"] = proc["done"]
        tally.locked["other-process"] = proc["locked"]
        if proc["errors"]:
            tally.errors["other-process"] = proc["errors"]

        await app.sender.drain(180)  # the contract is "never locked", not the drain speed (CI may be loaded)
        inbox_locked = await h.rows("SELECT COUNT(*) AS n FROM inbox WHERE error LIKE '%locked%'")
        outbox_locked = await h.rows("SELECT COUNT(*) AS n FROM outbox WHERE last_error LIKE '%locked%'")
        integrity = await h.rows("PRAGMA integrity_check")
    finally:
        stop.set()
        logging.getLogger().removeHandler(watcher)
        await h.close()

    figures = ", ".join(f"{name} {tally.done[name]} ({tally.done[name] / elapsed:.1f}/s)" for name in (
        "inbox-chat", "inbox-complaint", "purchases-api", "sender", "scheduler", "digest", "second-conn",
        "other-process"))
    print(f"\nitem 10: {elapsed:.0f} s, 8 writers: {figures}; 'database is locked': "
          f"{sum(tally.locked.values())} raised, {len(watcher.lines)} logged, "
          f"{inbox_locked[0]['n']} inbox / {outbox_locked[0]['n']} outbox rows")
    assert sum(tally.locked.values()) == 0, tally.errors
    assert watcher.lines == []
    assert inbox_locked[0]["n"] == 0 and outbox_locked[0]["n"] == 0
    assert tally.errors == {}
    assert all(tally.done[name] > 0 for name in (
        "inbox-chat", "inbox-complaint", "purchases-api", "sender", "scheduler", "digest", "second-conn", "other-process"))
    assert integrity[0]["integrity_check"] == "ok"
