"""Holiday blackouts: Tết computed from the lunar calendar, checked against a published table,
and the blackout days added to quiet hours."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from flows.holidays import Blackouts, lunar_new_year
from flows.schedule import (Postpone, SurveyPolicy, deadline, decide_dispatch, due_cutoff, due_time, end_of_quiet_hours,
                            in_quiet_hours, is_too_late)

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


def test_dispatch_in_a_blackout_postpones_and_the_blackout_does_not_count_as_lateness():
    policy = SurveyPolicy(timezone=VN, blackouts=Blackouts(), max_lateness=timedelta(hours=48))
    now = datetime(2027, 2, 6, 10, 0, tzinfo=VN)
    # Due on Tết's first day: the clock only starts when Tết ends, so it goes out the first morning after.
    decision = decide_dispatch(now=now, due_at=now, opted_out=False, has_contact=True, last_sent_at=None, policy=policy)
    assert decision == Postpone(datetime(2027, 2, 11, 8, 0, tzinfo=VN))
    # Due the evening before the eve, caught by quiet hours: 4 h of lateness used, 44 h left after Tết.
    evening = datetime(2027, 2, 4, 20, 0, tzinfo=VN)
    night = datetime(2027, 2, 4, 21, 30, tzinfo=VN)
    assert decide_dispatch(now=night, due_at=evening, opted_out=False, has_contact=True, last_sent_at=None,
                           policy=policy) == Postpone(datetime(2027, 2, 11, 8, 0, tzinfo=VN))
    assert deadline(evening, policy.max_lateness, policy) == datetime(2027, 2, 12, 20, 0, tzinfo=VN)
    assert not is_too_late(datetime(2027, 2, 12, 20, 0, tzinfo=VN), evening, policy)
    assert is_too_late(datetime(2027, 2, 12, 20, 1, tzinfo=VN), evening, policy)
    # Due long enough before the blackout that its lateness ran out before it: still too late.
    early = datetime(2027, 2, 2, 10, 0, tzinfo=VN)
    assert decide_dispatch(now=now, due_at=early, opted_out=False, has_contact=True, last_sent_at=None,
                           policy=policy).reason == "too_late"


def test_lateness_far_from_a_blackout_is_plain_and_the_cutoff_inverts_the_deadline():
    policy = SurveyPolicy(timezone=VN, blackouts=Blackouts(dates=frozenset({date(2027, 5, 20)})),
                          max_lateness=timedelta(hours=48))
    june = datetime(2027, 6, 10, 15, 30, tzinfo=VN)
    assert deadline(june, timedelta(hours=48), policy) == june + timedelta(hours=48)
    assert deadline(june, timedelta(hours=48), SurveyPolicy(timezone=VN)) == june + timedelta(hours=48)
    # A one-day holiday in the window adds that day.
    may = datetime(2027, 5, 19, 12, 0, tzinfo=VN)
    assert deadline(may, timedelta(hours=48), policy) == datetime(2027, 5, 22, 12, 0, tzinfo=VN)
    for due in (may, june, datetime(2027, 2, 4, 20, 0, tzinfo=VN), datetime(2027, 2, 7, 9, 0, tzinfo=VN)):
        for p in (policy, SurveyPolicy(timezone=VN, blackouts=Blackouts())):
            end = deadline(due, timedelta(hours=48), p)
            cutoff = due_cutoff(end, timedelta(hours=48), p)
            assert deadline(cutoff, timedelta(hours=48), p) == end
            assert cutoff <= due  # a due inside a blackout maps back to where the blackout began


def test_the_demo_ignores_holidays_like_quiet_hours():
    from bot.services.demo import demo_policy

    policy = demo_policy(SurveyPolicy(timezone=VN, blackouts=Blackouts()))
    assert not in_quiet_hours(datetime(2027, 2, 7, 23, 0, tzinfo=VN), policy)
