#!/usr/bin/env python3
"""Engine instructions per update, counted by valgrind's callgrind (deterministic, unlike
timings on a shared machine).

The inbound bench's mix (bench/inbound_vs_ptb.py: /start, score tap, comment, complaint) is
prepared once; then a child process starts the real FeedbotApp on a copy of the database and
pushes the first N updates through `engine.receive` one after the other, in-process (no HTTP,
the sender held), under callgrind. Run for two N; the difference over the difference in N is
the cost of one update with the start-up cancelled out. Then the same updates once more,
without callgrind, counting the SQL statements SQLite runs per update (its trace callback:
every statement, BEGIN and COMMIT included), by kind of update.

--in-flight K pushes K updates at a time (as a webhook under load: they share a group commit,
storage/db.py) instead of one after the other; the statements are then counted per update
over all kinds (those of K updates at a time cannot be told apart):

    .venv/bin/python bench/engine_instructions.py [--small 200] [--large 1000] [--show-sql] [--in-flight K]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench.harness as h  # noqa: E402  (sets sys.path and NO_PROXY)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from datetime import datetime, timedelta  # noqa: E402

from bot.app import FeedbotApp  # noqa: E402

SCRIPT = str(Path(__file__).resolve())


class TickingClock:
    """Every reading 1 ms after the last: new instants as in production, the same in every run."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        self._now += timedelta(milliseconds=1)
        return self._now


async def prepare(workdir: Path, updates: int) -> None:
    from bench.inbound_vs_ptb import KINDS, prepare as prepare_mix

    prep = await prepare_mix(workdir / "template", updates // len(KINDS) + 1, 0, seed=7)
    (workdir / "updates.json").write_text(json.dumps({
        "clock": prep.clock, "updates": [body.decode() for _, body in prep.measured],
        "kinds": [prep.kinds[update_id] for update_id, _ in prep.measured],
    }))


async def run(workdir: Path, n: int, statements: dict[str, list[tuple[list[str], int]]] | None = None,
              in_flight: int = 1) -> None:
    """Push the first n updates through the engine, `in_flight` at a time; with `statements`,
    what SQLite ran for each batch and its number of updates, by kind of update ("all" when
    several at a time)."""
    spec = json.loads((workdir / "updates.json").read_text())
    tmp = workdir / f"run{n}{'-sql' if statements is not None else ''}"
    shutil.copytree(workdir / "template", tmp)
    tg = h.BenchTelegramServer(h.BOT_TOKEN)
    await tg.start()
    clock = TickingClock(datetime.fromisoformat(spec["clock"]) + timedelta(minutes=5))
    app = FeedbotApp(h.make_config(tmp, tg, polling=False, sender=h.UNTHROTTLED), clock=clock)  # type: ignore[arg-type]
    await app.start(scheduler=False)

    async def hold() -> float:  # the sender delivers nothing: the inbound path alone
        return 1.0

    app.sender.pump = hold  # type: ignore[method-assign]
    ran: list[str] = []
    if statements is not None:
        for conn in {id(c): c for c in (app.db.writer, app.db.reader)}.values():
            conn._conn.set_trace_callback(ran.append)
    try:
        items = list(zip(spec["updates"][:n], spec["kinds"][:n]))
        for start in range(0, len(items), in_flight):
            batch = items[start:start + in_flight]
            before = len(ran)
            new = await asyncio.gather(*(app.engine.receive("telegram", json.loads(body)) for body, _ in batch))
            if not all(new):
                raise h.BenchError("an update was not new")
            if statements is not None:
                kind = batch[0][1] if in_flight == 1 else "all"
                statements.setdefault(kind, []).append((ran[before:], len(batch)))
        failed = (await app.db.fetchone("SELECT COUNT(*) FROM inbox WHERE error IS NOT NULL"))[0]
        if failed:
            raise h.BenchError(f"{failed} update(s) failed")
    finally:
        await app.stop()
        await tg.stop()


def instructions(workdir: Path, n: int, in_flight: int) -> int:
    out = workdir / f"callgrind.{n}.out"
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, SCRIPT,
         "--run", str(n), "--dir", str(workdir), "--in-flight", str(in_flight)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONHASHSEED": "0"},  # the same dict layouts in every run
    )
    match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
    if match is None:
        raise h.BenchError(f"no total in {out}")
    return int(match.group(1))


def count_statements(workdir: Path, n: int, show: bool, in_flight: int) -> None:
    by_kind: dict[str, list[tuple[list[str], int]]] = {}
    asyncio.run(run(workdir, n, by_kind, in_flight))
    total = sum(len(s) for runs in by_kind.values() for s, _ in runs)
    updates = sum(k for runs in by_kind.values() for _, k in runs)
    print(f"SQL statements per update: {total / updates:.1f} ({updates} updates, {in_flight} at a time)")
    for kind, runs in sorted(by_kind.items()):
        print(f"  {kind:>9}: {sum(len(s) for s, _ in runs) / sum(k for _, k in runs):.1f}")
        if show:
            for statement in runs[-1][0]:
                print(f"             {' '.join(statement.split())[:150]}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", type=int, default=200)
    p.add_argument("--large", type=int, default=1000)
    p.add_argument("--show-sql", action="store_true", help="print the statements of one update of each kind")
    p.add_argument("--statements-only", action="store_true", help="only count SQL statements (no callgrind)")
    p.add_argument("--in-flight", type=int, default=1, metavar="K",
                   help="updates pushed at a time, sharing group commits as under load (default 1: one after the other)")
    p.add_argument("--run", type=int, help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.in_flight < 1:
        p.error("--in-flight: at least 1")
    if args.run is not None:
        asyncio.run(run(Path(args.dir), args.run, in_flight=args.in_flight))
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="engine-ir-"))
    try:
        asyncio.run(prepare(workdir, args.large))
        print(h.host_line())
        if not args.statements_only:
            small, large = instructions(workdir, args.small, args.in_flight), instructions(workdir, args.large, args.in_flight)
            per_update = (large - small) / (args.large - args.small)
            print(f"Ir({args.small}) = {small:,}  Ir({args.large}) = {large:,}")
            print(f"engine instructions per update: {per_update:,.0f}")
        count_statements(workdir, args.large, args.show_sql, args.in_flight)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
