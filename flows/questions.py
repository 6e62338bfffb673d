"""A customer's question: any message no flow is waiting for reaches a person.

1. A message with no open ticket and no flow waiting ("Shop có bán trà ô long không?", or
   a message after a complaint was resolved) opens a question: a light ticket (no intake
   steps) with its own first-response target. The customer is told honestly when to expect
   an answer.
2. While it is open, everything the customer writes goes to the agents (as for a complaint),
   and the agents' replies come back.
3. An agent closes it; a message within the follow-up window after that joins the same
   question again (reopens it) instead of opening a new one.

It never changes the conversation state: a survey waiting for its score stays open.
"""
from __future__ import annotations

from flows.model import Context, Decision, Inbound, OpenTicket, RelayToAgents, ReopenTicket, Reply, TicketView
from flows.texts import duration_text, local_time, text
from flows.tickets import QUESTION

CATEGORY = QUESTION  # a question's category, for the columns every ticket has
SOURCE = "message"


def ask(event: Inbound, ctx: Context) -> list[Decision]:
    """Route a free message to a person: a recently closed question of this customer's, or a new one."""
    if not ctx.agents_reachable:  # no group, no agent page: promise nothing nobody can keep
        return [Reply(text(ctx.contact.language, "question.no_agents", shop=ctx.shop_name))]
    recent = recently_closed(ctx)
    if recent is not None:
        return [ReopenTicket(recent.ticket_id), RelayToAgents(recent.ticket_id, event.text, event.photos)]
    return [
        OpenTicket(
            category=CATEGORY,
            description=event.text.strip(),
            photos=event.photos[: ctx.complaints.max_photos],
            source=SOURCE,
            kind=QUESTION,
        )
    ]


def recently_closed(ctx: Context) -> TicketView | None:
    """The customer's latest question, if it was closed within the follow-up window."""
    window = ctx.complaints.question_window
    closed = [
        t for t in ctx.tickets
        if t.kind == QUESTION and t.status == "resolved" and t.resolved_at is not None and ctx.now - t.resolved_at <= window
    ]
    return max(closed, key=lambda t: t.resolved_at, default=None)  # type: ignore[arg-type, return-value]


def opened(ticket: TicketView, ctx: Context) -> list[Decision]:
    """What the customer hears once the question reached the agents."""
    return [Reply(_promise(ctx, "question.opened", ticket))]


def reopened(ticket: TicketView, ctx: Context) -> list[Decision]:
    """A follow-up joined a closed question: it is open again, with a new target."""
    return [Reply(_promise(ctx, "question.follow_up", ticket))]


def closed(ticket: TicketView, language: str) -> list[Decision]:
    """An agent closed the question: no rating (it is not a complaint), only a kind word."""
    return [Reply(text(language, "question.closed", number=ticket.number))]


def _promise(ctx: Context, key: str, ticket: TicketView) -> str:
    lang = ctx.contact.language
    return text(
        lang, key, shop=ctx.shop_name, number=ticket.number,
        within=duration_text(lang, ctx.complaints.question_first_response),
        due=local_time(ticket.first_response_due_at, ctx.policy.timezone, lang),
    )
