"""The ticket desk on the bot side, by role: the customer's side (open, confirm, relay, rate,
reopen) and the agents' side (reply, note, claim, resolve, escalate, refusals), each carrying
out its decisions inside the caller's transaction; both post to the agents' group through
the shared DeskGroup (cards, threading by ticket). The SLA watchdog is bot/services/sla.py;
where a group message goes at send time (its forum topic, a reply to its card) is
bot/services/threads.py."""
from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from typing import Any, Awaitable, Callable, Collection

from bot.outbox.effects import SERVICES, SYSTEM, Actor, Effects, Scope, Target
from bot.webhooks import events as webhook_events
from flows import complaint, desk, questions
from flows.model import (
    AddNote, AuditDenied, ClaimTicket, Decision, EscalateTicket, Inbound, OpenTicket, RateResolution, RelayToAgents,
    RelayToCustomer, ReopenTicket, Reply, ReplyInGroup, ResolveTicket, TicketView,
)
from flows.texts import category_label, local_time, text
from flows.tickets import COMPLAINT, QUESTION, ComplaintPolicy, priority_for, raised, sla_due, ticket_number, tier_for
from storage import contacts, customers, outbox, purchases, tickets, web_uploads
from storage.contacts import ContactRecord
from storage.db import Connection
from storage.tickets import TicketRecord, since_12_months

log = logging.getLogger(__name__)

__all__ = ["Actor", "SYSTEM", "DeskConfig", "DeskGroup", "CustomerDesk", "AgentDesk", "view", "desk_view"]


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


def view(t: TicketRecord) -> TicketView:
    """A ticket as the customer's flows see it."""
    return TicketView(
        ticket_id=t.id, number=ticket_number(t.id, t.kind), status=t.status, category=t.category,
        contact_id=t.contact_id, created_at=t.created_at, first_response_due_at=t.first_response_due_at,
        assignee_id=t.assignee_id, assignee_name=t.assignee_name, resolved_at=t.resolved_at,
        resolution_score=t.resolution_score, kind=t.kind,
    )


def desk_view(t: TicketRecord) -> desk.DeskTicket:
    """A ticket as the agents' flow sees it."""
    return desk.DeskTicket(t.id, ticket_number(t.id, t.kind), t.status, t.priority, t.assignee_id, t.assignee_name)


class DeskGroup:
    """The agents' group as both sides post to it: who may act there, the ticket's card, and
    messages threaded by ticket (placed at send time by bot/services/threads.py)."""

    def __init__(
        self, effects: Effects, config: DeskConfig, *, shop_name: str, timezone: tzinfo, channel_name: str = "telegram",
    ) -> None:
        self.effects = effects
        self.config = config
        self.shop_name = shop_name
        self.tz = timezone
        self.channel_name = channel_name

    def is_agents_chat(self, chat_id: str) -> bool:
        return self.config.chat_id is not None and chat_id == self.config.chat_id

    def agent_allowed(self, event: Inbound) -> bool:
        """Group membership is given (the update came from the group); anonymous admins and
        bots have no person behind them; an allowlist, if set, narrows it further."""
        if not self.is_agents_chat(event.chat_id) or event.anonymous:
            return False
        return not self.config.agent_ids or event.user_id in self.config.agent_ids

    def card_buttons(self, ticket: TicketRecord) -> list[list[dict[str, str]]]:
        rows = desk.card_buttons(ticket.id, self.config.language, ticket.status, ticket.kind)
        return [[{"label": b.label, "data": b.data} for b in row] for row in rows]

    def card_text(self, ticket: TicketRecord, customer: str, past: tuple[int, ...]) -> str:
        card = desk.Card(
            number=ticket_number(ticket.id, ticket.kind), priority=ticket.priority, customer=customer, tier=ticket.tier,
            order_id=ticket.order_id, category=ticket.category, description=ticket.description,
            photos=len(ticket.photos), past_scores=past, first_due=ticket.first_response_due_at,
            resolution_due=ticket.resolution_due_at, status=ticket.status, assignee_name=ticket.assignee_name,
            kind=ticket.kind,
        )
        return desk.card_text(card, self.config.language, self.tz)

    async def edit_card(self, tx: Connection, ticket: TicketRecord, now: datetime) -> None:
        """Redraw the card. The row waits for the card itself (a ticket's rows keep their
        order) and is drawn again when it goes (prepare): the ticket as it is then."""
        if not self.config.chat_id:
            return
        payload = {"card": True, "message_id": ticket.card_message_id, **await self.card_payload(tx, ticket)}
        await self.effects.enqueue(tx, self.target_for(ticket), "edit_text", payload, now)

    async def to_group(
        self, tx: Connection, ticket: TicketRecord, body: str, *, now: datetime,
        buttons: list[list[dict[str, str]]] | None = None, card: bool = False, coalesce: bool = False,
    ) -> None:
        if not self.config.chat_id:
            return  # no agents' group (agents use the web page): nothing to post
        payload: dict[str, Any] = {"text": body, "buttons": buttons or []}
        if card:
            payload["card"] = True
        coalesce_key = f"ticket:{ticket.id}" if coalesce else None
        await self.effects.enqueue(tx, self.target_for(ticket), "send_text", payload, now, coalesce_key=coalesce_key)

    async def photo_to_group(self, tx: Connection, ticket: TicketRecord, file_id: str, caption: str, now: datetime) -> None:
        if not self.config.chat_id:
            return
        upload_id = web_uploads.parse_ref(file_id)
        if upload_id is None:  # a Telegram file id (or a Zalo photo's URL): Telegram fetches it
            await self.effects.enqueue(tx, self.target_for(ticket), "send_photo", {"file_id": file_id, "text": caption}, now)
            return
        # A web chat visitor's image lives only in our database: the group gets a copy uploaded.
        upload = await web_uploads.get(tx, upload_id)
        if upload is None:
            return
        payload = {"png_base64": base64.b64encode(upload.data).decode(), "text": caption,
                   "filename": f"photo.{upload.mime_type.split('/')[1]}"}
        await self.effects.enqueue(tx, self.target_for(ticket), "send_photo_file", payload, now)

    async def to_customer(self, tx: Connection, ticket: TicketRecord, say: Callable[[str], str], now: datetime) -> None:
        contact, target = await self.customer_chat(tx, ticket)
        if self.has_chat(contact):  # else nothing to tell: the agents reach them by phone
            await self.effects.enqueue(tx, target, "send_text", {"text": say(contact.language), "buttons": []}, now)

    def has_chat(self, contact: ContactRecord) -> bool:
        """False when no text can be written to the customer's chat: a contact known by phone
        only (a ZNS survey's: Channel.conversational False). A channel turned off since is
        tried as before (the sender fails its rows)."""
        channel = self.effects.channels.get(contact.channel)
        return channel is None or channel.conversational

    async def undelivered(self, tx: Connection, ticket: TicketRecord, alert: str, reason: str, now: datetime) -> None:
        """A message to the customer that cannot reach them: the ticket's history says so, and
        the agents' group is told (an agent must reach them another way)."""
        await tickets.add_event(tx, ticket.id, actor="system", action="reply_undelivered", body=reason[:500], now=now)
        await self.to_group(tx, ticket, alert, now=now)

    async def customer_chat(self, tx: Connection, ticket: TicketRecord) -> tuple[ContactRecord, Target]:
        """The ticket's customer chat, and a target whose messages are linked to the ticket."""
        contact = await contacts.by_id(tx, ticket.contact_id)
        assert contact is not None
        return contact, Target.of_contact(contact, ticket_id=ticket.id)

    def target_for(self, ticket: TicketRecord) -> Target:
        """The agents' group, for a message about this ticket (threaded by the sender hook)."""
        assert self.config.chat_id
        return Target(self.channel_name, self.config.chat_id, None, None, ticket_id=ticket.id)

    @staticmethod
    def customer_name(contact: ContactRecord | None, customer: Any) -> str:
        if customer is not None:
            return customer.name
        return (contact.display_name if contact else "") or "?"

    async def card_payload(self, tx: Connection, ticket: TicketRecord) -> dict[str, Any]:
        """The card's text (with how agents answer: in its topic or by replying) and buttons."""
        contact = await contacts.by_id(tx, ticket.contact_id)
        customer = await customers.by_id(tx, ticket.customer_id) if ticket.customer_id else None
        past = await tickets.past_scores(tx, customer.id) if customer else ()
        hint = desk.card_hint(self.config.language, topic=ticket.thread_id is not None)
        body = self.card_text(ticket, self.customer_name(contact, customer), past)
        return {"text": f"{body}\n\n{hint}", "buttons": self.card_buttons(ticket)}



class CustomerDesk:
    """The customer's side of a ticket: carries out OpenTicket, RelayToAgents, RateResolution
    and ReopenTicket."""

    def __init__(self, group: DeskGroup, policy: ComplaintPolicy, use_topics: Callable[[], bool]) -> None:
        self.group = group
        self.effects = group.effects
        self.config = group.config
        self.policy = policy
        self.use_topics = use_topics  # a new ticket gets a forum topic (TicketThreads.use_topics)
        # Asked before a ticket opens (the web chat's limit on anonymous visitors' tickets).
        self.ticket_gate: Callable[[ContactRecord], bool] = lambda contact: True

    def register(self, effects: Effects) -> None:
        for kind, handler in (
            (OpenTicket, self._open_ticket), (RelayToAgents, self._relay_to_agents),
            (RateResolution, self._rate_resolution), (ReopenTicket, self._reopen_ticket),
        ):
            effects.register(kind, handler, SERVICES)

    # --- the handlers: what the customer's flow decided ---------------------------------------

    async def _open_ticket(self, tx: Connection, d: OpenTicket, scope: Scope) -> None:
        contact, ctx = scope.contact, scope.ctx
        assert contact is not None and ctx is not None
        # A complaint about an order whose receipt link the chat opened is what the link is
        # for: not an anonymous visitor's ticket (the anonymous limits are for those).
        receipt = d.order_id is not None and d.order_id in scope.granted
        if not receipt and not self.ticket_gate(contact):
            await self.effects.apply(tx, complaint.not_opened(ctx), scope.target, scope.now)
            return
        ticket = await self.open(tx, d, contact, scope.now, granted=scope.granted.values())
        said = questions.opened if ticket.kind == QUESTION else complaint.opened
        await self.confirm(tx, ticket, said(view(ticket), ctx), scope.target, scope.now)

    async def _own_ticket(self, tx: Connection, ticket_id: int, scope: Scope) -> tuple[TicketRecord, ContactRecord]:
        contact = scope.contact
        assert contact is not None
        ticket = await tickets.get(tx, ticket_id)
        if ticket is None or ticket.contact_id != contact.id:
            raise AssertionError(f"flow chose ticket {ticket_id}, not this contact's")
        return ticket, contact

    async def _relay_to_agents(self, tx: Connection, d: RelayToAgents, scope: Scope) -> None:
        ticket, contact = await self._own_ticket(tx, d.ticket_id, scope)
        await self.relay_to_agents(tx, ticket, contact, d.text, d.photos, scope.now)

    async def _rate_resolution(self, tx: Connection, d: RateResolution, scope: Scope) -> None:
        ticket, _ = await self._own_ticket(tx, d.ticket_id, scope)
        await self.rate(tx, ticket, d.score, scope.now)

    async def _reopen_ticket(self, tx: Connection, d: ReopenTicket, scope: Scope) -> None:
        ticket, _ = await self._own_ticket(tx, d.ticket_id, scope)
        assert scope.ctx is not None
        reopened = await self.reopen(tx, ticket, scope.now)
        said = questions.reopened if reopened.kind == QUESTION else complaint.reopened
        await self.effects.apply(tx, said(view(reopened), scope.ctx), scope.target, scope.now)

    # --- the operations ------------------------------------------------------------------------

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
                                actor_name=self.group.customer_name(contact, customer), action="opened",
                                body=d.description, now=now)
        ticket = await tickets.get(tx, ticket_id)
        assert ticket is not None
        await webhook_events.ticket_opened(tx, ticket_id, d.kind, now)
        log.info("ticket %s opened by contact %s (%s, priority %s)", ticket_number(ticket_id, d.kind), contact.id, d.category, priority)
        if self.config.chat_id:
            if self.use_topics():  # its own row, before the card: retried like any send
                name = f"{ticket_number(ticket_id, d.kind)} · {category_label(self.config.language, ticket.category)}"
                await self.effects.enqueue(tx, self.group.target_for(ticket), "open_topic", {"name": name}, now)
            past = await tickets.past_scores(tx, customer.id) if customer else ()
            await self.group.to_group(
                tx, ticket, self.group.card_text(ticket, self.group.customer_name(contact, customer), past),
                buttons=self.group.card_buttons(ticket), now=now, card=True,
            )
            for file_id in d.photos:
                await self.group.photo_to_group(tx, ticket, file_id, ticket_number(ticket_id, d.kind), now)
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
                contact, _ = await self.group.customer_chat(tx, ticket)
                kept = text(contact.language, "complaint.kept", number=ticket_number(ticket.id, ticket.kind))
                decisions = [Reply(kept) if isinstance(d, Reply) else d for d in decisions]
            await self.effects.apply(tx, decisions, target, now)
            return
        for decision in decisions:
            if isinstance(decision, Reply) and card is not None:
                # held_text: what on_failed swaps for the truth (a privacy notice may follow it)
                payload = {"text": decision.text, "buttons": [], "held_text": decision.text}
                await self.effects.enqueue(tx, replace(target, after_id=card), "send_text", payload, now)
            else:
                await self.effects.apply(tx, [decision], target, now)

    async def relay_to_agents(
        self, tx: Connection, ticket: TicketRecord, contact: ContactRecord, body: str, photos: tuple[str, ...], now: datetime
    ) -> None:
        customer = await customers.by_id(tx, contact.customer_id) if contact.customer_id else None
        name = self.group.customer_name(contact, customer)  # the name on the card, not a chat nickname
        await tickets.add_event(tx, ticket.id, actor="customer", actor_id=str(contact.id), actor_name=name,
                                action="customer_message", body=body or f"[{len(photos)} photo(s)]", now=now)
        await tickets.add_photos(tx, ticket.id, photos)  # the agent page shows them with the ticket's first ones
        if not self.config.chat_id:
            return
        lang = self.config.language
        number = ticket_number(ticket.id, ticket.kind)
        if body.strip():
            await self.group.to_group(tx, ticket, text(lang, "desk.customer_says", customer=name, number=number, text=body),
                                 now=now, coalesce=True)
        for file_id in photos:
            await self.group.photo_to_group(tx, ticket, file_id, text(lang, "desk.customer_photo", customer=name, number=number), now)

    async def rate(self, tx: Connection, ticket: TicketRecord, score: int, now: datetime) -> None:
        await tickets.update(tx, ticket.id, resolution_score=score)
        await tickets.add_event(tx, ticket.id, actor="customer", actor_id=str(ticket.contact_id), action="rated",
                                body=str(score), now=now)
        if self.config.chat_id:
            await self.group.to_group(tx, ticket, text(self.config.language, "desk.rated", number=ticket_number(ticket.id, ticket.kind), score=score), now=now)

    async def reopen(self, tx: Connection, ticket: TicketRecord, now: datetime) -> TicketRecord:
        first_due, resolution_due = sla_due(now, ticket.priority, self.policy, ticket.kind)
        await tickets.reopen(tx, ticket.id, first_due, resolution_due)
        # A question's follow-up is not a complaint reopened (the digest counts those).
        action = "follow_up" if ticket.kind == QUESTION else "reopened"
        await tickets.add_event(tx, ticket.id, actor="customer", actor_id=str(ticket.contact_id), action=action, now=now)
        reopened = await tickets.get(tx, ticket.id)
        assert reopened is not None
        if self.config.chat_id:
            await self.group.to_group(tx, reopened, text(self.config.language, "desk.reopened", number=ticket_number(ticket.id, ticket.kind)), now=now)
            await self.group.edit_card(tx, reopened, now)
        return reopened


ResolutionSurvey = Callable[[Connection, TicketRecord, ContactRecord, Target, datetime], Awaitable[bool]]


class AgentDesk:
    """The agents' side of a ticket (the group's buttons and replies, the agent page):
    carries out RelayToCustomer, AddNote, ClaimTicket, ResolveTicket, EscalateTicket,
    ReplyInGroup and AuditDenied (a refusal, from either side)."""

    def __init__(self, group: DeskGroup, *, wake_sender: Callable[[], None] = lambda: None) -> None:
        self.group = group
        self.effects = group.effects
        self.config = group.config
        self.shop_name = group.shop_name
        self.tz = group.tz
        self.channel_name = group.channel_name
        self.wake_sender = wake_sender
        # Survey programs (ProgramService.ask_instead_of_rating): a CES asked in place of the
        # resolution rating; returns False when no program does, and the rating is asked.
        self.resolution_survey: ResolutionSurvey | None = None
        # The rating by another route where the chat cannot take it (the ZNS resolution
        # template: SurveyRoutes.ask_resolution); True: taken there.
        self.ask_resolution: Callable[[Connection, TicketRecord, ContactRecord, datetime], Awaitable[bool]] | None = None

    def register(self, effects: Effects) -> None:
        for kind, handler in (
            (RelayToCustomer, self._relay_to_customer), (AddNote, self._add_note), (ClaimTicket, self._claim),
            (ResolveTicket, self._resolve), (EscalateTicket, self._escalate), (ReplyInGroup, self._reply_in_group),
            (AuditDenied, self._audit_denied),
        ):
            effects.register(kind, handler, SERVICES)

    # --- the handlers: what the agents' flow decided (on the ticket the engine found) ----------

    async def _relay_to_customer(self, tx: Connection, d: RelayToCustomer, scope: Scope) -> None:
        if scope.ticket is not None:
            await self.relay_to_customer(tx, scope.ticket, self._agent(scope), d.text, d.photos, scope.now)

    async def _add_note(self, tx: Connection, d: AddNote, scope: Scope) -> None:
        if scope.ticket is not None:
            await self.note(tx, scope.ticket, self._agent(scope), d.text, scope.now)

    async def _claim(self, tx: Connection, d: ClaimTicket, scope: Scope) -> None:
        if scope.ticket is not None:
            await self.claim(tx, scope.ticket, self._agent(scope), scope.now)

    async def _resolve(self, tx: Connection, d: ResolveTicket, scope: Scope) -> None:
        if scope.ticket is not None:
            await self.resolve(tx, scope.ticket, self._agent(scope), scope.now)

    async def _escalate(self, tx: Connection, d: EscalateTicket, scope: Scope) -> None:
        if scope.ticket is not None:
            await self.escalate(tx, scope.ticket, self._agent(scope), scope.now)

    async def _reply_in_group(self, tx: Connection, d: ReplyInGroup, scope: Scope) -> None:
        assert scope.event is not None
        await self.reply_in_group(tx, scope.event, d.text, scope.now)

    async def _audit_denied(self, tx: Connection, d: AuditDenied, scope: Scope) -> None:
        ticket_id = d.ticket_id
        if ticket_id is not None and (scope.ticket is None or scope.ticket.id != ticket_id):
            found = await tickets.get(tx, ticket_id)  # a number read from crafted data may name no ticket
            ticket_id = found.id if found else None
        await self.deny(tx, ticket_id, self._agent(scope), d.action, scope.now)

    @staticmethod
    def _agent(scope: Scope) -> Actor:
        assert scope.actor is not None
        return scope.actor

    # --- the operations (also the agent page's) -------------------------------------------------

    async def relay_to_customer(
        self, tx: Connection, ticket: TicketRecord, agent: Actor, body: str, photos: tuple[str, ...], now: datetime
    ) -> bool:
        """The agent's words (and photos) to the customer's chat; recorded on the ticket either
        way. False: the customer has no chat to take them (known by phone only), and the agents
        are told so."""
        contact, target = await self.group.customer_chat(tx, ticket)
        number = ticket_number(ticket.id, ticket.kind)
        reachable = self.group.has_chat(contact)
        if reachable and body.strip():
            says = text(contact.language, "complaint.agent_says", shop=self.shop_name, number=number, text=body)
            await self.effects.enqueue(tx, target, "send_text", {"text": says, "buttons": []}, now)
        for file_id in photos if reachable else ():
            caption = text(contact.language, "complaint.agent_photo", shop=self.shop_name, number=number)
            await self.effects.enqueue(tx, target, "send_photo", {"file_id": file_id, "text": caption}, now)
        await tickets.add_event(tx, ticket.id, actor="agent", actor_id=agent.id, actor_name=agent.name, action="reply",
                                body=body or f"[{len(photos)} photo(s)]", now=now)
        if not reachable:
            alert = text(self.config.language, "desk.reply_no_chat", number=number)
            await self.group.undelivered(tx, ticket, alert, f"{contact.channel}: no chat, phone only", now)
        changes: dict[str, object] = {}
        if ticket.first_response_at is None:
            changes["first_response_at"] = now
        if ticket.status == "open":  # answering a ticket takes it
            changes.update(status="claimed", assignee_id=agent.id, assignee_name=agent.name, claimed_at=now)
        if changes:
            await tickets.update(tx, ticket.id, **changes)
            if "status" in changes:
                await self.group.edit_card(tx, await tickets.get(tx, ticket.id), now)  # type: ignore[arg-type]
        return reachable

    async def note(self, tx: Connection, ticket: TicketRecord, agent: Actor, body: str, now: datetime) -> None:
        await tickets.add_event(tx, ticket.id, actor="agent", actor_id=agent.id, actor_name=agent.name, action="note", body=body, now=now)

    async def claim(self, tx: Connection, ticket: TicketRecord, agent: Actor, now: datetime) -> None:
        await tickets.update(tx, ticket.id, status="claimed", assignee_id=agent.id, assignee_name=agent.name, claimed_at=now)
        await tickets.add_event(tx, ticket.id, actor="agent", actor_id=agent.id, actor_name=agent.name, action="claimed", now=now)
        number = ticket_number(ticket.id, ticket.kind)
        claimed = "question.claimed" if ticket.kind == QUESTION else "complaint.claimed"
        await self.group.to_customer(tx, ticket, lambda lang: text(lang, claimed, number=number, agent=agent.name), now)
        await self.group.to_group(tx, ticket, text(self.config.language, "desk.claimed", agent=agent.name, number=number), now=now)
        await self.group.edit_card(tx, await tickets.get(tx, ticket.id), now)  # type: ignore[arg-type]

    async def resolve(self, tx: Connection, ticket: TicketRecord, agent: Actor, now: datetime) -> None:
        await tickets.update(tx, ticket.id, status="resolved", resolved_at=now,
                             assignee_id=ticket.assignee_id or agent.id, assignee_name=ticket.assignee_name or agent.name)
        await tickets.add_event(tx, ticket.id, actor="agent", actor_id=agent.id, actor_name=agent.name, action="resolved", now=now)
        resolved = await tickets.get(tx, ticket.id)
        assert resolved is not None
        if ticket.kind != QUESTION:
            await webhook_events.complaint_resolved(tx, ticket.id, now)
        contact, target = await self.group.customer_chat(tx, ticket)
        chat = self.group.has_chat(contact)  # else only ZNS's rating template can ask her
        if ticket.kind == QUESTION:  # closed: no rating, a follow-up within the window reopens it
            if chat:
                await self.effects.apply(tx, questions.closed(view(resolved), contact.language), target, now)
        elif not await self._asked_elsewhere(tx, resolved, contact, target, now) and chat:
            await self.effects.apply(tx, complaint.resolution_question(view(resolved), contact.language), target, now)
        number = ticket_number(ticket.id, ticket.kind)
        await self.group.to_group(tx, resolved, text(self.config.language, "desk.resolved", agent=agent.name, number=number), now=now)
        await self.group.edit_card(tx, resolved, now)

    async def _asked_elsewhere(
        self, tx: Connection, resolved: TicketRecord, contact: ContactRecord, target: Target, now: datetime,
    ) -> bool:
        """A program's CES in place of the rating, else the rating by ZNS where the chat is closed."""
        if self.resolution_survey is not None and await self.resolution_survey(tx, resolved, contact, target, now):
            return True
        return self.ask_resolution is not None and await self.ask_resolution(tx, resolved, contact, now)

    async def escalate(self, tx: Connection, ticket: TicketRecord, actor: Actor, now: datetime, breach: str | None = None) -> None:
        priority = raised(ticket.priority)
        changes: dict[str, object] = {"priority": priority}
        if breach is not None:
            changes[f"{breach}_breached_at"] = now
        await tickets.update(tx, ticket.id, **changes)
        await tickets.add_event(tx, ticket.id, actor=actor.kind, actor_id=actor.id, actor_name=actor.name,
                                action="sla_breach" if breach else "escalated", body=breach or priority, now=now)
        if priority != ticket.priority:
            await self.group.edit_card(tx, await tickets.get(tx, ticket.id), now)  # type: ignore[arg-type]
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
            await self.group.to_group(tx, ticket, message, now=now)
        for owner in self.config.owner_chat_ids:
            target = Target(self.channel_name, owner, None, None, ticket_id=ticket.id)
            await self.effects.enqueue(tx, target, "send_text", {"text": message, "buttons": []}, now)
        log.warning("ticket %s %s: priority now %s", number, breach or "escalated", priority)

    async def deny(self, tx: Connection, ticket_id: int | None, actor: Actor, action: str, now: datetime) -> None:
        log.warning("refused %s on ticket %s by %s %s", action, ticket_id, actor.kind, actor.id)
        await tickets.add_event(tx, ticket_id, actor=actor.kind, actor_id=actor.id, actor_name=actor.name,
                                action="denied", body=action, now=now)

    async def reply_in_group(self, tx: Connection, event: Inbound, body: str, now: datetime) -> None:
        payload: dict[str, Any] = {"text": body, "buttons": [], "reply_to": event.message_id}
        if event.thread_id:
            payload["thread_id"] = event.thread_id
        await self.effects.enqueue(tx, Target(self.channel_name, event.chat_id, None, None), "send_text", payload, now)
