"""The entry point of every inbound customer event: commands first, then the open flow;
what no flow waits for goes to a person as a question (flows/questions.py)."""
from __future__ import annotations

from flows import complaint, csat, desk, ideas, privacy, programs, questions
from flows.model import (
    AnswerChoice,
    AuditDenied,
    Context,
    Decision,
    GrantOrder,
    Inbound,
    LinkCustomer,
    RelayToAgents,
    Reply,
    SendPendingSurveys,
    SetConversation,
    SetOptOut,
    TellOtherChats,
)
from flows.texts import text
from flows.tickets import looks_like_complaint


def handle(event: Inbound, ctx: Context) -> list[Decision]:
    if event.phone is not None and event.command is None:
        return _on_phone(event, ctx)
    if event.command is not None:
        return _on_command(event, ctx)
    if event.choice is not None:
        if csat.owns_choice(event.choice):
            return csat.on_choice(event, ctx)
        if complaint.owns_choice(event.choice):
            return complaint.on_choice(event, ctx)
        if programs.owns_choice(event.choice):
            return programs.on_choice(event, ctx)
        if ideas.owns_choice(event.choice):
            return ideas.on_choice(event, ctx)
        if privacy.owns_choice(event.choice):
            return privacy.on_choice(event, ctx)
        if desk.owns_choice(event.choice):  # an agents' button pressed (or crafted) in a private chat
            return [AnswerChoice(), AuditDenied(f"button:{event.choice[:64]}", desk.referenced_ticket_id(event.choice))]
        return [AnswerChoice()]  # a button of a flow that no longer exists
    state = ctx.conversation.state
    if state.startswith(csat.STATE_PREFIX):
        decisions = csat.on_text(event, ctx)
        if decisions is not None:
            return decisions
    if state.startswith(programs.STATE_PREFIX):
        decisions = programs.on_text(event, ctx)
        if decisions is not None:
            return decisions
    if state == ideas.AWAITING_TEXT:  # an idea is never read as a complaint
        decisions = ideas.on_text(event, ctx)
        if decisions is not None:
            return decisions
    decisions = complaint.on_text(event, ctx)
    if decisions is not None:
        return decisions
    current = complaint.open_ticket_of(ctx)
    if current is not None:  # an open ticket gets everything the customer writes
        return [RelayToAgents(current.ticket_id, event.text, event.photos)]
    if state == csat.AWAITING_SCORE and ctx.survey is not None and ctx.survey.status == "sent":
        return questions.ask(event, ctx)  # asked while a score is awaited: answered, the survey kept open
    if event.text and looks_like_complaint(event.text, ctx.complaints.keywords):
        return complaint.start(ctx, "keywords", description=event.text.strip(), photos=event.photos)
    if not event.text.strip() and not event.photos:  # a sticker, a voice note: nothing to pass on
        return [Reply(text(ctx.contact.language, "idle.unsupported"))]
    return questions.ask(event, ctx)  # no flow is waiting: a person answers


def may_start_complaint(event: Inbound) -> bool:
    """Whether handle() may start a complaint intake for this event (which offers the
    customer's recent orders: the engine loads them only then). A button of another flow
    or a command other than /complaint never does; any text may (keywords, an open step)."""
    if event.choice is not None:
        return complaint.owns_choice(event.choice)
    if event.command is not None:
        return event.command == "complaint"
    return True


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
    if event.command == "mydata":
        return privacy.my_data(ctx)
    if event.command == "forget":
        return privacy.forget(ctx)
    if event.command == "help":
        return [Reply(text(lang, "help", shop=shop), buttons=((ideas.menu_button(lang),),))]
    if event.command in ideas.COMMANDS:
        return ideas.start(event, ctx)
    if event.command == "complaint":
        return complaint.start(ctx, "command")
    if event.command == "status":
        return complaint.status(ctx)
    if event.command == "cancel":
        if ctx.conversation.state in complaint.INTAKE:
            return complaint.cancel(ctx)
        return [Reply(text(lang, "complaint.status_none"))] if not complaint.open_ticket_of(ctx) else complaint.status(ctx)
    return [Reply(text(lang, "unknown_command"))]


def _on_start(event: Inbound, ctx: Context) -> list[Decision]:
    lang = ctx.contact.language
    shop = ctx.shop_name
    if start_token(event) is not None:
        return _on_start_token(event, ctx)
    if ctx.contact.customer_id is not None and ctx.contact.customer_name:  # a chat proved to be theirs
        return [SetOptOut(False), Reply(text(lang, "start.linked", name=ctx.contact.customer_name, shop=shop)),
                SendPendingSurveys()]
    decisions: list[Decision] = [SetOptOut(False), Reply(text(lang, "start.welcome", shop=shop))]
    if ctx.contact.customer_id is not None:
        decisions.append(SendPendingSurveys())
    return decisions


def _on_start_token(event: Inbound, ctx: Context) -> list[Decision]:
    """A receipt's link: that order's survey and complaints, nothing of the customer's own
    (not even their name) unless this chat is already theirs or the shop trusts the first
    chat to open a link."""
    lang = ctx.contact.language
    shop = ctx.shop_name
    start = ctx.start
    if start is None:
        return [Reply(text(lang, "start.bad_link", shop=shop))]
    if not start.usable:
        return [Reply(text(lang, "start.expired", shop=shop))]
    decisions: list[Decision] = [GrantOrder(start.token_id)]
    theirs = ctx.contact.customer_id == start.customer_id
    if not theirs and start.verifies and ctx.contact.customer_id is None:
        decisions.append(LinkCustomer(start.customer_id, "first_token"))
        theirs = True
    if not theirs and start.new_here:  # her chats (and those that opened it before) hear of it
        decisions.append(TellOtherChats(start.customer_id, "token_reused", start.order_id, start.token_id))
    if theirs:
        greeting = Reply(text(lang, "start.linked", name=start.customer_name, shop=shop))
    elif event.phone_button:  # the customer can prove the chat is theirs with their own number
        greeting = Reply(text(lang, "start.order", order=start.order_id, shop=shop) + "\n\n"
                         + text(lang, "start.share_phone", shop=shop), share_phone=text(lang, "phone.share_button"))
    else:
        greeting = Reply(text(lang, "start.order", order=start.order_id, shop=shop))
    return [*decisions, SetOptOut(False), greeting, SendPendingSurveys()]


def _on_phone(event: Inbound, ctx: Context) -> list[Decision]:
    """A phone number shared in the chat: the bot linked the chat if the platform proved it
    was the sender's own and the shop knows it (see the engine)."""
    lang = ctx.contact.language
    shop = ctx.shop_name
    if ctx.contact.customer_id is not None and event.phone_proved:
        return [Reply(text(lang, "phone.linked", name=ctx.contact.customer_name or "", shop=shop)), SendPendingSurveys()]
    if not event.phone_proved:
        return [Reply(text(lang, "phone.not_proved", shop=shop))]
    return [Reply(text(lang, "phone.unknown", shop=shop))]
