"""The outbox sender against the fake Bot API: 429, 5xx, timeouts, dead letters, pacing, order."""
from __future__ import annotations

import asyncio
import bisect
from collections import Counter
import json
import logging
from datetime import datetime, timezone
from typing import Any

import pytest

from bot.channels.telegram.channel import TelegramChannel
from bot.outbox.sender import Sender
from storage import outbox
from storage.db import Database
from tests.conftest import BOT_TOKEN

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)


@pytest.fixture
async def db(tmp_path):
    async with Database(tmp_path / "s.db") as database:
        yield database


@pytest.fixture
async def channel(tg):
    ch = TelegramChannel(
        BOT_TOKEN, api_base_url=tg.api_root, request_timeout=0.5, per_chat_interval=0.2,
        group_messages_per_minute=600, poll_timeout=1,
    )
    await ch.start()
    yield ch
    await ch.close()


def make_sender(db, channel, **kw):
    kw.setdefault("backoff_base", 0.05)
    kw.setdefault("max_attempts", 4)
    return Sender(db, {"telegram": channel}, **kw)


async def enqueue(db, chat_id, text, priority=0):
    async with db.transaction() as tx:
        return await outbox.enqueue(
            tx, channel="telegram", chat_id=str(chat_id), contact_id=None, method="send_text",
            payload={"text": text, "buttons": []}, now=NOW, priority=priority,
        )


async def row(db, item_id):
    return dict(await db.fetchone("SELECT * FROM outbox WHERE id = ?", (item_id,)))


async def test_sends_and_records_platform_message_id(db, channel, tg):
    item = await enqueue(db, 42, "xin chào")
    await make_sender(db, channel).drain(5)
    sent = tg.sent_messages(42)
    assert [m.text for m in sent] == ["xin chào"]
    stored = await row(db, item)
    assert stored["status"] == "sent" and stored["platform_message_id"] == str(sent[0].message_id)
    assert stored["attempts"] == 1


async def test_429_retry_after_is_honoured_and_does_not_use_an_attempt(db, channel, tg):
    tg.fail_next("sendMessage", 429, retry_after=1)
    item = await enqueue(db, 42, "hello")
    await make_sender(db, channel).drain(10)
    calls = tg.requests_for("sendMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].time - calls[0].time >= 1.0  # nothing before retry_after elapsed
    stored = await row(db, item)
    assert stored["status"] == "sent" and stored["attempts"] == 1


async def test_429_pauses_every_chat_not_only_the_one_that_hit_it(db, channel, tg):
    tg.fail_next("sendMessage", 429, retry_after=1)
    await enqueue(db, 1, "first")
    await enqueue(db, 2, "second")
    await make_sender(db, channel).drain(10)
    calls = tg.requests_for("sendMessage")
    assert calls[0].status == 429
    assert all(c.time - calls[0].time >= 1.0 for c in calls[1:])
    assert sorted(m.text for m in tg.sent_messages()) == ["first", "second"]


async def test_5xx_is_retried_with_backoff_then_sent_once(db, channel, tg):
    tg.fail_next("sendMessage", 500, times=2)
    tg.fail_next("sendMessage", 502, times=1)
    item = await enqueue(db, 42, "retry me")
    await make_sender(db, channel, backoff_base=0.25, jitter=lambda: 1.0).drain(10)
    calls = tg.requests_for("sendMessage")
    assert [c.status for c in calls] == [500, 500, 502, 200]
    gaps = [b.time - a.time for a, b in zip(calls, calls[1:])]
    assert [round(g, 1) >= 0.25 * 2**i for i, g in enumerate(gaps)] == [True, True, True]  # 0.25, 0.5, 1 s
    assert [m.text for m in tg.sent_messages(42)] == ["retry me"]
    assert (await row(db, item))["status"] == "sent"


async def test_backoff_jitter_spreads_retries(db, channel, tg):
    tg.fail_next("sendMessage", 500, times=1)
    item = await enqueue(db, 42, "x")
    sender = make_sender(db, channel, backoff_base=10.0, jitter=lambda: 0.0)
    await sender.pump()
    await sender.stop()
    stored = await row(db, item)
    retry_in = (datetime.fromisoformat(stored["next_attempt_at"]) - datetime.now(timezone.utc)).total_seconds()
    assert stored["status"] == "pending" and 4.0 < retry_in <= 5.0  # 10 s * (0.5 + 0.5 * 0)


async def test_past_the_retry_limit_the_row_is_a_dead_letter(db, channel, tg, caplog):
    tg.fail_next("sendMessage", 500, times=10)
    item = await enqueue(db, 42, "doomed")
    with caplog.at_level(logging.ERROR):
        await make_sender(db, channel, max_attempts=3).drain(10)
    assert len(tg.requests_for("sendMessage")) == 3
    stored = await row(db, item)
    assert stored["status"] == "failed" and "gave up after 3 attempts" in stored["last_error"]
    assert any("dead letter" in r.getMessage() for r in caplog.records)


async def test_read_timeout_after_the_server_got_it_is_not_resent(db, channel, tg):
    tg.delay_next("sendMessage", 1.5)  # the fake records the message, then answers too late
    item = await enqueue(db, 42, "maybe delivered")
    await make_sender(db, channel).drain(10)
    assert len(tg.requests_for("sendMessage")) == 1
    assert [m.text for m in tg.sent_messages(42)] == ["maybe delivered"]
    stored = await row(db, item)
    assert stored["status"] == "unknown" and "may have been sent" in stored["last_error"]


async def test_blocked_user_fails_without_retry(db, channel, tg):
    tg.forbid_chat(42)
    item = await enqueue(db, 42, "hi")
    await make_sender(db, channel).drain(5)
    assert len(tg.requests_for("sendMessage")) == 1
    assert (await row(db, item))["status"] == "failed"


async def test_one_chat_is_paced_and_kept_in_order(db, channel, tg):
    for i in range(4):
        await enqueue(db, 42, f"m{i}")
    await make_sender(db, channel).drain(10)
    sent = tg.sent_messages(42)
    assert [m.text for m in sent] == ["m0", "m1", "m2", "m3"]
    assert all(b.time - a.time >= 0.19 for a, b in zip(sent, sent[1:]))  # per_chat_interval 0.2 s


async def test_many_chats_stay_under_the_global_limit(db, channel, tg):
    tg.enforce_limits(global_per_second=30, per_chat_per_second=1)
    for chat in range(1, 61):
        await enqueue(db, chat, "survey")
    sender = make_sender(db, channel, messages_per_second=30)
    await sender.drain(20)
    assert len(tg.sent_messages()) == 60
    assert tg.count_429 == 0
    times = sorted(m.time for m in tg.sent_messages())
    # Any 1-second window holds at most 30 sends (+1 for the window edge).
    assert max(sum(1 for t in times if start <= t < start + 1.0) for start in times) <= 31


async def test_interactive_replies_jump_the_bulk_queue(db, channel, tg):
    for chat in range(1, 41):
        await enqueue(db, chat, "bulk", priority=1)
    await enqueue(db, 999, "reply to a chatting customer", priority=0)
    await make_sender(db, channel, messages_per_second=50).drain(10)
    order = [m.chat_id for m in sorted(tg.sent_messages(), key=lambda m: m.time)]
    assert order[0] == 999


async def test_rows_left_sending_by_a_crash_become_unknown_not_resent(db, channel, tg):
    item = await enqueue(db, 42, "in flight at crash")
    async with db.transaction() as tx:
        await outbox.mark_sending(tx, item)
    sender = make_sender(db, channel)
    assert await sender.recover() == 1
    await sender.drain(5)
    assert tg.requests_for("sendMessage") == []
    assert (await row(db, item))["status"] == "unknown"


async def test_a_telegram_429_pause_does_not_hold_web_chat_messages(db, channel, tg):
    from bot.channels.web.channel import WebChannel

    tg.fail_next("sendMessage", 429, retry_after=30)
    telegram_row = await enqueue(db, 42, "to telegram")
    async with db.transaction() as tx:
        web_row = await outbox.enqueue(
            tx, channel="web", chat_id="visitor-session-0001", contact_id=None, method="send_text",
            payload={"text": "to the web", "buttons": []}, now=NOW,
        )
    sender = Sender(db, {"telegram": channel, "web": WebChannel(db)}, messages_per_second=1)
    task = asyncio.create_task(sender.run())
    try:
        async with asyncio.timeout(10):
            while (await row(db, web_row))["status"] != "sent":
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    held = await row(db, telegram_row)
    assert held["status"] == "pending" and "retry after" in held["last_error"]  # still waiting out its 429
    assert [c.status for c in tg.requests_for("sendMessage")] == [429]
    shown = await db.fetchall("SELECT body FROM web_messages WHERE session_id = 'visitor-session-0001'")
    assert [json.loads(r["body"])["text"] for r in shown] == ["to the web"]


async def test_per_chat_send_times_of_idle_chats_are_forgotten(db, channel, tg, monkeypatch):
    import asyncio

    import bot.outbox.sender as sender_module

    monkeypatch.setattr(sender_module, "LAST_SENT_PRUNE_AT", 4)
    monkeypatch.setattr(sender_module, "LAST_SENT_PRUNE_EVERY", 0.0)
    for chat in range(1, 13):
        await enqueue(db, chat, "survey")
    sender = make_sender(db, channel, messages_per_second=1000)
    await sender.drain(10)
    assert len(tg.sent_messages()) == 12
    await asyncio.sleep(0.25)  # past per_chat_interval (0.2 s): every chat may be sent to again
    await sender.pump()
    assert len(sender._last_sent) <= 4  # not one entry per chat ever sent to
    await enqueue(db, 3, "again")  # a forgotten chat is still paced from its next send on
    await enqueue(db, 3, "and again")
    await sender.drain(10)
    again = tg.sent_messages(3)
    assert [m.text for m in again] == ["survey", "again", "and again"]
    assert again[2].time - again[1].time >= 0.19



async def test_asked_to_stop_the_sender_ends_its_pass_and_leaves_no_row_claimed_but_unsent(db, channel, tg):
    """Graceful stop: run() ends by itself (never cancelled between claiming a row and
    starting its send) and every claimed row's request finishes: each row is sent or still
    pending for the next start, none left 'sending' (which a restart marks unknown)."""
    tg.delay_next("sendMessage", 0.3, times=40)
    ids = [await enqueue(db, chat, "hello") for chat in range(1, 41)]
    sender = make_sender(db, channel, messages_per_second=100)
    task = asyncio.create_task(sender.run())
    async with asyncio.timeout(5):
        while not tg.requests_for("sendMessage"):
            await asyncio.sleep(0.005)
    sender.finish_soon()
    async with asyncio.timeout(2):
        await task  # returns by itself: no cancel
    await sender.stop()
    statuses = Counter([(await row(db, i))["status"] for i in ids])
    assert set(statuses) <= {"sent", "pending"} and statuses["sent"] >= 1
    assert statuses["sent"] == len(tg.sent_messages())


async def test_web_chat_rows_caught_mid_delivery_by_a_crash_are_sent_again(db, channel):
    """A web chat message is our own database write: a crash before it must not lose it."""
    from bot.channels.web.channel import WebChannel

    async with db.transaction() as tx:
        web_row = await outbox.enqueue(
            tx, channel="web", chat_id="visitor-session-0002", contact_id=None, method="send_text",
            payload={"text": "your complaint KN-0001", "buttons": []}, now=NOW,
        )
        telegram_row = await outbox.enqueue(
            tx, channel="telegram", chat_id="7", contact_id=None, method="send_text",
            payload={"text": "may have arrived"}, now=NOW,
        )
        for item in (web_row, telegram_row):
            assert await outbox.mark_sending(tx, item)
    sender = Sender(db, {"telegram": channel, "web": WebChannel(db)})
    await sender.recover()
    await sender.drain(5)
    assert (await row(db, web_row))["status"] == "sent"
    assert (await row(db, telegram_row))["status"] == "unknown"
    shown = await db.fetchall("SELECT body FROM web_messages WHERE session_id = 'visitor-session-0002'")
    assert [json.loads(r["body"])["text"] for r in shown] == ["your complaint KN-0001"]



# ---------------------------------------------------------------- the overall rate limit
# Driven the way pump() drives it, on a fake monotonic clock that the sender's waits move:
# request k reaches the platform `delay(k)` s after its start and is answered 1 ms later.


class FakeTime:
    def __init__(self, late: float = 0.0) -> None:
        self.now = 1000.0
        self.late = late  # every wake-up comes this much after the time asked for

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds) + self.late
        await asyncio.sleep(0)


class LimitedChannel:
    def __init__(self, messages_per_second: float | None) -> None:
        self.messages_per_second = messages_per_second


def limited_sender(fake: FakeTime, rate: float | None = 30) -> Sender:
    return Sender(None, {"telegram": LimitedChannel(rate)}, monotonic=fake, sleep=fake.sleep)  # type: ignore[arg-type]


async def start_messages(sender: Sender, fake: FakeTime, n: int, delay=lambda k: 0.002) -> tuple[list[float], list[float]]:
    """Start n messages; returns their start times and the times they reached the platform."""
    channel = sender.channels["telegram"]
    starts: list[float] = []
    arrivals: list[float] = []
    in_flight: list[tuple[float, Any]] = []
    for k in range(n):
        for answer_at, start in [f for f in in_flight if f[0] <= fake.now]:  # answers that came in
            start.answered(answer_at)
            in_flight.remove((answer_at, start))
        start = await sender._global_slot("telegram", channel)
        starts.append(start.at)
        arrivals.append(start.at + delay(k))
        in_flight.append((arrivals[-1] + 0.001, start))
        fake.now += 0.0005  # claiming the row
    return starts, arrivals


def busiest_second(arrivals: list[float]) -> int:
    """Most arrivals the fake Bot API would count in its sliding window (t - 1 s, t]."""
    times = sorted(arrivals)
    return max(bisect.bisect_right(times, t) - bisect.bisect_right(times, t - 1.0) for t in times)


def achieved_rate(arrivals: list[float]) -> float:
    times = sorted(arrivals)
    return (len(times) - 1) / (times[-1] - times[0])


async def test_rate_limit_counts_arrivals_so_a_request_held_up_on_its_way_draws_no_429():
    """Evenly spaced starts alone put 31 arrivals in a second when one request arrives 90 ms
    late (what the bench saw as 2-5 429s per 10,000): the window rule absorbs it."""
    fake = FakeTime()
    sender = limited_sender(fake)
    _, arrivals = await start_messages(sender, fake, 900, delay=lambda k: 0.09 if k % 37 == 5 else 0.002)
    assert busiest_second(arrivals) <= 30
    assert achieved_rate(arrivals) >= 0.95 * 30  # the held-up requests cost a little, not a window each


async def test_rate_limit_late_wake_ups_do_not_lower_the_long_run_rate():
    fake = FakeTime(late=0.001)  # asyncio.sleep is ~1 ms late
    sender = limited_sender(fake)
    _, arrivals = await start_messages(sender, fake, 1500)
    # Counted from each wake-up, 1 ms per start compounds: 0.952 of the rate. Kept to the
    # schedule: RATE_MARGIN (0.98).
    assert achieved_rate(arrivals) >= 0.975 * 30
    assert busiest_second(arrivals) <= 30


async def test_rate_limit_after_a_stall_sends_stay_spread_and_within_the_window():
    fake = FakeTime()
    sender = limited_sender(fake)
    before, arrivals = await start_messages(sender, fake, 100)
    fake.now += 0.5  # the event loop was busy elsewhere
    after, more = await start_messages(sender, fake, 100)
    gaps = [b - a for a, b in zip(after, after[1:])]
    assert min(gaps) >= sender.interval / 2 - 1e-9  # at most half an interval caught up, no burst
    assert busiest_second(arrivals + more) <= 30


async def test_rate_limit_a_request_still_in_flight_counts_from_its_start():
    """Never answered (in flight for longer than the window): the next window still waits
    for the window plus WINDOW_MARGIN after its start."""
    import bot.outbox.sender as sender_module

    fake = FakeTime()
    sender = limited_sender(fake)
    channel = sender.channels["telegram"]
    (await sender._global_slot("telegram", channel)).answered(fake.now)
    fake.now += 2.5 * sender.interval  # late: the next starts make up the lag, closer together
    first = await sender._global_slot("telegram", channel)  # never answered
    for _ in range(29):
        (await sender._global_slot("telegram", channel)).answered(fake.now)
    fake.now += 0.0005
    thirty_first = await sender._global_slot("telegram", channel)
    assert thirty_first.at >= first.at + 1.0 + sender_module.WINDOW_MARGIN


async def test_rate_limit_none_means_no_overall_limit_and_a_slow_rate_spreads_over_its_window():
    fake = FakeTime()
    unlimited = limited_sender(fake, rate=None)
    assert await unlimited._global_slot("telegram", unlimited.channels["telegram"]) is None
    assert fake.now == 1000.0  # no wait
    slow = limited_sender(fake, rate=0.5)  # one message every 2 s
    starts, arrivals = await start_messages(slow, fake, 6)
    assert all(b - a >= 2.0 for a, b in zip(starts, starts[1:]))


class RecordingChannel:
    def __init__(self, messages_per_second: float | None) -> None:
        self.messages_per_second = messages_per_second
        self.sent: list[str] = []

    def pacing(self, chat_id: str) -> float:
        return 0.0

    async def deliver(self, method: str, chat_id: str, payload: dict) -> str:
        self.sent.append(payload["text"])
        return str(len(self.sent))


async def test_rate_limit_a_long_wait_for_the_window_does_not_hold_other_channels(db):
    """After a slow request the window opens late; the pass does not sleep through it, so the
    web chat's messages go on meanwhile, and the Telegram row waits for its window."""
    fake = FakeTime()
    telegram, web = RecordingChannel(30), RecordingChannel(None)
    sender = Sender(db, {"telegram": telegram, "web": web}, monotonic=fake, sleep=fake.sleep)
    slow = await sender._global_slot("telegram", telegram)
    slow.answered(slow.at + 0.5)  # a request that took half a second
    for _ in range(29):
        (await sender._global_slot("telegram", telegram)).answered(fake.now + 0.002)
    fake.now += sender.interval
    await enqueue(db, 42, "to telegram")
    async with db.transaction() as tx:
        await outbox.enqueue(
            tx, channel="web", chat_id="visitor-session-0003", contact_id=None, method="send_text",
            payload={"text": "to the web", "buttons": []}, now=NOW,
        )
    before = fake.now
    wait = await sender.pump()
    await sender.stop()
    assert fake.now - before <= sender.interval  # no long sleep in the pass
    assert web.sent == ["to the web"] and telegram.sent == []
    assert slow.at + 1.0 + 0.49 <= fake.now + wait <= slow.at + 1.0 + 0.5
