"""The sender's rate limits: when a message may start, per chat, per platform, and a 429's pause.

`RateLimiter` holds every figure the sender keeps to; the sender asks it for a turn before each
message and reports back. Its interface is small and async so that another implementation
(e.g. one shared by several bot processes through the database) can stand in:

- `pauses()`: the platforms paused by a 429 and the seconds left (once per sender pass);
- `pause(channel, seconds)`: a 429 with retry_after: every send on that platform waits;
- `wait_turn(channel, chat_id, paced=)`: a `Turn` when the message may start now (it may sleep
  up to one start interval for the platform's overall rate), or the seconds to wait before
  asking again (the chat's pacing, the platform's window, a pause);
- `sending(turn)`: the request leaves now (after the row's claim: what the claim took is not
  the network's);
- `answered(turn)`: the request's answer came in (bounds when it reached the platform);
- `finished(turn)`: the message is done; a paced chat's next one is counted from now;
- `unused(turn)`: nothing went out on this turn after all.

The limits:
- ~30 messages/s overall per platform (the channel's `messages_per_second`, None = no overall
  limit, SENDER_RATE = the configured rate): starts spread evenly a little under the rate, and
  never more than `rate` of them in any second plus a margin for the requests' jitter on
  their way (see `_slot_opens`);
- ~1/s per private chat, ~20/min per group (the channel's `pacing(chat_id)`), counted from
  the previous message's answer;
- a 429 pauses that platform only (other channels, the web chat, go on).
Button acknowledgements (`paced=False`) take no overall slot and no chat pacing; a pause
holds them too.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

from bot.channels.base import SENDER_RATE, Channel
from storage import leases

log = logging.getLogger(__name__)

LAST_SENT_PRUNE_AT = 1024  # per-chat send times kept before idle chats are forgotten ...
LAST_SENT_PRUNE_EVERY = 1.0  # ... at most once a second
RATE_MARGIN = 0.98  # starts are spread 1/(rate * RATE_MARGIN) apart, kept to that schedule ...
CATCH_UP = 3  # ... up to this many intervals of lag made up, never closer than half an interval ...
WINDOW_MARGIN = 0.010  # ... and at most `rate` starts in any (1 s + this + a slow request's delay)
IN_FLIGHT_LATE_MAX = 1.0  # s: a request still unanswered may arrive late; waited for up to this much more
MAX_SLEEP_IN_PASS = 0.05  # s: Telegram's 30/s interval (34 ms) is slept, a 5/s channel's 200 ms is not


@dataclass(frozen=True)
class _Limit:
    count: int  # at most this many arrivals ...
    window: float  # ... in any window this long (seconds)
    interval: float  # seconds between two starts on the even schedule


class Turn:
    """One message's permission to start, and how long its request took."""

    __slots__ = ("channel", "chat_id", "paced", "counted", "at", "left_at", "round_trip", "network", "sent")

    def __init__(self, channel: str, chat_id: str, paced: bool, at: float, counted: bool) -> None:
        self.channel = channel
        self.chat_id = chat_id
        self.paced = paced
        self.counted = counted  # it took a slot of the platform's overall rate
        self.at = at
        self.left_at: float | None = None  # when the request left (sending()); None: at `at`
        self.round_trip: float | None = None  # from the turn to the answer; None while in flight
        self.network: float | None = None  # from the request leaving to its answer
        self.sent = True


class RateLimiter:
    """The limits of one bot process, in memory (monotonic time)."""

    def __init__(
        self,
        channels: Mapping[str, Channel],
        *,
        messages_per_second: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.channels = channels
        # A little under the platform's limit: requests spaced exactly 1/rate apart still
        # arrive bunched by network jitter, and one extra in a second is a 429 that pauses
        # every chat (seen in bench/csat_pipeline.py at exactly 30/s). The window limit in
        # _slot_opens is what keeps the count; this spacing keeps the sends spread.
        self.messages_per_second = messages_per_second
        self.interval = 1.0 / (messages_per_second * RATE_MARGIN)  # at the configured rate
        self.monotonic = monotonic
        self.sleep = sleep  # the overall rate's waits (tests pass one that moves a fake `monotonic`)
        self._next_slot: dict[str, float] = {}  # per channel: when its next start is due
        self._starts: dict[str, deque[Turn]] = {}  # per channel: its last `count` starts
        self._paused_until: dict[str, float] = {}  # per channel: a 429 pauses that platform only
        self._limits: dict[str, _Limit | None] = {}
        self._last_sent: dict[tuple[str, str], float] = {}  # per chat: its last message's answer
        self._next_prune = 0.0

    def __len__(self) -> int:
        """How many chats' send times are kept (the recently active ones)."""
        return len(self._last_sent)

    async def pauses(self) -> dict[str, float]:
        """The channels paused by a 429, with the seconds left. Called once per sender pass
        (it also forgets the send times of idle chats)."""
        mono = self.monotonic()
        if len(self._last_sent) > LAST_SENT_PRUNE_AT and mono >= self._next_prune:
            self._forget_idle_chats()
        return {name: until - mono for name, until in self._paused_until.items() if until > mono}

    async def pause(self, channel: str, seconds: float) -> None:
        """A 429: every send on the channel waits `seconds` (a longer pause already set stays)."""
        until = self.monotonic() + seconds
        self._paused_until[channel] = max(self._paused_until.get(channel, 0.0), until)

    async def wait_turn(self, channel: str, chat_id: str, *, paced: bool = True) -> Turn | float:
        """A turn to start one message to the chat, or the seconds to wait before asking again.
        Sleeps only for the platform's next even start (at most about one interval): a longer
        wait (the window after a slow request) is returned, so the caller goes on with other
        channels' messages meanwhile."""
        left = self._pause_left(channel)
        if left > 0:
            return left
        ch = self.channels[channel]
        if not paced:  # button acknowledgements: not chat messages, not in the ~30/s budget
            return Turn(channel, chat_id, False, self.monotonic(), counted=False)
        ready_at = self._last_sent.get((channel, chat_id), float("-inf")) + ch.pacing(chat_id)
        if ready_at > self.monotonic():
            return ready_at - self.monotonic()
        opens = self._slot_opens(channel, ch)
        # Slept here only up to one interval, and never long: a slow channel (ZNS at a few per
        # second) must not hold the pass, and with it a faster channel's rows, for its interval.
        if opens is not None and opens[0] - self.monotonic() > min(opens[1], MAX_SLEEP_IN_PASS):
            return opens[0] - self.monotonic()
        turn = await self._take_slot(channel, chat_id, ch)
        left = self._pause_left(channel)
        if left > 0:  # a 429 came in while we waited for the slot
            await self.unused(turn)
            return left
        return turn

    async def sending(self, turn: Turn, at: float | None = None) -> None:
        """The turn's request leaves now (or at `at`): after the claim, which may have waited
        for the database; the time between is the request's delay, not the network's."""
        turn.left_at = self.monotonic() if at is None else at

    async def answered(self, turn: Turn, at: float | None = None) -> None:
        """The turn's request was answered (now, or at `at`)."""
        if turn.round_trip is None:
            answer = self.monotonic() if at is None else at
            turn.round_trip = answer - turn.at
            turn.network = answer - (turn.at if turn.left_at is None else turn.left_at)

    async def finished(self, turn: Turn) -> None:
        """The message is done (sent or not). A paced chat's next message is counted from
        now, not from the request: a slow request must not let the next one reach the
        platform less than the interval after it."""
        if turn.round_trip is None:
            await self.unused(turn)  # no request went out (e.g. preparing it failed)
        if turn.paced:
            self._last_sent[(turn.channel, turn.chat_id)] = self.monotonic()

    async def unused(self, turn: Turn) -> None:
        """Nothing went out on this turn: its start still counts, with no delay."""
        turn.round_trip, turn.network, turn.sent = 0.0, 0.0, False

    def _pause_left(self, channel: str) -> float:
        until = self._paused_until.get(channel)
        return 0.0 if until is None else until - self.monotonic()

    def _forget_idle_chats(self) -> None:
        """Drop the send times of chats whose pacing interval has passed (they may be sent to
        at once, as if never seen): the dict holds the recently active chats, not every chat
        ever sent to (at ~30 msg/s: a few hundred entries, whatever the number of customers)."""
        now = self.monotonic()
        for key, at in list(self._last_sent.items()):
            channel = self.channels.get(key[0])
            if channel is None or now - at >= channel.pacing(key[1]):
                del self._last_sent[key]
        self._next_prune = now + LAST_SENT_PRUNE_EVERY

    def _limit(self, name: str, channel: Channel) -> _Limit | None:
        """The channel's overall rate limit (None: no overall limit)."""
        if name not in self._limits:
            rate = channel.messages_per_second
            if rate == SENDER_RATE:  # the platform's rate is the configured one
                rate = self.messages_per_second
            if rate is None:
                self._limits[name] = None
            else:
                count = max(1, math.floor(rate))  # 30/s: 30 in 1 s; 0.5/s: 1 in 2 s
                self._limits[name] = _Limit(count, count / rate, 1.0 / (rate * RATE_MARGIN))
                self._starts[name] = deque(maxlen=count)
        return self._limits[name]

    async def _take_slot(self, name: str, chat_id: str, channel: Channel) -> Turn:
        """Waits until the channel's overall limit allows one more message and records its
        start (a turn that counts nothing when the channel has no overall limit)."""
        while True:  # again after the wait: an answer that came in meanwhile may move it
            opens = self._slot_opens(name, channel)
            now = self.monotonic()
            if opens is None:
                return Turn(name, chat_id, True, now, counted=False)
            if opens[0] <= now:
                break
            await self.sleep(opens[0] - now)
        limit = self._limits[name]
        assert limit is not None
        scheduled = self._next_slot.get(name, now)
        self._next_slot[name] = max(scheduled, now - CATCH_UP * limit.interval) + limit.interval
        turn = Turn(name, chat_id, True, now, counted=True)
        self._starts[name].append(turn)
        return turn

    def _slot_opens(self, name: str, channel: Channel) -> tuple[float, float] | None:
        """When the channel's overall limit allows the next start, and the channel's interval
        (None: no overall limit)."""
        limit = self._limit(name, channel)
        if limit is None:
            return None
        # Two rules. (1) Starts are spread evenly, 1/(rate * RATE_MARGIN) apart, kept to that
        # schedule: a wake-up ~1 ms late does not push every later start back (counting from
        # the wake-up cost 3% of the rate, 0.944 of the cap in bench/outbound_drain.py). A late
        # start lets the next ones follow sooner, never closer than half an interval, and at
        # most CATCH_UP intervals of lag are made up (after a stall or an idle spell: no burst).
        # (2) What the platform counts is arrivals: at most `count` in any `window` (1 s).
        # A start may follow the `count`-th start before it by no less than the window plus
        # that request's delay beyond the fastest recent network round trip (it may have
        # arrived that late: the claim's wait for the database counts in its delay, not in the
        # fastest, else a stretch of slow claims followed by fast ones drew 429s on PostgreSQL;
        # for a request still in flight, as late as it has been so far, up to
        # IN_FLIGHT_LATE_MAX: a platform's stalled event loop may count it any moment). Based on actual start and answer
        # times, so lateness does not compound, and a request held up on its way delays the
        # next window instead of landing in it: in bench/outbound_drain.py a start reaches the
        # fake Bot API ~2 ms later, but 40-90 ms later a few times per 3,000 (event-loop
        # stalls), and keeping to the schedule without this rule drew 2-5 429s per 10,000.
        # In steady state rule (1) binds and rule (2) rarely does. A fixed margin would have
        # to cover the worst stall on every window (90 ms: 0.92 of the cap at best); this one
        # costs only the windows after a slow request.
        ready = self._next_slot.get(name, float("-inf"))
        starts = self._starts[name]
        if starts:
            ready = max(ready, starts[-1].at + limit.interval / 2)
        if len(starts) == limit.count:
            ready = max(ready, self._window_opens(starts, limit))
        return ready, limit.interval

    def _window_opens(self, starts: deque[Turn], limit: _Limit) -> float:
        """When one more start keeps at most `count` arrivals in any window."""
        oldest = starts[0]
        fastest = min((s.network for s in starts if s.sent and s.network is not None), default=0.0)
        if oldest.round_trip is None:  # still in flight: it may yet arrive
            so_far = self.monotonic() - oldest.at - fastest
            late = max(WINDOW_MARGIN, min(so_far, IN_FLIGHT_LATE_MAX))
        else:
            late = max(WINDOW_MARGIN, oldest.round_trip - fastest)
        return oldest.at + limit.window + late


PAUSE_PREFIX = "pause:"
WINDOW_PREFIX = "window:"  # a leader that stepped down: until when its last sends fill the platform's window


class ClusterRateLimiter(RateLimiter):
    """The limits of a bot whose instances share one database (bot/cluster.py).

    Only the cluster's leader sends, so the limits this process keeps in memory (the overall
    rate, each chat's pacing) are the bot's as a whole, exactly as with one instance: no
    database round trip per message, and nothing to agree on between instances. What must
    outlive the leader is a 429's pause: it is also written to the database (`leases`, name
    "pause:<channel>", the server's clock), and a new leader loads it (`restore`) before its
    first send, so a takeover in the middle of a pause does not walk into another 429.

    The other thing a new leader cannot know is the last leader's sends of the past second:
    its limiter starts empty. A leader that steps down records until when its last starts
    fill each platform's window (`hand_over`, "window:<channel>"); one that died (kill -9)
    stopped sending at least `silent_for` before its lease ran out (it steps down at 0.8 of
    the lease without a renewal), so the new one holds back for what is left of a window."""

    def __init__(self, channels: Mapping[str, Channel], *, db: Any, instance: str, silent_for: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(channels, **kwargs)
        self.db = db
        self.instance = instance
        self.silent_for = silent_for

    async def pause(self, channel: str, seconds: float) -> None:
        await super().pause(channel, seconds)
        try:
            async with self.db.transaction() as tx:
                await leases.extend(tx, PAUSE_PREFIX + channel, self.instance, seconds)
        except Exception as exc:  # this process still keeps the pause
            log.warning("could not share a %s pause with the other instances: %s", channel, exc)

    async def restore(self) -> dict[str, float]:
        """Take over the pauses another instance recorded (a new leader, before sending): a
        429's, and the window of the last leader's sends. Returns the 429 pauses."""
        for name, channel in self.channels.items():  # a dead leader's last sends
            limit = self._limit(name, channel)
            if limit is not None and limit.window + WINDOW_MARGIN > self.silent_for:
                await super().pause(name, limit.window + WINDOW_MARGIN - self.silent_for)
        windows = await leases.remaining(self.db.reader, WINDOW_PREFIX)
        for name, seconds in windows.items():
            await super().pause(name[len(WINDOW_PREFIX):], seconds)
        left = await leases.remaining(self.db.reader, PAUSE_PREFIX)
        for name, seconds in left.items():
            await super().pause(name[len(PAUSE_PREFIX):], seconds)
        return left

    async def hand_over(self) -> None:
        """Stepping down (its sends finished): record until when this leader's last starts fill
        each platform's window, for the next leader's restore()."""
        mono = self.monotonic()
        try:
            async with self.db.transaction() as tx:
                for name, starts in self._starts.items():
                    limit = self._limits.get(name)
                    if limit is None or not starts:
                        continue
                    last = starts[-1]
                    late = WINDOW_MARGIN if last.round_trip is None else max(WINDOW_MARGIN, last.round_trip)
                    left = last.at + limit.window + late - mono
                    if left > 0:
                        await leases.extend(tx, WINDOW_PREFIX + name, self.instance, left)
        except Exception as exc:  # the next leader holds back by silent_for's rule only
            log.warning("could not hand the send windows over to the next leader: %s", exc)
