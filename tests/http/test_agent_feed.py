"""The agent page's push (bot/http/agent_feed.py) against the real app, on both backends: new
tickets, customers' messages and status changes arrive on /agent/api/stream without asking;
a store manager gets only their stores'; a reconnect with Last-Event-ID loses nothing; the
per-account cap; keep-alives; the stream ends when the session does."""
from __future__ import annotations

import asyncio

import pytest

from bot.http.agent_feed import DeskFeed
from storage.agent_views import FeedEvent
from tests.conftest import BOTH, Harness, make_config
from tests.digest_data import local
from tests.http.agent_data import Desk, Sse
from tests.http.test_agent_page import AgentClient

BACKENDS = BOTH
STREAM = "/agent/api/stream"


@pytest.fixture
async def shop(tmp_path, tg, clock, database_url):
    h = Harness(make_config(tmp_path, tg, database_url=database_url), tg, clock)
    await h.start()
    yield h, Desk(h.app.db)
    await h.close()


async def test_a_new_complaint_a_message_and_a_claim_are_pushed(shop):
    h, desk = shop
    agent = AgentClient(h)
    try:
        await agent.login("Lan Anh")
        _, listed = await agent.get_json("/agent/api/tickets")
        stream = await Sse.open(agent.http, f"{h.url}{STREAM}?after={listed['cursor']}")
        assert stream.resp.status == 200
        assert stream.resp.headers["Content-Type"].startswith("text/event-stream")
        assert stream.resp.headers["Cache-Control"] == "no-store"
        customer = await desk.customer("Nguyễn Thị Lan")
        bought = await desk.purchase(customer, local(20), store="Q1")
        ticket = await desk.complaint(customer_id=customer, purchase_id=bought, user=700)
        [opened] = await stream.tickets(1)
        assert opened == {"id": opened["id"], "ticket": ticket, "number": "KN-0001", "kind": "complaint",
                          "action": "opened", "actor": "customer"}
        await desk.event(ticket, "customer_message", local(22, 10), "Còn đó không shop?")
        assert [e["action"] for e in await stream.tickets(1)] == ["customer_message"]
        status, _ = await agent.act(ticket, "claim")
        assert status == 200
        assert [e["action"] for e in await stream.tickets(1)] == ["claimed"]
        stream.close()
    finally:
        await agent.close()


async def test_a_manager_gets_only_their_stores_events(shop):
    h, desk = shop
    manager = AgentClient(h)
    try:
        await manager.login("Quản Lý Q1", role="manager", stores=("Q1",))
        stream = await Sse.open(manager.http, f"{h.url}{STREAM}")
        q3 = await desk.customer("Trần Văn Bình")
        await desk.complaint(customer_id=q3, purchase_id=await desk.purchase(q3, local(20), store="Q3"), user=701)
        nobody = await desk.complaint(customer_id=None, purchase_id=None, user=702)  # no customer: owners and agents
        q1 = await desk.customer("Nguyễn Thị Lan")
        mine = await desk.complaint(customer_id=q1, purchase_id=await desk.purchase(q1, local(20), store="Q1"), user=703)
        [first] = await stream.tickets(1)
        assert first["ticket"] == mine  # the Q3 and store-less tickets' events were not sent
        assert nobody != mine
        stream.close()
    finally:
        await manager.close()


async def test_a_reconnect_with_last_event_id_gets_what_it_missed_and_the_page_skips_repeats(shop):
    h, desk = shop
    agent = AgentClient(h)
    try:
        await agent.login("Lan Anh")
        stream = await Sse.open(agent.http, f"{h.url}{STREAM}")
        customer = await desk.customer("Nguyễn Thị Lan")
        ticket = await desk.complaint(customer_id=customer, purchase_id=None, user=704)
        [opened] = await stream.tickets(1)
        resume = stream.last_id
        stream.close()  # the connection drops; meanwhile the customer writes twice
        await desk.event(ticket, "customer_message", local(22, 10), "Alo?")
        await desk.event(ticket, "customer_message", local(22, 11), "Shop ơi")
        again = await Sse.open(agent.http, f"{h.url}{STREAM}", last_event_id=resume)
        got = await again.tickets(2)
        got = [e for e in got if e["id"] != opened["id"]] + ([] if len(got) == 2 and got[0]["id"] != opened["id"]
                                                            else await again.tickets(1))
        assert [e["action"] for e in got] == ["customer_message", "customer_message"]
        assert got[0]["id"] < got[1]["id"]
        again.close()
    finally:
        await agent.close()


async def test_keep_alives_and_the_stream_ends_with_the_session(shop):
    h, _ = shop
    h.app.agent_page.stream.keepalive = 0.05
    agent = AgentClient(h)
    try:
        await agent.login("Lan Anh")
        stream = await Sse.open(agent.http, f"{h.url}{STREAM}")
        message = await stream.next(comments=True)
        assert message.comments == ["keep-alive"]
        await h.app.accounts.disable("lan.anh", by="test")
        while True:  # keep-alives until the next check finds the session gone
            message = await stream.next(comments=True)
            if message.event == "signed_out":
                break
        with pytest.raises(EOFError):
            await stream.next()
    finally:
        await agent.close()


async def test_at_most_n_open_streams_per_account(shop):
    h, _ = shop
    cap = h.config.agent_page.streams_per_account
    agent, other = AgentClient(h), AgentClient(h)
    streams = []
    try:
        await agent.login("Lan Anh")
        await other.login("Minh")
        for _ in range(cap):
            streams.append(await Sse.open(agent.http, f"{h.url}{STREAM}"))
            assert streams[-1].resp.status == 200
        refused = await Sse.open(agent.http, f"{h.url}{STREAM}")
        assert refused.resp.status == 429
        assert "quá nhiều nơi" in (await refused.resp.json())["error"]["message"]
        refused.close()
        streams.append(await Sse.open(other.http, f"{h.url}{STREAM}"))  # another account has its own
        assert streams[-1].resp.status == 200
        streams.pop(0).close()
        for _ in range(500):  # the server notices the closed one (it looks every second)
            if h.app.agent_page.stream.open[1] < cap:
                break
            await asyncio.sleep(0.02)
        streams.append(await Sse.open(agent.http, f"{h.url}{STREAM}"))
        assert streams[-1].resp.status == 200
    finally:
        for s in streams:
            s.close()
        await agent.close()
        await other.close()


async def test_no_session_no_stream(shop):
    h, _ = shop
    nobody = AgentClient(h)
    try:
        async with nobody.http.get(f"{h.url}{STREAM}") as resp:
            assert resp.status == 401
    finally:
        await nobody.close()


class _Rows:
    """A stand-in database for DeskFeed: the committed ticket events are whatever the test says."""

    dialect = "sqlite"

    def __init__(self) -> None:
        self.committed: list[FeedEvent] = []
        self.write_listeners: list = []
        self.reader = self

    async def execute_fetchall(self, sql: str, params: tuple) -> list[tuple]:
        if "MAX(id)" in sql:
            return [(max((e.id for e in self.committed), default=0),)]
        after, limit = params
        rows = sorted((e for e in self.committed if e.id > after), key=lambda e: e.id)[:limit]
        return [(e.id, e.ticket_id, e.kind, e.action, e.actor, e.store) for e in rows]


def _event(n: int) -> FeedEvent:
    return FeedEvent(n, 1, "complaint", f"e{n}", "customer", None)


@pytest.mark.sqlite_only
async def test_ids_committed_out_of_order_are_all_handed_out(monkeypatch):
    """PostgreSQL may commit id 3 before id 2 (two transactions): the feed hands 3 out, keeps its
    mark at 1, hands 2 out when it commits; a gap that stays empty is passed after `settle`."""
    from storage import agent_views

    rows = _Rows()
    rows.committed = [_event(1)]
    monkeypatch.setattr(agent_views, "fetch_one", lambda conn, sql, params=(): _first(conn, sql, params))
    feed = DeskFeed(rows, settle=60.0)
    await feed.start()
    assert feed.cursor == 1
    queue = feed.subscribe()
    rows.committed.append(_event(3))  # 2 is still in flight
    await feed.read()
    assert queue.get_nowait() == (1, [_event(3)]) and feed.cursor == 1
    await feed.read()  # read again: 3 is not handed out twice
    assert queue.empty() and feed.cursor == 1
    rows.committed.append(_event(2))
    await feed.read()
    assert queue.get_nowait() == (1, [_event(2)]) and feed.cursor == 3
    rows.committed.append(_event(5))  # 4 rolled back: never comes
    await feed.read()
    assert queue.get_nowait() == (3, [_event(5)]) and feed.cursor == 3
    feed.settle = 0.0
    await feed.read()
    assert queue.empty() and feed.cursor == 5
    await feed.close()
    assert queue.get_nowait() is None  # the streams end with the feed


async def _first(conn, sql, params):
    rows = await conn.execute_fetchall(sql, params)
    return rows[0] if rows else None


@pytest.mark.sqlite_only  # PostgreSQL wakes the feed only for ticket events (NOTIFY)
async def test_with_no_page_open_writes_cost_no_feed_read_and_a_page_opening_later_misses_nothing(shop, monkeypatch):
    """SQLite wakes the feed after every write transaction; with no stream open it reads
    nothing (every customer message would pay for it) and catches up when a page asks."""
    h, desk = shop
    import storage.agent_views as views

    reads = 0
    real = views.events_after

    async def counted(*args, **kwargs):
        nonlocal reads
        reads += 1
        return await real(*args, **kwargs)

    monkeypatch.setattr(views, "events_after", counted)
    customer = await desk.customer("Nguyễn Thị Lan")
    ticket = await desk.complaint(customer_id=customer, purchase_id=await desk.purchase(customer, local(20), store="Q1"), user=704)
    for n in range(5):
        await desk.event(ticket, "customer_message", local(22, n), f"tin nhắn {n}")
    await asyncio.sleep(0.3)  # the feed's task has run on each wake-up meanwhile
    assert reads == 0
    agent = AgentClient(h)
    try:
        await agent.login("Lan Anh")
        _, listed = await agent.get_json("/agent/api/tickets")
        last = (await h.app.db.fetchone("SELECT MAX(id) FROM ticket_events"))[0]
        assert listed["cursor"] == last  # caught up: the page does not start from before the list
        stream = await Sse.open(agent.http, f"{h.url}{STREAM}?after={listed['cursor']}")
        await desk.event(ticket, "customer_message", local(23), "còn ai không?")
        assert [e["action"] for e in await stream.tickets(1)] == ["customer_message"]
        stream.close()
    finally:
        await agent.close()


async def test_a_wake_up_landing_as_the_feed_stops_does_not_keep_it_running(db):
    """Every SQLite write pokes the feed. A poke that ends its wait just as close() cancels it
    must not eat the cancel (3.11's asyncio.wait_for did: the bot never exited on SIGTERM).
    Each round lets the poke get a different number of loop turns ahead of the cancel."""
    for turns in range(8):
        feed = DeskFeed(db)
        await feed.start()
        await asyncio.sleep(0.01)  # the feed is waiting
        feed.poke()
        for _ in range(turns):
            await asyncio.sleep(0)
        try:
            async with asyncio.timeout(5):
                await feed.close()
        except TimeoutError:
            raise AssertionError(f"the feed ignored its stop ({turns} loop turns after the poke)") from None


async def test_a_resume_point_or_photo_number_in_other_digits_is_ignored_not_a_500(shop):
    """str.isdigit() is true for "²" and "٣", which int() refuses or reads: ?after=² and
    Last-Event-ID: ² answered 500, as did /photos/²."""
    h, desk = shop
    agent = AgentClient(h)
    try:
        await agent.login("Lan Anh")
        for url, headers in ((f"{h.url}{STREAM}?after=²", {}), (f"{h.url}{STREAM}", {"Last-Event-ID": "²"})):
            async with agent.http.get(url, headers=headers) as resp:
                assert resp.status == 200, (url, headers, resp.status)
        ticket = await desk.complaint(customer_id=None, purchase_id=None, user=805)
        async with agent.http.get(f"{h.url}/agent/api/tickets/{ticket}/photos/²") as resp:
            assert resp.status == 404
    finally:
        await agent.close()
