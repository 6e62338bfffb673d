"""The one place decisions are carried out: every decision type of flows/model.py has exactly
one handler in the registry (the records and replies here, the desk's, privacy's and the
surveys' registered by their services at wiring), run inside the caller's transaction
(state + records + outbox)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Awaitable, Callable, Mapping, Sequence, get_args

from bot.channels.base import Channel
from bot.outbox import consent
from bot.webhooks import events as webhook_events
from flows.model import (
    AnswerChoice,
    Context,
    Decision,
    EditChoiceMessage,
    GrantOrder,
    Inbound,
    LinkCustomer,
    RecordComment,
    RecordScore,
    Reply,
    SetConversation,
    SetOptOut,
)
from flows.texts import PRIVACY_NOTICE_VERSION
from storage import contacts, conversations, customers, outbox, start_tokens, surveys
from storage.contacts import ContactRecord
from storage.db import Connection
from storage.rollups import RollupRule
from storage.tickets import TicketRecord

# Handlers run phase by phase over a batch of decisions: first what the flow records and says,
# then what the services do with it (tickets, privacy), then what follows from both (surveys
# that became sendable). Within a phase, in the order the flow gave them.
RECORDS, SERVICES, AFTERWARDS = 0, 1, 2
PHASES = (RECORDS, SERVICES, AFTERWARDS)


@dataclass(frozen=True)
class Target:
    """Who the decisions are about, and where their replies go."""

    channel: str
    chat_id: str
    contact_id: int | None  # None for a group or an owner's chat
    customer_id: int | None
    choice_id: str | None = None  # the button press being answered, if any
    choice_message_id: str | None = None  # the message that carried that button
    priority: int = 0  # outbox priority: 0 for a customer chatting now, 1 for bulk sends
    ticket_id: int | None = None  # messages about a ticket are linked to it
    # The contact was shown the current privacy notice, as read in this transaction: no
    # need to look again before each text (bot/outbox/consent.py).
    notice_current: bool = False
    after_id: int | None = None  # its messages go only once this outbox row is done (e.g. a ticket's card)

    @classmethod
    def of_contact(cls, contact: ContactRecord, **fields: Any) -> "Target":
        """Messages to this contact's chat."""
        return cls(
            contact.channel, contact.chat_id, contact.id, contact.customer_id,
            notice_current=contact.notice_version == PRIVACY_NOTICE_VERSION, **fields,
        )


@dataclass(frozen=True)
class Actor:
    """Who did something to a ticket (its audit trail)."""

    kind: str  # customer | agent | system
    id: str | None = None
    name: str | None = None


SYSTEM = Actor("system")


class Scope:
    """What a batch of decisions is carried out for: where replies go, and what the engine
    read before the flow ran (the customer's contact and context, or the agent and ticket).
    A plain class with slots: one is made per batch, on the hot path."""

    __slots__ = ("target", "now", "contact", "ctx", "event", "actor", "ticket", "granted", "batch", "deferred", "webhooks")

    def __init__(
        self,
        target: Target,
        now: datetime,
        *,
        contact: ContactRecord | None = None,  # the customer who wrote
        ctx: Context | None = None,  # what the customer's flow was shown
        event: Inbound | None = None,  # the update itself
        actor: Actor | None = None,  # who acted (the customer or the agent)
        ticket: TicketRecord | None = None,  # the ticket an agent acted on
        granted: Mapping[str, int] | None = None,  # order id -> purchase id of receipt links this chat opened
        batch: tuple[Any, ...] = (),  # every decision of this batch (a handler may look at the others)
        # False when the engine read, in this transaction, that no webhook endpoint is active:
        # no event is looked up or built (bot/webhooks/events.py).
        webhooks: bool = True,
    ) -> None:
        self.target = target  # as it is now (a LinkCustomer changes its customer)
        self.now = now
        self.contact = contact
        self.ctx = ctx
        self.event = event
        self.actor = actor
        self.ticket = ticket
        self.granted: Mapping[str, int] = granted or {}
        self.batch = batch
        self.webhooks = webhooks
        self.deferred: list[Callable[[], Awaitable[None]]] = []  # run when the phase ends


Handler = Callable[[Connection, Any, Scope], Awaitable["Target | None"]]  # a new target, or None: unchanged


def decision_types() -> tuple[type, ...]:
    """Every decision type a flow may return (flows/model.py's Decision union)."""
    return get_args(Decision)


class Effects:
    """The decision executor, and the one writer of outbox rows for decisions."""

    def __init__(self, channels: Mapping[str, Channel], rollup_rule: RollupRule = RollupRule()) -> None:
        self.channels = channels
        self.rollup_rule = rollup_rule  # the shop's day and VIP rule, for the CSAT rollups
        self._handlers: dict[type, tuple[int, Handler]] = {}
        for kind, handler in (
            (Reply, self._reply), (AnswerChoice, self._answer_choice), (EditChoiceMessage, self._edit_choice_message),
            (SetConversation, self._set_conversation), (RecordScore, self._record_score),
            (RecordComment, self._record_comment), (LinkCustomer, self._link_customer), (GrantOrder, self._grant_order),
            (SetOptOut, self._set_opt_out),
        ):
            self.register(kind, handler, RECORDS)

    def chat_channels(self) -> frozenset[str]:
        """The enabled channels a text can be written to (Channel.conversational: not ZNS, whose
        contact is a phone): what picks a chat for a survey, a program or a follow-up uses these."""
        return frozenset(name for name, channel in self.channels.items() if channel.conversational)

    def register(self, kind: type, handler: Handler, phase: int = SERVICES) -> None:
        """The one handler of a decision type; a second registration is a wiring mistake."""
        if kind in self._handlers:
            raise ValueError(f"{kind.__name__} already has a handler")
        self._handlers[kind] = (phase, handler)

    def missing(self) -> list[str]:
        """Decision types without a handler (the wiring test asserts there are none)."""
        return [kind.__name__ for kind in decision_types() if kind not in self._handlers]

    async def apply(
        self, tx: Connection, decisions: Sequence[Decision], target: Target, now: datetime, **scope: Any
    ) -> Target:
        """Carry out the decisions, phase by phase; returns the target as it is afterwards (a
        LinkCustomer changes its customer). `scope`: the other fields of Scope."""
        phases: tuple[list[tuple[Handler, Decision]], ...] = ([], [], [])  # RECORDS, SERVICES, AFTERWARDS
        for decision in decisions:
            found = self._handlers.get(type(decision))
            if found is None:
                raise TypeError(f"no handler for decision {decision!r}")
            phases[found[0]].append((found[1], decision))
        state = Scope(target, now, batch=tuple(decisions), **scope)
        for phase in phases:
            for handler, decision in phase:
                changed = await handler(tx, decision, state)
                if changed is not None:
                    state.target = changed
            while state.deferred:
                await state.deferred.pop(0)()
        return state.target

    async def enqueue(
        self,
        tx: Connection,
        target: Target,
        method: str,
        payload: dict[str, Any],
        now: datetime,
        *,
        survey_id: int | None = None,
        coalesce_key: str | None = None,
    ) -> None:
        """One outbox row to the target's chat, in the caller's transaction (with the privacy
        notice, if this is the first text the contact gets)."""
        if target.contact_id is not None and not target.notice_current:
            payload = await consent.with_notice(
                tx, channel=target.channel, chat_id=target.chat_id, contact_id=target.contact_id, method=method,
                payload=payload, priority=target.priority, now=now, fits=self._fits(target.channel),
            )
        await outbox.enqueue(
            tx,
            channel=target.channel,
            chat_id=target.chat_id,
            contact_id=target.contact_id,
            method=method,
            payload=payload,
            now=now,
            survey_id=survey_id,
            priority=target.priority,
            ticket_id=target.ticket_id,
            coalesce_key=coalesce_key,
            after_id=target.after_id,
        )

    def _fits(self, channel_name: str) -> Callable[[str, list[list[dict[str, str]]]], bool]:
        channel = self.channels.get(channel_name)
        return channel.fits if channel is not None else consent.fits_default

    # --- the records and replies of a flow ------------------------------------------------------

    async def _reply(self, tx: Connection, d: Reply, scope: Scope) -> None:
        payload: dict[str, Any] = {
            "text": d.text,
            "buttons": [[{"label": b.label, "data": b.data} for b in row] for row in d.buttons],
        }
        if d.share_phone:
            payload["share_phone"] = d.share_phone
        await self.enqueue(tx, scope.target, "send_text", payload, scope.now, survey_id=d.survey_id)

    async def _answer_choice(self, tx: Connection, d: AnswerChoice, scope: Scope) -> None:
        target = scope.target
        if target.choice_id is not None:
            # Ahead of everything: the customer's button spins until it is answered, and
            # Telegram drops answers older than ~15 s.
            urgent = replace(target, priority=-1)
            await self.enqueue(tx, urgent, "answer_choice", {"choice_id": target.choice_id, "text": d.text}, scope.now)

    async def _edit_choice_message(self, tx: Connection, d: EditChoiceMessage, scope: Scope) -> None:
        if scope.target.choice_message_id is not None:
            payload = {"message_id": scope.target.choice_message_id, "text": d.text}
            await self.enqueue(tx, scope.target, "edit_text", payload, scope.now)

    async def _set_conversation(self, tx: Connection, d: SetConversation, scope: Scope) -> None:
        assert scope.target.contact_id is not None
        await conversations.put(tx, scope.target.contact_id, d.state, d.data, scope.now)

    async def _record_score(self, tx: Connection, d: RecordScore, scope: Scope) -> None:
        if await surveys.record_score(tx, d.survey_id, d.score, scope.now, self.rollup_rule) and scope.webhooks:
            await webhook_events.survey_answered(tx, d.survey_id, scope.now)

    async def _record_comment(self, tx: Connection, d: RecordComment, scope: Scope) -> None:
        if await surveys.record_comment(tx, d.survey_id, d.text, scope.now) and scope.webhooks:
            await webhook_events.survey_commented(tx, d.survey_id, scope.now)

    async def _link_customer(self, tx: Connection, d: LinkCustomer, scope: Scope) -> Target:
        assert scope.target.contact_id is not None
        await contacts.link(tx, scope.target.contact_id, d.customer_id, d.verified_by)
        return replace(scope.target, customer_id=d.customer_id)

    async def _grant_order(self, tx: Connection, d: GrantOrder, scope: Scope) -> None:
        assert scope.target.contact_id is not None
        await start_tokens.use(tx, d.token_id, scope.target.contact_id, scope.now)

    async def _set_opt_out(self, tx: Connection, d: SetOptOut, scope: Scope) -> None:
        """Only a change is written; what the engine read in this transaction tells whether
        there is one (a /start from a chat that never opted out writes nothing)."""
        target = scope.target
        assert target.contact_id is not None
        contact = scope.contact
        if contact is None or contact.id != target.contact_id or contact.opted_out != d.opted_out:
            await contacts.set_opted_out(tx, target.contact_id, d.opted_out, scope.now)
        if target.customer_id is not None:
            read = scope.ctx.contact if scope.ctx is not None else None  # opted_out: the customer's when linked
            if read is None or read.customer_id != target.customer_id or read.opted_out != d.opted_out:
                await customers.set_opted_out(tx, target.customer_id, d.opted_out, scope.now)
