#!/usr/bin/env python3
"""Benchmark: simulated customers through the whole CSAT flow, end to end.

The REAL application object (bot.app.FeedbotApp) runs against the in-process fake Bot API
(testkit.telegram_api.FakeTelegramServer) with a real SQLite file in a temp dir and a
FakeClock. For every customer:

    POST /api/v1/purchases -> the customer sends "/start <token>" -> the clock moves 3 h and
    app.dispatcher.dispatch_due() runs -> the survey question arrives at the fake server ->
    the customer taps a score (callback on the question's message_id) -> the follow-up
    arrives -> the customer writes a comment -> the thanks arrives.

Updates reach the bot through its webhook endpoint by default (POST {base_url}/webhooks/telegram
with the secret header), or through getUpdates long polling with --polling.

Two phases, each on a fresh app, database and fake server:

1. inbound: all N customers go through each step together, C updates in flight at a time,
   with the app's sender held during each measured step (nothing leaves the outbox; pass
   --inbound-with-sender to let it drain alongside). Between the steps the sender delivers
   what was queued with its limits lifted (1000 msg/s, 1 ms per chat; the fake enforces
   nothing). This measures the inbound pipeline (HTTP -> verify -> inbox -> flow -> SQLite
   commit -> outbox) without polling delays or the outbound limiter: updates/s and the
   latency of one webhook request (POST to 200, SQLite commit included) under that load,
   plus the sender's own capacity with the limiter lifted.
2. end-to-end: Telegram's limits as configured by default (sender 30 msg/s overall, 1 s per
   chat; the fake answers 429 above 30 msg/s or 3 msgs in 3 s per chat), C customers in flight,
   each doing the whole flow on its own. Customers/s, tap -> follow-up latency, achieved
   outbound msg/s against the cap, 429s.

The fake clock is shared by everything, so a "ticker" advances it 3 h and runs dispatch_due()
for the customers who have linked their chat since the last tick (no purchase or /start is in
flight meanwhile). Because the clock jumps 3 h per tick, the survey policy runs with quiet
hours off and a long comment window (a customer's follow-up would otherwise time out after a
few ticks of fake time); everything else is the default policy.

Correctness is checked at the end of each phase (every survey answered with the score and
comment sent, no outbox row failed/unknown, exactly one question per customer, every update
processed); the exit status is 1 if any check fails.

Needs only the project's dependencies. Run from the repo root:
    .venv/bin/python bench/csat_pipeline.py [--customers N] [--concurrency C] [--webhook|--polling]
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Loopback only: a proxy variable in the environment must not capture bench traffic.
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Iterator  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

import aiohttp  # noqa: E402

from bot.app import FeedbotApp  # noqa: E402
from testkit.clock import FakeClock  # noqa: E402
from bot.config import Config, parse_config  # noqa: E402
from bot.channels.telegram.webhook import SECRET_HEADER as TELEGRAM_SECRET_HEADER, WEBHOOK_PATH as TELEGRAM_WEBHOOK_PATH  # noqa: E402
from testkit.telegram_api import FakeTelegramServer, SentMessage  # noqa: E402

BOT_TOKEN = "123456789:BENCHtokenABCDEFGHIJKLMNOPQRSTUVWXYZab"
API_TOKEN = "bench-api-token-0123456789"
WEBHOOK_SECRET = "bench-webhook-secret_0123456789"
VN = ZoneInfo("Asia/Ho_Chi_Minh")
# A Monday morning, shop time, held in UTC as the real clock gives it (bot/clock.py): a
# zoneinfo time costs several microseconds more in every timestamp written.
START = datetime(2026, 11, 23, 9, 0, tzinfo=VN).astimezone(timezone.utc)
SURVEY_DELAY = timedelta(hours=3)  # survey.delay (the default)
FIRST_USER_ID = 700_000_001

# The clock jumps 3 h per dispatch tick: no quiet hours, and a follow-up that waits long enough.
SURVEY_OVERRIDES = {"quiet_hours": "00:00-00:00", "comment_window": "365d"}
UNTHROTTLED_SENDER = {"messages_per_second": 1000, "per_chat_interval": 0.001}
OUTBOUND_METHODS = ("sendMessage", "answerCallbackQuery", "editMessageText")
_SCORE_DATA = re.compile(r"^csat:\d+:[1-5]$")


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------------- helpers


def pct(values: Iterable[float], q: float) -> float:
    data = sorted(values)
    if not data:
        return math.nan
    k = max(0, min(len(data) - 1, math.ceil(q / 100 * len(data)) - 1))
    return data[k]


def fmt_s(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def p50_p99(values: list[float]) -> str:
    return f"p50 {fmt_s(pct(values, 50))} p99 {fmt_s(pct(values, 99))}"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def peak_window(times: list[float], span: float = 1.0) -> int:
    """The most events in any `span`-second window."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - span:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def run_pool(items: list[Any], concurrency: int, fn: Callable[[Any], Awaitable[None]], errors: list[str]) -> None:
    """fn(item) for every item, `concurrency` at a time; failures are collected, and stop the pool."""
    it = iter(items)

    async def worker() -> None:
        for item in it:  # one shared iterator: each item is taken once
            if errors:
                return
            try:
                await fn(item)
            except Exception as exc:  # noqa: BLE001 - reported, then the run fails
                errors.append(f"{item}: {type(exc).__name__}: {exc}")
                return

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(items))))))


# ----------------------------------------------------------------------- the fake Bot API


class BenchTelegramServer(FakeTelegramServer):
    """The fake Bot API, plus a per-chat wake-up when a message is sent (the fake's own
    wait_for_messages rescans every sent message on every request: fine for tests, O(N^2)
    for thousands of customers)."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.chat_messages: dict[int, list[SentMessage]] = defaultdict(list)
        self._chat_waiters: dict[int, list[tuple[int, asyncio.Future[None]]]] = defaultdict(list)

    def _commit_sent(self, *args: Any, **kwargs: Any) -> Any:
        result = super()._commit_sent(*args, **kwargs)
        sent = self._sent[-1]  # what the call above just recorded
        chat_id = sent.chat_id
        messages = self.chat_messages[chat_id]
        messages.append(sent)
        waiters = self._chat_waiters.get(chat_id)
        if waiters:
            still = []
            for count, future in waiters:
                if len(messages) >= count:
                    if not future.done():
                        future.set_result(None)
                else:
                    still.append((count, future))
            self._chat_waiters[chat_id] = still
        return result

    async def wait_chat(self, chat_id: int, count: int, timeout: float) -> list[SentMessage]:
        messages = self.chat_messages[chat_id]
        if len(messages) < count:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._chat_waiters[chat_id].append((count, future))
            try:
                await asyncio.wait_for(future, timeout)
            except TimeoutError:
                got = [(m.text or "")[:50] for m in messages]
                raise BenchError(f"chat {chat_id}: {count} message(s) expected within {timeout:.0f}s, got {got}") from None
        return messages


if not hasattr(FakeTelegramServer, "_commit_sent"):  # pragma: no cover - the hook above needs it
    raise SystemExit("bench: testkit.telegram_api.FakeTelegramServer._commit_sent is gone; update BenchTelegramServer")


# ------------------------------------------------------------------------------ customers


@dataclass
class Customer:
    index: int
    score: int
    user_id: int = 0
    order_id: str = ""
    comment: str = ""
    token: str = ""
    question: SentMessage | None = None
    callback_query_id: str = ""
    t_start: float = 0.0
    t_dispatched: float = 0.0
    t_tap: float = 0.0
    t_followup: float = 0.0
    t_done: float = 0.0

    def __post_init__(self) -> None:
        self.user_id = FIRST_USER_ID + self.index
        self.order_id = f"B-{self.index:06d}"
        self.comment = f"Giao nhanh, nhưng hộp hơi móp 📦 (khách {self.index})"

    def __str__(self) -> str:
        return f"customer {self.index} (user {self.user_id}, order {self.order_id})"


def purchase_body(index: int, purchased_at: str) -> dict[str, Any]:
    """POST /api/v1/purchases body of customer `index` (order B-<index>)."""
    return {
        "order_id": f"B-{index:06d}",
        "customer": {"external_id": f"BC-{index:06d}", "name": f"Khách {index}", "phone": "+84 912 345 678"},
        "amount": 250000,
        "currency": "VND",
        "items": [{"sku": "TEA-01", "name": "Trà sen", "qty": 2, "price": 125000}],
        "store": "Q1",
        "touchpoint": "delivery",
        "purchased_at": purchased_at,
    }


def make_customers(n: int, seed: int) -> list[Customer]:
    rng = random.Random(seed)
    return [Customer(i, rng.randint(1, 5)) for i in range(n)]


def score_buttons(message: SentMessage) -> list[dict]:
    markup = message.reply_markup or {}
    rows = markup.get("inline_keyboard") or []
    buttons = [b for row in rows for b in row if isinstance(b, dict)]
    if len(buttons) == 5 and all(_SCORE_DATA.match(str(b.get("callback_data", ""))) for b in buttons):
        return buttons
    return []


# ------------------------------------------------------------------------------- the rig


def make_config(tmp: Path, tg: FakeTelegramServer, *, polling: bool, sender: dict[str, Any],
                database_url: str = "") -> Config:
    """Like tests.conftest.make_config (without importing pytest), plus webhook/polling mode."""
    raw: dict[str, dict[str, Any]] = {
        "shop": {"name": "Shop An"},
        "database": {"path": str(tmp / "feedbot.db"), "url": database_url},
        "http": {"port": 0, "api_token": API_TOKEN},
        "sender": {"backoff_base": 0.05, **sender},
        "telegram": {"token": BOT_TOKEN, "api_base_url": tg.api_root, "poll_timeout": 1},
        "survey": dict(SURVEY_OVERRIDES),
    }
    if polling:
        raw["telegram"]["mode"] = "polling"
    else:
        raw["http"]["public_url"] = "http://127.0.0.1"
        raw["telegram"].update(mode="webhook", webhook_secret=WEBHOOK_SECRET)
    return parse_config(raw, {})


@dataclass
class Rig:
    """One fresh fake Bot API + SQLite file + FeedbotApp + HTTP client."""

    polling: bool
    concurrency: int
    timeout: float
    tg: BenchTelegramServer
    clock: FakeClock
    app: FeedbotApp
    http: aiohttp.ClientSession
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    _handled: dict[int, asyncio.Future[None]] = field(default_factory=dict)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, *, polling: bool, concurrency: int, timeout: float, sender: dict[str, Any], enforce_limits: bool
    ) -> AsyncIterator["Rig"]:
        with tempfile.TemporaryDirectory(prefix="feedbot-bench-") as tmp:
            tg = BenchTelegramServer(BOT_TOKEN)
            await tg.start()
            if enforce_limits:
                tg.enforce_limits()  # Telegram's: 30/s overall, 1/s per chat (burst 3)
            clock = FakeClock(START)
            app = FeedbotApp(make_config(Path(tmp), tg, polling=polling, sender=sender), clock=clock)
            http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency + 16))
            rig = None
            try:
                await app.start(scheduler=False)  # the bench runs dispatch_due itself
                if not polling and tg.webhook is None:
                    raise BenchError("the bot did not register its webhook with the fake Bot API")
                rig = cls(polling, concurrency, timeout, tg, clock, app, http)
                if polling:
                    rig._watch_polling()
                yield rig
            finally:
                await http.close()
                await app.stop()
                await tg.stop()

    def _watch_polling(self) -> None:
        """Resolve a waiter when the polling loop has handled an update (engine.receive returned)."""
        engine = self.app.engine
        receive = engine.receive

        async def receive_and_signal(channel_name: str, payload: dict[str, Any], **kw: Any) -> bool:
            try:
                return await receive(channel_name, payload, **kw)
            finally:
                future = self._handled.pop(payload.get("update_id"), None)
                if future is not None and not future.done():
                    future.set_result(None)

        engine.receive = receive_and_signal  # type: ignore[method-assign]  # the poll task looks it up per update

    # --- the customer's side -------------------------------------------------------

    async def post_purchase(self, c: Customer) -> None:
        body = purchase_body(c.index, self.clock.now().isoformat())
        t0 = time.monotonic()
        async with self.http.post(
            f"{self.app.base_url}/api/v1/purchases", json=body, headers={"Authorization": f"Bearer {API_TOKEN}"}
        ) as resp:
            answer = await resp.json()
            if resp.status != 202:
                raise BenchError(f"POST /api/v1/purchases answered {resp.status}: {answer}")
        self.latencies["purchase"].append(time.monotonic() - t0)
        link = answer["links"]["telegram"] or ""
        if "start=" not in link:
            raise BenchError(f"no Telegram deep link in {answer}")
        c.token = link.split("start=", 1)[1]

    async def send_update(self, kind: str, update: dict[str, Any]) -> float:
        """Deliver one update to the bot and wait until it is handled; returns when it was sent."""
        sent_at = time.monotonic()
        if self.polling:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._handled[update["update_id"]] = future
            self.tg.push_update(update)
            try:
                await asyncio.wait_for(future, self.timeout)
            except TimeoutError:
                raise BenchError(f"update {update['update_id']} not handled within {self.timeout:.0f}s") from None
        else:
            async with self.http.post(
                f"{self.app.base_url}{TELEGRAM_WEBHOOK_PATH}",
                json=update,
                headers={TELEGRAM_SECRET_HEADER: WEBHOOK_SECRET},
            ) as resp:
                await resp.read()
                if resp.status != 200:
                    raise BenchError(f"webhook answered {resp.status} to a {kind} update")
        self.latencies[kind].append(time.monotonic() - sent_at)
        return sent_at

    async def start(self, c: Customer, kind: str = "start") -> None:
        c.t_start = c.t_start or time.monotonic()
        await self.send_update(kind, self.tg.make_message_update(c.user_id, f"/start {c.token}", first_name=f"K{c.index}"))

    async def await_welcome(self, c: Customer) -> None:
        await self.tg.wait_chat(c.user_id, 1, self.timeout)

    async def await_question(self, c: Customer) -> None:
        messages = await self.tg.wait_chat(c.user_id, 2, self.timeout)  # welcome, question
        if not score_buttons(messages[1]):
            raise BenchError(f"message 2 to {c} is not the survey question: {messages[1].text!r}")
        c.question = messages[1]

    async def tap(self, c: Customer) -> None:
        assert c.question is not None
        data = score_buttons(c.question)[c.score - 1]["callback_data"]
        update = self.tg.make_callback_update(c.user_id, data, c.question.message_id)
        c.callback_query_id = update["callback_query"]["id"]
        c.t_tap = await self.send_update("tap", update)

    async def await_followup(self, c: Customer) -> None:
        messages = await self.tg.wait_chat(c.user_id, 3, self.timeout)
        c.t_followup = messages[2].time

    async def comment(self, c: Customer) -> None:
        await self.send_update("comment", self.tg.make_message_update(c.user_id, c.comment, first_name=f"K{c.index}"))

    async def await_thanks(self, c: Customer) -> None:
        messages = await self.tg.wait_chat(c.user_id, 4, self.timeout)
        c.t_done = messages[3].time

    # --- the bot's side -------------------------------------------------------------

    @contextlib.contextmanager
    def sender_held(self) -> Iterator[None]:
        """Hold the app's sender (nothing leaves the outbox) so a step measures the inbound path
        alone; the sender's run loop looks up pump() on every round."""
        sender = self.app.sender

        async def hold() -> float:
            return 1.0

        sender.pump = hold  # type: ignore[method-assign]
        try:
            yield
        finally:
            del sender.pump
            sender.wake()

    async def drain(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            row = await self.app.db.fetchone("SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending')")
            if row[0] == 0:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"outbox not drained within {self.timeout:.0f}s ({row[0]} pending)")
            await asyncio.sleep(0.05)

    async def counts(self) -> dict[str, int]:
        out = {}
        for table in ("inbox", "outbox", "surveys"):
            out[table] = (await self.app.db.fetchone(f"SELECT COUNT(*) FROM {table}"))[0]
        return out

    async def verify(self, customers: list[Customer]) -> list[str]:
        problems: list[str] = []
        db = self.app.db
        rows = await db.fetchall(
            "SELECT p.order_id, s.status, s.score, s.comment FROM surveys s JOIN purchases p ON p.id = s.purchase_id"
        )
        surveys = {r["order_id"]: r for r in rows}
        if len(rows) != len(customers):
            problems.append(f"{len(rows)} surveys for {len(customers)} customers")
        wrong = []
        for c in customers:
            s = surveys.get(c.order_id)
            if s is None or s["status"] != "answered" or s["score"] != c.score or s["comment"] != c.comment:
                wrong.append(f"{c.order_id}: {dict(s) if s else None} (expected score {c.score})")
        if wrong:
            problems.append(f"{len(wrong)} survey(s) not answered as sent, e.g. {wrong[:3]}")
        statuses = {r[0]: r[1] for r in await db.fetchall("SELECT status, COUNT(*) FROM outbox GROUP BY status")}
        bad = {k: v for k, v in statuses.items() if k != "sent"}
        if bad:
            problems.append(f"outbox rows not sent: {bad}")
        total, unprocessed, failed = await db.fetchone(
            "SELECT COUNT(*), COALESCE(SUM(processed_at IS NULL), 0), COALESCE(SUM(error IS NOT NULL), 0) FROM inbox"
        )
        if total != 3 * len(customers) or unprocessed or failed:
            problems.append(f"inbox: {total} rows (expected {3 * len(customers)}), {unprocessed} unprocessed, {failed} failed")
        questions = defaultdict(int)
        for m in self.tg.sent_messages():
            if score_buttons(m):
                questions[m.chat_id] += 1
        not_one = [(c.user_id, questions.get(c.user_id, 0)) for c in customers if questions.get(c.user_id, 0) != 1]
        if not_one:
            problems.append(f"{len(not_one)} customer(s) did not get exactly one question, e.g. {not_one[:3]}")
        not_four = [c.user_id for c in customers if len(self.tg.chat_messages.get(c.user_id, ())) != 4]
        if not_four:
            problems.append(f"{len(not_four)} customer(s) did not get exactly 4 messages, e.g. {not_four[:3]}")
        if self.tg.internal_errors:
            problems.append(f"fake Bot API internal errors: {self.tg.internal_errors[:3]}")
        return problems


# ------------------------------------------------------------------- phase 1: inbound


@dataclass
class InboundResult:
    updates: int = 0
    busy_s: float = 0.0
    rates: dict[str, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    purchases_per_s: float = 0.0
    purchase_latencies: list[float] = field(default_factory=list)
    dispatch_s: float = 0.0
    dispatched: int = 0
    by_kind: dict[str, list[float]] = field(default_factory=dict)
    drain_s: float = 0.0  # waiting for the sender (limiter lifted) to deliver each step's messages
    drained: int = 0  # Bot API calls delivered meanwhile
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    wall_s: float = 0.0


async def inbound_phase(args: argparse.Namespace) -> InboundResult:
    result = InboundResult()
    customers = make_customers(args.customers, args.seed)
    errors: list[str] = []
    t_phase = time.monotonic()
    async with Rig.open(
        polling=args.polling, concurrency=args.concurrency, timeout=args.timeout,
        sender=UNTHROTTLED_SENDER, enforce_limits=False,
    ) as rig:
        hold = contextlib.nullcontext if args.inbound_with_sender else rig.sender_held

        async def step(label: str, fn: Callable[[Customer], Awaitable[None]]) -> float:
            """One update (or purchase) per customer, C in flight; the sender held meanwhile."""
            with hold():
                t0 = time.monotonic()
                await run_pool(customers, args.concurrency, fn, errors)
                elapsed = time.monotonic() - t0
            if errors:
                raise BenchError(f"inbound phase, {label}: {errors[0]}")
            return elapsed

        async def deliver(fn: Callable[[Customer], Awaitable[None]], calls: int) -> None:
            """Wait until the sender (limiter lifted) has delivered what the last step queued."""
            t0 = time.monotonic()
            await asyncio.gather(*(fn(c) for c in customers))
            await rig.drain()
            result.drain_s += time.monotonic() - t0
            result.drained += calls

        n = len(customers)
        try:
            elapsed = await step("purchases", rig.post_purchase)
            result.purchases_per_s = n / elapsed
            result.purchase_latencies = list(rig.latencies["purchase"])
            busy = {"start": await step("/start", rig.start)}
            await deliver(rig.await_welcome, n)
            rig.clock.advance(SURVEY_DELAY)
            with hold():
                t0 = time.monotonic()
                outcome = await rig.app.dispatcher.dispatch_due()
                result.dispatch_s = time.monotonic() - t0
            result.dispatched = outcome.get("sent", 0)
            if dict(outcome) != {"sent": n}:
                raise BenchError(f"dispatch_due: {dict(outcome)} (expected {n} sent)")
            await deliver(rig.await_question, n)
            busy["tap"] = await step("taps", rig.tap)
            await deliver(rig.await_followup, 3 * n)  # answerCallbackQuery, editMessageText, follow-up
            busy["comment"] = await step("comments", rig.comment)
            await deliver(rig.await_thanks, n)
        except BenchError as exc:
            result.problems.append(str(exc))
        else:
            result.rates = {k: n / v for k, v in busy.items()}
            result.busy_s = sum(busy.values())
            result.updates = 3 * n
            result.latencies = [x for k in ("start", "tap", "comment") for x in rig.latencies[k]]
            result.by_kind = {k: list(rig.latencies[k]) for k in ("start", "tap", "comment")}
            result.problems += await rig.verify(customers)
        result.counts = await rig.counts()
    result.wall_s = time.monotonic() - t_phase
    return result


# --------------------------------------------------------------- phase 2: end to end


class Ticker:
    """Moves the shared fake clock 3 h and runs dispatch_due() for the customers who linked
    their chat since the last tick, while no purchase or /start is in flight."""

    def __init__(self, rig: Rig, batch_wait: float) -> None:
        self.rig = rig
        self.batch_wait = batch_wait
        self._cond = asyncio.Condition()
        self._closed = False
        self._linking = 0
        self._ready: list[Customer] = []
        self._has_ready = asyncio.Event()
        self.ticks = 0
        self.dispatch_times: list[float] = []
        self.anomalies: list[str] = []

    @contextlib.asynccontextmanager
    async def linking(self) -> AsyncIterator[None]:
        async with self._cond:
            await self._cond.wait_for(lambda: not self._closed)
            self._linking += 1
        try:
            yield
        finally:
            async with self._cond:
                self._linking -= 1
                self._cond.notify_all()

    def ready(self, c: Customer) -> None:
        """Call inside linking(): the customer's survey is due at the next tick."""
        self._ready.append(c)
        self._has_ready.set()

    async def run(self) -> None:
        while True:
            await self._has_ready.wait()
            await asyncio.sleep(self.batch_wait)  # let a few more customers link
            async with self._cond:
                self._closed = True
                await self._cond.wait_for(lambda: self._linking == 0)
            try:
                batch, self._ready = self._ready, []
                self._has_ready.clear()
                self.rig.clock.advance(SURVEY_DELAY)
                t0 = time.monotonic()
                outcome = await self.rig.app.dispatcher.dispatch_due()
                t1 = time.monotonic()
                self.dispatch_times.append(t1 - t0)
                self.ticks += 1
                for c in batch:
                    c.t_dispatched = t1
                if dict(outcome) != {"sent": len(batch)}:
                    self.anomalies.append(f"tick {self.ticks}: dispatch_due {dict(outcome)} for {len(batch)} ready")
            finally:
                async with self._cond:
                    self._closed = False
                    self._cond.notify_all()


@dataclass
class E2EResult:
    customers_per_s: float = 0.0
    wall_s: float = 0.0
    tap_to_followup: list[float] = field(default_factory=list)
    tap_to_ack: list[float] = field(default_factory=list)
    dispatch_to_question: list[float] = field(default_factory=list)
    lifetimes: list[float] = field(default_factory=list)
    webhook_latencies: list[float] = field(default_factory=list)  # after the first C /starts
    warmup_latencies: list[float] = field(default_factory=list)  # the first C /starts, sent at once
    by_kind: dict[str, list[float]] = field(default_factory=dict)
    updates_per_s: float = 0.0
    outbound_per_s: float = 0.0
    send_message_per_s: float = 0.0
    outbound_peak_1s: int = 0
    send_message_peak_1s: int = 0
    count_429: int = 0
    sender_stats: dict[str, int] = field(default_factory=dict)
    ticks: int = 0
    dispatch_times: list[float] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


async def e2e_phase(args: argparse.Namespace) -> E2EResult:
    result = E2EResult()
    customers = make_customers(args.customers, args.seed)
    errors: list[str] = []
    sender_cfg = {"messages_per_second": args.rate, "per_chat_interval": args.per_chat_interval}
    async with Rig.open(
        polling=args.polling, concurrency=args.concurrency, timeout=args.timeout,
        sender=sender_cfg, enforce_limits=not args.no_fake_limits,
    ) as rig:
        ticker = Ticker(rig, args.tick_wait)
        ticker_task = asyncio.create_task(ticker.run(), name="bench-ticker")

        async def customer(c: Customer) -> None:
            c.t_start = time.monotonic()
            async with ticker.linking():
                await rig.post_purchase(c)
                # The first C customers all start at once: keep that burst apart from the steady state.
                await rig.start(c, "start" if c.index >= args.concurrency else "start_warmup")
                ticker.ready(c)
            await rig.await_question(c)
            if args.think_time:
                await asyncio.sleep(args.think_time)
            await rig.tap(c)
            await rig.await_followup(c)
            if args.think_time:
                await asyncio.sleep(args.think_time)
            await rig.comment(c)
            await rig.await_thanks(c)

        t0 = time.monotonic()
        try:
            await run_pool(customers, args.concurrency, customer, errors)
            if errors:
                raise BenchError(f"end-to-end phase: {errors[0]}" + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""))
            t_done = max(c.t_done for c in customers)
            await rig.drain()
        except BenchError as exc:
            result.problems.append(str(exc))
        else:
            result.wall_s = t_done - t0
            result.customers_per_s = len(customers) / result.wall_s
            result.problems += ticker.anomalies
            result.problems += await rig.verify(customers)
        finally:
            ticker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker_task

        acks = {r.params.get("callback_query_id"): r.time for r in rig.tg.requests_for("answerCallbackQuery") if r.ok}
        done = [c for c in customers if c.t_done]
        result.tap_to_followup = [c.t_followup - c.t_tap for c in done]
        result.tap_to_ack = [acks[c.callback_query_id] - c.t_tap for c in done if c.callback_query_id in acks]
        result.dispatch_to_question = [c.question.time - c.t_dispatched for c in done if c.question and c.t_dispatched]
        result.lifetimes = [c.t_done - c.t_start for c in done]
        result.webhook_latencies = [x for k in ("start", "tap", "comment") for x in rig.latencies[k]]
        result.warmup_latencies = list(rig.latencies["start_warmup"])
        result.by_kind = {k: list(rig.latencies[k]) for k in ("start_warmup", "start", "tap", "comment", "purchase")}
        if result.wall_s:
            result.updates_per_s = 3 * len(customers) / result.wall_s
        outbound = [r.time for r in rig.tg.requests if r.method in OUTBOUND_METHODS and r.ok]
        sends = [r.time for r in rig.tg.requests if r.method == "sendMessage" and r.ok]
        if len(outbound) > 1:
            result.outbound_per_s = (len(outbound) - 1) / (max(outbound) - min(outbound))
            result.outbound_peak_1s = peak_window(outbound)
        if len(sends) > 1:
            result.send_message_per_s = (len(sends) - 1) / (max(sends) - min(sends))
            result.send_message_peak_1s = peak_window(sends)
        result.count_429 = rig.tg.count_429
        result.sender_stats = dict(rig.app.sender.stats)
        result.ticks = ticker.ticks
        result.dispatch_times = ticker.dispatch_times
        result.counts = await rig.counts()
    return result


# --------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="csat_pipeline.py",
        description="Push simulated customers through the whole CSAT flow (purchase -> /start -> "
        "survey -> score -> comment) against the in-process fake Bot API with the real FeedbotApp, "
        "and print inbound (webhook) and end-to-end figures. Exits 1 if the end state is wrong.",
    )
    p.add_argument("--customers", "-n", type=int, default=500, metavar="N", help="simulated customers (default 500)")
    p.add_argument("--concurrency", "-c", type=int, default=100, metavar="C",
                   help="customers (end-to-end) / updates (inbound) in flight at a time (default 100)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--webhook", dest="polling", action="store_false",
                      help="feed updates through the bot's webhook endpoint (default)")
    mode.add_argument("--polling", dest="polling", action="store_true",
                      help="queue updates on the fake server for the bot's getUpdates long polling")
    p.set_defaults(polling=False)
    p.add_argument("--phase", choices=("both", "inbound", "e2e"), default="both",
                   help="inbound: limiter lifted, all customers step by step; e2e: real limits, "
                   "customers pipelined (default both)")
    p.add_argument("--inbound-with-sender", action="store_true",
                   help="inbound phase: let the sender (limiter lifted) drain the outbox during the "
                   "measured steps instead of holding it (default: held, so the steps measure the "
                   "inbound path alone)")
    p.add_argument("--rate", type=float, default=30.0, metavar="MSG_PER_S",
                   help="sender.messages_per_second in the end-to-end phase (default 30, Telegram's cap)")
    p.add_argument("--per-chat-interval", type=float, default=1.0, metavar="S",
                   help="sender.per_chat_interval in the end-to-end phase (default 1.0)")
    p.add_argument("--no-fake-limits", action="store_true",
                   help="end-to-end phase: the fake Bot API does not answer 429 above Telegram's limits")
    p.add_argument("--think-time", type=float, default=0.0, metavar="S",
                   help="end-to-end phase: the customer waits this long before tapping and before "
                   "writing (default 0: answers at once)")
    p.add_argument("--tick-wait", type=float, default=0.1, metavar="S",
                   help="end-to-end phase: how long the dispatch ticker gathers linked customers (default 0.1)")
    p.add_argument("--timeout", type=float, default=180.0, metavar="S",
                   help="give up waiting for one message / update after this long (default 180)")
    p.add_argument("--seed", type=int, default=1, help="seed for the customers' scores (default 1)")
    p.add_argument("--verbose", "-v", action="store_true", help="also print latencies by update kind")
    p.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="the bot's log level (default WARNING)")
    args = p.parse_args(argv)
    if args.customers < 1 or args.concurrency < 1:
        p.error("--customers and --concurrency must be at least 1")
    return args


def describe_limits(args: argparse.Namespace) -> list[str]:
    lines = []
    if args.phase in ("both", "inbound"):
        held = "draining alongside" if args.inbound_with_sender else "held during the measured steps"
        lines.append(
            f"  inbound phase: sender {UNTHROTTLED_SENDER['messages_per_second']} msg/s, per chat "
            f"{UNTHROTTLED_SENDER['per_chat_interval']} s (limiter lifted), {held}; fake Bot API limits off"
        )
    if args.phase in ("both", "e2e"):
        fake = "off" if args.no_fake_limits else "30 msg/s overall, 3 msgs per 3 s per chat, 429 above"
        lines.append(
            f"  end-to-end phase: sender {args.rate:g} msg/s overall, {args.per_chat_interval:g} s per chat; "
            f"fake Bot API limits: {fake}; customer think time {args.think_time:g} s"
        )
    lines.append(
        "  survey policy: defaults except quiet hours off and comment window 365d "
        "(the shared fake clock jumps 3 h per dispatch tick)"
    )
    return lines


def report(args: argparse.Namespace, inbound: InboundResult | None, e2e: E2EResult | None) -> list[str]:
    via = "polling" if args.polling else "webhook"
    lat = "push->handled" if args.polling else "webhook latency"
    n, c = args.customers, args.concurrency
    out = ["", f"customers: {n}  updates: {3 * n} per phase  ({via}, {c} in flight)", "limits in force:"]
    out += describe_limits(args)
    if inbound is not None and inbound.updates:
        r = inbound.rates
        out.append(f"inbound: {inbound.updates / inbound.busy_s:.0f} updates/s, {lat} {p50_p99(inbound.latencies)}")
        out.append(
            f"  by step: /start {r['start']:.0f}/s, tap {r['tap']:.0f}/s, comment {r['comment']:.0f}/s; "
            f"purchases {inbound.purchases_per_s:.0f}/s ({p50_p99(inbound.purchase_latencies)}); "
            f"dispatch_due: {inbound.dispatched} surveys in {fmt_s(inbound.dispatch_s)}"
        )
        if inbound.drain_s:
            out.append(
                f"  sender with the limiter lifted: {inbound.drained / inbound.drain_s:.0f} Bot API calls/s "
                f"({inbound.drained} calls)"
            )
        if args.verbose:
            for kind, values in inbound.by_kind.items():
                out.append(f"    {kind}: {p50_p99(values)}, max {fmt_s(max(values))}")
    if e2e is not None and e2e.customers_per_s:
        out.append(
            f"  at end-to-end load ({e2e.updates_per_s:.0f} updates/s): {lat} {p50_p99(e2e.webhook_latencies)}; "
            f"the first {min(c, n)} /starts, sent at once: {p50_p99(e2e.warmup_latencies)}"
        )
        out.append(f"end-to-end: {e2e.customers_per_s:.1f} customers/s, tap->follow-up {p50_p99(e2e.tap_to_followup)}")
        out.append(
            f"  tap->answerCallbackQuery {p50_p99(e2e.tap_to_ack)}; dispatch->question {p50_p99(e2e.dispatch_to_question)}; "
            f"customer start->thanks {p50_p99(e2e.lifetimes)}"
        )
        out.append(f"  {e2e.ticks} dispatch ticks, dispatch_due {p50_p99(e2e.dispatch_times)}")
        out.append(
            f"outbound: {e2e.outbound_per_s:.1f} msg/s (cap {args.rate:g}/s), busiest second {e2e.outbound_peak_1s}; "
            f"429s: {e2e.count_429}"
        )
        out.append(
            f"  of which sendMessage {e2e.send_message_per_s:.1f}/s (busiest second {e2e.send_message_peak_1s}); "
            f"sender {e2e.sender_stats}"
        )
        if args.verbose:
            for kind, values in e2e.by_kind.items():
                if values:
                    out.append(f"    {kind}: {p50_p99(values)}, max {fmt_s(max(values))}")
    out.append(f"peak RSS: {peak_rss_mib():.0f} MiB (one process: bot + fake Bot API + simulated customers)")
    out.append(
        f"host: {os.cpu_count()} CPUs, load average {args.load_before:.1f} before the run "
        "(the bench itself keeps about one CPU busy; other load makes the figures noisy)"
    )
    for label, res in (("inbound", inbound), ("end-to-end", e2e)):
        if res is not None and res.counts:
            out.append(f"rows ({label} db): " + ", ".join(f"{k} {v}" for k, v in res.counts.items()))
    problems = [f"inbound: {p}" for p in (inbound.problems if inbound else [])]
    problems += [f"end-to-end: {p}" for p in (e2e.problems if e2e else [])]
    if problems:
        out.append("correctness: FAILED")
        out += [f"  - {p}" for p in problems]
    else:
        out.append(
            "correctness: OK (every survey answered with its score and comment, every outbox row sent, "
            "exactly one question per customer)"
        )
    return out


async def main_async(args: argparse.Namespace) -> int:
    via = "polling" if args.polling else "webhook"
    args.load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    print(f"csat_pipeline: {args.customers} customers, {args.concurrency} in flight, updates via {via}", flush=True)
    inbound: InboundResult | None = None
    e2e: E2EResult | None = None
    if args.phase in ("both", "inbound"):
        print("inbound phase (limiter lifted, all customers step by step) ...", flush=True)
        inbound = await inbound_phase(args)
        print(f"  done in {inbound.wall_s:.1f} s", flush=True)
    if args.phase in ("both", "e2e"):
        print(f"end-to-end phase (sender {args.rate:g} msg/s, {args.per_chat_interval:g} s per chat) ...", flush=True)
        t0 = time.monotonic()
        e2e = await e2e_phase(args)
        print(f"  done in {time.monotonic() - t0:.1f} s", flush=True)
    print("\n".join(report(args, inbound, e2e)), flush=True)
    failed = (inbound is not None and inbound.problems) or (e2e is not None and e2e.problems)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its request lines carry the bot token
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
