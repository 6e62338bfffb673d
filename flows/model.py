"""Events the flows receive and decisions they return: plain, frozen data."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from flows.schedule import SurveyPolicy
from flows.tickets import ComplaintPolicy


_ID = re.compile(r"[0-9]{1,12}")


def parse_id(text: str) -> int | None:
    """A positive id from button data (which comes from outside): ASCII digits only, since
    str.isdigit() accepts "²" that int() rejects."""
    return int(text) if _ID.fullmatch(text) else None


@dataclass(frozen=True)
class Inbound:
    """One normalized message from a customer, whatever the channel."""

    channel: str
    user_id: str
    chat_id: str
    text: str = ""
    command: str | None = None  # "start" for "/start abc"
    args: str = ""  # what follows the command
    choice: str | None = None  # data of a pressed button
    choice_id: str | None = None  # the platform's id of the press, to acknowledge it
    message_id: str | None = None  # for a choice: the message that carried the buttons
    language_code: str | None = None
    name: str = ""
    photos: tuple[str, ...] = ()  # platform file ids, largest size
    reply_to_message_id: str | None = None  # the message this one replies to (agents' group)
    thread_id: str | None = None  # forum topic (agents' group)
    group: bool = False  # said in a group chat (the agents' group), not a private chat
    anonymous: bool = False  # sent as the group (anonymous admin) or by a bot: no person to hold to account
    # Proofs of who the sender is, set only by a channel that checked them (never from what
    # a user typed): the shop's customer id from the shop site's signed token (web chat), a
    # phone number the user shared, and whether the platform proves it is theirs.
    vouched_customer: str | None = None
    phone: str | None = None
    phone_proved: bool = False
    phone_button: bool = False  # the channel can offer a button that shares the user's own number

    @property
    def kind(self) -> str:
        if self.choice is not None:
            return "choice"
        if self.command is not None:
            return "command"
        return "text"


@dataclass(frozen=True)
class Button:
    label: str
    data: str


@dataclass(frozen=True)
class ContactView:
    contact_id: int
    customer_id: int | None
    language: str
    opted_out: bool = False
    customer_name: str | None = None


@dataclass(frozen=True)
class Conversation:
    state: str = "idle"
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SurveyView:
    survey_id: int
    customer_id: int
    order_id: str
    status: str  # scheduled | awaiting_contact | sent | answered | expired | skipped
    score: int | None = None
    touchpoint: str = ""
    store: str | None = None


@dataclass(frozen=True)
class ProgramSurveyView:
    """A program survey the event or state refers to, with its program (flows/programs.py)."""

    survey_id: int
    customer_id: int
    status: str  # scheduled | sent | answered | expired | skipped
    spec: Any  # flows.programs.ProgramSpec (imported there: programs imports this module)
    order_id: str | None = None
    score: int | None = None
    choice: str | None = None


@dataclass(frozen=True)
class StartView:
    """The order a /start token (a receipt's link) belongs to."""

    token_id: int
    customer_id: int
    customer_name: str
    order_id: str
    usable: bool  # False: expired or revoked
    new_here: bool  # this chat opens it for the first time
    verifies: bool  # the shop trusts the first chat to open a token as the customer's, and this is it


@dataclass(frozen=True)
class OrderRef:
    order_id: str
    purchased_at: datetime


@dataclass(frozen=True)
class TicketView:
    ticket_id: int
    number: str
    status: str  # open | claimed | resolved
    category: str
    contact_id: int
    created_at: datetime
    first_response_due_at: datetime
    assignee_id: str | None = None
    assignee_name: str | None = None
    resolved_at: datetime | None = None
    resolution_score: int | None = None
    kind: str = "complaint"  # complaint | question


# --- decisions ---------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """Send a message to the contact the decision is about."""

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    survey_id: int | None = None
    share_phone: str = ""  # the label of a button that shares the user's own phone number (Telegram)


@dataclass(frozen=True)
class AnswerChoice:
    """Acknowledge a button press (stops the client's spinner), with an optional toast."""

    text: str = ""


@dataclass(frozen=True)
class EditChoiceMessage:
    """Replace the message whose button was pressed, dropping its buttons."""

    text: str


@dataclass(frozen=True)
class SetConversation:
    state: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordScore:
    survey_id: int
    score: int


@dataclass(frozen=True)
class RecordComment:
    survey_id: int
    text: str


@dataclass(frozen=True)
class LinkCustomer:
    """The chat becomes the customer's verified chat (`verified_by`: the proof)."""

    customer_id: int
    verified_by: str


@dataclass(frozen=True)
class GrantOrder:
    """The chat opened an order's start token: it may answer that order's survey and complain about it."""

    token_id: int


@dataclass(frozen=True)
class TellOtherChats:
    """A short message to each of the customer's other chats: those proved to be theirs, and
    for a receipt's link (token_id) the other chats that opened it. reason: a key of
    "privacy.told_<reason>" in flows/texts.py; order: the order it is about, if any."""

    customer_id: int
    reason: str  # token_reused | export | erase | phone_claimed
    order_id: str = ""
    token_id: int | None = None


@dataclass(frozen=True)
class SetOptOut:
    opted_out: bool


@dataclass(frozen=True)
class SendPendingSurveys:
    """The customer just became reachable: send surveys that are already due."""


@dataclass(frozen=True)
class RecordProgramAnswer:
    """A program survey's answer: the scale score or the option chosen (the first answer), or
    the free text (the follow-up, or an ideas program's answer)."""

    survey_id: int
    score: int | None = None
    choice: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class RecordIdea:
    """An idea or a wish left with /gopy: its own kind, never a complaint; routed to the
    department that owns its topic."""

    topic: str
    text: str


# --- complaint decisions (customer side) ----------------------------------------


@dataclass(frozen=True)
class OpenTicket:
    category: str
    description: str
    order_id: str | None = None
    photos: tuple[str, ...] = ()
    source: str = "command"  # low_score | command | keywords | message (a question)
    survey_id: int | None = None
    kind: str = "complaint"  # complaint | question


@dataclass(frozen=True)
class RelayToAgents:
    ticket_id: int
    text: str
    photos: tuple[str, ...] = ()


@dataclass(frozen=True)
class RateResolution:
    ticket_id: int
    score: int


@dataclass(frozen=True)
class ReopenTicket:
    ticket_id: int


# --- privacy decisions (flows/privacy.py) ------------------------------------------


@dataclass(frozen=True)
class SendMyData:
    """Send the contact everything kept about them (their customer's data, else the chat's own)."""


@dataclass(frozen=True)
class EraseMyData:
    """Erase everything kept about the contact, as `feedbot customer erase` does, then say goodbye."""


# --- agent decisions (agents' group) --------------------------------------------


@dataclass(frozen=True)
class RelayToCustomer:
    ticket_id: int
    text: str
    photos: tuple[str, ...] = ()


@dataclass(frozen=True)
class AddNote:
    ticket_id: int
    text: str


@dataclass(frozen=True)
class ClaimTicket:
    ticket_id: int


@dataclass(frozen=True)
class ResolveTicket:
    ticket_id: int


@dataclass(frozen=True)
class EscalateTicket:
    ticket_id: int


@dataclass(frozen=True)
class AuditDenied:
    """An action someone was not allowed to take: refused, and written to the audit trail."""

    action: str
    ticket_id: int | None = None


@dataclass(frozen=True)
class ReplyInGroup:
    """A short answer in the agents' group, as a reply to the agent's message."""

    text: str


Decision = (
    Reply
    | AnswerChoice
    | EditChoiceMessage
    | SetConversation
    | RecordScore
    | RecordComment
    | LinkCustomer
    | GrantOrder
    | TellOtherChats
    | SetOptOut
    | SendPendingSurveys
    | RecordProgramAnswer
    | RecordIdea
    | OpenTicket
    | RelayToAgents
    | RateResolution
    | ReopenTicket
    | RelayToCustomer
    | AddNote
    | ClaimTicket
    | ResolveTicket
    | EscalateTicket
    | AuditDenied
    | ReplyInGroup
    | SendMyData
    | EraseMyData
)


@dataclass(frozen=True)
class Context:
    """Everything a flow may look at to handle one inbound event."""

    now: datetime
    contact: ContactView
    conversation: Conversation
    shop_name: str
    survey: SurveyView | None = None  # the survey the event or state refers to, if it is this customer's
    start: StartView | None = None  # the order a /start token belongs to
    policy: SurveyPolicy = field(default_factory=SurveyPolicy)
    complaints: ComplaintPolicy = field(default_factory=ComplaintPolicy)
    # This customer's latest orders, newest first; None: not loaded, as the event cannot start
    # a complaint (conversation.may_start_complaint).
    recent_orders: tuple[OrderRef, ...] | None = ()
    tickets: tuple[TicketView, ...] = ()  # this contact's tickets: open ones and recently resolved
    ticket: TicketView | None = None  # the ticket the event or state refers to, if it is this contact's
    program_survey: ProgramSurveyView | None = None  # the program survey the event or state refers to
    idea_topics: tuple[str, ...] = ()  # /gopy's topics (config ideas.topics)
    wording: Any = None  # flows.wording.Wording: the CSAT texts per touchpoint and store
    agents_reachable: bool = True  # an agents' group or the agent page exists: someone can read a question
