"""The SLA watchdog (a periodic job): each new breach of a ticket's first-response or
resolution target re-escalates it once (priority raised, the group and the owners told)."""
from __future__ import annotations

from typing import Callable

from bot.clock import Clock
from bot.outbox.effects import SYSTEM
from bot.services.desk import AgentDesk
from flows.tickets import TicketClock, breaches
from storage import tickets
from storage.db import Database


class SlaWatchdog:
    def __init__(self, db: Database, clock: Clock, agents: AgentDesk, *, wake_sender: Callable[[], None] = lambda: None) -> None:
        self.db = db
        self.clock = clock
        self.agents = agents
        self.wake_sender = wake_sender

    async def watch_sla(self) -> int:
        """Re-escalate each new breach once: raise the priority, tell the group and the owner."""
        now = self.clock.now()
        count = 0
        async with self.db.transaction() as tx:
            for ticket in await tickets.unresolved_due_before(tx, now):
                clock = TicketClock(ticket.status, ticket.first_response_at, ticket.first_response_due_at,
                                    ticket.resolution_due_at, ticket.first_response_breached, ticket.resolution_breached)
                for breach in breaches(clock, now):
                    await self.agents.escalate(tx, ticket, SYSTEM, now, breach=breach)
                    ticket = await tickets.get(tx, ticket.id)  # type: ignore[assignment]
                    count += 1
        if count:
            self.wake_sender()
        return count
