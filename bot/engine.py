"""The path of one inbound update: inbox (dedupe) -> normalized event -> flow -> one
transaction with state, records and outbox."""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Awaitable, Callable, Mapping

from bot.channels.base import Channel
from bot.clock import Clock
from bot.outbox import consent
from bot.outbox.effects import Actor, Effects, Target
from bot.services.demo import is_demo_customer
from bot.services.desk import DeskGroup, desk_view, view
from bot.services.data_rights import Privacy
from bot.services.surveys import SurveyDispatcher
from flows import complaint, conversation, csat
from flows import programs as programs_flow
from flows import privacy as privacy_flow
from flows import desk as desk_flow
from flows.model import (
    Context,
    ContactView,
    Conversation,
    Inbound,
    OrderRef,
    AuditDenied,
    ProgramSurveyView,
    SendPendingSurveys,
    StartView,
    SurveyView,
)
from flows.schedule import SurveyPolicy
from flows.texts import PRIVACY_NOTICE_VERSION, pick_language
from flows.tickets import ComplaintPolicy
from bot.feedback_settings import FeedbackSettings
from storage import contacts, customers, inbox, privacy, programs, start_tokens, tickets, zalo
from storage.contacts import ContactRecord
from storage.backend import CONFLICT_RETRIES, conflict_backoff, conflicted
from storage.db import Connection, Database, savepoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Handled:
    """What an update's inbox row records of its handling."""

    at: datetime
    contact_id: int | None
    kind: str
    text: str | None
    forget: bool  # a confirmed /forget: the row itself is blanked if the erasure ran


class _HandlingFailed(Exception):
    """Carries a handling error (its __cause__) out of the unit, which then rolls back."""


class _Conflict(Exception):
    """A deadlock (or serialization failure) inside an update's handling: out of the unit, which
    rolls back, to handle the update again (its __cause__ is PostgreSQL's error)."""


class _Redelivered(Exception):
    """The update was recorded before (or by another instance meanwhile, a webhook redelivered
    to two at once): out of the unit, which rolls back its handling."""


class Engine:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        channels: Mapping[str, Channel],
        dispatcher: SurveyDispatcher,
        effects: Effects,
        *,
        shop_name: str,
        default_language: str,
        policy: SurveyPolicy,
        complaints: ComplaintPolicy | None = None,
        desk: DeskGroup | None = None,
        wake_sender: Callable[[], None] = lambda: None,
        privacy: Privacy | None = None,
        agents_reachable: bool = True,
        feedback: FeedbackSettings | None = None,
    ) -> None:
        self.db = db
        self.feedback = feedback or FeedbackSettings()  # programs, idea topics, CSAT wording (issue 21)
        self.clock = clock
        self.channels = channels
        self.dispatcher = dispatcher
        self.effects = effects  # carries out every decision (bot/outbox/effects.py)
        self.shop_name = shop_name
        self.default_language = default_language
        self.policy = policy
        self.complaints = complaints or ComplaintPolicy()
        self.desk = desk
        self.wake_sender = wake_sender
        # Receipt links' rules (start_token_ttl, trust_first_token_chat) and telling a customer's chats.
        self.privacy = privacy or Privacy(db, clock, retention_days=365, shop_name=shop_name)
        self.agents_reachable = agents_reachable  # an agents' group or the agent page: questions reach someone
        # After a customer's event: e.g. ask an unlinked Zalo follower to share their phone (once).
        self.link_request: Callable[[Connection, ContactRecord, Inbound, datetime], Awaitable[bool]] | None = None

    async def receive(self, channel_name: str, payload: dict[str, Any], *, raw: str | None = None) -> bool:
        """Record an update and handle it, committed together before this returns (so the
        platform's ack, which follows, never covers an update that is not stored). False when
        it was a redelivery (already recorded).

        `raw`: the payload's JSON text as received, stored as it is (else it is dumped again).
        Raises ValueError for a payload without an update id (the caller answers 400); a
        failure while handling is logged and kept on the inbox row, with none of the
        handling's writes. A failure to store (the disk) raises: the platform delivers again."""
        channel = self.channels[channel_name]
        update_id = channel.update_id(payload)
        received_at = self.clock.now()
        for attempt in itertools.count():
            erased = False
            try:
                # A unit: updates that arrive together share one commit (storage/db.py). A
                # retry begins a transaction of its own (see below).
                async with self.db.unit(fresh=attempt > 0) as tx:
                    try:
                        handled = await self._handled(tx, channel, payload)
                    except Exception as exc:
                        raise _HandlingFailed from exc  # the unit rolls back what it wrote
                    # The inbox row last, and the dedupe with it: a redelivery (rare) is handled
                    # again, then found recorded here and its writes rolled back, which spares
                    # every other update a lookup before handling.
                    inbox_id = await inbox.record_processed(
                        tx, channel_name, update_id, raw or payload, received_at, handled.at,
                        contact_id=handled.contact_id, kind=handled.kind, text=handled.text,
                    )
                    if inbox_id is None:
                        raise _Redelivered
                    if handled.forget:
                        await privacy.scrub_if_erased(tx, inbox_id, handled.contact_id)
                        erased = True
            except _Redelivered:
                inbox_id = None
            except Exception as failure:
                exc = failure.__cause__ if isinstance(failure, _HandlingFailed) else failure
                if attempt < CONFLICT_RETRIES and conflicted(exc):
                    # PostgreSQL gave this transaction up against another instance's (a deadlock):
                    # nothing of it was kept, so the update is handled again, from the start.
                    log.warning("%s update %s: %s; handling it again (retry %d)", channel_name, update_id,
                                type(exc).__name__, attempt + 1)
                    await conflict_backoff(attempt)
                    continue
                if not isinstance(failure, _HandlingFailed):
                    raise  # storing failed (the disk, the server): the platform delivers again
                log.error("%s update %s failed", channel_name, update_id, exc_info=exc)
                async with self.db.unit() as tx:
                    inbox_id = await inbox.record_processed(
                        tx, channel_name, update_id, raw or payload, received_at, self.clock.now(),
                        error=f"{type(exc).__name__}: {exc}", contact_id=await self._sender(tx, channel, payload),
                    )
            break
        if inbox_id is None:
            log.info("%s update %s already recorded; ignoring the redelivery", channel_name, update_id)
            return False
        self.wake_sender()  # the goodbye goes out while the erased rows' old copies are scrubbed
        if erased:
            await self.db.checkpoint()  # committed: now no older copy of the erased rows in the WAL either
        return True

    async def record(self, channel_name: str, payload: dict[str, Any]) -> int | None:
        """Only the first step of receive (for webhooks that must answer before handling):
        the inbox row's id, or None for a redelivery. ValueError without an update id."""
        update_id = self.channels[channel_name].update_id(payload)
        inbox_id = await inbox.record_committed(self.db, channel_name, update_id, payload, self.clock.now())
        if inbox_id is None:
            log.info("%s update %s already recorded; ignoring the redelivery", channel_name, update_id)
        return inbox_id

    async def replay_unprocessed(self) -> int:
        """Handle updates recorded before a crash but never processed."""
        count = 0
        while True:
            async with self.db.transaction() as tx:
                pending = await inbox.unprocessed(tx)
            if not pending:
                return count
            for item in pending:
                channel = self.channels.get(item.platform)
                if channel is None:
                    async with self.db.transaction() as tx:
                        await inbox.mark_failed(tx, item.id, f"channel {item.platform} not enabled", self.clock.now())
                    continue
                await self.process(item.id, channel, item.payload)
                count += 1

    async def process(self, inbox_id: int, channel: Channel, payload: dict[str, Any]) -> None:
        """Handle an update recorded earlier (record()): its writes and its inbox row's outcome
        committed together, or on any error none of them and the error on the row."""
        for attempt in itertools.count():
            erased = False
            try:
                async with self.db.unit(fresh=attempt > 0) as tx:
                    if not await inbox.claim(tx, inbox_id, self.clock.now()):
                        return  # another instance handled it (both replayed it at start)
                    try:
                        async with savepoint(tx, "handling"):
                            handled = await self._handled(tx, channel, payload)
                            await inbox.mark_processed(
                                tx, inbox_id, handled.at, contact_id=handled.contact_id, kind=handled.kind,
                                text=handled.text,
                            )
                            if handled.forget:
                                await privacy.scrub_if_erased(tx, inbox_id, handled.contact_id)
                                erased = True
                    except Exception as exc:  # one bad update never stops the bot
                        if attempt < CONFLICT_RETRIES and conflicted(exc):
                            raise _Conflict from exc  # all of it again, the claim included
                        log.exception("%s update (inbox %s) failed", channel.name, inbox_id)
                        await inbox.mark_failed(tx, inbox_id, f"{type(exc).__name__}: {exc}", self.clock.now(),
                                                contact_id=await self._sender(tx, channel, payload))
                        erased = False
            except Exception as exc:
                if attempt < CONFLICT_RETRIES and conflicted(exc):
                    log.warning("%s update (inbox %s): %s; handling it again (retry %d)", channel.name, inbox_id,
                                type(exc.__cause__ or exc).__name__, attempt + 1)
                    await conflict_backoff(attempt)
                    continue
                raise
            break
        self.wake_sender()
        if erased:
            await self.db.checkpoint()  # committed: now no older copy of the erased rows in the WAL either

    async def _handled(self, tx: Connection, channel: Channel, payload: dict[str, Any]) -> "_Handled":
        """Handle an update inside tx; what its inbox row keeps of it. Raises on any failure."""
        event = channel.parse(payload)
        now = self.clock.now()
        if event is not None:  # e.g. Zalo: a numbered reply -> its button
            event = await channel.resolve(tx, event, payload, now)
        foreign_group = event is not None and event.group and not self._is_agents_chat(event.chat_id)
        if foreign_group and event.choice is not None and self.desk is not None:  # a button there: refused, audited
            await self._refuse_foreign_group(tx, event, now)
            return _Handled(now, None, event.kind, event.choice, forget=False)
        if event is None or foreign_group:
            return _Handled(now, None, "ignored", None, forget=False)
        contact_id = await self._handle(tx, event, now)
        return _Handled(
            now, contact_id, event.kind, event.choice or event.text,
            forget=contact_id is not None and privacy_flow.confirms_forget(event),
        )

    async def _sender(self, tx: Connection, channel: Channel, payload: dict[str, Any]) -> int | None:
        """The chat a failed update came from, if we know it: the row keeps the raw payload, and
        /mydata and /forget find a person's rows by their chat."""
        try:
            event = channel.parse(payload)
            if event is None or event.group:
                return None
            found = await contacts.by_platform_user(tx, event.channel, event.user_id)
        except Exception:  # what failed may be the parsing itself
            return None
        return found.id if found is not None else None

    def _is_agents_chat(self, chat_id: str) -> bool:
        return self.desk is not None and self.desk.is_agents_chat(chat_id)

    async def _handle(self, tx: Connection, event: Inbound, now: datetime) -> int | None:
        # One `now` for all of an update's writes: the same timestamps, converted once.
        if event.group:  # only the agents' group gets here
            await self._handle_agent(tx, event, now)
            return None
        return await self._handle_customer(tx, event, now)

    # --- a customer in a private chat ------------------------------------------------------

    async def _handle_customer(self, tx: Connection, event: Inbound, now: datetime) -> int:
        # Resolved tickets as far back as a complaint may be reopened or a question followed up.
        tickets_since = now - max(self.complaints.reopen_window, self.complaints.question_window)
        # The contact, its conversation, its customer and whether it has tickets: one statement.
        seen = await contacts.upsert_seen_with_context(
            tx,
            channel=event.channel,
            platform_user_id=event.user_id,
            chat_id=event.chat_id,
            display_name=event.name,
            language=pick_language(event.language_code, self.default_language),
            now=now,
            tickets_since=tickets_since,
        )
        contact, state, data = seen.contact, seen.state, seen.data
        customer_name, customer_opted_out = seen.customer_name, seen.customer_opted_out
        newly_linked = False
        # Only what the event calls for is loaded, each by its own step (most updates need
        # one or two of them: each step not taken is a coroutine not made).
        if (
            (contact.customer_id is None and seen.known_customer_id is not None)
            or event.vouched_customer is not None or event.phone is not None
        ):
            contact, newly_linked = await self._proved_link(tx, contact, seen.known_customer_id, event, now)
        if newly_linked and contact.customer_id is not None:
            customer = await customers.by_id(tx, contact.customer_id)
            customer_name = customer.name if customer else None
            customer_opted_out = customer.opted_out if customer else False
        customer_id = contact.customer_id
        await consent.on_inbound(tx, contact, event, now)

        survey_id = csat.referenced_survey_id(event, state, data) or complaint.referenced_survey_id(event)
        survey_view = await self._survey_view(tx, survey_id, contact, now) if survey_id is not None else None
        program_view = await self._program_view(tx, event, state, data, contact.customer_id)
        token = conversation.start_token(event)
        start_view = await self._start_view(tx, token, contact, now) if token is not None else None
        own_tickets = await tickets.for_contact(tx, contact.id, tickets_since) if seen.has_tickets else []
        ticket_record = None
        ticket_id = complaint.referenced_ticket_id(event, state, data)
        if ticket_id is not None:
            # Only this contact's own tickets: a guessed number finds nothing.
            ticket_record = next((t for t in own_tickets if t.id == ticket_id), None)
        # The orders a complaint may be about: None when this event cannot start one.
        recent_orders: tuple[OrderRef, ...] | None = None
        granted: list[tuple[int, str, datetime]] = []
        if conversation.may_start_complaint(event):
            recent_orders, granted = await self._orders(tx, contact, now)

        ctx = Context(
            now=now,
            contact=ContactView(
                contact.id, customer_id, contact.language,
                opted_out=customer_opted_out if customer_id is not None else contact.opted_out,
                customer_name=customer_name if customer_id is not None else None,
            ),
            conversation=Conversation(state, data), shop_name=self.shop_name, survey=survey_view, start=start_view,
            policy=self.policy, complaints=self.complaints, recent_orders=recent_orders,
            tickets=tuple(view(t) for t in own_tickets), ticket=view(ticket_record) if ticket_record else None,
            agents_reachable=self.agents_reachable,
            program_survey=program_view,
            idea_topics=self.feedback.idea_topics,
            wording=self.feedback.wording,
        )
        decisions = conversation.handle(event, ctx)
        target = Target(
            event.channel, event.chat_id, contact.id, customer_id, choice_id=event.choice_id,
            choice_message_id=event.message_id if event.choice is not None else None,
            notice_current=contact.notice_version == PRIVACY_NOTICE_VERSION,
        )
        if ticket_id is not None and ticket_record is None and event.choice is not None:
            await self._audit_foreign_ticket_button(tx, ticket_id, contact, event.choice, now)
        customer_actor = Actor("customer", str(contact.id), contact.display_name)
        # Orders whose receipt link this chat opened: a complaint about one is what the link is for.
        granted_ids = {order_id: purchase_id for purchase_id, order_id, _ in granted}
        target = await self.effects.apply(
            tx, decisions, target, now, contact=contact, ctx=ctx, event=event, actor=customer_actor, granted=granted_ids,
            webhooks=seen.webhooks_active,
        )
        if newly_linked and target.customer_id is not None and not any(isinstance(d, SendPendingSurveys) for d in decisions):
            await self.dispatcher.dispatch_for_customer(tx, target.customer_id, now)
        if target.customer_id is None and self.link_request is not None:
            await self.link_request(tx, contact, event, now)  # a Zalo follower not linked yet: asked for the phone once
        if log.isEnabledFor(logging.DEBUG):  # its arguments are not even computed otherwise
            log.debug("contact %s: %s -> %d decisions", contact.id, event.kind, len(decisions))
        return contact.id

    async def _survey_view(self, tx: Connection, survey_id: int, contact: ContactRecord, now: datetime) -> SurveyView | None:
        """The survey the event refers to, if this chat may see it: never another customer's;
        from a chat not proved to be the customer's, only that of an order whose receipt link
        it opened (one statement)."""
        survey = await start_tokens.survey_for_chat(
            tx, survey_id, contact.id, contact.customer_id, now, self.privacy.start_token_ttl
        )
        return SurveyView(*survey) if survey is not None else None  # the same fields, in order

    async def _program_view(
        self, tx: Connection, event: Inbound, state: str, data: dict[str, Any], customer_id: int | None,
    ) -> ProgramSurveyView | None:
        """The program survey the event refers to: only the customer's own, of a program still configured
        (turned off on the dashboard counts: a question already sent is still answered)."""
        survey_id = programs_flow.referenced_survey_id(event, state, data)
        if survey_id is None or customer_id is None:
            return None
        record = await programs.get(tx, survey_id)
        spec = self.feedback.known_program(record.program) if record is not None else None
        if record is None or spec is None or record.customer_id != customer_id:
            return None
        return ProgramSurveyView(record.id, record.customer_id, record.status, spec, record.order_id, record.score,
                                 record.choice)

    async def _start_view(self, tx: Connection, token: str, contact: ContactRecord, now: datetime) -> StartView | None:
        """The order behind a /start token (a receipt's link)."""
        found = await start_tokens.lookup(tx, token, now, self.privacy.start_token_ttl, contact.id)
        if found is None:
            return None
        return StartView(
            found.id, found.customer_id, found.customer_name, found.order_id, found.usable,
            new_here=not found.opened_here,
            # A demo customer is made up for whoever tries the demo: nothing of anyone's to protect.
            verifies=(self.privacy.trust_first_token_chat or is_demo_customer(found.external_id))
            and not found.opened_elsewhere,
        )

    async def _orders(
        self, tx: Connection, contact: ContactRecord, now: datetime
    ) -> tuple[tuple[OrderRef, ...], list[tuple[int, str, datetime]]]:
        """The orders a complaint may be about (the customer's recent ones and those whose
        receipt link this chat opened, newest first), and the latter (purchase id, order id, when)."""
        recent = await tickets.recent_orders(tx, contact.customer_id) if contact.customer_id else []
        granted = await start_tokens.granted_orders(tx, contact.id, now, self.privacy.start_token_ttl)
        orders = dict(recent)
        for _, order_id, at in granted:  # orders whose receipt link this chat opened
            orders.setdefault(order_id, at)
        newest = sorted(orders.items(), key=lambda item: item[1], reverse=True)[:5]
        return tuple(OrderRef(order_id, at) for order_id, at in newest), granted

    async def _proved_link(
        self, tx: Connection, contact: ContactRecord, known_customer_id: int | None, event: Inbound, now: datetime
    ) -> tuple[ContactRecord, bool]:
        """Link the chat to a customer on a proof the shop or the platform vouches for (never
        on a receipt's link: see _handle_customer); a phone claimed without proof links
        nothing, and the customer's chats are told. The contact, and whether it was linked now
        (surveys waiting for this chat then go out, as after /start)."""
        linked = contact.customer_id
        if linked is None and known_customer_id is not None:
            # The shop gave us this Telegram / Zalo user id with a purchase.
            await contacts.link(tx, contact.id, known_customer_id, "shop")
            linked = known_customer_id
        if event.vouched_customer is not None:  # the shop site's signed customer token
            vouched = await customers.by_external_id(tx, event.vouched_customer)
            if vouched is not None and vouched.id != linked:
                await contacts.link(tx, contact.id, vouched.id, "customer_token")
                linked = vouched.id
        if event.phone is not None:
            owner = await zalo.customer_id_by_phone(tx, event.phone)
            if owner is not None and event.phone_proved and linked is None:
                await contacts.link(tx, contact.id, owner, "phone")
                linked = owner
            elif owner is not None and owner != linked:
                # Not proved by the platform (Zalo's form), or the chat is already another customer's.
                log.info("contact %s gave the phone of customer %s: not linked", contact.id, owner)
                await self.privacy.tell_other_chats(tx, owner, "phone_claimed", contact.id, now)
        if linked == contact.customer_id:
            return contact, False
        return await contacts.by_id(tx, contact.id) or contact, True

    async def _audit_foreign_ticket_button(
        self, tx: Connection, ticket_id: int, contact: ContactRecord, choice: str, now: datetime
    ) -> None:
        """A button naming a ticket that is not this contact's (a guessed number, crafted data):
        the flow refused it; the attempt goes to the audit trail (of that ticket, if it exists)."""
        other = await tickets.get(tx, ticket_id)
        if other is not None and other.contact_id == contact.id:
            return  # their own ticket, only older than the reopen window: a stale button
        actor = Actor("customer", str(contact.id), contact.display_name)
        await self.effects.apply(tx, [AuditDenied(f"button:{choice[:64]}", other.id if other else None)],
                                 Target.of_contact(contact), now, actor=actor)

    def _require_desk(self) -> DeskGroup:
        if self.desk is None:
            raise RuntimeError("a group update but no ticket desk is wired")
        return self.desk

    # --- an agent in the agents' group ----------------------------------------------------

    async def _refuse_foreign_group(self, tx: Connection, event: Inbound, now: datetime) -> None:
        """A button in a group that is not the agents': refused, answered, audited."""
        desk = self._require_desk()
        decisions = desk_flow.refuse_foreign_group(event, desk.config.language)
        target = Target(event.channel, event.chat_id, None, None, choice_id=event.choice_id)
        agent = Actor("agent", event.user_id, event.name or event.user_id)
        await self.effects.apply(tx, decisions, target, now, event=event, actor=agent)

    async def _handle_agent(self, tx: Connection, event: Inbound, now: datetime) -> None:
        desk = self._require_desk()
        ticket = None
        if event.choice is not None:
            ticket_id = desk_flow.referenced_ticket_id(event.choice)
            ticket = await tickets.get(tx, ticket_id) if ticket_id is not None else None
        elif event.thread_id is not None:
            ticket = await tickets.by_thread(tx, event.chat_id, event.thread_id)
        elif event.reply_to_message_id is not None:
            ticket = await tickets.by_agent_message(tx, event.chat_id, event.reply_to_message_id)
        ctx = desk_flow.DeskContext(
            now=now,
            language=desk.config.language,
            agent_allowed=desk.agent_allowed(event),
            ticket=desk_view(ticket) if ticket else None,
        )
        decisions = desk_flow.handle(event, ctx)
        agent = Actor("agent", event.user_id, event.name or event.user_id)
        target = Target(event.channel, event.chat_id, None, None, choice_id=event.choice_id,
                        choice_message_id=event.message_id if event.choice is not None else None)
        await self.effects.apply(tx, decisions, target, now, event=event, actor=agent, ticket=ticket)
