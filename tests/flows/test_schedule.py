"""Survey timing policy: delay, quiet hours, fatigue, lateness, expiry, reminder."""
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from flows.schedule import (
    AwaitContact,
    Postpone,
    Send,
    Skip,
    SurveyPolicy,
    decide_dispatch,
    due_time,
    end_of_quiet_hours,
    in_quiet_hours,
    is_expired,
    is_too_late,
    reminder_due,
)

VN = ZoneInfo("Asia/Ho_Chi_Minh")
POLICY = SurveyPolicy()


def vn(y, m, d, hh, mm=0):
    return datetime(y, m, d, hh, mm, tzinfo=VN)


@pytest.mark.parametrize(
    "local, quiet",
    [
        ((2026, 11, 23, 20, 59), False),
        ((2026, 11, 23, 21, 0), True),
        ((2026, 11, 23, 23, 30), True),
        ((2026, 11, 24, 0, 0), True),
        ((2026, 11, 24, 7, 59), True),
        ((2026, 11, 24, 8, 0), False),
        ((2026, 11, 24, 12, 0), False),
    ],
)
def test_quiet_hours_wrap_midnight_in_shop_time(local, quiet):
    assert in_quiet_hours(vn(*local), POLICY) is quiet
    # The same instant expressed in UTC gives the same answer: quiet hours are shop time.
    assert in_quiet_hours(vn(*local).astimezone(timezone.utc), POLICY) is quiet


def test_quiet_hours_within_a_day_and_disabled():
    midday = SurveyPolicy(quiet_start=time(12), quiet_end=time(14))
    assert in_quiet_hours(vn(2026, 11, 23, 13), midday)
    assert not in_quiet_hours(vn(2026, 11, 23, 14), midday)
    off = SurveyPolicy(quiet_start=time(0), quiet_end=time(0))
    assert not in_quiet_hours(vn(2026, 11, 23, 3), off)


def test_end_of_quiet_hours_before_and_after_midnight():
    assert end_of_quiet_hours(vn(2026, 11, 23, 22), POLICY) == vn(2026, 11, 24, 8)
    assert end_of_quiet_hours(vn(2026, 11, 24, 3), POLICY) == vn(2026, 11, 24, 8)
    outside = vn(2026, 11, 24, 9)
    assert end_of_quiet_hours(outside, POLICY) == outside


def test_due_time_is_delay_after_purchase_outside_quiet_hours():
    assert due_time(vn(2026, 11, 23, 10), POLICY) == vn(2026, 11, 23, 13)
    # 19:30 + 3 h = 22:30, quiet: next morning at 08:00
    assert due_time(vn(2026, 11, 23, 19, 30), POLICY) == vn(2026, 11, 24, 8)
    assert due_time(vn(2026, 11, 23, 17, 59), POLICY) == vn(2026, 11, 23, 20, 59)


def decide(**overrides):
    args = dict(
        now=vn(2026, 11, 23, 13), due_at=vn(2026, 11, 23, 13), opted_out=False, has_contact=True,
        last_sent_at=None, policy=POLICY,
    )
    args.update(overrides)
    return decide_dispatch(**args)


def test_dispatch_sends_when_due_and_allowed():
    assert decide() == Send()


def test_opted_out_customer_gets_nothing():
    assert decide(opted_out=True) == Skip("opted_out")


def test_fatigue_one_survey_per_period():
    assert decide(last_sent_at=vn(2026, 11, 20, 13)) == Skip("fatigue")
    assert decide(last_sent_at=vn(2026, 11, 16, 12, 59)) == Send()  # 7 days and a minute ago


def test_too_late_after_max_lateness():
    assert decide(now=vn(2026, 11, 25, 13, 1)) == Skip("too_late")
    assert decide(now=vn(2026, 11, 25, 12, 59)) == Send()


def test_no_chat_yet_waits_for_the_customer():
    assert decide(has_contact=False) == AwaitContact()


def test_due_in_quiet_hours_is_postponed_to_the_morning():
    assert decide(now=vn(2026, 11, 23, 22), due_at=vn(2026, 11, 23, 21, 30)) == Postpone(vn(2026, 11, 24, 8))


def test_postponing_past_max_lateness_skips_instead():
    short = SurveyPolicy(max_lateness=timedelta(hours=2))
    assert decide(now=vn(2026, 11, 23, 22), due_at=vn(2026, 11, 23, 21, 30), policy=short) == Skip("too_late")


def test_expiry_after_72_hours():
    sent = vn(2026, 11, 23, 13)
    assert not is_expired(sent + timedelta(hours=71, minutes=59), sent, POLICY)
    assert is_expired(sent + timedelta(hours=72), sent, POLICY)


def test_reminder_off_by_default_and_at_most_once():
    sent = vn(2026, 11, 23, 10)
    later = sent + timedelta(hours=25)
    assert not reminder_due(later, sent, False, POLICY)
    on = SurveyPolicy(reminder_after=timedelta(hours=24))
    assert reminder_due(later, sent, False, on)
    assert not reminder_due(later, sent, True, on)
    assert not reminder_due(sent + timedelta(hours=23), sent, False, on)
    assert not reminder_due(vn(2026, 11, 24, 22), sent, False, on)  # quiet hours
    assert not reminder_due(sent + timedelta(hours=80), sent, False, on)  # expired already


def test_no_survey_while_a_complaint_is_open():
    assert decide(open_complaint=True) == Skip("open_complaint")
    assert decide(open_complaint=True, opted_out=True) == Skip("opted_out")


BERLIN = ZoneInfo("Europe/Berlin")


def test_delay_and_lateness_are_real_hours_across_a_dst_change_however_the_time_is_written():
    # Clocks go forward on 2026-03-29 in Berlin. A purchase posted without an offset is a
    # datetime in the shop's zone, where `+ timedelta` is wall-clock arithmetic (an hour short
    # here); the same instant posted in UTC must be due at the same moment.
    policy = SurveyPolicy(timezone=BERLIN, delay=timedelta(hours=24), quiet_start=time(0), quiet_end=time(0))
    bought = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN)  # 11:00 UTC
    utc = bought.astimezone(timezone.utc)
    assert due_time(bought, policy) == due_time(utc, policy) == utc + timedelta(hours=24)
    due = due_time(bought, policy)
    assert not is_too_late(utc + timedelta(hours=24 + 47, minutes=30), due, policy)  # 47.5 h of 48 h late
    assert is_too_late(utc + timedelta(hours=24 + 48, minutes=1), due, policy)
    local_due = due.astimezone(BERLIN)
    assert not is_too_late(utc + timedelta(hours=24 + 47, minutes=30), local_due, policy)
