"""Data-subject rights and retention on the bot side: export (`feedbot customer export`,
/mydata), erase (`feedbot customer erase`, /forget) and the scheduled retention purge.
What each table keeps or loses is in storage/privacy.py (one step per table)."""
from __future__ import annotations

import base64
import json
import logging
import secrets
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from bot.clock import Clock
from bot.outbox.effects import SERVICES, Effects, Scope, Target
from bot.webhooks import events as webhook_events
from flows import privacy as privacy_flow
from flows.model import EraseMyData, SendMyData, TellOtherChats
from flows.texts import PRIVACY_NOTICE_VERSION, text
from storage import contacts, my_data_links, privacy, start_tokens
from storage.db import Connection, Database
from storage.timefmt import to_db

log = logging.getLogger(__name__)

EXPORT_FORMAT = "feedbot-personal-data/1"
PURGE_BATCH = 500  # rows per transaction: the write lock is never held long
LINK_PATH = "/mydata/"


async def export_document(conn: Connection, subject: privacy.Subject, now: datetime) -> dict[str, Any]:
    return {
        "format": EXPORT_FORMAT,
        "subject": subject.label,
        "exported_at": to_db(now),
        "privacy_notice_version": PRIVACY_NOTICE_VERSION,
        "tables": await privacy.export(conn, subject),
    }


def _shop_id(subject: privacy.Subject) -> str | None:
    """The shop's own id of an erased customer (for its other tools to erase theirs), None for a chat alone."""
    return subject.label if subject.customer_id is not None else None


def to_json(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2, default=str)


class Privacy:
    def __init__(
        self, db: Database, clock: Clock, *, retention_days: int, shop_name: str = "", public_url: str = "",
        start_token_days: int = 30, trust_first_token_chat: bool = False, effects: Effects | None = None,
    ) -> None:
        self.db = db
        self.effects = effects  # /mydata and /forget in a chat (the CLI needs none)
        # A receipt's link works until this long after its order's survey closed.
        self.start_token_ttl = timedelta(days=start_token_days)
        # The first chat to open a receipt's link becomes the customer's verified chat.
        self.trust_first_token_chat = trust_first_token_chat
        self.clock = clock
        self.retention = timedelta(days=retention_days)
        self.shop_name = shop_name
        self.public_url = public_url.rstrip("/")

    # --- the CLI -------------------------------------------------------------------------

    async def exists(self, ident: str) -> bool:
        return await privacy.find(self.db.reader, ident) is not None

    async def export(self, ident: str) -> dict[str, Any] | None:
        """None when no customer (or contact:<n>) has this id."""
        async with self.db.transaction() as tx:  # one consistent snapshot of every table
            subject = await privacy.find(tx, ident)
            return await export_document(tx, subject, self.clock.now()) if subject else None

    async def erase(self, ident: str) -> dict[str, int] | None:
        async with self.db.transaction() as tx:
            subject = await privacy.find(tx, ident)
            if subject is None:
                return None
            now = self.clock.now()
            counts = await privacy.erase(tx, subject, now)
            await webhook_events.customer_erased(tx, subject.label, _shop_id(subject), "cli", now)
        await self.db.checkpoint()  # old page images in the WAL go too
        log.info("erased %s: %s", "customer" if subject.customer_id else "contact", counts)
        return counts

    async def link(self, contact_ident: str, external_id: str) -> str | None:
        """The shop confirms a chat is the customer's (`feedbot customer link`); what is wrong, else None."""
        number = contact_ident.strip().removeprefix("contact:")
        if not (contact_ident.strip().startswith("contact:") and number.isascii() and number.isdigit()):
            return f"expected contact:<n>, got {contact_ident!r}"
        async with self.db.transaction() as tx:
            chat = await contacts.by_id(tx, int(number))
            found = await privacy.find(tx, external_id)
            if chat is None or chat.platform_user_id.startswith(privacy.ERASED):
                return f"no chat {contact_ident}"
            if found is None or found.customer_id is None:
                return f"no customer {external_id}"
            await contacts.link(tx, chat.id, found.customer_id, "shop_cli")
        log.info("contact %s linked to customer %s by the shop", chat.id, found.customer_id)
        return None

    # --- the scheduled job ----------------------------------------------------------------

    async def purge(self) -> dict[str, int]:
        now = self.clock.now()
        cutoff = now - self.retention
        counts = await privacy.purge(self.db, cutoff, now, PURGE_BATCH)
        counts["silent_web_sessions"] = await privacy.purge_silent_web_sessions(self.db, now, PURGE_BATCH)
        await self.db.checkpoint()
        if any(counts.values()):
            log.info("retention purge (older than %s): %s", to_db(cutoff), counts)
        return counts

    # --- /mydata and /forget, inside the engine's transaction -------------------------------

    def register(self, effects: Effects) -> None:
        effects.register(TellOtherChats, self._on_tell_other_chats, SERVICES)
        effects.register(SendMyData, self._on_send_my_data, SERVICES)
        effects.register(EraseMyData, self._on_erase_my_data, SERVICES)

    async def _on_tell_other_chats(self, tx: Connection, d: TellOtherChats, scope: Scope) -> None:
        told = await self._other_chats(tx, d, scope.target.contact_id)  # read now: an erase that follows blanks them
        effects = self._effects()

        async def send() -> None:  # queued at the end of the phase: an erase must not blank them
            for other, body in told:
                await effects.enqueue(tx, other, "send_text", {"text": body, "buttons": []}, scope.now)

        scope.deferred.append(send)

    async def _on_send_my_data(self, tx: Connection, d: SendMyData, scope: Scope) -> None:
        assert scope.contact is not None
        await self._send_my_data(tx, scope.target, scope.contact.language, scope.now)

    async def _on_erase_my_data(self, tx: Connection, d: EraseMyData, scope: Scope) -> None:
        effects, target, now = self._effects(), scope.target, scope.now
        assert target.contact_id is not None and scope.contact is not None
        subject = await privacy.of_contact(tx, target.contact_id)
        counts = await privacy.erase(tx, subject, now)
        await webhook_events.customer_erased(tx, subject.label, _shop_id(subject), "chat", now)
        log.info("contact %s erased their data (/forget): %s", target.contact_id, counts)
        channel = effects.channels.get(target.channel)
        if channel is not None and channel.resets_after_erasure:  # open pages clear the conversation they show
            await effects.enqueue(tx, target, "reset_chat", {}, now)
        erased = privacy_flow.erased(scope.contact.language, self.shop_name)
        await effects.apply(tx, erased, replace(target, customer_id=None), now)

    def _effects(self) -> Effects:
        if self.effects is None:
            raise RuntimeError("privacy decisions in a chat need the effects wired")
        return self.effects

    async def tell_other_chats(
        self, tx: Connection, customer_id: int, reason: str, contact_id: int | None, now: datetime
    ) -> None:
        """The engine's own tells (a phone claimed in a chat not proved to be the customer's)."""
        for other, body in await self._other_chats(tx, TellOtherChats(customer_id, reason), contact_id):
            await self._effects().enqueue(tx, other, "send_text", {"text": body, "buttons": []}, now)

    async def _other_chats(self, tx: Connection, tell: TellOtherChats, contact_id: int | None) -> list[tuple[Target, str]]:
        """Each of the customer's chats but this one, with the message in its language
        (read now: an erase that follows blanks their chat ids)."""
        out = []
        for other_id in await start_tokens.chats_to_tell(tx, tell.customer_id, tell.token_id):
            other = await contacts.by_id(tx, other_id) if other_id != contact_id else None
            if other is None or not other.chat_id:
                continue
            channel = self._effects().channels.get(other.channel)
            if channel is not None and not channel.conversational:
                continue  # a phone reached by ZNS templates only: no text can go there
            body = text(other.language, f"privacy.told_{tell.reason}", shop=self.shop_name, order=tell.order_id)
            out.append((Target.of_contact(other), body))
        log.info("customer %s: %s; %d other chat(s) told", tell.customer_id, tell.reason, len(out))
        return out

    async def _send_my_data(self, tx: Connection, target: Target, language: str, now: datetime) -> None:
        assert target.contact_id is not None
        subject = await privacy.of_contact(tx, target.contact_id)
        document = await export_document(tx, subject, now)
        tables = document["tables"]
        caption = text(
            language, "privacy.mydata_caption", shop=self.shop_name, customers=len(tables["customers"]),
            purchases=len(tables["purchases"]), surveys=len(tables["surveys"]), tickets=len(tables["tickets"]),
            messages=len(tables["inbox"]) + len(tables["outbox"]),
        )
        if subject.customer_id is None and tables["start_tokens"]:  # a chat that opened a receipt's link
            caption += "\n" + text(language, "privacy.mydata_chat_only", shop=self.shop_name)
        channel = self._effects().channels.get(target.channel)
        if channel is None or not channel.delivers_files:
            await self._send_link(tx, target, language, caption, to_json(document), now)
            return
        payload = {
            "document_base64": base64.b64encode(to_json(document).encode("utf-8")).decode("ascii"),
            "filename": "my-data.json",
            "mime_type": "application/json",
            "text": caption,
            "my_data": True,  # for file_undelivered: what it is and how to speak to them
            "language": language,
        }
        await self._effects().enqueue(tx, target, "send_document", payload, now)

    async def file_undelivered(self, tx: Connection, outbox_ids: list[int]) -> None:
        """The sender gave up on these rows: for a /mydata file, tell the customer and offer
        the download link (or, with no public URL, to ask the shop) instead of silence."""
        for channel, chat_id, contact_id, payload in await my_data_links.undelivered_files(tx, outbox_ids):
            language = payload.get("language") or "vi"
            target = Target(channel, chat_id, contact_id, None, notice_current=True)
            document = base64.b64decode(payload["document_base64"]).decode("utf-8")
            log.warning("/mydata file to %s chat %s could not be sent; offering the link instead", channel, chat_id)
            sorry = text(language, "privacy.mydata_file_failed")
            await self._send_link(tx, target, language, sorry, document, self.clock.now())

    async def _send_link(self, tx: Connection, target: Target, language: str, caption: str, document: str,
                         now: datetime) -> None:
        """A channel without files (Zalo): the caption and a download link valid for
        MY_DATA_TTL, or, with no public URL to link to, a text saying to ask the shop."""
        if not self.public_url:
            log.warning("/mydata on %s needs http.public_url for its download link; the customer was told to "
                        "ask the shop (feedbot customer export)", target.channel)
            await self._effects().enqueue(tx, target, "send_text", {"text": text(language, "privacy.mydata_ask_shop", shop=self.shop_name),
                                                    "buttons": []}, now)
            return
        token = secrets.token_urlsafe(32)
        await my_data_links.create(tx, token, target.contact_id, document, now, now + privacy.MY_DATA_TTL)
        link = text(language, "privacy.mydata_link", url=f"{self.public_url}{LINK_PATH}{token}",
                    hours=int(privacy.MY_DATA_TTL.total_seconds() // 3600))
        await self._effects().enqueue(tx, target, "send_text", {"text": f"{caption}\n\n{link}", "buttons": []}, now)

    # --- the download link ------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(LINK_PATH + "{token}", self._download)

    async def _download(self, request: web.Request) -> web.Response:
        """Until it expires or the data is erased; 404 otherwise (and for any other token)."""
        token = request.match_info["token"]
        document = await my_data_links.document(self.db.reader, token, self.clock.now()) if len(token) <= 100 else None
        if document is None:
            raise web.HTTPNotFound(text="This link has expired. Send /mydata again.")
        return web.Response(body=document.encode("utf-8"), content_type="application/json", charset="utf-8", headers={
            "Content-Disposition": 'attachment; filename="my-data.json"', "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex",
        })
