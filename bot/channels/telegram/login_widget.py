"""The Telegram Login Widget's wire format ("Log in with Telegram" on the web sign-in page).

The widget, loaded by the browser from telegram.org, sends the user back to our auth URL with
`id`, `first_name`, `last_name`, `username`, `photo_url`, `auth_date` and `hash` in the query.
Telegram's documented check ("Checking authorization"): the data-check-string is every received
field but `hash`, sorted by key, as `key=value` lines joined by "\\n"; the secret key is the
SHA-256 of the bot token (raw bytes); the data is Telegram's when the hex HMAC-SHA-256 of the
data-check-string under that key equals `hash`. `auth_date` (Unix seconds) says when the user
confirmed: older data is refused, so a link found later in a browser's history does not sign in.

Our own `next` parameter (where to go after signing in, on the auth URL) is not Telegram's and
not signed: it is left out of the check and checked like the password form's. Nothing here
logs; the bot token stays in this function's arguments.
"""
from __future__ import annotations

import hashlib
import hmac
import html
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable

WIDGET_SCRIPT = "https://telegram.org/js/telegram-widget.js?22"
# What the sign-in page must allow when it shows the widget: its script, and the iframe it opens.
CSP_SOURCES = {"script-src": "https://telegram.org", "frame-src": "https://oauth.telegram.org"}
MAX_AGE = timedelta(days=1)
FUTURE_SKEW = timedelta(minutes=5)  # clocks differ a little; data from further ahead is refused
OWN_FIELDS = frozenset({"next"})


class LoginRejected(ValueError):
    """The data is not a valid Telegram login: `reason` is 'missing', 'signature', 'stale' or 'future'."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class TelegramLogin:
    user_id: int
    name: str
    auth_date: datetime
    signature: str  # the data's `hash`: what makes one sign-in's data unique (spent once)

    @property
    def spent_key(self) -> str:
        return hashlib.sha256(self.signature.encode()).hexdigest()


def data_check_string(fields: dict[str, str]) -> str:
    return "\n".join(f"{key}={fields[key]}" for key in sorted(fields) if key != "hash")


def signature(fields: dict[str, str], bot_token: str) -> str:
    secret = hashlib.sha256(bot_token.encode()).digest()
    return hmac.new(secret, data_check_string(fields).encode(), hashlib.sha256).hexdigest()


def check(pairs: Iterable[tuple[str, str]], bot_token: str, now: datetime, max_age: timedelta = MAX_AGE) -> TelegramLogin:
    """The Telegram user the widget's data names, if Telegram signed it and it is recent; else LoginRejected."""
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in OWN_FIELDS:
            continue
        if key in fields:  # a repeated field: which one did Telegram sign?
            raise LoginRejected("missing", f"the field {key!r} is given twice")
        fields[key] = value
    given = fields.get("hash", "")
    if not given or not fields.get("id") or not fields.get("auth_date"):
        raise LoginRejected("missing", "id, auth_date and hash are needed")
    if not hmac.compare_digest(signature(fields, bot_token).encode(), given.lower().encode()):
        raise LoginRejected("signature", "the signature does not match the data")
    try:
        user_id = int(fields["id"])
        signed_at = datetime.fromtimestamp(int(fields["auth_date"]), timezone.utc)
    except (ValueError, OverflowError, OSError):
        raise LoginRejected("missing", "id and auth_date must be numbers") from None
    if signed_at < now - max_age:
        raise LoginRejected("stale", f"signed at {signed_at.isoformat()}, more than {max_age} ago")
    if signed_at > now + FUTURE_SKEW:
        raise LoginRejected("future", f"signed at {signed_at.isoformat()}, in the future")
    name = " ".join(part for part in (fields.get("first_name", ""), fields.get("last_name", "")) if part)
    return TelegramLogin(user_id=user_id, name=name or fields.get("username", ""), auth_date=signed_at,
                         signature=given.lower())


def widget_html(bot_username: str, auth_url: str) -> str:
    """The widget's tag: the browser loads it from telegram.org (offline, the password form still works)."""
    e = html.escape
    return (f'<script async src="{WIDGET_SCRIPT}" data-telegram-login="{e(bot_username)}" data-size="large"'
            f' data-userpic="false" data-auth-url="{e(auth_url)}"></script>')
