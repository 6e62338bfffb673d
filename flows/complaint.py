"""Complaint intake and the customer's side of a ticket, in the order the customer lives it.

1. Start: /complaint, the "File a complaint" button after a low score, or a free message
   that reads like a complaint (its text becomes the description).
2. Which order (recent orders as buttons, or "other"), 3. which kind of problem,
4. what happened (free text), 5. photos (optional), 6. confirm. Cancel at any step;
   an unexpected input re-asks politely.
7. Ticket open: everything the customer writes goes to the agents.
8. Resolved: a resolution score (1–5); reopen within the window if unhappy.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from flows.buttons import (
    COMPLAINT as BUTTONS,
    ComplaintCategory,
    ComplaintOrder,
    ComplaintStart,
    ComplaintStep,
    ReopenComplaint,
    ResolutionScore,
    family,
)
from flows.model import (
    AnswerChoice,
    Button,
    Context,
    Decision,
    EditChoiceMessage,
    Inbound,
    OpenTicket,
    RateResolution,
    RelayToAgents,
    ReopenTicket,
    Reply,
    SetConversation,
    TicketView,
)
from flows.texts import category_label, local_time, plural, text
from flows.tickets import COMPLAINT

ORDER, CATEGORY, DESCRIBE, PHOTOS, CONFIRM = (
    "complaint.order", "complaint.category", "complaint.describe", "complaint.photos", "complaint.confirm",
)
INTAKE = (ORDER, CATEGORY, DESCRIBE, PHOTOS, CONFIRM)
TICKET_OPEN = "ticket.open"
RATE = "ticket.rate"
MAX_ORDERS_OFFERED = 5
SCORES = range(1, 6)
UNHAPPY_RESOLUTION = 3  # a resolution score at or below this is offered the reopening


MORE, SEND, CANCEL = (ComplaintStep(s).pack() for s in (ComplaintStep.MORE, ComplaintStep.SEND, ComplaintStep.CANCEL))


def owns_choice(data: str) -> bool:
    return family(data) == BUTTONS


def start_choice(survey_id: int) -> str:
    return ComplaintStart(survey_id).pack()


def open_ticket_of(ctx: Context) -> TicketView | None:
    """The newest open ticket (a complaint or a question): what the customer writes goes there."""
    return next((t for t in ctx.tickets if t.status != "resolved"), None)


def open_complaint_of(ctx: Context) -> TicketView | None:
    """An open question does not stop the customer from filing a complaint."""
    return next((t for t in ctx.tickets if t.status != "resolved" and t.kind == COMPLAINT), None)


def referenced_survey_id(event: Inbound) -> int | None:
    """The survey behind a "File a complaint" button (its order is preselected)."""
    start = ComplaintStart.unpack(event.choice) if event.choice is not None else None
    return start.survey_id if start is not None else None


def referenced_ticket_id(event: Inbound, state: str, data: dict) -> int | None:
    if event.choice is not None and (ResolutionScore.owns(event.choice) or ReopenComplaint.owns(event.choice)):
        pressed = ResolutionScore.unpack(event.choice) or ReopenComplaint.unpack(event.choice)
        return pressed.ticket_id if pressed is not None else None
    if state in (TICKET_OPEN, RATE) and isinstance(data.get("ticket_id"), int):
        return data["ticket_id"]
    return None


# --- 1. start ---------------------------------------------------------------------


def start(
    ctx: Context,
    source: str,
    *,
    survey_id: int | None = None,
    order_id: str | None = None,
    description: str = "",
    photos: tuple[str, ...] = (),
) -> list[Decision]:
    lang = ctx.contact.language
    current = open_complaint_of(ctx)
    if current is not None:
        return [
            Reply(text(lang, "complaint.already_open", number=current.number)),
            SetConversation(TICKET_OPEN, {"ticket_id": current.ticket_id}),
        ]
    data = {
        "source": source, "survey_id": survey_id, "description": description,
        "photos": list(photos[: ctx.complaints.max_photos]),
    }
    if order_id is not None:
        return _ask_category(ctx, {**data, "order": order_id})
    if ctx.recent_orders is None:  # conversation.may_start_complaint said this event could not
        raise AssertionError("a complaint started without the recent orders loaded")
    orders = [o.order_id for o in ctx.recent_orders[:MAX_ORDERS_OFFERED]]
    if not orders:
        return _ask_category(ctx, {**data, "order": None})
    return _ask_order(ctx, {**data, "orders": orders})


def _ask_order(ctx: Context, data: dict) -> list[Decision]:
    lang = ctx.contact.language
    rows = [(Button(f"#{order}", ComplaintOrder(i).pack()),) for i, order in enumerate(data["orders"])]
    rows.append((Button(text(lang, "complaint.other_order"), ComplaintOrder(None).pack()),))
    rows.append(_cancel_row(lang))
    return [Reply(text(lang, "complaint.ask_order"), buttons=tuple(rows)), SetConversation(ORDER, data)]


def _ask_category(ctx: Context, data: dict) -> list[Decision]:
    lang = ctx.contact.language
    rows = [
        (Button(category_label(lang, c), ComplaintCategory(i).pack()),) for i, c in enumerate(ctx.complaints.categories)
    ]
    rows.append(_cancel_row(lang))
    return [Reply(text(lang, "complaint.ask_category"), buttons=tuple(rows)), SetConversation(CATEGORY, data)]


def _ask_description(ctx: Context, data: dict) -> list[Decision]:
    lang = ctx.contact.language
    return [
        Reply(text(lang, "complaint.ask_description"), buttons=(_cancel_row(lang),)),
        SetConversation(DESCRIBE, data),
    ]


def _ask_photos(ctx: Context, data: dict, key: str = "complaint.ask_photos") -> list[Decision]:
    lang = ctx.contact.language
    buttons = ((Button(text(lang, "complaint.continue"), MORE),), _cancel_row(lang))
    message = plural(lang, key, len(data["photos"]), max=ctx.complaints.max_photos, count=len(data["photos"]))
    return [Reply(message, buttons=buttons), SetConversation(PHOTOS, data)]


def _ask_confirm(ctx: Context, data: dict) -> list[Decision]:
    lang = ctx.contact.language
    photos = len(data["photos"])
    summary = text(
        lang,
        "complaint.confirm",
        order=f"#{data['order']}" if data.get("order") else text(lang, "order.none"),
        category=category_label(lang, data["category"]),
        description=data["description"],
        photos=plural(lang, "photos.count", photos, count=photos) if photos else text(lang, "photos.none"),
    )
    buttons = ((Button(text(lang, "complaint.submit"), SEND), Button(text(lang, "complaint.cancel"), CANCEL)),)
    return [Reply(summary, buttons=buttons), SetConversation(CONFIRM, data)]


def _cancel_row(lang: str) -> tuple[Button, ...]:
    return (Button(text(lang, "complaint.cancel"), CANCEL),)


def cancel(ctx: Context) -> list[Decision]:
    return [SetConversation("idle"), Reply(text(ctx.contact.language, "complaint.cancelled"))]


# --- 2-6. the intake steps, by button ------------------------------------------------


def on_choice(event: Inbound, ctx: Context) -> list[Decision]:
    lang = ctx.contact.language
    choice = event.choice or ""
    state, data = ctx.conversation.state, dict(ctx.conversation.data)
    if ComplaintStart.owns(choice):
        # Only a survey the engine verified as this customer's is linked to the ticket.
        pressed = ComplaintStart.unpack(choice)
        survey = ctx.survey if ctx.survey is not None and pressed is not None and ctx.survey.survey_id == pressed.survey_id else None
        return [
            AnswerChoice(),
            *start(ctx, "low_score", survey_id=survey.survey_id if survey else None, order_id=survey.order_id if survey else None),
        ]
    if ResolutionScore.owns(choice):
        return _on_rating(ctx, ResolutionScore.unpack(choice))
    if ReopenComplaint.owns(choice):
        return _on_reopen(ctx, ReopenComplaint.unpack(choice))
    step = ComplaintStep.unpack(choice)
    if step is not None and step.step == ComplaintStep.CANCEL and state in INTAKE:
        return [AnswerChoice(), EditChoiceMessage(text(lang, "complaint.cancelled")), SetConversation("idle")]
    order = ComplaintOrder.unpack(choice)
    if order is not None and state == ORDER:
        orders = data.get("orders", [])
        if order.index is None:
            return [AnswerChoice(), *_ask_category(ctx, {**data, "order": None})]
        if order.index < len(orders):
            return [AnswerChoice(), *_ask_category(ctx, {**data, "order": orders[order.index]})]
    category = ComplaintCategory.unpack(choice)
    if category is not None and state == CATEGORY:
        categories = ctx.complaints.categories
        if category.index < len(categories):
            data["category"] = categories[category.index]
            if data.get("description"):  # it started from the customer's own words
                return [AnswerChoice(), *_ask_photos(ctx, data)]
            return [AnswerChoice(), *_ask_description(ctx, data)]
    if step is not None and step.step == ComplaintStep.MORE and state == PHOTOS:
        return [AnswerChoice(), *_ask_confirm(ctx, data)]
    if step is not None and step.step == ComplaintStep.SEND and state == CONFIRM:
        return [
            AnswerChoice(),
            OpenTicket(
                category=data["category"],
                description=data["description"],
                order_id=data.get("order"),
                photos=tuple(data.get("photos", [])),
                source=data.get("source", "command"),
                survey_id=data.get("survey_id"),
            ),
        ]
    # A button from an earlier step or an old message: say so, change nothing.
    return [AnswerChoice(text(lang, "complaint.reask_buttons"))]


# --- text and photos during intake, and while a ticket is open ---------------------------


def on_text(event: Inbound, ctx: Context) -> list[Decision] | None:
    state, data = ctx.conversation.state, dict(ctx.conversation.data)
    lang = ctx.contact.language
    if state == DESCRIBE:
        if len(event.text.strip()) < ctx.complaints.min_description:
            return [Reply(text(lang, "complaint.too_short"), buttons=(_cancel_row(lang),))]
        data["description"] = event.text.strip()
        if event.photos:
            data["photos"] = list(event.photos[: ctx.complaints.max_photos])
        return _ask_photos(ctx, data)
    if state == PHOTOS:
        if not event.photos and not event.text.strip():
            return [Reply(text(lang, "complaint.reask_buttons"), buttons=((Button(text(lang, "complaint.continue"), MORE),), _cancel_row(lang)))]
        key = "complaint.description_added"
        if event.text.strip():  # more words about what happened: part of the description
            data["description"] = f"{data['description']}\n{event.text.strip()}".strip()
        if event.photos:
            room = ctx.complaints.max_photos - len(data["photos"])
            data["photos"] = data["photos"] + list(event.photos[: max(room, 0)])
            key = "complaint.photo_limit" if len(data["photos"]) >= ctx.complaints.max_photos else "complaint.photo_received"
        return _ask_photos(ctx, data, key)
    if state in (ORDER, CATEGORY, CONFIRM):
        return [Reply(text(lang, "complaint.reask_buttons"))]
    if state == TICKET_OPEN and ctx.ticket is not None and ctx.ticket.status != "resolved":
        return [RelayToAgents(ctx.ticket.ticket_id, event.text, event.photos)]
    return None


def opened(ticket: TicketView, ctx: Context) -> list[Decision]:
    """What the customer hears once the ticket exists."""
    due = local_time(ticket.first_response_due_at, ctx.policy.timezone, ctx.contact.language)
    return [
        Reply(text(ctx.contact.language, "complaint.opened", number=ticket.number, due=due)),
        SetConversation(TICKET_OPEN, {"ticket_id": ticket.ticket_id}),
    ]


def not_opened(ctx: Context) -> list[Decision]:
    """The shell refused to open the ticket, complaint or question (anonymous visitors'
    limit): say so, start over."""
    return [Reply(text(ctx.contact.language, "complaint.busy")), SetConversation("idle")]


def status(ctx: Context) -> list[Decision]:
    lang = ctx.contact.language
    open_tickets = [t for t in ctx.tickets if t.status != "resolved"]
    draft = [text(lang, "complaint.status_draft")] if ctx.conversation.state in INTAKE else []
    if not open_tickets:
        return [Reply("\n".join(draft or [text(lang, "complaint.status_none")]))]
    lines = draft + [
        text(
            lang,
            "complaint.status_line",
            number=t.number,
            category=category_label(lang, t.category),
            status=text(lang, f"status.{t.status}", agent=t.assignee_name or ""),
            opened=local_time(t.created_at, ctx.policy.timezone, lang),
        )
        for t in open_tickets
    ]
    return [Reply("\n".join(lines))]


# --- 8. resolution score and reopening ----------------------------------------------------


def resolution_question(ticket: TicketView, language: str) -> list[Decision]:
    buttons = (tuple(Button(str(s), ResolutionScore(ticket.ticket_id, s).pack()) for s in SCORES),)
    return [
        Reply(text(language, "complaint.resolved", number=ticket.number), buttons=buttons),
        SetConversation(RATE, {"ticket_id": ticket.ticket_id}),
    ]


def _on_rating(ctx: Context, pressed: ResolutionScore | None) -> list[Decision]:
    """A resolution score; None: a malformed one (refused like someone else's)."""
    lang = ctx.contact.language
    ticket = ctx.ticket
    if pressed is None or ticket is None or ticket.ticket_id != pressed.ticket_id or ticket.status != "resolved":
        return [AnswerChoice(text(lang, "complaint.not_yours"))]
    if ticket.resolution_score is not None:
        return [AnswerChoice(text(lang, "csat.already_answered"))]
    score = pressed.score
    return [
        AnswerChoice(),
        EditChoiceMessage(f"{text(lang, 'complaint.resolved', number=ticket.number)}\n\n{text(lang, 'csat.chosen', score=score)}"),
        RateResolution(ticket.ticket_id, score),
        SetConversation("idle"),
        *rating_followup(ticket, score, language=lang, now=ctx.now, reopen_window=ctx.complaints.reopen_window),
    ]


def rating_followup(ticket: TicketView, score: int, *, language: str, now: datetime, reopen_window: timedelta) -> list[Decision]:
    """What follows a resolution score on the ticket's chat: thanks, and for an unhappy one
    the offer to reopen (within the window). A tap gets it; so does a rating read back from
    the ZNS resolution template when the chat is open (bot/services/survey_routes.py)."""
    thanks = text(language, "complaint.rated", score=score)
    if offers_reopen(ticket, score, now=now, reopen_window=reopen_window):
        button = ((Button(text(language, "complaint.reopen"), ReopenComplaint(ticket.ticket_id).pack()),),)
        reply = Reply(f"{thanks}\n{text(language, 'complaint.offer_reopen', days=reopen_window.days)}", buttons=button)
    else:
        reply = Reply(thanks)
    return [reply]


def offers_reopen(ticket: TicketView, score: int, *, now: datetime, reopen_window: timedelta) -> bool:
    """An unhappy resolution score (3 or less) within the reopen window."""
    return score <= UNHAPPY_RESOLUTION and _within_window(ticket, now, reopen_window)


def _can_reopen(ticket: TicketView, ctx: Context) -> bool:
    return _within_window(ticket, ctx.now, ctx.complaints.reopen_window)


def _within_window(ticket: TicketView, now: datetime, reopen_window: timedelta) -> bool:
    return ticket.resolved_at is not None and now <= ticket.resolved_at + reopen_window


def _on_reopen(ctx: Context, pressed: ReopenComplaint | None) -> list[Decision]:
    lang = ctx.contact.language
    ticket = ctx.ticket
    if pressed is None or ticket is None or ticket.ticket_id != pressed.ticket_id or ticket.status != "resolved":
        return [AnswerChoice(text(lang, "complaint.not_yours"))]
    if not _can_reopen(ticket, ctx) or open_ticket_of(ctx) is not None:
        return [AnswerChoice(), Reply(text(lang, "complaint.reopen_closed"))]
    return [AnswerChoice(), ReopenTicket(ticket.ticket_id)]


def reopened(ticket: TicketView, ctx: Context) -> list[Decision]:
    due = local_time(ticket.first_response_due_at, ctx.policy.timezone, ctx.contact.language)
    return [
        Reply(text(ctx.contact.language, "complaint.reopened", number=ticket.number, due=due)),
        SetConversation(TICKET_OPEN, {"ticket_id": ticket.ticket_id}),
    ]
