"""Tickets on the bot side: carries out complaint and desk decisions inside the caller's
transaction (ticket rows, audit events, messages to the customer and to the agents'
group), threads the group's messages (a forum topic per ticket, or replies to its card),
and runs the SLA watchdog."""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from typing import Any, Callable, Collection

from bot.channels.base import Permanent, TopicsUnavailable
from bot.clock import Clock
from bot.effects import Target, apply, enqueue
from flows import complaint, desk, questions
from flows.model import Decision, Inbound, OpenTicket, Reply, TicketView
from flows.texts import category_label, local_time, text
from flows.tickets import (
    COMPLAINT, QUESTION, ComplaintPolicy, TicketClock, breaches, priority_for, raised, sla_due, ticket_number, tier_for,
)
from storage import contacts, customers, outbox, purchases, settings, tickets
from storage.contacts import ContactRecord
from storage.db import Connection, Database
from storage.outbox import OutboxItem
from storage.tickets import TicketRecord, since_12_months

log = logging.getLogger(__name__)

TOPICS_SETTING = "desk.topics_unavailable"  # remembered: this group/server has no forum topics


@dataclass(frozen=True)
class DeskConfig:
    chat_id: str | None  # the agents' group; None: tickets are kept, nobody is notified
    agent_ids: frozenset[str] = frozenset()  # empty: every member of the group is an agent
    supervisor: str = ""  # "@username" mentioned on escalations and SLA breaches
    owner_chat_ids: tuple[str, ...] = ()
    language: str = "vi"
    topics: bool = True
    # The agent page lists a ticket the moment it is stored: agents see it without the card.
    agent_page: bool = False


@dataclass(frozen=True)
class Actor:
    kind: str  # customer | agent | system
    id: str | None = None
    name: str | None = None


SYSTEM = Actor("system")


class TicketDesk:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        config: DeskConfig,
        policy: ComplaintPolicy,
        *,
        shop_name: str,
        timezone: tzinfo,
        channel_name: str = "telegram",
        wake_sender: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.config = config
        self.policy = policy
        self.shop_name = shop_name
        self.tz = timezone
        self.channel_name = channel_name
        self.wake_sender = wake_sender
        self.topics_unavailable = False

    async def start(self, is_forum: bool | None = None) -> None:
        """`is_forum`: what the platform says of the agents' group now (None: unknown, then
        what a failed topic taught us before holds). No topic is asked for in a plain group."""
        async with self.db.transaction() as tx:
            self.topics_unavailable = await settings.get(tx, TOPICS_SETTING) == (self.config.chat_id or "")
            if is_forum is not None and is_forum == self.topics_unavailable:  # made (or no longer) a forum
                self.topics_unavailable = not is_forum
                await settings.put(tx, TOPICS_SETTING, "" if is_forum else (self.config.chat_id or ""))

    # --- who may act ---------------------------------------------------------------

    def is_agents_chat(self, chat_id: str) -> bool:
        return self.config.chat_id is not None and chat_id == self.config.chat_id

    def agent_allowed(self, event: Inbound) -> bool:
        """Group membership is given (the update came from the group); anonymous admins and
        bots have no person behind them; an allowlist, if set, narrows it further."""
        if not self.is_agents_chat(event.chat_id) or event.anonymous:
            return False
        return not self.config.agent_ids or event.user_id in self.config.agent_ids

    # --- views for the flows -------------------------------------------------------------

    @staticmethod
    def view(t: TicketRecord) -> TicketView:
        return TicketView(
            ticket_id=t.id, number=ticket_number(t.id, t.kind), status=t.status, category=t.category,
            contact_id=t.contact_id, created_at=t.created_at, first_response_due_at=t.first_response_due_at,
            assignee_id=t.assignee_id, assignee_name=t.assignee_name, resolved_at=t.resolved_at,
            resolution_score=t.resolution_score, kind=t.kind,
        )

    @staticmethod
    def desk_view(t: TicketRecord) -> desk.DeskTicket:
        return desk.DeskTicket(t.id, ticket_number(t.id, t.kind), t.status, t.priority, t.assignee_id, t.assignee_name)

    # --- customer side ---------------------------------------------------------------------

    async def open(
        self, tx: Connection, d: OpenTicket, contact: ContactRecord, now: datetime, *, granted: Collection[int] = ()
    ) -> TicketRecord:
        """`granted`: purchases whose receipt link this chat opened (it may complain about them)."""
        customer = await customers.by_id(tx, contact.customer_id) if contact.customer_id else None
        purchase_id = None
        tier = "regular"
        if d.order_id and (customer is not None or granted):
            purchase = await purchases.by_order_id(tx, d.order_id)
            # Only their own orders, or one whose receipt link this chat opened.
            if purchase is not None and (
                (customer is not None and purchase.customer_id == customer.id) or purchase.id in granted
            ):
                purchase_id = purchase.id
        if customer is not None:
            spend, orders = await tickets.customer_spend(tx, customer.id, since_12_months(now))
            tier = tier_for(spend, orders, self.policy)
        priority = priority_for(tier, d.category, self.policy) if d.kind == COMPLAINT else "normal"
        first_due, resolution_due = sla_due(now, priority, self.policy, d.kind)
        ticket_id = await tickets.insert(
            tx, contact_id=contact.id, customer_id=contact.customer_id, purchase_id=purchase_id,
            survey_id=d.survey_id, source=d.source, category=d.category, description=d.description,
            photos=list(d.photos), tier=tier, priority=priority, first_response_due_at=first_due,
            resolution_due_at=resolution_due, agents_chat_id=self.config.chat_id, now=now, kind=d.kind,
        )
        await tickets.add_event(tx, ticket_id, actor="customer", actor_id=str(contact.id),
                                actor_name=self._customer_name(contact, customer), action="opened",
                                body=d.description, now=now)
        ticket = await tickets.get(tx, ticket_id)
        assert ticket is not None
        log.info("ticket %s opened by contact %s (%s, priority %s)", ticket_number(ticket_id, d.kind), contact.id, d.category, priority)
        if self.config.chat_id:
            if self._use_topics():  # its own row, before the card: retried like any send
                name = f"{ticket_number(ticket_id, d.kind)} · {category_label(self.config.language, ticket.category)}"
                await enqueue(tx, self._group(ticket), "open_topic", {"name": name}, now)
            past = await tickets.past_scores(tx, customer.id) if customer else ()
            await self._to_group(
                tx, ticket, self._card_text(ticket, self._customer_name(contact, customer), past),
                buttons=self._card_buttons(ticket), now=now, card=True,
            )
            for file_id in d.photos:
                await self._photo_to_group(tx, ticket, file_id, ticket_number(ticket_id, d.kind), now)
        return ticket

    async def confirm(self, tx: Connection, ticket: TicketRecord, decisions: list[Decision], target: Target, now: datetime) -> None:
        """Tell the customer the ticket is received only once an agent can see it: at once when
        the agent page lists it; else when its card has reached the group (if the card cannot
        be delivered, on_failed says so instead); with neither, an honest "saved" at once."""
        card = None
        if not self.config.agent_page and self.config.chat_id:
            card = await outbox.first_of_ticket(tx, ticket.id, self.config.chat_id, "send_text")
        if self.config.agent_page or (card is None and not self.config.chat_id):
            if not self.config.agent_page and ticket.kind == COMPLAINT:  # no agent side: kept, nobody waits on it
                contact, _ = await self._customer(tx, ticket)
                kept = text(contact.language, "complaint.kept", number=ticket_number(ticket.id, ticket.kind))
                decisions = [Reply(kept) if isinstance(d, Reply) else d for d in decisions]
            await apply(tx, decisions, target, now)
            return
        for decision in decisions:
            if isinstance(decision, Reply) and card is not None:
                # held_text: what on_failed swaps for the truth (a privacy notice may follow it)
                payload = {"text": decision.text, "buttons": [], "held_text": decision.text}
                await enqueue(tx, replace(target, after_id=card), "send_text", payload, now)
            else:
                await apply(tx, [decision], target, now)

    async def relay_to_agents(
        self, tx: Connection, ticket: TicketRecord, contact: ContactRecord, body: str, photos: tuple[str, ...], now: datetime
    ) -> None:
        customer = await customers.by_id(tx, contact.customer_id) if contact.customer_id else None
        name = self._customer_name(contact, customer)  # the name on the card, not a chat nickname
        await tickets.add_event(tx, ticket.id, actor="customer", actor_id=str(contact.id), actor_name=name,
                                action="customer_message", body=body or f"[{len(photos)} photo(s)]", now=now)
        if not self.config.chat_id:
            return
        lang = self.config.language
        number = ticket_number(ticket.id, ticket.kind)
        if body.strip():
            await self._to_group(tx, ticket, text(lang, "desk.customer_says", customer=name, number=number, text=body),
                                 now=now, coalesce=True)
        for file_id in photos:
            await self._photo_to_group(tx, ticket, file_id, text(lang, "desk.customer_photo", customer=name, number=number), now)

    async def rate(self, tx: Connection, ticket: TicketRecord, score: int, now: datetime) -> None:
        await tickets.update(tx, ticket.id, resolution_score=score)
        await tickets.add_event(tx, ticket.id, actor="customer", actor_id=str(ticket.contact_id), action="rated",
                                body=str(score), now=now)
        if self.config.chat_id:
            await self._to_group(tx, ticket, text(self.config.language, "desk.rated", number=ticket_number(ticket.id, ticket.kind), score=score), now=now)

    async def reopen(self, tx: Connection, ticket: TicketRecord, now: datetime) -> TicketRecord:
        first_due, resolution_due = sla_due(now, ticket.priority, self.policy, ticket.kind)
        await tickets.reopen(tx, ticket.id, first_due, resolution_due)
        # A question's follow-up is not a complaint reopened (the digest counts those).
        action = "follow_up" if ticket.kind == QUESTION else "reopened"
        await tickets.add_event(tx, ticket.id, actor="customer", actor_id=str(ticket.contact_id), action=action, now=now)
        reopened = await tickets.get(tx, ticket.id)
        assert reopened is not None
        if self.config.chat_id:
            await self._to_group(tx, reopened, text(self.config.language, "desk.reopened", number=ticket_number(ticket.id, ticket.kind)), now=now)
            await self._edit_card(tx, reopened, now)
        return reopened

    # --- agent side ------------------------------------------------------------------------

    async def relay_to_customer(
        self, tx: Connection, ticket: TicketRecord, agent: Actor, body: str, photos: tuple[str, ...], now: datetime
    ) -> None:
        contact, target = await self._customer(tx, ticket)
        number = ticket_number(ticket.id, ticket.kind)
        if body.strip():
            says = text(contact.language, "complaint.agent_says", shop=self.shop_name, number=number, text=body)
            await enqueue(tx, target, "send_text", {"text": says, "buttons": []}, now)
        for file_id in photos:
            caption = text(contact.language, "complaint.agent_photo", shop=self.shop_name, number=number)
            await enqueue(tx, target, "send_photo", {"file_id": file_id, "text": caption}, now)
        await tickets.add_event(tx, ticket.id, actor="agent", actor_id=agent.id, actor_name=agent.name, action="reply",
                                body=body or f"[{len(photos)} photo(s)]", now=now)
        changes: dict[str, object] = {}
        if ticket.first_response_at is None:
            changes["first_response_at"] = now
        if ticket.status == "open":  # answering a ticket takes it
            changes.update(status="claimed", assignee_id=agent.id, assignee_name=agent.name, claimed_at=now)
        if changes:
            await tickets.update(tx, ticket.id, **changes)
            if "status" in changes:
                await self._edit_card(tx, await tickets.get(tx, ticket.id), now)  # type: ignore[arg-type]

    async def note(self, tx: Connection, ticket: TicketRecord, agent: Actor, body: str, now: datetime) -> None:
        await tickets.add_event(tx, ticket.id, actor="agent", actor_id=agent.id, actor_name=agent.name, action="note", body=body, now=now)

    async def claim(self, tx: Connection, ticket: TicketRecord, agent: Actor, now: datetime) -> None:
        await tickets.update(tx, ticket.id, status="claimed", assignee_id=agent.id, assignee_name=agent.name, claimed_at=now)
        await tickets.add_event(tx, ticket.id, actor="agent", actor_id=agent.id, actor_name=agent.name, action="claimed", now=now)
        number = ticket_number(ticket.id, ticket.kind)
        claimed = "question.claimed" if ticket.kind == QUESTION else "complaint.claimed"
        await self._to_customer(tx, ticket, lambda lang: text(lang, claimed, number=number, agent=agent.name), now)
        await self._to_group(tx, ticket, text(self.config.language, "desk.claimed", agent=agent.name, number=number), now=now)
        await self._edit_card(tx, await tickets.get(tx, ticket.id), now)  # type: ignore[arg-type]

    async def resolve(self, tx: Connection, ticket: TicketRecord, agent: Actor, now: datetime) -> None:
        await tickets.update(tx, ticket.id, status="resolved", resolved_at=now,
                             assignee_id=ticket.assignee_id or agent.id, assignee_name=ticket.assignee_name or agent.name)
        await tickets.add_event(tx, ticket.id, actor="agent", actor_id=agent.id, actor_name=agent.name, action="resolved", now=now)
        resolved = await tickets.get(tx, ticket.id)
        assert resolved is not None
        contact, target = await self._customer(tx, ticket)
        if ticket.kind == QUESTION:  # closed: no rating, a follow-up within the window reopens it
            await apply(tx, questions.closed(self.view(resolved), contact.language), target, now)
        else:
            await apply(tx, complaint.resolution_question(self.view(resolved), contact.language), target, now)
        number = ticket_number(ticket.id, ticket.kind)
        await self._to_group(tx, resolved, text(self.config.language, "desk.resolved", agent=agent.name, number=number), now=now)
        await self._edit_card(tx, resolved, now)

    async def escalate(self, tx: Connection, ticket: TicketRecord, actor: Actor, now: datetime, breach: str | None = None) -> None:
        priority = raised(ticket.priority)
        changes: dict[str, object] = {"priority": priority}
        if breach is not None:
            changes[f"{breach}_breached_at"] = now
        await tickets.update(tx, ticket.id, **changes)
        await tickets.add_event(tx, ticket.id, actor=actor.kind, actor_id=actor.id, actor_name=actor.name,
                                action="sla_breach" if breach else "escalated", body=breach or priority, now=now)
        if priority != ticket.priority:
            await self._edit_card(tx, await tickets.get(tx, ticket.id), now)  # type: ignore[arg-type]
        elif breach is None:
            log.info("ticket %s: escalated again at the top priority; nobody pinged", ticket_number(ticket.id, ticket.kind))
            return  # already at the top: recorded, but the supervisor and owner were told before
        lang = self.config.language
        number = ticket_number(ticket.id, ticket.kind)
        supervisor = self.config.supervisor
        priority_label = text(lang, f"priority.{priority}")
        if breach is None:
            message = text(lang, "desk.escalated", number=number, agent=actor.name or "", priority=priority_label, supervisor=supervisor)
        else:
            due = ticket.first_response_due_at if breach == "first_response" else ticket.resolution_due_at
            key = "desk.breach_first" if breach == "first_response" else "desk.breach_resolution"
            message = text(lang, key, number=number, due=local_time(due, self.tz, lang), priority=priority_label, supervisor=supervisor)
        message = message.strip()
        if self.config.chat_id:
            await self._to_group(tx, ticket, message, now=now)
        for owner in self.config.owner_chat_ids:
            target = Target(self.channel_name, owner, None, None, ticket_id=ticket.id)
            await enqueue(tx, target, "send_text", {"text": message, "buttons": []}, now)
        log.warning("ticket %s %s: priority now %s", number, breach or "escalated", priority)

    async def deny(self, tx: Connection, ticket_id: int | None, actor: Actor, action: str, now: datetime) -> None:
        log.warning("refused %s on ticket %s by %s %s", action, ticket_id, actor.kind, actor.id)
        await tickets.add_event(tx, ticket_id, actor=actor.kind, actor_id=actor.id, actor_name=actor.name,
                                action="denied", body=action, now=now)

    async def reply_in_group(self, tx: Connection, event: Inbound, body: str, now: datetime) -> None:
        payload: dict[str, Any] = {"text": body, "buttons": [], "reply_to": event.message_id}
        if event.thread_id:
            payload["thread_id"] = event.thread_id
        await enqueue(tx, Target(self.channel_name, event.chat_id, None, None), "send_text", payload, now)

    # --- the SLA watchdog --------------------------------------------------------------------

    async def watch_sla(self) -> int:
        """Re-escalate each new breach once: raise the priority, tell the group and the owner."""
        now = self.clock.now()
        count = 0
        async with self.db.transaction() as tx:
            for ticket in await tickets.unresolved_due_before(tx, now):
                clock = TicketClock(ticket.status, ticket.first_response_at, ticket.first_response_due_at,
                                    ticket.resolution_due_at, ticket.first_response_breached, ticket.resolution_breached)
                for breach in breaches(clock, now):
                    await self.escalate(tx, ticket, SYSTEM, now, breach=breach)
                    ticket = await tickets.get(tx, ticket.id)  # type: ignore[assignment]
                    count += 1
        if count:
            self.wake_sender()
        return count

    # --- the agents' group: cards, threading ---------------------------------------------------

    def _card_buttons(self, ticket: TicketRecord) -> list[list[dict[str, str]]]:
        rows = desk.card_buttons(ticket.id, self.config.language, ticket.status, ticket.kind)
        return [[{"label": b.label, "data": b.data} for b in row] for row in rows]

    def _card_text(self, ticket: TicketRecord, customer: str, past: tuple[int, ...]) -> str:
        card = desk.Card(
            number=ticket_number(ticket.id, ticket.kind), priority=ticket.priority, customer=customer, tier=ticket.tier,
            order_id=ticket.order_id, category=ticket.category, description=ticket.description,
            photos=len(ticket.photos), past_scores=past, first_due=ticket.first_response_due_at,
            resolution_due=ticket.resolution_due_at, status=ticket.status, assignee_name=ticket.assignee_name,
            kind=ticket.kind,
        )
        return desk.card_text(card, self.config.language, self.tz)

    async def _edit_card(self, tx: Connection, ticket: TicketRecord, now: datetime) -> None:
        """Redraw the card. The row waits for the card itself (a ticket's rows keep their
        order) and is drawn again when it goes (prepare): the ticket as it is then."""
        if not self.config.chat_id:
            return
        payload = {"card": True, "message_id": ticket.card_message_id, **await self._card_payload(tx, ticket)}
        await enqueue(tx, self._group(ticket), "edit_text", payload, now)

    def _use_topics(self) -> bool:
        return self.config.topics and not self.topics_unavailable

    async def _to_group(
        self, tx: Connection, ticket: TicketRecord, body: str, *, now: datetime,
        buttons: list[list[dict[str, str]]] | None = None, card: bool = False, coalesce: bool = False,
    ) -> None:
        if not self.config.chat_id:
            return  # no agents' group (agents use the web page): nothing to post
        payload: dict[str, Any] = {"text": body, "buttons": buttons or []}
        if card:
            payload["card"] = True
        coalesce_key = f"ticket:{ticket.id}" if coalesce else None
        await enqueue(tx, self._group(ticket), "send_text", payload, now, coalesce_key=coalesce_key)

    async def _photo_to_group(self, tx: Connection, ticket: TicketRecord, file_id: str, caption: str, now: datetime) -> None:
        if not self.config.chat_id:
            return
        await enqueue(tx, self._group(ticket), "send_photo", {"file_id": file_id, "text": caption}, now)

    async def _to_customer(self, tx: Connection, ticket: TicketRecord, say: Callable[[str], str], now: datetime) -> None:
        contact, target = await self._customer(tx, ticket)
        await enqueue(tx, target, "send_text", {"text": say(contact.language), "buttons": []}, now)

    async def _customer(self, tx: Connection, ticket: TicketRecord) -> tuple[ContactRecord, Target]:
        """The ticket's customer chat, and a target whose messages are linked to the ticket."""
        contact = await contacts.by_id(tx, ticket.contact_id)
        assert contact is not None
        return contact, Target.of_contact(contact, ticket_id=ticket.id)

    def _group(self, ticket: TicketRecord) -> Target:
        """The agents' group, for a message about this ticket (threaded by the sender hook)."""
        assert self.config.chat_id
        return Target(self.channel_name, self.config.chat_id, None, None, ticket_id=ticket.id)

    @staticmethod
    def _customer_name(contact: ContactRecord | None, customer: Any) -> str:
        if customer is not None:
            return customer.name
        return (contact.display_name if contact else "") or "?"

    # --- sender hooks: where a group message goes --------------------------------------------

    async def prepare(self, row: OutboxItem) -> dict[str, Any]:
        """Place a group message of a ticket: in its topic, or as a reply to its card. The
        ticket's earlier rows to the group (its topic, its card) are done by now (outbox.ready
        keeps their order), so the place is known; the card, sent or edited, is drawn as the
        ticket is now."""
        payload = row.payload
        if row.ticket_id is None or not self.is_agents_chat(row.chat_id):
            return payload
        if row.method not in ("send_text", "send_photo", "edit_text"):
            return payload
        async with self.db.transaction() as tx:
            ticket = await tickets.get(tx, row.ticket_id)
            if ticket is not None and payload.get("card"):
                payload = {**payload, **await self._card_payload(tx, ticket)}
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

    async def _card_payload(self, tx: Connection, ticket: TicketRecord) -> dict[str, Any]:
        """The card's text (with how agents answer: in its topic or by replying) and buttons."""
        contact = await contacts.by_id(tx, ticket.contact_id)
        customer = await customers.by_id(tx, ticket.customer_id) if ticket.customer_id else None
        past = await tickets.past_scores(tx, customer.id) if customer else ()
        hint = desk.card_hint(self.config.language, topic=ticket.thread_id is not None)
        body = self._card_text(ticket, self._customer_name(contact, customer), past)
        return {"text": f"{body}\n\n{hint}", "buttons": self._card_buttons(ticket)}

    async def on_sent(self, row: OutboxItem, message_id: str | None) -> None:
        if row.ticket_id is None or message_id is None:
            return
        if row.method == "open_topic":
            async with self.db.transaction() as tx:
                await tickets.update(tx, row.ticket_id, thread_id=message_id)
        elif row.method == "send_text" and row.payload.get("card"):
            async with self.db.transaction() as tx:
                await tickets.update(tx, row.ticket_id, card_message_id=message_id, card_undelivered=None)

    async def on_failed(self, tx: Connection, row: OutboxItem, status: str, error: Exception) -> None:
        """A ticket's topic that cannot be opened: the ticket goes on in reply mode (its card
        next, as a plain group message). A card that cannot be delivered: the ticket says so
        (the agent page shows it), the owners are told, and a customer still waiting for the
        confirmation is told the truth instead."""
        if row.ticket_id is None or not self.is_agents_chat(row.chat_id):
            return
        now = self.clock.now()
        ticket = await tickets.get(tx, row.ticket_id)
        kind = ticket.kind if ticket else COMPLAINT
        number = ticket_number(row.ticket_id, kind)
        if row.method == "open_topic":
            log.warning("ticket %s: no forum topic (%s: %s); its card goes as a reply-mode message", number, status, error)
            await tickets.add_event(tx, row.ticket_id, actor="system", action="topic_failed", body=str(error)[:500], now=now)
            if isinstance(error, TopicsUnavailable):  # the group or server has none: stop asking
                self.topics_unavailable = True
                await settings.put(tx, TOPICS_SETTING, self.config.chat_id or "")
            return
        if row.method != "send_text" or not row.payload.get("card"):
            return
        reason = f"{status}: {error}"[:500]
        log.error("ticket %s: its card did not reach the agents' group (%s)", number, reason)
        await tickets.update(tx, row.ticket_id, card_undelivered=reason)
        await tickets.add_event(tx, row.ticket_id, actor="system", action="card_undelivered", body=reason, now=now)
        lang = self.config.language
        key = "desk.card_unsure" if status == "unknown" else "desk.card_undelivered"
        alert = text(lang, key, number=number, error=str(error)[:200])
        if self.config.agent_page:
            alert = f"{alert} {text(lang, 'desk.see_agent_page')}"
        for owner in self.config.owner_chat_ids:
            target = Target(self.channel_name, owner, None, None, ticket_id=row.ticket_id)
            await enqueue(tx, target, "send_text", {"text": alert, "buttons": []}, now)
        for waiting_id, contact_id, payload in await outbox.waiting_on(tx, row.id):  # the customer's confirmation
            contact = await contacts.by_id(tx, contact_id) if contact_id else None
            key = "question.not_delivered" if kind == QUESTION else "complaint.not_delivered"
            honest = text(contact.language if contact else lang, key, number=number)
            held = payload.pop("held_text", "")
            body = payload.get("text", "")
            rest = body[len(held):] if held and body.startswith(held) else ""  # the privacy notice, if any
            await outbox.release(tx, waiting_id, {**payload, "text": honest + rest})
