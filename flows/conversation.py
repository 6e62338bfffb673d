"""The entry point of every inbound customer event: commands first, then the open flow."""
from __future__ import annotations

from flows import csat
from flows.model import (
    AnswerChoice,
    Context,
    Decision,
    Inbound,
    LinkCustomer,
    Reply,
    SendPendingSurveys,
    SetConversation,
    SetOptOut,
)
from flows.texts import text


def handle(event: Inbound, ctx: Context) -> list[Decision]:
    if event.command is not None:
        return _on_command(event, ctx)
    if event.choice is not None:
        if csat.owns_choice(event.choice):
            return csat.on_choice(event, ctx)
        return [AnswerChoice()]  # a button of a flow that no longer exists
    if ctx.conversation.state.startswith(csat.STATE_PREFIX):
        decisions = csat.on_text(event, ctx)
        if decisions is not None:
            return decisions
    return [Reply(text(ctx.contact.language, "idle.received", shop=ctx.shop_name))]


def start_token(event: Inbound) -> str | None:
    """The deep-link payload of "/start <token>", for the engine to look up."""
    if event.command == "start" and event.args.strip():
        return event.args.strip()
    return None


def _on_command(event: Inbound, ctx: Context) -> list[Decision]:
    lang = ctx.contact.language
    shop = ctx.shop_name
    if event.command == "start":
        return _on_start(event, ctx)
    if event.command == "stop":
        return [SetOptOut(True), SetConversation("idle"), Reply(text(lang, "stop.done", shop=shop))]
    if event.command == "help":
        return [Reply(text(lang, "help", shop=shop))]
    return [Reply(text(lang, "unknown_command"))]


def _on_start(event: Inbound, ctx: Context) -> list[Decision]:
    lang = ctx.contact.language
    shop = ctx.shop_name
    if start_token(event) is not None:
        customer = ctx.start_customer
        if customer is None:
            return [Reply(text(lang, "start.bad_link", shop=shop))]
        return [
            LinkCustomer(customer.customer_id),
            SetOptOut(False),
            Reply(text(lang, "start.linked", name=customer.name, shop=shop)),
            SendPendingSurveys(),
        ]
    decisions: list[Decision] = [SetOptOut(False), Reply(text(lang, "start.welcome", shop=shop))]
    if ctx.contact.customer_id is not None:
        decisions.append(SendPendingSurveys())
    return decisions
