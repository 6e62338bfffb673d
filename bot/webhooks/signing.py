"""Standard Webhooks v1 signatures (symmetric): `whsec_` secrets, and the three headers.

The signed content is `{msg_id}.{timestamp}.{body}` (timestamp: integer unix seconds, body:
the exact bytes sent), HMAC-SHA256 keyed with the secret's base64-decoded bytes, sent as
`v1,<base64 signature>`; during a rotation one such signature per valid key, space-separated.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Iterable

PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec: at least 24 bytes, at most 64
USER_AGENT = "feedbot-webhooks/1"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def new_msg_id() -> str:
    """A webhook-id: `msg_` and 22 URL-safe characters (never a full stop: it is signed
    between full stops)."""
    return "msg_" + secrets.token_urlsafe(16)


def key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret; ValueError for anything else."""
    if not secret.startswith(PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    try:
        raw = base64.b64decode(secret[len(PREFIX):], validate=True)
    except ValueError as exc:
        raise ValueError("a webhook secret is whsec_ followed by base64") from exc
    if len(raw) < 24 or len(raw) > 64:
        raise ValueError("a webhook secret holds 24 to 64 bytes")
    return raw


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(key(secret), f"{msg_id}.{timestamp}.".encode("ascii") + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(msg_id: str, timestamp: int, body: bytes, keys: Iterable[str]) -> dict[str, str]:
    """The request's headers: the Standard Webhooks three, content type, user agent."""
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(k, msg_id, timestamp, body) for k in keys),
    }
