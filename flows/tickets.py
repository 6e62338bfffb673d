"""Complaint policy: who is VIP, how urgent a ticket is, its SLA targets, when it breached,
and what counts as a complaint in a free message."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache

PRIORITIES = ("normal", "high", "urgent")
COMPLAINT, QUESTION = "complaint", "question"  # a ticket's kind
DEFAULT_KEYWORDS = (
    "hỏng", "hư", "chậm", "trễ", "lừa đảo", "thất vọng", "tệ", "khiếu nại", "hoàn tiền", "đổi trả", "vỡ", "thiếu",
    "broken", "late", "scam", "refund", "complaint", "damaged", "missing", "terrible", "disappointed",
)


@dataclass(frozen=True)
class ComplaintPolicy:
    low_score: int = 2  # a CSAT score at or below this offers a complaint
    categories: tuple[str, ...] = ("delivery", "product_quality", "staff_attitude", "price_billing", "other")
    severe_categories: tuple[str, ...] = ("product_quality",)  # one priority level up
    keywords: tuple[str, ...] = DEFAULT_KEYWORDS
    reopen_window: timedelta = timedelta(days=7)
    max_photos: int = 5
    min_description: int = 5  # characters
    vip_spend_12m: Decimal = Decimal(10_000_000)  # VND over the last 12 months
    vip_orders_12m: int = 10
    question_first_response: timedelta = timedelta(hours=4)  # a question's own target
    # A message this soon after a question was closed joins it (reopens it) instead of a new one.
    question_window: timedelta = timedelta(hours=24)
    # priority -> (first response, resolution)
    sla: dict[str, tuple[timedelta, timedelta]] = field(
        default_factory=lambda: {
            "normal": (timedelta(hours=2), timedelta(hours=48)),
            "high": (timedelta(minutes=30), timedelta(hours=24)),
            "urgent": (timedelta(minutes=15), timedelta(hours=8)),
        }
    )


def ticket_number(ticket_id: int, kind: str = COMPLAINT) -> str:
    """KN-0042 for a complaint (khiếu nại), CH-0042 for a question (câu hỏi)."""
    return f"{'CH' if kind == QUESTION else 'KN'}-{ticket_id:04d}"


def tier_for(spend_12m: Decimal, orders_12m: int, policy: ComplaintPolicy) -> str:
    vip = spend_12m >= policy.vip_spend_12m or orders_12m >= policy.vip_orders_12m
    return "vip" if vip else "regular"


def priority_for(tier: str, category: str, policy: ComplaintPolicy) -> str:
    level = (tier == "vip") + (category in policy.severe_categories)
    return PRIORITIES[level]


def raised(priority: str) -> str:
    index = PRIORITIES.index(priority) if priority in PRIORITIES else 0
    return PRIORITIES[min(index + 1, len(PRIORITIES) - 1)]


def sla_due(
    opened_at: datetime, priority: str, policy: ComplaintPolicy, kind: str = COMPLAINT
) -> tuple[datetime, datetime]:
    first, resolution = policy.sla.get(priority, policy.sla["normal"])
    if kind == QUESTION:  # answered within its own target; closed within the complaints' resolution target
        first = policy.question_first_response
    return opened_at + first, opened_at + resolution


@dataclass(frozen=True)
class TicketClock:
    """What the SLA watchdog needs to know about one ticket."""

    status: str
    first_response_at: datetime | None
    first_response_due_at: datetime
    resolution_due_at: datetime
    first_response_breached: bool
    resolution_breached: bool


def breaches(ticket: TicketClock, now: datetime) -> list[str]:
    """New breaches only: each is reported once."""
    found = []
    if ticket.status == "resolved":
        return found
    if ticket.first_response_at is None and not ticket.first_response_breached and now >= ticket.first_response_due_at:
        found.append("first_response")
    if not ticket.resolution_breached and now >= ticket.resolution_due_at:
        found.append("resolution")
    return found


class _DropCombining(dict):  # type: ignore[type-arg]
    """A str.translate table that deletes combining characters (unicodedata.combining != 0)
    and keeps the rest: each character is asked about once, then looked up in C (every text
    a customer writes is folded here; a per-character loop in Python cost ~3% of an update)."""

    def __missing__(self, code: int) -> int | None:
        kept = None if unicodedata.combining(chr(code)) else code
        if len(self) < 20_000:  # bounded: a text of rare characters never grows it without end
            self[code] = kept
        return kept


_DROP_COMBINING = _DropCombining()


def _fold(text: str) -> str:
    """Lowercase without diacritics ("HỎNG" -> "hong")."""
    decomposed = unicodedata.normalize("NFD", text.casefold()).replace("đ", "d")
    return decomposed.translate(_DROP_COMBINING)


def looks_like_complaint(text: str, keywords: tuple[str, ...]) -> bool:
    # Text typed with diacritics is matched with them ("chấm" is not "chậm"); text typed
    # without any (common on phones) is matched against the keywords' bare letters.
    lowered = unicodedata.normalize("NFC", text.casefold())
    folded = _fold(text)
    bare = folded == lowered.replace("đ", "d") and "đ" not in lowered
    with_marks, without_marks = _keyword_patterns(tuple(keywords))
    return (without_marks if bare else with_marks).search(folded if bare else lowered) is not None


@lru_cache(maxsize=16)
def _keyword_patterns(keywords: tuple[str, ...]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """One pattern per way of matching (the keywords as typed, their bare letters): built
    once per keyword list, not per message. Whole words only: "hư" must not match inside
    "những"."""

    def any_of(words: list[str]) -> re.Pattern[str]:
        if not words:
            return re.compile(r"(?!)")  # matches nothing
        return re.compile("|".join(rf"(?<!\w){re.escape(w)}(?!\w)" for w in words))

    return (
        any_of([unicodedata.normalize("NFC", k.casefold()) for k in keywords]),
        any_of([_fold(k) for k in keywords]),
    )
