"""The privacy notice and consent (PDPL 91/2025, Decree 356/2025).

The notice (flows/texts.py "privacy.notice", versioned by PRIVACY_NOTICE_VERSION) goes
out once per version, at the end of the first text message the bot sends a chat: the
/start welcome, a reply, or a survey question. Consent is then recorded (time
and notice version, on the contact) at the contact's next own act: a tapped rating, a
message, a command. Why this and not an "Agree" button first: the law asks for consent
given by a clear act after being informed, never silence; answering a survey or writing
a complaint right after a notice saying "by answering or writing on you agree, /forget
deletes, /stop stops" is such an act, and what it consents to is exactly the data the act
supplies. Nothing is asked of a customer who only wants to complain, and a customer who
does not agree can leave it there (/forget removes even the chat record). /stop, /forget,
/mydata and /help are never taken as consent; /stop withdraws it (and the surveys, as
before); only an explicit /start gives it again. A new notice version is shown again and
needs a new act.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from bot.channels.base import ONE_MESSAGE
from flows.model import Inbound
from flows.privacy import owns_choice as privacy_choice
from flows.texts import PRIVACY_NOTICE_VERSION, text
from storage import outbox, privacy
from storage.contacts import ContactRecord
from storage.db import Connection

NEUTRAL_COMMANDS = frozenset({"stop", "forget", "mydata", "help"})
Fits = Callable[[str, list[list[dict[str, str]]]], bool]  # the channel's: text and buttons go as one message


def fits_default(text: str, buttons: list[list[dict[str, str]]]) -> bool:
    """For a channel not running now (its rows wait): as on Telegram."""
    return len(text) <= ONE_MESSAGE


async def with_notice(
    tx: Connection, *, channel: str, chat_id: str, contact_id: int, method: str, payload: dict[str, Any],
    priority: int, now: datetime, fits: Fits = fits_default,
) -> dict[str, Any]:
    """The payload of a text message to this contact, with the notice added below it if the
    contact has not had this version yet (one indexed row update otherwise)."""
    if method != "send_text":
        return payload
    language = await privacy.mark_notice_shown(tx, contact_id, PRIVACY_NOTICE_VERSION, now)
    if language is None:
        return payload
    notice = text(language, "privacy.notice")
    body = payload.get("text", "")
    if fits(f"{body}\n\n{notice}", payload.get("buttons") or []):  # else the notice goes as its own message
        return {**payload, "text": f"{body}\n\n{notice}"}
    await outbox.enqueue(
        tx, channel=channel, chat_id=chat_id, contact_id=contact_id, method="send_text",
        payload={"text": notice, "buttons": []}, now=now, priority=priority,
    )
    return payload


async def on_inbound(tx: Connection, contact: ContactRecord, event: Inbound, now: datetime) -> None:
    """Before the flow: /stop withdraws consent; any other own act after the notice gives it.
    `contact` as read in this transaction (its notice and consent fields)."""
    if event.command == "stop":
        await privacy.withdraw_consent(tx, contact.id, now)
        return
    if event.command in NEUTRAL_COMMANDS or privacy_choice(event.choice or ""):
        return
    renew = event.command == "start"
    # What record_consent would find to do, known from the row already read: most acts come
    # from a contact who consented long ago, and skip a write that would change nothing.
    if contact.notice_version != PRIVACY_NOTICE_VERSION:
        return  # not shown this notice yet
    if contact.consent_withdrawn and not renew:
        return  # withdrawn: only an explicit /start gives it again
    if not contact.consent_withdrawn and contact.consent_version == PRIVACY_NOTICE_VERSION:
        return  # consented to this version already
    await privacy.record_consent(tx, contact.id, PRIVACY_NOTICE_VERSION, now, renew=renew)
