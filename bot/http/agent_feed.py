"""The agents' page's push: its news as Server-Sent Events at /agent/api/stream.

Every change an agent must see is a `ticket_events` row (a new ticket's "opened", a customer's
message, a claim, a resolution, an escalation, an SLA breach, a note), so the table is the
feed and its ids are the stream's order. `DeskFeed` reads the new rows once per wake-up for
the whole process and hands them to every open stream, which keeps those the signed-in
account may see (a store manager: the tickets of their stores, storage/agent_views.TICKET_STORE).

Wake-ups: on PostgreSQL a trigger NOTIFYs `feedbot_desk` at the COMMIT of a transaction that
wrote events (migration 0048), heard by every instance (`PgDatabase.listen`, as the web chat
does): a complaint recorded by instance B reaches an agent connected to A. On SQLite (one
process) the database calls `write_listeners` after each write transaction. A missed wake-up
(the listening connection lost for a moment) only delays: the feed also reads every
`recheck` seconds.

Nothing is lost:
- Ids may commit out of order on PostgreSQL (two transactions). The feed keeps a low-water
  mark: every id at or below it was read (or never committed: a gap is waited for `settle`
  seconds, then passed). Ids above it that were read are remembered, and read again until
  the gap below them fills.
- Each SSE message's `id:` is the low-water mark before the read that found it; a browser
  that reconnects sends it back as Last-Event-ID (EventSource does), and the stream sends
  again every visible event above it: repeats are possible, gaps are not. The page drops an
  event id it has seen. A first connection starts at `?after=<cursor>` given with the ticket
  list, so nothing between the list and the stream is missed either.
- A stream whose queue overflows (a stalled client) is closed: it reconnects and catches up
  from the table.
Keep-alive comments every `keepalive` seconds; each also re-checks the session (signed out,
disabled: the stream ends). At most `per_account` open streams per account (429 beyond).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from typing import Any, Callable

from aiohttp import web

from bot.http.auth import COOKIE, error, secured
from flows.agent_page import page_text
from flows.tickets import ticket_number
from storage import agent_views
from storage.accounts import SessionRow
from storage.agent_views import FeedEvent
from storage.db import dialect

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "feedbot_desk"  # the trigger of migration 0048 (PostgreSQL)
QUEUE_MAX = 2000  # events waiting for one stream; beyond, the stream is closed (it catches up)
DISCONNECT_CHECK = 1.0  # seconds between looks at whether the page is still connected
BACKLOG_MAX = 1000  # events sent again on a reconnect; beyond, the page is told to reload

Batch = tuple[int, list[FeedEvent]]  # (the low-water mark before the read, the events read)


class DeskFeed:
    def __init__(self, db: Any, *, settle: float = 10.0, recheck: float = 30.0) -> None:
        self.db = db
        self.settle = settle
        self.recheck = recheck
        self._low = 0
        self._seen: dict[int, float] = {}  # ids above _low already read -> when first read
        self._poked = asyncio.Event()
        self._queues: set[asyncio.Queue[Batch | None]] = set()
        self._task: asyncio.Task[None] | None = None
        # SQLite pokes after every write transaction (one process, ids commit in order): with no
        # page open the read is skipped and the mark catches up when a page asks for it.
        self._skip_when_idle = False
        self._behind = False

    @property
    def cursor(self) -> int:
        """Every event at or below it has been handed to the streams (or never committed)."""
        return self._low

    async def fresh_cursor(self) -> int:
        """The cursor, first caught up if reads were skipped while no page was open."""
        if self._behind and not self._queues:
            self._behind = False
            self._low = await agent_views.last_event_id(self.db.reader)
            self._seen.clear()
        return self._low

    async def start(self) -> None:
        self._low = await agent_views.last_event_id(self.db.reader)
        if dialect(self.db) == "postgresql":
            await self.db.listen(NOTIFY_CHANNEL, lambda _payload: self.poke())
        else:
            self._skip_when_idle = True
            self.db.write_listeners.append(self.poke)
        self._task = asyncio.create_task(self._run(), name="agent-feed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.poke in getattr(self.db, "write_listeners", ()):
            self.db.write_listeners.remove(self.poke)
        for queue in list(self._queues):
            _offer(queue, None)  # the streams end

    def poke(self) -> None:
        self._poked.set()

    def subscribe(self) -> asyncio.Queue[Batch | None]:
        queue: asyncio.Queue[Batch | None] = asyncio.Queue(QUEUE_MAX)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Batch | None]) -> None:
        self._queues.discard(queue)

    async def _run(self) -> None:
        while True:
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that lands as
                # the wait ends (a poke: every SQLite write), and close() then waits forever.
                async with asyncio.timeout(1.0 if self._seen else self.recheck):
                    await self._poked.wait()
            except TimeoutError:
                pass
            self._poked.clear()
            if self._skip_when_idle and not self._queues:
                self._behind = True  # no page to tell: fresh_cursor() catches up when one opens
                continue
            try:
                await self.read()
            except Exception:  # the database away for a moment: try again at the next wake-up
                log.exception("agent page: could not read the ticket events")
                await asyncio.sleep(1.0)

    async def read(self) -> None:
        """Read what is new and hand it to every stream (also called directly by tests)."""
        while True:
            before = self._low
            rows = await agent_views.events_after(self.db.reader, before)
            now = time.monotonic()
            fresh = [row for row in rows if row.id not in self._seen]
            for row in fresh:
                self._seen[row.id] = now
            while self._seen:  # move the mark over what is read, and over gaps that stayed empty
                first = min(self._seen)
                if first != self._low + 1 and now - self._seen[first] < self.settle:
                    break
                self._low = first
                del self._seen[first]
            if fresh:
                for queue in list(self._queues):
                    if not _offer(queue, (before, fresh)):
                        self._queues.discard(queue)
                        _drop_oldest_and_end(queue)
            if not fresh or len(rows) < 500:
                return


def _offer(queue: asyncio.Queue[Batch | None], item: Batch | None) -> bool:
    try:
        queue.put_nowait(item)
    except asyncio.QueueFull:
        return False
    return True


def _drop_oldest_and_end(queue: asyncio.Queue[Batch | None]) -> None:
    """A stalled stream: make room for the None that ends it (its page reconnects)."""
    try:
        queue.get_nowait()
    except asyncio.QueueEmpty:
        pass
    _offer(queue, None)


class DeskStream:
    """The /agent/api/stream handler, one per page (AgentPage.register)."""

    def __init__(self, feed: DeskFeed, *, scope: Callable[[SessionRow], tuple[str, ...] | None],
                 session: Callable[[str | None], Any], language: str, keepalive: float = 15.0,
                 per_account: int = 4) -> None:
        self.feed = feed
        self.scope = scope
        self.session = session  # the accounts' session lookup by cookie value
        self.lang = language
        self.keepalive = keepalive
        self.per_account = per_account
        self.open: Counter[int] = Counter()  # account id -> open streams

    async def handle(self, request: web.Request, session: SessionRow) -> web.StreamResponse:
        account = session.account.id
        if self.open[account] >= self.per_account:
            return error(429, page_text(self.lang, "stream.too_many"))
        after = _start(request, await self.feed.fresh_cursor())
        queue = self.feed.subscribe()  # before the catch-up read: nothing falls in between
        self.open[account] += 1
        try:
            response = web.StreamResponse(headers={
                "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # nginx: do not hold the events back
            })
            secured(response)  # the security headers, before the head is sent
            await response.prepare(request)
            await response.write(b"retry: 3000\n\n")
            await self._run(request, response, session, queue, after)
        except (ConnectionResetError, ConnectionError):
            pass  # the page went away
        finally:
            self.feed.unsubscribe(queue)
            self.open[account] -= 1
            if self.open[account] <= 0:
                del self.open[account]
        return response

    async def _run(self, request: web.Request, response: web.StreamResponse, session: SessionRow,
                   queue: asyncio.Queue[Batch | None], after: int) -> None:
        stores = self.scope(session)
        sent: set[int] = set()
        backlog = await agent_views.events_after(self.feed.db.reader, after, BACKLOG_MAX + 1)
        if len(backlog) > BACKLOG_MAX:  # too far behind: the page reloads its list and ticket
            await response.write(_message(self.feed.cursor, "reload", {}))
        else:
            for event in backlog:
                if _visible(event, stores):
                    await response.write(_message(after, "ticket", _data(event)))
                sent.add(event.id)
        quiet_since = time.monotonic()
        while True:
            try:
                async with asyncio.timeout(min(self.keepalive, DISCONNECT_CHECK)):  # not wait_for: see _run
                    item = await queue.get()
            except TimeoutError:
                transport = request.transport
                if transport is None or transport.is_closing():
                    return  # the page went away (aiohttp does not cancel the handler): free its slot now
                if time.monotonic() - quiet_since < self.keepalive:
                    continue
                quiet_since = time.monotonic()
                again = await self.session(request.cookies.get(COOKIE))
                if again is None:  # signed out, disabled, removed: the stream ends
                    await response.write(_message(None, "signed_out", {}))
                    return
                stores = self.scope(again)  # a role or its stores may have changed
                await response.write(b": keep-alive\n\n")
                continue
            if item is None:
                return  # the server stops, or this stream fell too far behind
            quiet_since = time.monotonic()
            resume, events = item
            for event in events:
                if event.id in sent or not _visible(event, stores):
                    continue
                await response.write(_message(resume, "ticket", _data(event)))
            sent = {i for i in sent if i > resume}  # at or below it: never handed out again


def _start(request: web.Request, cursor: int) -> int:
    for raw in (request.headers.get("Last-Event-ID", ""), request.query.get("after", "")):
        if raw.isascii() and raw.isdigit() and len(raw) < 19:  # isdigit() alone takes "²", which int() refuses
            return int(raw)
    return cursor


def _visible(event: FeedEvent, stores: tuple[str, ...] | None) -> bool:
    return stores is None or event.store in stores


def _data(event: FeedEvent) -> dict[str, Any]:
    return {"id": event.id, "ticket": event.ticket_id, "number": ticket_number(event.ticket_id, event.kind),
            "kind": event.kind, "action": event.action, "actor": event.actor}


def _message(resume: int | None, kind: str, data: dict[str, Any]) -> bytes:
    head = f"id: {resume}\n" if resume is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()
