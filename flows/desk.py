"""The agents' side of a ticket, in the agents' Telegram group.

An escalation card per ticket (Claim / Resolve / Escalate); an agent's message in the
ticket's topic (forum groups) or in reply to its messages (other groups) goes to the
customer; /note keeps an internal note. Every action is checked against who pressed and
the ticket's state, and refused actions are audited.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from flows.buttons import DeskAction
from flows.model import (
    AddNote,
    AnswerChoice,
    AuditDenied,
    Button,
    ClaimTicket,
    Decision,
    EscalateTicket,
    Inbound,
    RelayToCustomer,
    ReplyInGroup,
    ResolveTicket,
)
from flows.texts import category_label, fmt_number, local_time, plural, text
from flows.tickets import PRIORITIES

ACTIONS = ("claim", "resolve", "esc")


@dataclass(frozen=True)
class DeskTicket:
    ticket_id: int
    number: str
    status: str
    priority: str
    assignee_id: str | None = None
    assignee_name: str | None = None


@dataclass(frozen=True)
class DeskContext:
    now: datetime
    language: str
    agent_allowed: bool  # the sender may act on tickets (checked by the engine: chat, allowlist, not anonymous)
    ticket: DeskTicket | None  # the ticket the message or button refers to


@dataclass(frozen=True)
class Card:
    number: str
    priority: str
    customer: str
    tier: str
    order_id: str | None
    category: str
    description: str
    photos: int
    past_scores: tuple[int, ...]
    first_due: datetime
    resolution_due: datetime
    status: str
    assignee_name: str | None
    kind: str = "complaint"  # complaint | question


def owns_choice(data: str) -> bool:
    return DeskAction.owns(data)


def referenced_ticket_id(data: str) -> int | None:
    action = DeskAction.unpack(data)
    return action.ticket_id if action else None


def card_buttons(ticket_id: int, language: str, status: str, kind: str = "complaint") -> tuple[tuple[Button, ...], ...]:
    if status == "resolved":
        return ()
    if kind == "question":  # answered and closed; nothing to escalate by hand
        return ((Button(text(language, "desk.claim"), DeskAction("claim", ticket_id).pack()),
                 Button(text(language, "desk.resolve"), DeskAction("resolve", ticket_id).pack())),)
    return (
        (
            Button(text(language, "desk.claim"), DeskAction("claim", ticket_id).pack()),
            Button(text(language, "desk.resolve"), DeskAction("resolve", ticket_id).pack()),
            Button(text(language, "desk.escalate"), DeskAction("esc", ticket_id).pack()),
        ),
    )


def card_text(card: Card, language: str, tz: tzinfo) -> str:
    if card.kind == "question":
        return _question_card_text(card, language, tz)
    scores = card.past_scores
    past = text(language, "desk.no_csat") if not scores else (
        f"{', '.join(str(s) for s in scores)} ({'TB' if language == 'vi' else 'avg'}"
        f" {fmt_number(sum(scores) / len(scores), language, 1)})"  # "TB 3,5": the digest's decimal comma
    )
    body = text(
        language,
        "desk.card",
        marker="🆕 " if card.status == "open" else "",  # new: nobody has it yet
        number=card.number,
        priority=text(language, f"priority.{card.priority}"),
        customer=card.customer,
        tier=text(language, f"tier.{card.tier}"),
        order=f"#{card.order_id}" if card.order_id else text(language, "order.none"),
        category=category_label(language, card.category),
        description=card.description,
        photos=plural(language, "photos.count", card.photos, count=card.photos) if card.photos else text(language, "photos.none"),
        past_csat=past,
        first_due=local_time(card.first_due, tz, language),
        resolution_due=local_time(card.resolution_due, tz, language),
        status=text(language, f"desk.status_{card.status}", agent=card.assignee_name or ""),
    )
    return body


def _question_card_text(card: Card, language: str, tz: tzinfo) -> str:
    """A question's card: who asked what, and by when to answer (no order, category or SLA pair)."""
    return text(
        language,
        "desk.question_card",
        number=card.number,
        customer=card.customer,
        tier=text(language, f"tier.{card.tier}"),
        description=card.description,
        photos=plural(language, "photos.count", card.photos, count=card.photos) if card.photos else text(language, "photos.none"),
        first_due=local_time(card.first_due, tz, language),
        status=text(language, f"desk.status_{card.status}", agent=card.assignee_name or ""),
    )


def card_hint(language: str, topic: bool) -> str:
    """How agents answer; known only once the card is placed (a topic, or replies to it)."""
    return text(language, "desk.card_hint_topic" if topic else "desk.card_hint_reply")


def handle(event: Inbound, ctx: DeskContext) -> list[Decision]:
    if event.choice is not None:
        return _on_button(event, ctx)
    ticket = ctx.ticket
    if ticket is None:
        return []  # the agents talking among themselves
    lang = ctx.language
    if event.anonymous:
        return [AuditDenied("reply", ticket.ticket_id), ReplyInGroup(text(lang, "desk.anonymous"))]
    if not ctx.agent_allowed:
        return [AuditDenied("reply", ticket.ticket_id), ReplyInGroup(text(lang, "desk.denied"))]
    if event.command == "note":
        if not event.args.strip():
            return []
        return [AddNote(ticket.ticket_id, event.args.strip()), ReplyInGroup(text(lang, "desk.note_saved", number=ticket.number))]
    if event.command is not None:
        return []  # commands are for the bot, never relayed
    if ticket.status == "resolved":
        return [ReplyInGroup(text(lang, "desk.not_sent_resolved", number=ticket.number))]
    if not event.text.strip() and not event.photos:
        return []
    return [RelayToCustomer(ticket.ticket_id, event.text, event.photos)]


def refuse_foreign_group(event: Inbound, language: str) -> list[Decision]:
    """A button pressed in a group that is not the agents' (an old group, a copied card):
    answered, so it does not spin, and audited, never carried out."""
    data = event.choice or ""
    return [AnswerChoice(text(language, "desk.denied")),
            AuditDenied(f"button:{data[:64]} in chat {event.chat_id}", referenced_ticket_id(data))]


def _on_button(event: Inbound, ctx: DeskContext) -> list[Decision]:
    lang = ctx.language
    data = event.choice or ""
    pressed = DeskAction.unpack(data)
    action, ticket_id = (pressed.action, pressed.ticket_id) if pressed else ("", None)
    if action not in ACTIONS or ticket_id is None:
        return [AnswerChoice(text(lang, "desk.unknown_ticket")), AuditDenied(f"button:{data[:64]}")]
    if event.anonymous or not ctx.agent_allowed:
        return [AnswerChoice(text(lang, "desk.denied")), AuditDenied(action, ticket_id)]
    ticket = ctx.ticket
    if ticket is None or ticket.ticket_id != ticket_id:
        return [AnswerChoice(text(lang, "desk.unknown_ticket"))]
    if ticket.status == "resolved":
        return [AnswerChoice(text(lang, "desk.already_resolved"))]
    if action == "claim":
        if ticket.status == "claimed" and ticket.assignee_id not in (None, event.user_id):
            return [AnswerChoice(text(lang, "desk.already_claimed", agent=ticket.assignee_name or "?"))]
        if ticket.status == "claimed":
            return [AnswerChoice()]
        return [AnswerChoice(), ClaimTicket(ticket_id)]
    if action == "resolve":
        return [AnswerChoice(), ResolveTicket(ticket_id)]
    if ticket.priority == PRIORITIES[-1]:  # recorded, but the supervisor is not pinged again
        return [AnswerChoice(text(lang, "desk.already_top", number=ticket.number)), EscalateTicket(ticket_id)]
    return [AnswerChoice(), EscalateTicket(ticket_id)]
