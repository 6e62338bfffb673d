"""Complaint policy: VIP tier, priority, SLA targets and breaches, ticket numbers, and
which free messages read like a complaint."""
import unicodedata
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from flows.tickets import (
    DEFAULT_KEYWORDS,
    PRIORITIES,
    ComplaintPolicy,
    TicketClock,
    breaches,
    looks_like_complaint,
    priority_for,
    raised,
    sla_due,
    ticket_number,
    tier_for,
)

POLICY = ComplaintPolicy()
NOW = datetime(2026, 11, 23, 6, 0, tzinfo=timezone.utc)


# --- tier -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spend, orders, tier",
    [
        (Decimal(0), 0, "regular"),
        (Decimal(9_999_999), 9, "regular"),
        (Decimal("9999999.99"), 0, "regular"),
        (Decimal(10_000_000), 0, "vip"),  # exactly at the spend threshold
        (Decimal(0), 10, "vip"),  # exactly at the order threshold
        (Decimal(50_000_000), 1, "vip"),
        (Decimal(100), 25, "vip"),
    ],
)
def test_tier_thresholds(spend, orders, tier):
    assert tier_for(spend, orders, POLICY) == tier


def test_tier_thresholds_come_from_the_policy():
    policy = ComplaintPolicy(vip_spend_12m=Decimal(500), vip_orders_12m=3)
    assert tier_for(Decimal(500), 0, policy) == "vip"
    assert tier_for(Decimal(499), 2, policy) == "regular"
    assert tier_for(Decimal(0), 3, policy) == "vip"


# --- priority ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tier, category, priority",
    [
        ("regular", "delivery", "normal"),
        ("regular", "other", "normal"),
        ("vip", "delivery", "high"),
        ("regular", "product_quality", "high"),
        ("vip", "product_quality", "urgent"),
    ],
)
def test_priority_from_tier_and_category(tier, category, priority):
    assert priority_for(tier, category, POLICY) == priority


def test_severe_categories_come_from_the_policy():
    policy = ComplaintPolicy(severe_categories=("delivery", "staff_attitude"))
    assert priority_for("regular", "delivery", policy) == "high"
    assert priority_for("vip", "staff_attitude", policy) == "urgent"
    assert priority_for("regular", "product_quality", policy) == "normal"


@pytest.mark.parametrize("before, after", [("normal", "high"), ("high", "urgent"), ("urgent", "urgent"), ("bogus", "high")])
def test_raised_goes_one_level_up_and_stops_at_urgent(before, after):
    assert raised(before) == after


def test_priorities_are_ordered():
    assert PRIORITIES == ("normal", "high", "urgent")


# --- SLA ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "priority, first, resolution",
    [
        ("normal", timedelta(hours=2), timedelta(hours=48)),
        ("high", timedelta(minutes=30), timedelta(hours=24)),
        ("urgent", timedelta(minutes=15), timedelta(hours=8)),
        ("bogus", timedelta(hours=2), timedelta(hours=48)),  # unknown: treated as normal
    ],
)
def test_sla_due_per_priority(priority, first, resolution):
    assert sla_due(NOW, priority, POLICY) == (NOW + first, NOW + resolution)


def test_sla_targets_come_from_the_policy():
    policy = ComplaintPolicy(sla={"normal": (timedelta(hours=1), timedelta(hours=10)),
                                  "high": (timedelta(minutes=5), timedelta(hours=1))})
    assert sla_due(NOW, "high", policy) == (NOW + timedelta(minutes=5), NOW + timedelta(hours=1))
    assert sla_due(NOW, "urgent", policy) == (NOW + timedelta(hours=1), NOW + timedelta(hours=10))


def clock(*, status="open", answered=None, first_breached=False, resolution_breached=False):
    return TicketClock(
        status=status,
        first_response_at=answered,
        first_response_due_at=NOW + timedelta(hours=2),
        resolution_due_at=NOW + timedelta(hours=48),
        first_response_breached=first_breached,
        resolution_breached=resolution_breached,
    )


def test_no_breach_before_the_targets():
    assert breaches(clock(), NOW + timedelta(hours=2) - timedelta(seconds=1)) == []


@pytest.mark.parametrize("status", ["open", "claimed"])
def test_first_response_breach(status):
    assert breaches(clock(status=status), NOW + timedelta(hours=2)) == ["first_response"]
    assert breaches(clock(status=status), NOW + timedelta(hours=3)) == ["first_response"]


def test_first_response_breach_is_reported_once():
    assert breaches(clock(first_breached=True), NOW + timedelta(hours=3)) == []


def test_no_first_response_breach_once_answered():
    answered = clock(status="claimed", answered=NOW + timedelta(hours=1))
    assert breaches(answered, NOW + timedelta(hours=3)) == []
    late_answer = clock(status="claimed", answered=NOW + timedelta(hours=5))  # answered late, then checked
    assert breaches(late_answer, NOW + timedelta(hours=6)) == []


def test_resolution_breach():
    answered = clock(status="claimed", answered=NOW + timedelta(hours=1))
    assert breaches(answered, NOW + timedelta(hours=48)) == ["resolution"]
    assert breaches(clock(answered=NOW, resolution_breached=True), NOW + timedelta(hours=50)) == []


def test_both_breaches_at_once():
    assert breaches(clock(), NOW + timedelta(hours=49)) == ["first_response", "resolution"]


def test_resolution_breach_after_the_first_response_breach_was_reported():
    assert breaches(clock(first_breached=True), NOW + timedelta(hours=49)) == ["resolution"]


def test_no_breach_once_resolved():
    assert breaches(clock(status="resolved"), NOW + timedelta(days=30)) == []


# --- ticket numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize("ticket_id, number", [(1, "KN-0001"), (42, "KN-0042"), (9999, "KN-9999"), (12345, "KN-12345")])
def test_ticket_number(ticket_id, number):
    assert ticket_number(ticket_id) == number


# --- what reads like a complaint ----------------------------------------------------------------


def nfd(s):
    return unicodedata.normalize("NFD", s)


@pytest.mark.parametrize(
    "message",
    [
        "Hàng bị hỏng rồi",
        "HÀNG BỊ HỎNG RỒI",
        "Hàng Bị Hỏng",
        "giao hàng chậm quá",
        "Giao hàng CHẬM",
        "giao hang cham qua",  # no diacritics, as typed on many phones
        "GIAO HANG CHAM QUA",
        "hang bi hong",
        "hàng bị hư",
        "hang bi hu",
        "shop này lừa đảo",
        "shop nay lua dao",
        "tôi muốn hoàn tiền",
        "toi muon hoan tien",
        "ĐỔI TRẢ hàng thế nào?",
        "doi tra hang the nao",
        "cốc bị vỡ",
        "thiếu 1 món",
        "Tệ thật",
        nfd("Hàng bị hỏng rồi"),  # decomposed input (some keyboards, macOS)
        nfd("GIAO HÀNG CHẬM"),
        "The parcel arrived broken",
        "DAMAGED box",
        "I want a refund.",
        "Delivery was late!",
        "This is a scam?!",
        "hỏng!!!",
        "(hư)",
        "trễ, lại còn thiếu",
        "...chậm...",
        "«vỡ»",
    ],
)
def test_reads_like_a_complaint(message):
    assert looks_like_complaint(message, DEFAULT_KEYWORDS)


@pytest.mark.parametrize(
    "message",
    [
        "",
        "Tôi chấm 5 sao",  # "chấm" (to score) is not "chậm" (slow)
        "TÔI CHẤM 5 SAO",
        nfd("Tôi chấm 5 sao"),
        "Cảm ơn shop, hàng đẹp lắm",
        "những ngày qua shop phục vụ tốt",  # "hư" is not a word inside "những"
        "nhung ngay qua",
        "thư cảm ơn",  # nor inside "thư"
        "thu cam on",
        "Hưng đã nhận hàng",
        "I love the chocolate",  # "late" inside a word
        "lately all good",
        "scammer-free zone",
        "refunds",
        "Thanks, all good",
    ],
)
def test_does_not_read_like_a_complaint(message):
    assert not looks_like_complaint(message, DEFAULT_KEYWORDS)


def test_whole_words_only_with_a_single_keyword():
    assert not looks_like_complaint("những", ("hư",))
    assert not looks_like_complaint("nhung", ("hư",))
    assert looks_like_complaint("hư", ("hư",))
    assert looks_like_complaint("hu", ("hư",))
    assert looks_like_complaint("hư hỏng", ("hư",))


def test_diacritics_are_kept_when_the_customer_typed_them():
    assert not looks_like_complaint("chấm", ("chậm",))
    assert looks_like_complaint("chậm", ("chậm",))
    assert looks_like_complaint("cham", ("chậm",))  # no diacritics at all: compared bare


def test_keywords_given_decomposed_or_in_capitals_still_match():
    assert looks_like_complaint("hàng hỏng", (nfd("hỏng"),))
    assert looks_like_complaint("hang hong", (nfd("hỏng"),))
    assert looks_like_complaint("hàng hỏng", ("HỎNG",))
    assert looks_like_complaint("the box is broken", ("Broken",))


def test_no_keywords_means_nothing_reads_like_a_complaint():
    assert not looks_like_complaint("Hàng bị hỏng rồi", ())
