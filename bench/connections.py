#!/usr/bin/env python3
"""Benchmark: what an attacker gets from idle connections and WebSockets (issue 19, item 2).

The bot (`feedbot run`, default connection limits, web chat on, no tokens) runs in a child
process under an open-files limit of 1,024 (systemd's default); this process attacks it
over loopback (each 127.0.0.x address is another client) and prints:

* silent sockets from one address: how many the bot holds, how many it refuses at once,
  how long the held ones stay, and whether /healthz answers another address meanwhile;
* silent sockets from many addresses (more than max_connections): the same, overall;
* WebSockets: N on one session, then N spread over addresses: how many are kept, and the
  bot's RSS before, with them, and after they close.

    .venv/bin/python bench/connections.py [--silent N] [--sockets N]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def silent(port: int, sources: list[str], n: int) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    out = []
    for i in range(n):
        try:
            out.append(await asyncio.open_connection("127.0.0.1", port, local_addr=(sources[i % len(sources)], 0)))
        except OSError:
            pass
    return out


async def classify(conns, wait: float) -> tuple[int, int, float]:
    """(refused at once with 503, held, seconds until the last held one was closed)."""
    start = time.monotonic()

    async def one(reader):
        data = b""
        try:
            async with asyncio.timeout(wait):
                while chunk := await reader.read(4096):
                    data += chunk
        except (TimeoutError, ConnectionError):
            return data, None
        return data, time.monotonic() - start

    results = await asyncio.gather(*(one(r) for r, _ in conns))
    refused = sum(1 for data, _ in results if data.startswith(b"HTTP/1.1 503"))
    closed = [t for data, t in results if t is not None and not data]
    never = sum(1 for _, t in results if t is None)
    return refused, len(closed) + never, max(closed, default=0.0) if not never else float("inf")


async def healthz(port: int, source: str) -> str:
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0))) as http:
            t0 = time.monotonic()
            async with http.get(f"http://127.0.0.1:{port}/healthz", timeout=aiohttp.ClientTimeout(total=5)) as r:
                return f"{r.status} in {1000 * (time.monotonic() - t0):.0f} ms"
    except Exception as exc:
        return f"failed ({type(exc).__name__})"


async def websockets(port: int, sources: list[str], n: int, session: str | None) -> list:
    kept = []
    sessions = []
    for i in range(n):
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(sources[i % len(sources)], 0)))
        sessions.append(http)
        try:
            ws = await http.ws_connect(f"http://127.0.0.1:{port}/chat/ws")
            await ws.send_json({"type": "hello", "session": session} if session else {"type": "hello"})
            frame = json.loads((await ws.receive(timeout=5)).data)
            if frame["type"] == "welcome":
                kept.append(ws)
            else:
                await ws.close()
        except Exception:
            pass
    return kept, sessions


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--silent", type=int, default=1050)
    parser.add_argument("--sockets", type=int, default=2000)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 16384), hard))
    tmp = Path(tempfile.mkdtemp(prefix="feedbot-conn-"))
    port = free_port()
    (tmp / "config.toml").write_text(
        f'[database]\npath = "{tmp / "feedbot.db"}"\n[http]\nport = {port}\napi_token = "{"x" * 32}"\n'
        '[web]\nnew_sessions_per_minute = 100000\nnew_sessions_per_minute_total = 100000\n'
    )
    server = subprocess.Popen(
        ["prlimit", "--nofile=1024:1024", str(ROOT / ".venv/bin/feedbot"), "run", "--config", str(tmp / "config.toml")],
        stdout=subprocess.DEVNULL, stderr=open(tmp / "bot.log", "w"), cwd=tmp,
    )
    try:
        for _ in range(100):
            if "200" in await healthz(port, "127.0.0.1"):
                break
            await asyncio.sleep(0.2)
        pid = server.pid
        print(f"bot pid {pid}, open-files limit 1024, RSS {rss_mb(pid):.1f} MB, fds {open_fds(pid)}")

        conns = await silent(port, ["127.0.0.2"], args.silent)
        await asyncio.sleep(0.5)
        print(f"\n{args.silent} silent sockets from one address: bot fds {open_fds(pid)};"
              f" /healthz from 127.0.0.3: {await healthz(port, '127.0.0.3')}")
        refused, held, last = await classify(conns, 30)
        print(f"  refused at once (503): {refused}; held: {held}; last held one closed after {last:.1f} s")
        for _, w in conns:
            w.close()

        sources = [f"127.0.1.{i}" for i in range(1, 31)]
        conns = await silent(port, sources, args.silent)
        await asyncio.sleep(0.5)
        print(f"\n{args.silent} silent sockets from {len(sources)} addresses: bot fds {open_fds(pid)};"
              f" /healthz from 127.0.0.3: {await healthz(port, '127.0.0.3')}")
        refused, held, last = await classify(conns, 30)
        print(f"  refused at once (503): {refused}; held: {held}; last held one closed after {last:.1f} s;"
              f" /healthz after: {await healthz(port, '127.0.0.3')}")
        for _, w in conns:
            w.close()
        log = (tmp / "bot.log").read_text()
        print(f"  bot log: {log.count('Traceback')} tracebacks, {len(log.splitlines())} lines, {len(log)} bytes")

        await asyncio.sleep(1)
        base = rss_mb(pid)
        first, sessions = await websockets(port, ["127.0.0.4"], 1, None)
        kept, more = await websockets(port, ["127.0.0.4"], args.sockets, None)
        print(f"\n{args.sockets} WebSockets from one address: kept {len(kept)} (web.max_sockets_per_address),"
              f" RSS {base:.1f} -> {rss_mb(pid):.1f} MB")
        for ws in kept + first:
            await ws.close()
        for http in sessions + more:
            await http.close()

        # One session, many tabs (from many addresses, so only the per-session cap applies).
        probe = aiohttp.ClientSession()
        ws = await probe.ws_connect(f"http://127.0.0.1:{port}/chat/ws")
        await ws.send_json({"type": "hello"})
        token = json.loads((await ws.receive(timeout=5)).data)["session"]
        kept, more = await websockets(port, [f"127.0.2.{i}" for i in range(1, 101)], args.sockets, token)
        print(f"{args.sockets} WebSockets on one session: kept {len(kept) + 1} (web.max_sockets_per_session)")
        for w in kept:
            await w.close()
        await ws.close()
        await probe.close()
        for http in more:
            await http.close()

        await asyncio.sleep(1)
        base = rss_mb(pid)
        sources = [f"127.0.3.{i}" for i in range(1, 41)]
        kept, more = await websockets(port, sources, args.sockets, None)
        with_them = rss_mb(pid)
        print(f"{args.sockets} WebSockets from {len(sources)} addresses (new sessions unlimited here): kept {len(kept)},"
              f" RSS {base:.1f} -> {with_them:.1f} MB ({1024 * (with_them - base) / max(1, len(kept)):.1f} KB each)")
        for w in kept:
            await w.close()
        for http in more:
            await http.close()
        await asyncio.sleep(3)
        print(f"  after they closed: RSS {rss_mb(pid):.1f} MB, fds {open_fds(pid)}")
    finally:
        server.terminate()
        server.wait(timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
