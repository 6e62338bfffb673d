"""Several instances of the real app on one PostgreSQL database, in this process (bot/cluster.py).

Each `Harness` here is a whole FeedbotApp with its own connections, as a second process
would have; tests/e2e/test_cluster_processes.py does the same with real `feedbot run`
processes and kill -9.
"""
from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator

import pytest

from tests.conftest import Harness, make_config
from tests.channels.web.test_server import Visitor

pytestmark = pytest.mark.postgresql_only
BACKENDS = ("postgresql",)
SECRET = "webhook-secret-0123456789"
LEASE = "1s"


@pytest.fixture
async def pair(tmp_path, tg, clock, database_url, backend) -> AsyncIterator[list[Harness]]:
    """Two instances, started one after the other: the first leads."""
    harnesses = []
    for n in range(2):
        (tmp_path / str(n)).mkdir()
        config = make_config(
            tmp_path / str(n), tg, database_url=database_url, cluster={"lease": LEASE, "instance_name": f"i{n}"},
            http={"public_url": "http://127.0.0.1"}, telegram={"mode": "webhook", "webhook_secret": SECRET},
        )
        h = Harness(config, tg, clock)
        await h.start(scheduler=True)
        harnesses.append(h)
    yield harnesses
    for h in harnesses:
        await h.close()


async def readyz(h: Harness) -> tuple[int, dict]:
    async with h.http.get(f"{h.url}/readyz") as resp:
        return resp.status, await resp.json()


async def until(predicate, timeout: float = 5.0, what: str = "condition") -> float:
    began = time.monotonic()
    while not predicate():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - began


async def test_one_leads_the_other_follows_and_readyz_says_which(pair):
    first, second = pair
    assert first.app.cluster.is_leader and not second.app.cluster.is_leader
    status, body = await readyz(first)
    assert status == 200 and body["role"] == "leader" and body["ok"]
    assert body["parts"]["migrations"]["status"] == "ok"
    assert body["parts"]["migrations"]["applied"] == body["parts"]["migrations"]["known"]
    status, body = await readyz(second)
    assert status == 200 and body["role"] == "follower"
    # Only the leader sends: the follower's sender is off, its scheduler's jobs do nothing.
    assert first.app.liveness()["sender"]["status"] == "ok"
    assert second.app.liveness()["sender"]["status"] == "off"


async def test_a_stopped_leader_hands_over_at_once(pair):
    first, second = pair
    await first.stop()  # a clean stop gives the lease up ...
    holders = [r[0] for r in await second.app.db.fetchall("SELECT holder FROM leases WHERE name = 'leader'")]
    assert holders in ([], [second.app.cluster.name])  # ... so no one waits for it to run out
    await until(lambda: second.app.cluster.is_leader, timeout=3, what="takeover")  # at its next tick
    status, body = await readyz(second)
    assert body["role"] == "leader" and second.app.liveness()["sender"]["status"] == "ok"


async def test_a_silent_leader_loses_the_lead_after_its_lease(pair):
    """The leader stops renewing (hung, cut off): the other takes over once the lease ran out,
    and the old one steps down when it finds the lease gone."""
    first, second = pair
    first.app.cluster._task.cancel()  # no more renewals, as if frozen
    took = await until(lambda: second.app.cluster.is_leader, timeout=4, what="takeover")
    assert took < 2.0  # lease 1 s + one tick
    await first.app.cluster.tick()  # it wakes up
    assert not first.app.cluster.is_leader
    assert first.app.liveness()["sender"]["status"] == "off"


async def test_a_webhook_update_redelivered_to_the_other_instance_is_handled_once(pair, tg):
    update = tg.make_message_update(777001, "xin chào")
    statuses = await asyncio.gather(*(post(h, update) for h in pair for _ in range(3)))
    assert statuses == [200] * 6
    await pair[0].processed(update["update_id"])
    rows = await pair[0].rows("SELECT processed_at, error FROM inbox")
    assert len(rows) == 1 and rows[0]["processed_at"] and rows[0]["error"] is None
    await tg.wait_for_messages(777001, 1, timeout=5)
    await asyncio.sleep(0.3)
    assert len(tg.sent_messages(777001)) == 1  # one reply, sent by the leader


async def test_a_web_chat_reply_reaches_a_visitor_connected_to_the_follower(pair):
    leader, follower = pair
    visitor = await Visitor.connect(follower)  # the page's socket is on the follower
    try:
        greeting = await visitor.message()  # the bot's greeting: sent by the leader's sender
        assert greeting["seq"] > 0
        assert await visitor.say("/help") == {"type": "accepted", "id": visitor.frames[-1]["id"]}
        help_text = await visitor.message()
        assert help_text["seq"] > greeting["seq"]
        sent_by = await leader.rows("SELECT DISTINCT claimed_by FROM outbox WHERE channel = 'web'")
        assert sent_by == [{"claimed_by": "i0"}]
    finally:
        await visitor.close()
    # Back on the leader's side, resuming from the last id seen: nothing again, nothing missed.
    again = await Visitor.connect(leader, resume=help_text["seq"])
    try:
        await again.say("/help")
        assert (await again.message())["seq"] > help_text["seq"]
    finally:
        await again.close()


async def post(h: Harness, body: dict) -> int:
    async with h.http.post(f"{h.url}/webhooks/telegram", json=body,
                           headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as resp:
        return resp.status


async def test_a_429_pause_outlives_the_leader_that_got_it(pair, tg):
    """The leader hits a 429 (retry_after 4 s) and stops; the new leader waits out the rest of
    the pause before its first Telegram send (bot/outbox/rate_limit.py: ClusterRateLimiter)."""
    leader, follower = pair
    tg.fail_next("sendMessage", 429, retry_after=4)
    await post(leader, tg.make_message_update(777002, "xin chào"))
    await tg.wait_for_requests("sendMessage", 1, timeout=5)
    paused_at = time.monotonic()
    await leader.stop()
    await until(lambda: follower.app.liveness()["sender"]["status"] == "ok", timeout=3, what="takeover")
    assert "telegram" in await follower.app.sender.limiter.pauses()
    reply = (await tg.wait_for_messages(777002, 1, timeout=10))[0]
    assert reply.text
    assert time.monotonic() - paused_at >= 3.5  # not before the pause ran out
    assert len(tg.requests_for("sendMessage")) == 2  # the 429, then the reply: no second 429


async def test_a_leader_cut_off_from_the_database_steps_down_before_its_lease_runs_out(pair):
    first, _ = pair
    cluster = first.app.cluster
    cluster._task.cancel()  # ticks by hand, on a hand-moved clock
    now = [cluster.monotonic()]
    cluster.monotonic = lambda: now[0]
    cluster._renewed_at = now[0]

    class Unreachable:
        def side_transaction(self):
            raise OSError("connection refused")

        async def keep_listening(self) -> bool:
            return False

    real, cluster.db = cluster.db, Unreachable()
    try:
        now[0] += 0.5 * cluster.lease
        await cluster.tick()
        assert cluster.is_leader  # a failed renewal or two: it may still hold the lease
        now[0] += 0.35 * cluster.lease
        await cluster.tick()
        assert not cluster.is_leader  # 0.85 of the lease without a renewal: it steps down
        assert first.app.liveness()["sender"]["status"] == "off"
    finally:
        cluster.db = real


async def test_a_leader_busy_with_a_long_write_keeps_its_lease(pair):
    """The lease is renewed beside the writer: a write transaction longer than the lease (a
    big dispatch batch on a loaded machine) does not hand the lead to another instance."""
    first, second = pair
    async with first.app.db.transaction():
        await asyncio.sleep(2.5)  # the lease is 1 s
    assert first.app.cluster.holds() and not second.app.cluster.is_leader


async def test_the_next_leader_keeps_to_the_window_of_the_last_ones_sends(tmp_path, tg, clock, database_url):
    """A leader sends its second's worth (3 messages at 3/s) and stops; the next takes over at
    once, its limiter empty: it starts only once the last leader's starts have left the
    window (ClusterRateLimiter.hand_over / restore), never 6 arrivals in a second."""
    tg.enforce_limits(global_per_second=3, per_chat_burst=100)
    pair = []
    for n in range(2):
        (tmp_path / str(n)).mkdir()
        config = make_config(
            tmp_path / str(n), tg, database_url=database_url, cluster={"lease": "5s", "instance_name": f"w{n}"},
            http={"public_url": "http://127.0.0.1"}, telegram={"mode": "webhook", "webhook_secret": SECRET},
            sender={"messages_per_second": 3},
        )
        h = Harness(config, tg, clock)
        await h.start(scheduler=True)
        pair.append(h)
    leader, follower = pair
    try:
        await asyncio.gather(*(post(leader, tg.make_message_update(778000 + k, "/help")) for k in range(3)))
        await tg.wait_for_requests("sendMessage", 3, timeout=10)
        await leader.stop()
        await follower.app.cluster.tick()  # takes over now, not at its next tick
        assert follower.app.cluster.is_leader
        await asyncio.gather(*(post(follower, tg.make_message_update(778010 + k, "/help")) for k in range(3)))
        await tg.wait_for_requests("sendMessage", 6, timeout=10)
        times = sorted(r.time for r in tg.requests_for("sendMessage"))
        assert tg.count_429 == 0
        assert all(b - a > 1.0 for a, b in zip(times, times[3:])), times  # at most 3 in any second
    finally:
        for h in pair:
            await h.close()


async def test_a_complaint_recorded_by_one_instance_is_pushed_to_an_agent_on_the_other(pair):
    """The agents' page's push crosses instances: the ticket_events trigger NOTIFYs at COMMIT
    (migration 0048), every instance's DeskFeed listens (bot/http/agent_feed.py)."""
    from tests.digest_data import local
    from tests.http.agent_data import Desk, Sse
    from tests.http.test_agent_page import AgentClient

    leader, follower = pair
    agent = AgentClient(follower)
    try:
        await agent.login("Lan Anh")
        stream = await Sse.open(agent.http, f"{follower.url}/agent/api/stream")
        assert stream.resp.status == 200
        desk = Desk(leader.app.db)  # written through the other instance's connection
        customer = await desk.customer("Nguyễn Thị Lan")
        ticket = await desk.complaint(customer_id=customer, purchase_id=await desk.purchase(customer, local(20)), user=900)
        [opened] = await stream.tickets(1)
        assert (opened["ticket"], opened["action"]) == (ticket, "opened")
        stream.close()
    finally:
        await agent.close()
