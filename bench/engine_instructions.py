#!/usr/bin/env python3
"""Engine instructions per update, counted by valgrind's callgrind (deterministic, unlike
timings on a shared machine).

The inbound bench's mix (bench/inbound_vs_ptb.py: /start, score tap, comment, complaint) is
prepared once; then a child process starts the real FeedbotApp on a copy of the database and
pushes the first N updates through `engine.receive` one after the other, in-process (no HTTP,
the sender held), under callgrind. Run for two N; the difference over the difference in N is
the cost of one update with the start-up cancelled out:

    .venv/bin/python bench/engine_instructions.py [--small 200] [--large 1000]
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
    }))


async def run(workdir: Path, n: int) -> None:
    spec = json.loads((workdir / "updates.json").read_text())
    tmp = workdir / f"run{n}"
    shutil.copytree(workdir / "template", tmp)
    tg = h.BenchTelegramServer(h.BOT_TOKEN)
    await tg.start()
    clock = TickingClock(datetime.fromisoformat(spec["clock"]) + timedelta(minutes=5))
    app = FeedbotApp(h.make_config(tmp, tg, polling=False, sender=h.UNTHROTTLED), clock=clock)  # type: ignore[arg-type]
    await app.start(scheduler=False)

    async def hold() -> float:  # the sender delivers nothing: the inbound path alone
        return 1.0

    app.sender.pump = hold  # type: ignore[method-assign]
    try:
        for body in spec["updates"][:n]:
            if not await app.engine.receive("telegram", json.loads(body)):
                raise h.BenchError("an update was not new")
        failed = (await app.db.fetchone("SELECT COUNT(*) FROM inbox WHERE error IS NOT NULL"))[0]
        if failed:
            raise h.BenchError(f"{failed} update(s) failed")
    finally:
        await app.stop()
        await tg.stop()


def instructions(workdir: Path, n: int) -> int:
    out = workdir / f"callgrind.{n}.out"
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, SCRIPT,
         "--run", str(n), "--dir", str(workdir)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONHASHSEED": "0"},  # the same dict layouts in every run
    )
    match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
    if match is None:
        raise h.BenchError(f"no total in {out}")
    return int(match.group(1))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", type=int, default=200)
    p.add_argument("--large", type=int, default=1000)
    p.add_argument("--run", type=int, help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.run is not None:
        asyncio.run(run(Path(args.dir), args.run))
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="engine-ir-"))
    try:
        asyncio.run(prepare(workdir, args.large))
        small, large = instructions(workdir, args.small), instructions(workdir, args.large)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    per_update = (large - small) / (args.large - args.small)
    print(h.host_line())
    print(f"Ir({args.small}) = {small:,}  Ir({args.large}) = {large:,}")
    print(f"engine instructions per update: {per_update:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
