"""Holiday blackouts: Tết computed from the lunar calendar, checked against a published table,
and the blackout days added to quiet hours."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from flows.holidays import Blackouts, lunar_new_year
from flows.schedule import SurveyPolicy, decide_dispatch, due_time, end_of_quiet_hours, in_quiet_hours, Postpone

VN = ZoneInfo("Asia/Ho_Chi_Minh")

# The first day of Tết Nguyên Đán, from the lunar new year table of the python-holidays
# project (vacanza/holidays, holidays/calendars/chinese.py: LUNAR_NEW_YEAR_DATES with its
# VIETNAMESE_CALENDAR_LUNAR_NEW_YEAR_DATES exceptions). 2030 is a year where Vietnam's new
# year (UTC+7) is a day before China's (UTC+8): 2 February, not 3.
TET = {
    2027: date(2027, 2, 6),
    2028: date(2028, 1, 26),
    2029: date(2029, 2, 13),
    2030: date(2030, 2, 2),
    2031: date(2031, 1, 23),
    2032: date(2032, 2, 11),
    2033: date(2033, 1, 31),
    2034: date(2034, 2, 19),
    2035: date(2035, 2, 8),
    2036: date(2036, 1, 28),
}
# Past years where the Vietnamese date differs from the Chinese one (same table).
TET_DIFFERS_FROM_CHINA = {1985: date(1985, 1, 21), 2007: date(2007, 2, 17), 2053: date(2053, 2, 18)}


@pytest.mark.parametrize("year", sorted(TET))
def test_tet_for_the_next_ten_years_matches_the_table(year):
    assert lunar_new_year(year) == TET[year]


@pytest.mark.parametrize("year", sorted(TET_DIFFERS_FROM_CHINA))
def test_tet_in_vietnams_time_where_it_differs_from_chinas(year):
    assert lunar_new_year(year) == TET_DIFFERS_FROM_CHINA[year]


def test_recent_years():
    assert lunar_new_year(2024) == date(2024, 2, 10)
    assert lunar_new_year(2025) == date(2025, 1, 29)
    assert lunar_new_year(2026) == date(2026, 2, 17)


def test_blackout_days_around_tet_and_config_dates():
    b = Blackouts(tet=True, tet_before=1, tet_after=4, dates=frozenset({date(2027, 5, 20)}), yearly=frozenset({(9, 2)}))
    assert not b.is_blackout(date(2027, 2, 4))
    assert b.is_blackout(date(2027, 2, 5))  # the eve
    assert b.is_blackout(date(2027, 2, 6)) and b.is_blackout(date(2027, 2, 10))
    assert not b.is_blackout(date(2027, 2, 11))
    assert b.is_blackout(date(2027, 5, 20)) and not b.is_blackout(date(2028, 5, 20))
    assert b.is_blackout(date(2031, 9, 2))
    assert not Blackouts(tet=False).is_blackout(date(2027, 2, 6))
    # Tết on 23 Jan 2031 with 30 days before: the eve window reaches into December 2030
    assert Blackouts(tet_before=30).is_blackout(date(2030, 12, 28))


def test_a_survey_due_in_tet_waits_for_the_first_morning_after_it():
    policy = SurveyPolicy(timezone=VN, blackouts=Blackouts(tet_before=1, tet_after=4))
    purchased = datetime(2027, 2, 4, 18, 0, tzinfo=VN)  # 3 h later is 21:00: quiet, then Tết
    due = due_time(purchased, policy)
    assert due == datetime(2027, 2, 11, 8, 0, tzinfo=VN)  # the day after the last blackout day, at quiet hours' end
    assert in_quiet_hours(datetime(2027, 2, 7, 12, 0, tzinfo=VN), policy)
    assert end_of_quiet_hours(datetime(2027, 2, 7, 12, 0, tzinfo=VN), policy) == due
    # quiet hours off: the blackout still holds, and ends at midnight
    open_all_day = SurveyPolicy(timezone=VN, quiet_start=time(0, 0), quiet_end=time(0, 0), blackouts=policy.blackouts)
    assert end_of_quiet_hours(datetime(2027, 2, 7, 12, 0, tzinfo=VN), open_all_day) == datetime(2027, 2, 11, 0, 0, tzinfo=VN)


def test_dispatch_in_a_blackout_postpones_or_skips_when_too_late():
    policy = SurveyPolicy(timezone=VN, blackouts=Blackouts(), max_lateness=timedelta(days=10))
    now = datetime(2027, 2, 6, 10, 0, tzinfo=VN)
    decision = decide_dispatch(now=now, due_at=now, opted_out=False, has_contact=True, last_sent_at=None, policy=policy)
    assert decision == Postpone(datetime(2027, 2, 11, 8, 0, tzinfo=VN))
    short = SurveyPolicy(timezone=VN, blackouts=Blackouts(), max_lateness=timedelta(hours=48))
    assert decide_dispatch(now=now, due_at=now, opted_out=False, has_contact=True, last_sent_at=None,
                           policy=short).reason == "too_late"


def test_the_demo_ignores_holidays_like_quiet_hours():
    from bot.services.demo import demo_policy

    policy = demo_policy(SurveyPolicy(timezone=VN, blackouts=Blackouts()))
    assert not in_quiet_hours(datetime(2027, 2, 7, 23, 0, tzinfo=VN), policy)
