"""Several `feedbot run` instances on one PostgreSQL database: who leads, and who is alive.

One instance at a time is the leader, by a lease in the database (storage/leases.py, the
server's clock) renewed every third of `cluster.lease`. The leader runs what must run once
for the bot as a whole: the periodic jobs, Telegram long polling and the sender (one sender
keeps Telegram's per-bot limits, 30 messages/s, 1/s per chat, 20/min per group, and a 429's
pause, for the bot as a whole, exactly as on one instance). Every instance takes webhooks, web
chat sockets and API calls. A leader that dies (kill -9) stops renewing; another takes the
lease once it ran out, recovers the rows the dead one was sending (their claims ran out too)
and carries on. A leader that cannot reach the database steps down before its lease can run
out, so two leaders never overlap by their own clocks; outbox claims (FOR UPDATE SKIP LOCKED,
storage/outbox.py) keep even an overlap from sending a row twice.

On SQLite there is one instance, always the leader (`Solo`).
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from storage import leases, outbox

log = logging.getLogger(__name__)

OUTBOX_CHANNEL = "feedbot_outbox"  # NOTIFY: rows were written, the leader's sender has work
STEP_DOWN_AT = 0.8  # of the lease since the last renewal that got through: step down


def instance_name(configured: str = "") -> str:
    """This process's name in the database (claims, leases): the configured one, else host, pid, random."""
    return configured or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class Settings:
    """The [cluster] section, read in one place."""

    lease: float  # seconds
    instance: str

    @classmethod
    def from_config(cls, config: Any) -> "Settings":
        return cls(config.cluster.lease.total_seconds(), instance_name(config.cluster.instance_name))


class Solo:
    """One instance (SQLite): always the leader."""

    enabled = False
    is_leader = True
    role = "leader"

    def __init__(self, name: str) -> None:
        self.name = name

    def holds(self) -> bool:
        return True

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def wake_leader(self) -> None:
        return None


class Cluster:
    """Leader election by lease, claim renewal, and the leader's wake-ups, on PostgreSQL."""

    enabled = True

    def __init__(
        self,
        db: Any,
        name: str,
        lease: float,
        *,
        lead: Callable[[], Awaitable[None]],
        follow: Callable[[], Awaitable[None]],
        while_leading: Callable[[], Awaitable[None]] | None = None,
        on_outbox: Callable[[], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.name = name
        self.lease = lease
        self.tick_every = lease / 3
        self._lead = lead  # became the leader: start the leader's work
        self._follow = follow  # no longer the leader: stop it
        self._while_leading = while_leading  # every tick while leading (recover expired claims)
        self._on_outbox = on_outbox
        self.monotonic = monotonic
        self.is_leader = False
        self._renewed_at = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self._notifying: asyncio.Task[None] | None = None
        self._work: asyncio.Task[None] | None = None
        self._changing = asyncio.Lock()
        self._stopping = False  # stop(): keep the lease while the leader's work winds down, lead no more
        self.leader_since: float | None = None

    @property
    def role(self) -> str:
        return "leader" if self.is_leader else "follower"

    def holds(self) -> bool:
        """Leader, and sure of it by this process's own clock: the last renewal that got through
        is less than 0.8 of the lease ago. A process that stalled (a starved event loop, a
        paused VM) past that may have lost the lease without having run a tick to learn it:
        the leader's work asks this before each step (a job, a send), not only is_leader."""
        return self.is_leader and self.monotonic() - self._renewed_at < STEP_DOWN_AT * self.lease

    async def start(self) -> None:
        if self._on_outbox is not None:
            await self.db.listen(OUTBOX_CHANNEL, lambda _payload: self._on_outbox())  # type: ignore[misc]
        await self.tick()
        self._task = asyncio.create_task(self._run(), name="cluster")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_every)
            try:
                await self.tick()
            except Exception:
                log.exception("cluster: a tick failed")

    async def tick(self) -> None:
        """Renew (or try to take) the leader's lease and this instance's outbox claims."""
        was_sure = self.holds()
        try:
            # On a connection of its own: a long write of this process must not hold it up.
            async with self.db.side_transaction() as tx:
                held = await leases.acquire(tx, leases.LEADER, self.name, self.lease)
            self._renewed_at = self.monotonic()
            async with self.db.side_transaction() as tx:
                await outbox.renew_claims(tx, self.name, self.lease)
        except Exception as exc:
            log.warning("cluster: cannot renew the leader's lease: %s: %s", type(exc).__name__, exc)
            # Not knowing whether we still lead: step down before our lease can run out.
            held = self.is_leader and self.monotonic() - self._renewed_at < STEP_DOWN_AT * self.lease
        try:
            if await self.db.keep_listening() and self._on_outbox is not None:
                self._on_outbox()  # notifications may have been missed meanwhile
        except Exception as exc:  # the leader's sender still looks every IDLE_WAIT
            log.warning("cluster: cannot listen for the other instances: %s: %s", type(exc).__name__, exc)
        if self._stopping:
            return
        await self._become(held)
        if self.is_leader and not was_sure and self._on_outbox is not None:
            self._on_outbox()  # the sender may have held back (holds() was false): it may go on
        if self.is_leader and self._while_leading is not None and (self._work is None or self._work.done()):
            # Beside the ticks, not in them: it waits for the writer, the next renewal must not.
            self._work = asyncio.create_task(self._leading_work())

    async def _leading_work(self) -> None:
        assert self._while_leading is not None
        try:
            await self._while_leading()
        except Exception:
            log.exception("cluster: the leader's periodic work failed")

    async def _become(self, leader: bool) -> None:
        async with self._changing:
            if leader == self.is_leader:
                return
            self.is_leader = leader
            if leader:
                self.leader_since = self.monotonic()
                log.info("cluster: %s is now the leader", self.name)
                try:
                    await self._lead()
                except Exception:  # e.g. the database went away meanwhile: the next tick tries again
                    log.exception("cluster: %s could not start the leader's work", self.name)
                    self.is_leader, self.leader_since = False, None
                    await self._follow()
            else:
                self.leader_since = None
                log.warning("cluster: %s is no longer the leader", self.name)
                await self._follow()

    def wake_leader(self) -> None:
        """Rows were written here: tell the leader's sender (at most one NOTIFY in flight)."""
        if self.is_leader or (self._notifying is not None and not self._notifying.done()):
            return
        self._notifying = asyncio.create_task(self._notify())

    async def _notify(self) -> None:
        try:
            await self.db.notify(OUTBOX_CHANNEL)
        except Exception as exc:  # the leader's sender looks again within its idle wait anyway
            log.warning("cluster: could not wake the leader: %s: %s", type(exc).__name__, exc)

    async def stop(self) -> None:
        """Stop leading and give the lease up, so another instance takes over at once. The lease
        is renewed until the leader's work has wound down (sends in flight answered, a 429's
        pause recorded): the next leader starts from what this one finished."""
        self._stopping = True
        was_leader = self.is_leader
        await self._become(False)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for task in (self._notifying, self._work):
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
        if was_leader:
            try:
                async with self.db.side_transaction() as tx:
                    await leases.release(tx, leases.LEADER, self.name)
            except Exception as exc:
                log.warning("cluster: could not give the lease up (it runs out by itself): %s", exc)
