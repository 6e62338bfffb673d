"""Carry out a flow's decisions inside the caller's transaction (state + records + outbox)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from datetime import datetime
from typing import Sequence

from flows.model import (
    AddNote,
    AnswerChoice,
    AuditDenied,
    ClaimTicket,
    EscalateTicket,
    OpenTicket,
    RateResolution,
    RelayToAgents,
    RelayToCustomer,
    ReopenTicket,
    ReplyInGroup,
    ResolveTicket,
    Decision,
    EditChoiceMessage,
    LinkCustomer,
    RecordComment,
    RecordScore,
    Reply,
    SendPendingSurveys,
    SetConversation,
    SetOptOut,
    EraseMyData,
    GrantOrder,
    SendMyData,
    TellOtherChats,
)
from bot import consent
from flows.texts import PRIVACY_NOTICE_VERSION
from storage import contacts, conversations, customers, outbox, start_tokens, surveys

# Carried out by the engine (they need the dispatcher or the ticket desk), not here.
ENGINE_DECISIONS = (
    SendPendingSurveys, OpenTicket, RelayToAgents, RateResolution, ReopenTicket, RelayToCustomer, AddNote,
    ClaimTicket, ResolveTicket, EscalateTicket, AuditDenied, ReplyInGroup, SendMyData, EraseMyData, TellOtherChats,
)
from storage.contacts import ContactRecord
from storage.db import Connection


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
    # need to look again before each text (bot/consent.py).
    notice_current: bool = False
    after_id: int | None = None  # its messages go only once this outbox row is done (e.g. a ticket's card)

    @classmethod
    def of_contact(cls, contact: ContactRecord, **fields: Any) -> "Target":
        """Messages to this contact's chat."""
        return cls(
            contact.channel, contact.chat_id, contact.id, contact.customer_id,
            notice_current=contact.notice_version == PRIVACY_NOTICE_VERSION, **fields,
        )


async def apply(tx: Connection, decisions: Sequence[Decision], target: Target, now: datetime) -> Target:
    """Returns the target as it is afterwards (a LinkCustomer changes its customer)."""
    for decision in decisions:
        match decision:
            case Reply(text=text, buttons=buttons, survey_id=survey_id, share_phone=share_phone):
                payload: dict[str, Any] = {
                    "text": text,
                    "buttons": [[{"label": b.label, "data": b.data} for b in row] for row in buttons],
                }
                if share_phone:
                    payload["share_phone"] = share_phone
                await enqueue(tx, target, "send_text", payload, now, survey_id=survey_id)
            case AnswerChoice(text=text):
                if target.choice_id is not None:
                    # Ahead of everything: the customer's button spins until it is answered,
                    # and Telegram drops answers older than ~15 s.
                    urgent = replace(target, priority=-1)
                    await enqueue(tx, urgent, "answer_choice", {"choice_id": target.choice_id, "text": text}, now)
            case EditChoiceMessage(text=text):
                if target.choice_message_id is not None:
                    await enqueue(
                        tx, target, "edit_text", {"message_id": target.choice_message_id, "text": text}, now
                    )
            case SetConversation(state=state, data=data):
                assert target.contact_id is not None
                await conversations.put(tx, target.contact_id, state, data, now)
            case RecordScore(survey_id=survey_id, score=score):
                await surveys.record_score(tx, survey_id, score, now)
            case RecordComment(survey_id=survey_id, text=text):
                await surveys.record_comment(tx, survey_id, text, now)
            case LinkCustomer(customer_id=customer_id, verified_by=verified_by):
                assert target.contact_id is not None
                await contacts.link(tx, target.contact_id, customer_id, verified_by)
                target = replace(target, customer_id=customer_id)
            case GrantOrder(token_id=token_id):
                assert target.contact_id is not None
                await start_tokens.use(tx, token_id, target.contact_id, now)
            case SetOptOut(opted_out=opted_out):
                assert target.contact_id is not None
                await contacts.set_opted_out(tx, target.contact_id, opted_out, now)
                if target.customer_id is not None:
                    await customers.set_opted_out(tx, target.customer_id, opted_out, now)
            case _ if isinstance(decision, ENGINE_DECISIONS):
                pass  # need more than the database: the engine carries them out after the rest
            case _:
                raise TypeError(f"unknown decision {decision!r}")
    return target


async def enqueue(
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
            payload=payload, priority=target.priority, now=now,
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
