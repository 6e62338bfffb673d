"""Where a ticket's message to the agents' group goes, decided at send time (the sender's
hooks for the agents' group): in the ticket's forum topic, or as a reply to its card; the card
drawn as the ticket is then. Topics are remembered as unavailable once the platform says so
(the group is not a forum, or a self-hosted Bot API server lacks them)."""
from __future__ import annotations

import logging
from typing import Any

from bot.channels.base import Permanent, TopicsUnavailable
from bot.clock import Clock
from bot.outbox.effects import Target
from bot.services.desk import DeskGroup
from flows.texts import text
from flows.tickets import COMPLAINT, QUESTION, ticket_number
from storage import contacts, outbox, settings, tickets
from storage.db import Connection, Database
from storage.outbox import OutboxItem

log = logging.getLogger(__name__)

TOPICS_SETTING = "desk.topics_unavailable"  # remembered: this group/server has no forum topics


class TicketThreads:
    """The sender's hooks (bot/outbox/sender.py OutboxHooks) for rows about a ticket."""

    def __init__(self, db: Database, clock: Clock, group: DeskGroup) -> None:
        self.db = db
        self.clock = clock
        self.group = group
        self.topics_unavailable = False

    async def start(self, is_forum: bool | None = None) -> None:
        """`is_forum`: what the platform says of the agents' group now (None: unknown, then
        what a failed topic taught us before holds). No topic is asked for in a plain group."""
        chat_id = self.group.config.chat_id or ""
        async with self.db.transaction() as tx:
            self.topics_unavailable = await settings.get(tx, TOPICS_SETTING) == chat_id
            if is_forum is not None and is_forum == self.topics_unavailable:  # made (or no longer) a forum
                self.topics_unavailable = not is_forum
                await settings.put(tx, TOPICS_SETTING, "" if is_forum else chat_id)

    def use_topics(self) -> bool:
        """A new ticket gets its own forum topic (an open_topic row before its card)."""
        return self.group.config.topics and not self.topics_unavailable

    async def prepare(self, row: OutboxItem) -> dict[str, Any]:
        """Place a group message of a ticket: in its topic, or as a reply to its card. The
        ticket's earlier rows to the group (its topic, its card) are done by now (outbox.ready
        keeps their order), so the place is known; the card, sent or edited, is drawn as the
        ticket is now."""
        payload = row.payload
        if row.ticket_id is None or not self.group.is_agents_chat(row.chat_id):
            return payload
        if row.method not in ("send_text", "send_photo", "send_photo_file", "edit_text"):
            return payload
        async with self.db.transaction() as tx:
            ticket = await tickets.get(tx, row.ticket_id)
            if ticket is not None and payload.get("card"):
                payload = {**payload, **await self.group.card_payload(tx, ticket)}
        if ticket is None:
            return payload
        if row.method == "edit_text":
            if payload.get("card"):
                if ticket.card_message_id is None:
                    raise Permanent("the card was never delivered: nothing to edit")
                payload = {**payload, "message_id": ticket.card_message_id}
            return payload
        if ticket.thread_id:
            return {**payload, "thread_id": ticket.thread_id}
        if ticket.card_message_id and not payload.get("card"):
            return {**payload, "reply_to": ticket.card_message_id}
        return payload

    async def on_sent(self, row: OutboxItem, message_id: str | None) -> None:
        if row.ticket_id is None or message_id is None:
            return
        if row.method == "open_topic":
            async with self.db.transaction() as tx:
                await tickets.update(tx, row.ticket_id, thread_id=message_id)
        elif row.method == "send_text" and row.payload.get("card"):
            async with self.db.transaction() as tx:
                await tickets.update(tx, row.ticket_id, card_message_id=message_id, card_undelivered=None)

    @staticmethod
    async def _to_customer(tx: Connection, ticket: tickets.TicketRecord, row: OutboxItem) -> bool:
        contact = await contacts.by_id(tx, ticket.contact_id)
        return contact is not None and (contact.channel, contact.chat_id) == (row.channel, row.chat_id)

    async def on_failed(self, tx: Connection, row: OutboxItem, status: str, error: Exception) -> None:
        """A ticket's topic that cannot be opened: the ticket goes on in reply mode (its card
        next, as a plain group message). A card that cannot be delivered: the ticket says so
        (the agent page shows it), the owners are told, and a customer still waiting for the
        confirmation is told the truth instead. A message of the ticket to the customer that
        failed for good (the bot blocked, Zalo's window closed...): the ticket says so and the
        agents are told, who would otherwise believe the customer has their answer."""
        if row.ticket_id is None:
            return
        now = self.clock.now()
        ticket = await tickets.get(tx, row.ticket_id)
        kind = ticket.kind if ticket else COMPLAINT
        number = ticket_number(row.ticket_id, kind)
        if not self.group.is_agents_chat(row.chat_id):
            if ticket is not None and status == "failed" and await self._to_customer(tx, ticket, row):
                alert = text(self.group.config.language, "desk.reply_undelivered", number=number, error=str(error)[:200])
                await self.group.undelivered(tx, ticket, alert, f"{row.channel}: {error}", now)
            return  # "unknown": it may have arrived; an owner's alert: nothing for the agents
        if row.method == "open_topic":
            log.warning("ticket %s: no forum topic (%s: %s); its card goes as a reply-mode message", number, status, error)
            await tickets.add_event(tx, row.ticket_id, actor="system", action="topic_failed", body=str(error)[:500], now=now)
            if isinstance(error, TopicsUnavailable):  # the group or server has none: stop asking
                self.topics_unavailable = True
                await settings.put(tx, TOPICS_SETTING, self.group.config.chat_id or "")
            return
        if row.method != "send_text" or not row.payload.get("card"):
            return
        reason = f"{status}: {error}"[:500]
        log.error("ticket %s: its card did not reach the agents' group (%s)", number, reason)
        await tickets.update(tx, row.ticket_id, card_undelivered=reason)
        await tickets.add_event(tx, row.ticket_id, actor="system", action="card_undelivered", body=reason, now=now)
        lang = self.group.config.language
        key = "desk.card_unsure" if status == "unknown" else "desk.card_undelivered"
        alert = text(lang, key, number=number, error=str(error)[:200])
        if self.group.config.agent_page:
            alert = f"{alert} {text(lang, 'desk.see_agent_page')}"
        for owner in self.group.config.owner_chat_ids:
            target = Target(self.group.channel_name, owner, None, None, ticket_id=row.ticket_id)
            await self.group.effects.enqueue(tx, target, "send_text", {"text": alert, "buttons": []}, now)
        for waiting_id, contact_id, payload in await outbox.waiting_on(tx, row.id):  # the customer's confirmation
            contact = await contacts.by_id(tx, contact_id) if contact_id else None
            key = "question.not_delivered" if kind == QUESTION else "complaint.not_delivered"
            honest = text(contact.language if contact else lang, key, number=number)
            held = payload.pop("held_text", "")
            body = payload.get("text", "")
            rest = body[len(held):] if held and body.startswith(held) else ""  # the privacy notice, if any
            await outbox.release(tx, waiting_id, {**payload, "text": honest + rest})
