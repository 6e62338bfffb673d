#!/usr/bin/env python3
"""Benchmark: several feedbot instances on one PostgreSQL database (issue 22, phase 2).

1. Inbound: bench/inbound_vs_ptb.py's load (its mix of /start, score taps, comments and
   complaints, C webhook requests in flight, the sender held) against 1 instance on SQLite,
   1 on PostgreSQL and 2 on PostgreSQL (the requests spread round-robin over both, as a load
   balancer does), rounds alternating the order; each PostgreSQL round on a fresh database
   filled from the prepared file by `db copy`. Updates/s, the 2/1 ratio (goal >= 1.4) and
   PostgreSQL/SQLite.
2. Outbound: two `feedbot run` processes on one database drain N due surveys against the
   fake Bot API enforcing Telegram's limits (30/s overall, 1/s per chat, 429 above): the
   achieved rate as a share of the 30 msg/s cap, the 429s, every survey exactly once; where
   the time went: the 429s' times, gaps over 100 ms between accepted sends, leadership
   changes, and the leader's sender's own tally (seconds waiting for the limiter, the
   database, an in-flight slot, idle; logged at its stop).
3. Failover: two processes sending a steady stream (sender at --failover-rate msg/s); the
   leader is killed (SIGKILL) --kills times, each time restarted as a follower: kill -> the
   next sendMessage the fake receives, and that nothing was lost.

The PostgreSQL server is the local one; on the 2-core development machine it shares the cores
with the bot processes, the load generator and the fake (and, these days, other work).

    .venv/bin/python bench/cluster.py [--updates N] [--rounds R] [--surveys N] [--kills K] [--lease S]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench.harness as h  # noqa: E402  (sets sys.path and NO_PROXY)
import bench.inbound_vs_ptb as inbound  # noqa: E402
import bench.postgres as pg  # noqa: E402

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from typing import Any  # noqa: E402

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402

from bot.app import FeedbotApp  # noqa: E402
from storage.timefmt import to_db  # noqa: E402
from testkit.clock import FakeClock  # noqa: E402
from bench.outbound_drain import setup as setup_surveys  # noqa: E402

CAP = 30.0
ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------ inbound


class CpuMeter:
    """CPU seconds (user + system, from /proc through psutil) spent since it was made, per part:
    each instance, the PostgreSQL backends of the round's database, the rest of PostgreSQL (its
    WAL writer, checkpointer..., and other databases' backends), this process (the load
    generator). With it, what the round's backends were doing, sampled every 10 ms from
    pg_stat_activity: running, waiting for their instance (ClientRead), for a lock, for I/O."""

    def __init__(self, instance_pids: list[int], url: str | None) -> None:
        import psutil

        self._psutil = psutil
        self._instances = [psutil.Process(pid) for pid in instance_pids]
        self._db = url.rsplit("/", 1)[-1] if url else None
        self._url = url
        self._start = self._sample()

    @staticmethod
    def _queued(pid: int) -> float:
        """Seconds the process's threads were runnable but waiting for a core (/proc schedstat)."""
        total = 0
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                    total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            pass
        return total / 1e9

    def _sample(self) -> dict[str, float]:
        def secs(proc: Any) -> float:
            try:
                t = proc.cpu_times()
                return t.user + t.system
            except self._psutil.Error:
                return 0.0

        out = {f"instance {k}": secs(p) for k, p in enumerate(self._instances)}
        backends = server = queued = 0.0
        for proc in self._psutil.process_iter(["name", "cmdline"]):
            if proc.info["name"] != "postgres":
                continue
            title = " ".join(proc.info["cmdline"] or [])
            if self._db and f" {self._db} " in title:
                backends += secs(proc)
                queued += self._queued(proc.pid)
            else:
                server += secs(proc)
        out["pg backends"] = backends
        out["pg other"] = server
        out["load generator"] = secs(self._psutil.Process())
        out["instances waiting for a core"] = sum(self._queued(p.pid) for p in self._instances)
        out["backends waiting for a core"] = queued
        return out

    async def watch(self) -> None:
        """Sample the round's backends' states until cancelled."""
        import asyncpg

        self.states: Counter[str] = Counter()
        if self._db is None:
            return
        conn = await asyncpg.connect(self._url)
        try:
            while True:
                for state, kind, event in await conn.fetch(
                        "SELECT state, wait_event_type, wait_event FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        " AND backend_type = 'client backend' AND state <> 'idle'"):
                    self.states["running" if kind is None else f"{kind}:{event}"] += 1
                await asyncio.sleep(0.01)
        finally:
            await conn.close()

    def report(self, span: float) -> str:
        end = self._sample()
        cpu = ", ".join(f"{k} {(end[k] - v) / span:.2f}" for k, v in self._start.items()) + " cores"
        total = sum(getattr(self, "states", {}).values())
        if not total:
            return cpu
        top = ", ".join(f"{k} {n / total:.0%}" for k, n in self.states.most_common(6))
        return f"{cpu}; busy backends: {top}"


async def inbound_round(prep: inbound.Prepared, args: argparse.Namespace, workdir: Path, url: str | None,
                        instances: int, rnd: int) -> tuple[float, list[str]]:
    """One round against `instances` servers on one database: (updates/s, problems)."""
    children = []
    try:
        for k in range(instances):
            run_dir = workdir / f"round-{rnd}-{'pg' if url else 'sqlite'}-{instances}-{k}"
            run_dir.mkdir()
            if url is None:
                for suffix in ("", "-wal", "-shm"):
                    src = Path(str(prep.db_file) + suffix)
                    if src.exists():
                        shutil.copy(src, run_dir / ("feedbot.db" + suffix))
            child_args = ["ours", "--dir", str(run_dir), "--clock", prep.clock] + (["--database-url", url] if url else [])
            children.append(await h.Child.spawn(inbound.SCRIPT, child_args))
        urls = [f"http://127.0.0.1:{c.hello['port']}{h.TELEGRAM_WEBHOOK_PATH}" for c in children]
        problems: list[str] = []

        async def fire(items: list[tuple[int, dict[str, Any]]]) -> dict[int, float]:
            shares = [items[k::instances] for k in range(instances)]  # round-robin, as a balancer
            for c in children:
                await c.ask({"cmd": "begin"})
            fired = await asyncio.gather(*(h.fire_webhook(u, s, max(1, args.concurrency // instances))
                                           for u, s in zip(urls, shares)))
            handled: dict[int, float] = {}
            for c, share in zip(children, shares):
                answer = await c.ask({"cmd": "wait", "n": len(share), "timeout": args.timeout})
                handled.update({int(k): v for k, v in answer["handled"].items()})
            sent_at: dict[int, float] = {}
            for f in fired:
                sent_at.update(f.sent_at)
                problems.extend(f.bad[:3])
            missing = [u for u, _ in items if u not in handled]
            if missing:
                problems.append(f"{len(missing)} update(s) never handled")
            return {u: handled[u] - sent_at[u] for u, _ in items if u in handled} | {
                -1: max(handled.values()) - min(sent_at.values())}

        if prep.warmup:
            await fire(prep.warmup)
        cpu = CpuMeter([c.pid for c in children], url)
        watching = asyncio.create_task(cpu.watch()) if args.cpu else None
        spans = await fire(prep.measured)
        if watching is not None:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
        rate = len(prep.measured) / spans[-1]
        if args.cpu:
            print(f"    cpu over {spans[-1]:.1f} s: {cpu.report(spans[-1])}", flush=True)
        if url is not None:
            bad = (await pg.query(url, "SELECT COUNT(*) FROM inbox WHERE processed_at IS NULL OR error IS NOT NULL"))[0][0]
            if bad:
                problems.append(f"{bad} inbox row(s) unprocessed or failed")
        return rate, problems
    finally:
        for c in children:
            await c.close()


async def measure_inbound(args: argparse.Namespace, workdir: Path, lines: list[str], problems: list[str]) -> None:
    per_kind = args.updates // len(inbound.KINDS)
    (workdir / "template").mkdir()
    print(f"cluster bench: preparing {per_kind * len(inbound.KINDS)} customers ...", flush=True)
    prep = await inbound.prepare(workdir / "template", per_kind, args.warmup, args.seed)
    kinds = [("sqlite", 1), ("postgresql", 1), ("postgresql", 2)]
    rates: dict[tuple[str, int], list[float]] = {k: [] for k in kinds}
    for rnd in range(1, args.rounds + 1):
        order = kinds if rnd % 2 else list(reversed(kinds))
        for backend, n in order:
            if backend == "postgresql":
                async with pg.scratch_database(f"feedbot_cbench_{os.getpid()}_{rnd}_{n}") as url:
                    await pg._copy(prep.db_file, url)
                    rate, bad = await inbound_round(prep, args, workdir, url, n, rnd)
            else:
                rate, bad = await inbound_round(prep, args, workdir, None, n, rnd)
            rates[(backend, n)].append(rate)
            problems += [f"inbound {backend} x{n} round {rnd}: {p}" for p in bad]
            print(f"  round {rnd} {backend:10} x{n}: {rate:6.0f} updates/s", flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    lines.append(f"inbound: {len(prep.measured)} updates per round, {args.concurrency} in flight in total, "
                 f"{args.rounds} round(s), medians (rounds in brackets)")
    for (backend, n), rate in med.items():
        lines.append(f"  {backend} x{n}: {rate:.0f} updates/s ({', '.join(f'{x:.0f}' for x in rates[(backend, n)])})")
    two = med[("postgresql", 2)] / med[("postgresql", 1)]
    lines.append(f"  2 instances / 1 on PostgreSQL: {two:.2f} (goal >= 1.4: {'met' if two >= 1.4 else 'NOT met'})")
    lines.append(f"  PostgreSQL x1 / SQLite x1: {med[('postgresql', 1)] / med[('sqlite', 1)]:.2f}")


# ---------------------------------------------------------------------- processes


def _toml(raw: dict[str, dict[str, Any]]) -> str:
    out = []
    for section, values in raw.items():
        out.append(f"[{section}]")
        out += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    return "\n".join(out) + "\n"


class Instance:
    """`feedbot run` as a child process on the shared database."""

    def __init__(self, workdir: Path, name: str, tg: h.BenchTelegramServer, url: str, lease: float, rate: float,
                 level: str = "WARNING") -> None:
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = inbound.free_port()
        raw = {
            "shop": {"name": "Shop An"},
            "database": {"path": str(self.dir / "unused.db"), "url": url},
            "http": {"host": "127.0.0.1", "port": self.port},
            "telegram": {"api_base_url": tg.api_root, "poll_timeout": 1, "mode": "polling"},
            "survey": {"quiet_hours": "00:00-00:00", "dispatch_interval": "1s"},
            "sender": {"messages_per_second": rate, "per_chat_interval": 1.0, "request_timeout": 10.0},
            "cluster": {"lease": f"{lease:g}s", "instance_name": name},
            "logging": {"level": level},
        }
        (self.dir / "config.toml").write_text(_toml(raw))
        self.proc: subprocess.Popen | None = None

    async def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "FEEDBOT_TELEGRAM_TOKEN": h.BOT_TOKEN,
               "FEEDBOT_API_TOKEN": h.API_TOKEN}
        with open(self.dir / "bot.log", "a") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "run", "--config", str(self.dir / "config.toml")],
                                         cwd=self.dir, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise h.BenchError(f"{self.name} exited: {(self.dir / 'bot.log').read_text()[-2000:]}")
                try:
                    async with http.get(f"http://127.0.0.1:{self.port}/healthz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise h.BenchError(f"{self.name} did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def due_surveys(url: str, tg: h.BenchTelegramServer, workdir: Path, n: int) -> list[int]:
    """N customers with a linked chat and a survey due a minute ago (real time: the processes' clock)."""
    clock = FakeClock(h.START)
    config = h.make_config(workdir, tg, polling=False, sender=h.UNTHROTTLED, database_url=url)
    app = FeedbotApp(config, clock=clock)
    await app.start(scheduler=False)
    try:
        async def hold() -> float:
            return 1.0

        app.sender.pump = hold  # type: ignore[method-assign]
        users = await setup_surveys(app, tg, clock, n)
    finally:
        await app.stop()
    await pg.query(url, "UPDATE surveys SET due_at = $1", to_db(datetime.now(timezone.utc) - timedelta(minutes=1)))
    await pg.query(url, "DELETE FROM leases")
    return users


async def leader_of(url: str) -> str | None:
    rows = await pg.query(url, "SELECT holder FROM leases WHERE name = 'leader' AND until >= feedbot_clock(0)")
    return rows[0][0] if rows else None


async def left_to_send(url: str) -> int:
    return (await pg.query(url, "SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending')"))[0][0]


def exactly_once(tg: h.BenchTelegramServer, users: list[int]) -> tuple[int, int]:
    """(customers who got no survey question, extra copies)."""
    questions = Counter(m.chat_id for m in tg.sent_messages() if h.score_buttons(m))
    return sum(1 for u in users if questions.get(u, 0) == 0), sum(max(0, questions.get(u, 0) - 1) for u in users)


def outbound_diagnostics(tg: h.BenchTelegramServer, instances: list["Instance"]) -> list[str]:
    """Where the time went: 429s (when, how many arrivals in the second before), long gaps
    between arrivals, leadership changes in the instances' logs."""
    reqs = sorted((r for r in tg.requests if r.method == "sendMessage"), key=lambda r: r.time)
    if not reqs:
        return []
    t0 = reqs[0].time
    out = []
    for r in reqs:
        if r.status == 429:
            before = sum(1 for q in reqs if r.time - 1.0 < q.time <= r.time and q.status == 200)
            out.append(f"    429 at +{r.time - t0:.3f} s ({before} accepted in the second before)")
    ok = [r.time for r in reqs if r.ok]
    gaps = [b - a for a, b in zip(ok, ok[1:])]
    long = [g for g in gaps if g > 0.1]
    out.append(f"    gaps between accepted sends > 100 ms: {len(long)}, {sum(long):.2f} s in all"
               f" (longest {max(gaps, default=0):.3f} s)")
    for i in instances:
        text = (i.dir / "bot.log").read_text(errors="replace") if (i.dir / "bot.log").exists() else ""
        changes = [line for line in text.splitlines() if "leader" in line and "cluster:" in line]
        if changes:
            out.append(f"    {i.name}: {len(changes)} leadership change(s), the last: {changes[-1][:120]}")
        waits = [line[line.rindex("sender: ") + 8:] for line in text.splitlines() if "seconds waiting for the limiter" in line]
        if waits:
            out.append(f"    {i.name}'s sender: {waits[-1]}")
    return out


async def measure_outbound(args: argparse.Namespace, workdir: Path, lines: list[str], problems: list[str]) -> None:
    tg = h.BenchTelegramServer(h.BOT_TOKEN)
    await tg.start()
    name = f"feedbot_cbench_{os.getpid()}_out"
    url = await pg._fresh_database(name)
    instances: list[Instance] = []
    try:
        print(f"cluster bench: outbound, setting up {args.surveys} due surveys ...", flush=True)
        users = await due_surveys(url, tg, workdir / "out-setup", args.surveys)
        tg.enforce_limits()
        tg.requests.clear()
        tg.count_429 = 0
        instances = [Instance(workdir / "out", f"o{k}", tg, url, args.lease, CAP, level="INFO") for k in range(2)]
        (workdir / "out").mkdir(exist_ok=True)
        await asyncio.gather(*(i.start() for i in instances))
        deadline = time.monotonic() + args.surveys / CAP * 2 + 120
        while await left_to_send(url) or not any(r.method == "sendMessage" for r in tg.requests):
            if time.monotonic() > deadline:
                problems.append("outbound: not drained in time")
                break
            await asyncio.sleep(0.5)
        sends = sorted(r.time for r in tg.requests if r.method == "sendMessage" and r.ok)
        span = sends[-1] - sends[0]
        achieved = (len(sends) - 1) / span
        never, extra = exactly_once(tg, users)
        if never or extra:
            problems.append(f"outbound: {never} customer(s) without a survey, {extra} extra copies")
        senders = dict(Counter(r[0] for r in await pg.query(
            url, "SELECT claimed_by FROM outbox WHERE status = 'sent' AND survey_id IS NOT NULL")))
        for i in instances:
            i.stop()  # the sender logs where its time went as it stops
        lines += outbound_diagnostics(tg, instances)
        lines.append(f"outbound: {args.surveys} due surveys, 2 instances, fake Bot API enforcing 30/s overall and "
                     f"1/s per chat")
        lines.append(f"  {len(sends)} sendMessage in {span:.1f} s: {achieved:.2f} msg/s = {achieved / CAP:.3f} of the cap "
                     f"(goal >= 0.95: {'met' if achieved / CAP >= 0.95 else 'NOT met'}); 429 answers: {tg.count_429} "
                     f"(goal 0); sent by {senders}")
    finally:
        for i in instances:
            i.stop()
        await tg.stop()
        await pg._drop(name)


async def measure_failover(args: argparse.Namespace, workdir: Path, lines: list[str], problems: list[str]) -> None:
    tg = h.BenchTelegramServer(h.BOT_TOKEN)
    await tg.start()
    name = f"feedbot_cbench_{os.getpid()}_fail"
    url = await pg._fresh_database(name)
    # Enough sends to keep the stream going through every kill (a failover takes ~a lease).
    n = int(args.kills * (args.lease * 1.6 + 2.5) * args.failover_rate) + 50
    instances: dict[str, Instance] = {}
    try:
        print(f"cluster bench: failover, setting up {n} due surveys ...", flush=True)
        users = await due_surveys(url, tg, workdir / "fail-setup", n)
        (workdir / "fail").mkdir(exist_ok=True)
        instances = {f"f{k}": Instance(workdir / "fail", f"f{k}", tg, url, args.lease, args.failover_rate)
                     for k in range(2)}
        await asyncio.gather(*(i.start() for i in instances.values()))
        tg.requests.clear()
        times: list[float] = []
        in_flight: list[int] = []
        for kill in range(args.kills):
            leader = None
            while leader is None:
                leader = await leader_of(url)
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # sending under way
            sent_before = len(tg.requests_for("sendMessage"))
            conn = await asyncpg.connect(url)
            try:
                instances[leader].kill()
                killed_at = time.monotonic()
                in_flight.append(await conn.fetchval("SELECT COUNT(*) FROM outbox WHERE status = 'sending'"))
            finally:
                await conn.close()
            # The answers to requests made before the kill land a moment later: count from the first new request.
            await asyncio.sleep(0.05)
            baseline = len(tg.requests_for("sendMessage"))
            while len(tg.requests_for("sendMessage")) <= baseline:
                if time.monotonic() - killed_at > args.lease * 4 + 10:
                    raise h.BenchError("no send after the kill")
                await asyncio.sleep(0.005)
            took = tg.requests_for("sendMessage")[baseline].time - killed_at
            times.append(took)
            print(f"  kill {kill + 1}: {leader} killed ({baseline - sent_before} answered after the kill, "
                  f"{in_flight[-1]} in flight); next send after {took:.2f} s", flush=True)
            await instances[leader].start()  # back, as a follower
        while await left_to_send(url):
            await asyncio.sleep(0.5)
        never, extra = exactly_once(tg, users)
        if never:
            problems.append(f"failover: {never} customer(s) never got their survey")
        if extra > sum(in_flight):
            problems.append(f"failover: {extra} extra copies, more than the {sum(in_flight)} rows in flight at the kills")
        lines.append(f"failover: {args.kills} kill -9 of the leader (lease {args.lease:g} s, ticks every "
                     f"{args.lease / 3:.2f} s; sender at {args.failover_rate:g} msg/s), kill -> next sendMessage:")
        lines.append(f"  median {statistics.median(times):.2f} s, min {min(times):.2f} s, max {max(times):.2f} s "
                     f"({', '.join(f'{t:.2f}' for t in times)})")
        lines.append(f"  {n} surveys: none lost ({never} without), {extra} sent twice (rows in flight at the kills: "
                     f"{sum(in_flight)})")
    finally:
        for i in instances.values():
            i.stop()
        await tg.stop()
        await pg._drop(name)


async def main_async(args: argparse.Namespace) -> int:
    load_before = h.host_line()
    lines: list[str] = []
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="feedbot-cluster-bench-") as tmp:
        workdir = Path(tmp)
        if "inbound" in args.parts:
            await measure_inbound(args, workdir, lines, problems)
        if "outbound" in args.parts:
            await measure_outbound(args, workdir, lines, problems)
        if "failover" in args.parts:
            await measure_failover(args, workdir, lines, problems)
    lines.append(f"before: {load_before}")
    lines.append(f"after:  {h.host_line()}")
    lines.append("correctness: " + ("FAILED" if problems else "OK"))
    lines += [f"  - {p}" for p in problems[:10]]
    print(h.summary("several instances on one PostgreSQL database", lines), flush=True)
    return 1 if problems else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="cluster.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", nargs="+", choices=("inbound", "outbound", "failover"),
                   default=["inbound", "outbound", "failover"])
    pg.add_inbound_arguments(p)
    p.add_argument("--surveys", type=int, default=900, help="due surveys for the outbound part (default 900: ~30 s)")
    p.add_argument("--kills", type=int, default=10, help="leader kills in the failover part (default 10)")
    p.add_argument("--lease", type=float, default=3.0, help="cluster.lease in seconds for parts 2 and 3 (default 3)")
    p.add_argument("--failover-rate", type=float, default=10.0, help="sender msg/s in the failover part (default 10)")
    p.add_argument("--cpu", action="store_true", help="inbound: print the CPU each part used per round")
    args = p.parse_args(argv)
    args.profile = None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
