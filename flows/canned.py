"""Canned replies on the agents' page: their placeholders and how they are filled.

Owners write the replies (bot/http/agent_page.py, table canned_replies); an agent picks one
and it lands in the reply box with the open ticket's facts filled in. Placeholders are
Vietnamese words without diacritics, so they are typed on any keyboard:

    {ten_khach}  the customer's name (as the page shows it)
    {ma_phieu}   the ticket's number, e.g. KN-0001 or CH-0002

Anything else in braces is refused when the reply is saved (a typo would reach customers).
"""
from __future__ import annotations

import re

PLACEHOLDERS = ("ten_khach", "ma_phieu")
TITLE_MAX = 60
BODY_MAX = 1000  # well under the reply's own limit (flows/agent_page.MAX_TEXT) once filled

_BRACED = re.compile(r"\{([^{}\s]{1,40})\}")


def unknown_placeholders(body: str) -> list[str]:
    """The braced names in `body` that are not placeholders, in order, once each."""
    seen: list[str] = []
    for name in _BRACED.findall(body):
        if name not in PLACEHOLDERS and name not in seen:
            seen.append(name)
    return seen


def problem(title: str, body: str) -> str | None:
    """Why this reply cannot be saved (a catalog key of flows/agent_page), or None."""
    if not title.strip() or not body.strip():
        return "canned.empty"
    if len(title) > TITLE_MAX or len(body) > BODY_MAX:
        return "canned.too_long"
    if unknown_placeholders(body):
        return "canned.unknown_placeholder"
    return None


def fill(body: str, *, customer_name: str, ticket_number: str) -> str:
    """The reply with its placeholders replaced; other text is left exactly as written."""
    values = {"ten_khach": customer_name, "ma_phieu": ticket_number}
    return _BRACED.sub(lambda m: values.get(m.group(1), m.group(0)), body)
