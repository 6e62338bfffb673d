"""The outbox sender against the fake Bot API: 429, 5xx, timeouts, dead letters, pacing, order."""
from __future__ import annotations

import asyncio
from collections import Counter
import json
import logging
from datetime import datetime, timezone

import pytest

from bot.channels.telegram.channel import TelegramChannel
from bot.outbox.sender import Sender
from storage import outbox
from storage.db import Database
from testkit.clock import FakeMonotonic
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

    import bot.outbox.rate_limit as rate_limit

    monkeypatch.setattr(rate_limit, "LAST_SENT_PRUNE_AT", 4)
    monkeypatch.setattr(rate_limit, "LAST_SENT_PRUNE_EVERY", 0.0)
    for chat in range(1, 13):
        await enqueue(db, chat, "survey")
    sender = make_sender(db, channel, messages_per_second=1000)
    await sender.drain(10)
    assert len(tg.sent_messages()) == 12
    await asyncio.sleep(0.25)  # past per_chat_interval (0.2 s): every chat may be sent to again
    await sender.pump()
    assert len(sender.limiter) <= 4  # not one entry per chat ever sent to
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



# ---------------------------------------------------------------- the overall rate limit in a pass
# (the limiter itself: tests/outbox/test_rate_limit.py)


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
    fake = FakeMonotonic()
    telegram, web = RecordingChannel(30), RecordingChannel(None)
    sender = Sender(db, {"telegram": telegram, "web": web}, monotonic=fake, sleep=fake.sleep)
    limiter = sender.limiter
    slow = await limiter.wait_turn("telegram", "1")
    await limiter.answered(slow, slow.at + 0.5)  # a request that took half a second
    for chat in range(2, 31):
        await limiter.answered(await limiter.wait_turn("telegram", str(chat)), fake.now + 0.002)
    fake.now += limiter.interval
    await enqueue(db, 42, "to telegram")
    async with db.transaction() as tx:
        await outbox.enqueue(
            tx, channel="web", chat_id="visitor-session-0003", contact_id=None, method="send_text",
            payload={"text": "to the web", "buttons": []}, now=NOW,
        )
    before = fake.now
    wait = await sender.pump()
    await sender.stop()
    assert fake.now - before <= limiter.interval  # no long sleep in the pass
    assert web.sent == ["to the web"] and telegram.sent == []
    assert slow.at + 1.0 + 0.49 <= fake.now + wait <= slow.at + 1.0 + 0.5
