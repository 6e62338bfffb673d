"""What the engine and the sender need from a chat platform."""
from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Final, Literal, Protocol

from flows.model import Inbound

if TYPE_CHECKING:
    from storage.db import Connection

# Outbox methods every channel delivers. Payloads:
#   send_text:     {"text": str, "buttons": [[{"label": str, "data": str}, ...], ...]}
#   answer_choice: {"choice_id": str, "text": str}
#   edit_text:     {"message_id": str, "text": str, "buttons": [...]}
#   send_photo:    {"file_id": str, "text": str (caption)}
#   send_photo_file: {"png_base64": str, "filename": str, "text": str (caption)}  (an upload: the digest's chart)
#   send_document: {"document_base64": str, "filename": str, "mime_type": str, "text": str (caption)}
#                  (an upload: a customer's own data as JSON, /mydata)
#   open_topic:    {"name": str}  (a forum topic in a group; returns its thread id; channels
#                  with groups only: Telegram)
#   reset_chat:    {}  (clears an open page's conversation after /forget: web chat)
# send_text and send_photo may also carry "thread_id" (forum topic) and "reply_to" (message id).

ONE_MESSAGE = 4000  # characters that go as one message on Telegram (4096) and the web chat


class DeliveryError(Exception):
    """Base of what `Channel.deliver` may raise; the class tells the sender what to do."""


class RetryLater(DeliveryError):
    """The platform asked us to pause (Telegram 429); it applies to the whole bot."""

    def __init__(self, seconds: float, detail: str = "") -> None:
        super().__init__(detail or f"retry after {seconds}s")
        self.seconds = seconds


class Transient(DeliveryError):
    """Failed without reaching the user (5xx, connection refused): safe to retry."""


class Ambiguous(DeliveryError):
    """May or may not have reached the user (read timeout): never resend."""


class Permanent(DeliveryError):
    """Will not succeed on retry (bad request, user blocked the bot)."""


class TopicsUnavailable(Permanent):
    """The group is not a forum, or the platform's API server lacks topics: do not try again
    in this group."""


SENDER_RATE: Final = "sender"  # a channel's messages_per_second: the sender's configured rate


class Channel(Protocol):
    """A chat platform, as the engine and the sender use it; every member is declared here
    (no channel is asked what it has)."""

    name: str
    # Overall rate on this platform: messages per second, None for no limit, SENDER_RATE for
    # the sender's configured rate.
    messages_per_second: float | None | Literal["sender"]
    # A row caught mid-delivery by a crash is sent again, not marked unknown (delivery is our
    # own write: web chat).
    resend_after_crash: bool
    # send_document reaches the chat (/mydata as a file); else the customer gets a link.
    delivers_files: bool
    # An open page shows the conversation: after /forget a "reset_chat" row clears it.
    resets_after_erasure: bool
    # The platform vouches for who writes (an account of theirs). False: anyone may write,
    # as often as they like, as someone new (the web chat's visitors): the agents' page marks
    # a ticket from such a chat "unverified" when no shop customer or receipt's order is
    # behind it. A class attribute: tickets of a channel no longer enabled are marked too.
    proves_identity: bool
    # A chat our texts can be written to (False: ZNS, approved templates to a phone only): a
    # survey's question, a tell to the customer's chats and the like go only to these.
    conversational: bool
    # Where the photos a customer sends are kept, for the agents' page: "platform" (a file id
    # the bot fetches through the platform's API when an agent looks: Telegram), "ours" (an
    # upload in our database, a "web:<id>" reference: the web chat), None (not shown: a Zalo
    # photo is a link to Zalo's servers, opened there). A class attribute, like proves_identity.
    photos: Literal["platform", "ours"] | None
    # How long after the customer's last message the platform lets us write to them (Zalo's
    # customer-care window: 7 days); None: any time. A chat outside it is passed over, as one
    # we cannot reach, by what picks a chat for a message nobody asked for (a program's question).
    reply_window: timedelta | None

    def update_id(self, payload: dict[str, Any]) -> str:
        """The platform's id of an update, the inbox dedupe key; ValueError if there is none."""

    def parse(self, payload: dict[str, Any]) -> Inbound | None:
        """The normalized event, or None for updates we do not handle."""

    async def resolve(self, tx: Connection, event: Inbound, payload: dict[str, Any], now: datetime) -> Inbound:
        """The event completed with what needs the database (a numbered reply is its button);
        most channels return it as it is."""

    def fits(self, text: str, buttons: list[list[dict[str, str]]]) -> bool:
        """Whether this text with its buttons goes as one message."""

    def pacing(self, chat_id: str) -> float:
        """Minimum seconds between two messages to this chat."""

    async def deliver(self, method: str, chat_id: str, payload: dict[str, Any]) -> str | None:
        """Send one outbox row; returns the platform's message id when there is one."""


# What a webhook or server hands its updates to (the engine's receive, record and process):
# channels are given these, they never import the engine.
Receive = Callable[..., Awaitable[bool]]  # (channel_name, payload, *, raw=None) -> new?
Record = Callable[[str, dict[str, Any]], Awaitable["int | None"]]  # (channel_name, payload) -> inbox id
Process = Callable[[int, "Channel", dict[str, Any]], Awaitable[None]]  # (inbox id, channel, payload)


def split_command(text: str) -> tuple[str | None, str]:
    """("/start abc") -> ("start", "abc"); (None, "") for text that is not a command."""
    if not text.startswith("/"):
        return None, ""
    head, _, rest = text.partition(" ")
    name = head[1:].split("@", 1)[0].lower()
    if not name or not name.replace("_", "").isalnum():
        return None, ""
    return name, rest.strip()


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` UTF-16 code units that join back to `text`; cut after a line
    break or a space when one is in the second half of the piece, never inside a character."""
    parts = []
    while utf16_len(text) > limit:
        units, cut = 0, len(text)
        for i, char in enumerate(text):
            units += 2 if ord(char) > 0xFFFF else 1
            if units > limit:
                cut = i
                break
        space = max(text.rfind("\n", 0, cut), text.rfind(" ", 0, cut))
        if space >= cut // 2:
            cut = space + 1
        while 0 < cut < len(text) and unicodedata.combining(text[cut]):
            cut -= 1  # keep a decomposed (NFD) letter with its marks
        parts.append(text[:cut])
        text = text[cut:]
    parts.append(text)
    return parts


async def send_in_parts(parts: list[str], send: Callable[[int, str], Awaitable[str | None]]) -> str | None:
    """Send the parts of a long text in order (`send(index, part)`); the last part's message
    id. Once a part is delivered a failure is Ambiguous: resending the row would repeat the
    parts already sent."""
    message_id = None
    for i, part in enumerate(parts):
        try:
            message_id = await send(i, part)
        except (RetryLater, Transient, Ambiguous) as exc:
            if i == 0:
                raise
            raise Ambiguous(f"part {i + 1} of {len(parts)} not sent ({exc}); parts 1-{i} were") from None
    return message_id
