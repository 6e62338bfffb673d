"""Shared pieces of the bench scripts: a child process that serves the system under test and
talks JSON lines on stdin/stdout, the load generator's HTTP client, a rig that puts simulated
customers into a given state, and small reporting helpers.

The scripts run the server under test in a child process (`<script> --serve ...`) and the load
generator / fake Bot API in the parent, so the figures (CPU, RSS) are the server's alone.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any, Awaitable, Callable, Iterable  # noqa: E402

import aiohttp  # noqa: E402

from bench.csat_pipeline import (  # noqa: E402
    API_TOKEN,
    BOT_TOKEN,
    FIRST_USER_ID,
    START,
    SURVEY_DELAY,
    WEBHOOK_SECRET,
    BenchTelegramServer,
    fmt_s,
    make_config,
    p50_p99,
    pct,
    purchase_body,
    run_pool,
    score_buttons,
)
from bot.app import FeedbotApp  # noqa: E402
from bot.channels.telegram.webhook import SECRET_HEADER as TELEGRAM_SECRET_HEADER, WEBHOOK_PATH as TELEGRAM_WEBHOOK_PATH  # noqa: E402

__all__ = [
    "API_TOKEN", "BOT_TOKEN", "FIRST_USER_ID", "START", "SURVEY_DELAY", "WEBHOOK_SECRET", "BenchTelegramServer",
    "fmt_s", "make_config", "p50_p99", "pct", "purchase_body", "run_pool", "score_buttons", "TELEGRAM_SECRET_HEADER", "TELEGRAM_WEBHOOK_PATH",
]

UNTHROTTLED = {"messages_per_second": 1000, "per_chat_interval": 0.001}
COMPLAINT_TEXT = "Hàng bị vỡ khi giao, hộp móp hết, tôi muốn đổi trả"


class BenchError(RuntimeError):
    pass


def host_line() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return f"host: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1/5/15 min)"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mib() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MiB, from /proc (VmRSS, VmHWM)."""
    values = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, kib = line.split()[:2]
                values[key] = int(kib) / 1024
    return values.get("VmRSS:", float("nan")), values.get("VmHWM:", float("nan"))


# ------------------------------------------------------------------ the child process


class Child:
    """The server under test, in its own process: `python <script> --serve <args>`.

    It prints one JSON line {"ready": ...} when it listens, then answers each JSON command line
    on its stdin with one JSON line on its stdout (its logs go to stderr)."""

    def __init__(self, proc: asyncio.subprocess.Process, hello: dict[str, Any]) -> None:
        self.proc = proc
        self.hello = hello
        self._lock = asyncio.Lock()  # one command at a time on the pipe

    @classmethod
    async def spawn(cls, script: str, args: list[str], timeout: float = 120.0) -> "Child":
        proc = await asyncio.create_subprocess_exec(
            sys.executable, script, "--serve", *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=str(ROOT),
            limit=64 * 1024 * 1024,
        )
        child = cls(proc, {})
        child.hello = await child._read(timeout)
        if "ready" not in child.hello:
            raise BenchError(f"child did not start: {child.hello}")
        return child

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            code = await self.proc.wait()
            raise BenchError(f"child exited with status {code} (see its log above)")
        return json.loads(line)

    async def ask(self, command: dict[str, Any], timeout: float = 600.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        async with self._lock:
            self.proc.stdin.write((json.dumps(command) + "\n").encode())
            await self.proc.stdin.drain()
            answer = await self._read(timeout)
        if "error" in answer:
            raise BenchError(f"child: {answer['error']}")
        return answer

    async def close(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                await self.ask({"cmd": "stop"}, timeout=30)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def serve_commands(hello: dict[str, Any], handlers: dict[str, Handler]) -> None:
    """The child's side: announce `hello`, then answer commands until "stop" or end of stdin."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def say(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    say({"ready": True, **hello})
    while True:
        line = await reader.readline()
        if not line:
            return
        command = json.loads(line)
        name = command.get("cmd")
        if name == "stop":
            say({"stopping": True})
            return
        try:
            say(await handlers[name](command))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the run
            say({"error": f"{name}: {type(exc).__name__}: {exc}"})


# ----------------------------------------------------------------- the load generator


@dataclass
class Fired:
    sent_at: dict[int, float]
    answered_at: dict[int, float]
    bad: list[str]
    wall_s: float


async def fire_webhook(
    url: str, bodies: list[tuple[int, bytes]], concurrency: int, secret: str = WEBHOOK_SECRET
) -> Fired:
    """POST each (update_id, JSON body) to the webhook, `concurrency` connections in flight."""
    sent_at: dict[int, float] = {}
    answered_at: dict[int, float] = {}
    bad: list[str] = []
    headers = {TELEGRAM_SECRET_HEADER: secret, "Content-Type": "application/json"}
    it = iter(bodies)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            for update_id, body in it:
                sent_at[update_id] = time.monotonic()
                try:
                    async with http.post(url, data=body, headers=headers) as resp:
                        await resp.read()
                        if resp.status != 200:
                            bad.append(f"update {update_id}: HTTP {resp.status}")
                except aiohttp.ClientError as exc:
                    bad.append(f"update {update_id}: {type(exc).__name__}: {exc}")
                answered_at[update_id] = time.monotonic()

        t0 = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(bodies))))))
    return Fired(sent_at, answered_at, bad, time.monotonic() - t0)


async def gather_limited(items: Iterable[Any], concurrency: int, fn: Callable[[Any], Awaitable[Any]]) -> list[Any]:
    sem = asyncio.Semaphore(concurrency)

    async def one(item: Any) -> Any:
        async with sem:
            return await fn(item)

    return await asyncio.gather(*(one(i) for i in items))


# ----------------------------------------------------------------- customers in a state


def hold_sender(app: FeedbotApp) -> None:
    """The sender sends nothing until `release_sender` (set-up writes outbox rows not measured)."""
    async def hold() -> float:
        return 1.0

    app.sender.pump = hold  # type: ignore[method-assign]


def release_sender(app: FeedbotApp) -> None:
    del app.sender.pump
    app.sender.wake()


async def wait_outbox_empty(app: FeedbotApp, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        row = await app.db.fetchone("SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending')")
        if row[0] == 0:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"outbox not drained within {timeout:.0f}s ({row[0]} left)")
        await asyncio.sleep(0.05)


async def post_purchase(http: aiohttp.ClientSession, base_url: str, index: int, purchased_at: str) -> str:
    """POST a purchase for customer `index`; returns the Telegram deep-link token."""
    body = purchase_body(index, purchased_at)
    async with http.post(
        f"{base_url}/api/v1/purchases", json=body, headers={"Authorization": f"Bearer {API_TOKEN}"}
    ) as resp:
        answer = await resp.json()
        if resp.status not in (200, 202):
            raise BenchError(f"POST /api/v1/purchases answered {resp.status}: {answer}")
    link = answer["links"]["telegram"] or ""
    if "start=" not in link:
        raise BenchError(f"no Telegram deep link in {answer}")
    return link.split("start=", 1)[1]


def question_of(tg: BenchTelegramServer, user_id: int) -> Any:
    for message in tg.chat_messages.get(user_id, ()):
        if score_buttons(message):
            return message
    raise BenchError(f"user {user_id} got no survey question")


def tap_update(tg: BenchTelegramServer, user_id: int, score: int) -> dict[str, Any]:
    question = question_of(tg, user_id)
    data = score_buttons(question)[score - 1]["callback_data"]
    return tg.make_callback_update(user_id, data, question.message_id)


def text_update(tg: BenchTelegramServer, user_id: int, text: str) -> dict[str, Any]:
    return tg.make_message_update(user_id, text, first_name=f"K{user_id % 100000}")


def comment_text(index: int) -> str:
    return f"Giao nhanh, nhưng hộp hơi móp 📦 (khách {index})"


def summary(title: str, lines: list[str]) -> str:
    bar = "=" * 78
    return "\n".join(["", bar, title, bar, *lines, bar])


__all__ += [
    "UNTHROTTLED", "COMPLAINT_TEXT", "BenchError", "host_line", "cpu_seconds", "rss_mib", "Child", "serve_commands",
    "Fired", "fire_webhook", "gather_limited", "wait_outbox_empty", "post_purchase", "question_of", "tap_update",
    "text_update", "comment_text", "summary",
]
