"""Survey routes and the ZNS rules (flows/survey_routes.py): plain data in, a decision out."""
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from flows.survey_routes import (
    CS, ZNS, Candidate, Route, Spent, Unreachable, ZnsPolicy, choose_route, in_night_ban, may_spend,
    next_quota_day, night_ban_ends, template_data,
)

VN = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 12, 5, 10, 0, tzinfo=VN)


def test_a_zalo_chat_inside_the_window_gets_cs_outside_it_zns_and_no_route_says_why():
    inside = Candidate(1, "zalo", NOW - timedelta(days=2))
    outside = Candidate(1, "zalo", NOW - timedelta(days=8))
    assert choose_route(now=NOW, candidates=[inside], phone="84912345678", zns_usable=True) == Route(CS, "zalo_window_open", 1)
    assert choose_route(now=NOW, candidates=[outside], phone="84912345678", zns_usable=True) == Route(ZNS, "zalo_window_closed")
    assert choose_route(now=NOW, candidates=[], phone="84912345678", zns_usable=True) == Route(ZNS, "phone_only")
    assert choose_route(now=NOW, candidates=[outside], phone=None, zns_usable=True) == Unreachable("zalo_window_closed_no_phone")
    assert choose_route(now=NOW, candidates=[outside], phone="849", zns_usable=False) == Unreachable("zalo_window_closed_no_zns")
    assert choose_route(now=NOW, candidates=[], phone=None, zns_usable=True) == Unreachable("no_chat_no_phone")
    # Another chat in channel_order comes before ZNS: CS is free and conversational.
    assert choose_route(now=NOW, candidates=[outside, Candidate(2, "telegram")], phone="849", zns_usable=True) == \
        Route(CS, "telegram_chat", 2)


def test_night_ban_spans_midnight_in_the_shop_time_zone():
    policy = ZnsPolicy(timezone=VN)
    assert in_night_ban(datetime(2026, 12, 5, 22, 0, tzinfo=VN), policy)
    assert in_night_ban(datetime(2026, 12, 6, 5, 59, tzinfo=VN), policy)
    assert not in_night_ban(datetime(2026, 12, 6, 6, 0, tzinfo=VN), policy)
    late = datetime(2026, 12, 5, 23, 30, tzinfo=VN).astimezone(timezone.utc)
    assert night_ban_ends(late, policy) == datetime(2026, 12, 6, 6, 0, tzinfo=VN)
    assert night_ban_ends(NOW, policy) == NOW
    assert not in_night_ban(NOW, ZnsPolicy(timezone=VN, night_start=time(0), night_end=time(0)))
    assert next_quota_day(NOW, policy) == datetime(2026, 12, 6, 6, 0, tzinfo=VN)  # midnight is banned


def test_quota_and_budget_are_never_passed():
    policy = ZnsPolicy(daily_messages=3, daily_budget_vnd=500, price_vnd=200)
    assert may_spend(Spent(0, 0), policy).allowed
    assert may_spend(Spent(2, 400), policy).reason == "daily_budget"  # a third would cost 600 > 500
    assert may_spend(Spent(3, 0), ZnsPolicy(daily_messages=3)).reason == "daily_quota"
    assert may_spend(Spent(10**6, 10**9), ZnsPolicy()).allowed  # 0: no limit of ours


def test_template_data_uses_the_templates_parameter_names_and_clips():
    policy = ZnsPolicy(params=(("customer_name", "ten"), ("order_id", "ma_don"), ("link", "")))
    data = template_data(policy, {"customer_name": "N" * 50, "order_id": "A-1", "link": "https://x", "shop": "S"})
    assert data == {"ten": "N" * 30, "ma_don": "A-1"}
