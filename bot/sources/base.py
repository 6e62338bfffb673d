"""What every platform module provides (the Platform protocol), and the shared pieces:
HMAC checks and reading a JSON body's fields defensively."""
from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from flows.orders import OrderEvent


class BadPayload(ValueError):
    """A verified delivery whose body is not what the platform sends (recorded, failed)."""


@dataclass(frozen=True)
class Handshake:
    """An answer to a platform's set-up request (no order in it)."""

    status: int
    text: str


class Platform(Protocol):
    name: str
    punishes_4xx: bool  # answer refused requests with 200 (the platform stops sending on a 4xx)
    default_delivered_on: str
    signature_header: str
    test_header: str | None  # set to "true" on the platform's test notifications (a canned order)
    admin_steps: Mapping[str, str]  # language -> how to connect it, {url} for the webhook URL

    def verify(self, headers: Mapping[str, str], raw: bytes, secret: str, form: str) -> str | None:
        """The signature form that matched, None if none did."""

    def handshake(self, method: str, query: Mapping[str, str], headers: Mapping[str, str], raw: bytes,
                  verify_token: str) -> Handshake | None:
        """A set-up request answered here, or None: an ordinary delivery."""

    def delivery_id(self, headers: Mapping[str, str], raw: bytes, body: Any = None) -> str: ...

    def topic(self, headers: Mapping[str, str], body: Any) -> str | None: ...

    def events(self, topic: str | None, body: Any) -> list[OrderEvent]:
        """The orders a delivery carries (BadPayload if it is not an order payload)."""


def verify_sha256_base64(headers: Mapping[str, str], raw: bytes, secret: str, name: str) -> str | None:
    """The common scheme (Shopify and those built like it): header `name` = base64(HMAC-SHA256(secret, raw))."""
    given = header(headers, name)
    return "sha256-base64" if given and same(given, hmac_sha256_b64(secret, raw)) else None


def no_handshake(method: str, query: Mapping[str, str], headers: Mapping[str, str], raw: bytes,
                 verify_token: str) -> Handshake | None:
    """For platforms that send no set-up request."""
    return None


def hmac_sha256_b64(secret: str | bytes, raw: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return base64.b64encode(hmac.new(key, raw, hashlib.sha256).digest()).decode()


def same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), expected.encode())


def body_digest(raw: bytes) -> str:
    """A delivery id for platforms that send none: the same body twice is the same delivery."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def header(headers: Mapping[str, str], name: str) -> str:
    """A header by name in any case (aiohttp's headers are case-insensitive; a dict may not be)."""
    value = headers.get(name)
    if value is None:
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), "")
    return value


def obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def dicts(value: Any) -> list[dict[str, Any]]:
    """The objects of a list field (anything else: none)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def first(*values: Any) -> Any:
    """The first value that is set (not None, not an empty string)."""
    return next((v for v in values if v is not None and v != ""), None)


def full_name(*parts: Any) -> str | None:
    name = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    return name or None


def without_nul(value: Any) -> Any:
    """A parsed body with NUL characters dropped from its strings: JSON may carry "\\u0000",
    PostgreSQL text cannot hold it (a failed insert would be a 500 the platform resends for
    hours, for a delivery id, a topic or a name alike)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    return value
