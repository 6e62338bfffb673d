"""The web chat: a page and an embeddable widget talk to the bot over a WebSocket.

Inbound: bot/channels/web/server.py verifies the visitor's signed session and builds the payload
the inbox records ({"session", "id", "text" | "choice" + "message_id", "lang"}; an image the
visitor attached: "text": "" and "photos": ["web:<web_uploads id>"], never its bytes); the
session in it is always the server-verified one, never a value the client claimed.
Outbound: `deliver` appends to the session's log (web_messages) and pushes the entry to
the session's open sockets; a page that was offline asks for what it missed by id.
Several instances (share()): every push is also announced by NOTIFY, and each instance
pushes it to the sockets of that session open on it (the visitor may be on any of them).
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
from datetime import datetime
from typing import Any, Callable

from bot.channels.base import ONE_MESSAGE, Permanent, split_command
from bot.clock import Clock, SystemClock
from flows.model import Inbound
from storage import web_messages, web_uploads
from storage.db import Connection, Database

log = logging.getLogger(__name__)

NAME = "web"
NOTIFY_CHANNEL = "feedbot_web"
NOTIFY_MAX_BYTES = 7000  # PostgreSQL's limit is 8000; a bigger frame goes by its seq, read back
SESSION_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
Push = Callable[[dict[str, Any]], None]


class WebChannel:
    name = NAME
    messages_per_second: float | None = None  # our own server: no platform-wide limit
    resend_after_crash = True  # delivery is our own database write: resending is safe (sender.recover)
    delivers_files = True  # the page offers the download
    resets_after_erasure = True  # the open page clears the conversation it shows
    proves_identity = False  # an anonymous visitor: anyone, any number of sessions
    conversational = True
    photos = "ours"  # uploads kept in the database (storage/web_uploads.py)
    reply_window = None  # what we write waits in the chat's history for the next visit

    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        self.db = db
        self.clock = clock or SystemClock()
        self._live: dict[str, set[Push]] = {}
        self._shared: Any = None  # the database that carries pushes between instances, once share()d
        self._origin = ""
        self._arrivals: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._relay: asyncio.Task[None] | None = None

    # --- live sockets -------------------------------------------------------------

    def subscribe(self, session_id: str, push: Push) -> None:
        self._live.setdefault(session_id, set()).add(push)

    def unsubscribe(self, session_id: str, push: Push) -> None:
        pushes = self._live.get(session_id)
        if pushes is not None:
            pushes.discard(push)
            if not pushes:
                del self._live[session_id]

    def push(self, session_id: str, frame: dict[str, Any]) -> None:
        for push in list(self._live.get(session_id, ())):
            push(frame)
        if self._shared is not None:
            self._announce(session_id, frame)

    # --- several instances ---------------------------------------------------------------

    async def share(self, db: Any, origin: str) -> None:
        """Pushes reach this session's sockets on every instance (LISTEN/NOTIFY on `db`)."""
        self._shared, self._origin = db, origin
        await db.listen(NOTIFY_CHANNEL, self._arrived)
        self._relay = asyncio.create_task(self._relay_arrivals(), name="web-relay")

    async def close(self) -> None:
        if self._relay is not None:
            self._relay.cancel()
            await asyncio.gather(self._relay, return_exceptions=True)
            self._relay = None

    def _announce(self, session_id: str, frame: dict[str, Any]) -> None:
        note = json.dumps({"o": self._origin, "s": session_id, "f": frame}, ensure_ascii=False)
        if len(note.encode()) > NOTIFY_MAX_BYTES:  # a /mydata file: the others read it back
            note = json.dumps({"o": self._origin, "s": session_id, "seq": frame["seq"]})
        task = asyncio.create_task(self._shared.notify(NOTIFY_CHANNEL, note))
        task.add_done_callback(_log_failure)

    def _arrived(self, payload: str) -> None:
        try:
            note = json.loads(payload)
        except ValueError:
            return
        if note.get("o") != self._origin and note.get("s") in self._live:
            self._arrivals.put_nowait(note)  # in order: a page drops a seq older than the last it got

    async def _relay_arrivals(self) -> None:
        while True:
            note = await self._arrivals.get()
            try:
                frames = [note["f"]] if "f" in note else [
                    entry.frame() for entry in await web_messages.after(self.db.reader, note["s"], note["seq"] - 1, 1)]
            except Exception:
                log.exception("web chat: could not read a pushed entry back")
                continue
            for frame in frames:
                for push in list(self._live.get(note["s"], ())):
                    push(frame)

    # --- receiving ------------------------------------------------------------------

    def update_id(self, payload: dict[str, Any]) -> str:
        session, frame_id = payload.get("session"), payload.get("id")
        if not isinstance(session, str) or not SESSION_RE.fullmatch(session):
            raise ValueError("session: missing or malformed")
        if not isinstance(frame_id, str) or not 0 < len(frame_id) <= 100:
            raise ValueError("id: missing or malformed")
        return f"{session}:{frame_id}"

    def parse(self, payload: dict[str, Any]) -> Inbound | None:
        session = payload["session"]
        common = {
            "channel": NAME,
            "user_id": session,
            "chat_id": session,
            "language_code": payload.get("lang") if isinstance(payload.get("lang"), str) else None,
            "name": str(payload.get("name") or ""),
        }
        if "choice" in payload:
            message_id = payload.get("message_id")
            return Inbound(
                **common,
                choice=str(payload["choice"]),
                choice_id=self.update_id(payload),
                message_id=str(message_id) if isinstance(message_id, int) else None,
            )
        text = payload.get("text")
        if not isinstance(text, str):
            raise ValueError("text: not a string")
        command, args = split_command(text)
        # Set only by the server, from a customer token it verified (bot/web_chat.py), never from a frame.
        vouched = payload.get("customer") if isinstance(payload.get("customer"), str) else None
        # Images the server stored (POST /chat/upload): "web:<id>" of web_uploads, like Telegram's file ids.
        photos = payload.get("photos") if isinstance(payload.get("photos"), list) else []
        return Inbound(**common, text=text, command=command, args=args, vouched_customer=vouched,
                       photos=tuple(p for p in photos if web_uploads.parse_ref(p) is not None))

    async def resolve(self, tx: Connection, event: Inbound, payload: dict[str, Any], now: datetime) -> Inbound:
        return event

    def fits(self, text: str, buttons: list[list[dict[str, str]]]) -> bool:
        return len(text) <= ONE_MESSAGE

    def pacing(self, chat_id: str) -> float:
        return 0.0

    # --- delivering -------------------------------------------------------------------

    async def deliver(self, method: str, chat_id: str, payload: dict[str, Any]) -> str | None:
        if method == "answer_choice":
            # Stops the button's spinner; a toast is kept in the log like any notice.
            ack = {"type": "ack", "choice_id": payload.get("choice_id")}
            if payload.get("text"):
                await self._append(chat_id, "notice", {"text": payload["text"], "choice_id": payload.get("choice_id")})
            self.push(chat_id, ack)
            return None
        if method == "send_text":
            body = {"text": payload.get("text", ""), "buttons": payload.get("buttons", [])}
        elif method == "edit_text":
            body = {"target": int(payload["message_id"]), "text": payload.get("text", ""),
                    "buttons": payload.get("buttons", [])}
            await self._append(chat_id, "edit", body)
            return str(payload["message_id"])
        elif method == "send_photo":
            # A Telegram file id (an agent's photo) cannot be shown here: the caption and a note.
            body = {"text": payload.get("text", ""), "buttons": [], "photo": "unavailable"}
        elif method == "send_photo_file":
            body = {"text": payload.get("text", ""), "buttons": [],
                    "image": f"data:image/png;base64,{payload['png_base64']}"}
        elif method == "send_document":
            # A /mydata file: the page offers it as a download; its data leaves the log after
            # storage.privacy.MY_DATA_TTL (the "my_data_web" purge rule).
            document = {"filename": payload.get("filename", "file"), "mime_type": payload.get("mime_type", ""),
                        "data": payload["document_base64"]}
            return str(await self._append(chat_id, "document", {"text": payload.get("text", ""), "buttons": [],
                                                                "document": document}))
        elif method == "reset_chat":
            # After /forget: open pages clear what they show (the log itself was erased).
            return str(await self._append(chat_id, "reset", {}))
        else:
            raise Permanent(f"web chat cannot {method}")
        return str(await self._append(chat_id, "message", body))

    async def _append(self, session_id: str, kind: str, body: dict[str, Any]) -> int:
        async with self.db.transaction() as tx:
            entry = await web_messages.append(tx, session_id, kind, body, self.clock.now())
        assert entry is not None
        self.push(session_id, entry.frame())
        return entry.id



def _log_failure(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("web chat: could not tell the other instances: %s", task.exception())
