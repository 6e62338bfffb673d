"""Holiday blackouts: days on which no survey goes out (Tết by default, computed for the lunar
new year; other dates from the config), on top of quiet hours.

The lunar new year is the first day of the first month of the Vietnamese lunisolar calendar:
the second new moon after the winter solstice, counted in Vietnam's time (UTC+7), which is
why it sometimes falls a day before the Chinese one (2007, 2030). Computed with Ho Ngoc
Duc's method (new moons and the sun's longitude after Jean Meeus, "Astronomical Algorithms").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from functools import lru_cache

VIETNAM_UTC_OFFSET = 7.0  # hours: the Vietnamese calendar's meridian


def _jd_from_date(d: date) -> int:
    a = (14 - d.month) // 12
    y = d.year + 4800 - a
    m = d.month + 12 * a - 3
    return d.day + (153 * m + 2) // 5 + 365 * y + y // 4 - y // 100 + y // 400 - 32045


def _date_from_jd(jd: int) -> date:
    return date.fromordinal(jd - 1721425)  # JDN 1721426 is 0001-01-01


def _new_moon(k: int) -> float:
    """The Julian day (UT) of the k-th new moon after 1900-01-01."""
    t = k / 1236.85
    t2, t3 = t * t, t * t * t
    dr = math.pi / 180
    jd1 = 2415020.75933 + 29.53058868 * k + 0.0001178 * t2 - 0.000000155 * t3
    jd1 += 0.00033 * math.sin((166.56 + 132.87 * t - 0.009173 * t2) * dr)
    m = 359.2242 + 29.10535608 * k - 0.0000333 * t2 - 0.00000347 * t3
    mpr = 306.0253 + 385.81691806 * k + 0.0107306 * t2 + 0.00001236 * t3
    f = 21.2964 + 390.67050646 * k - 0.0016528 * t2 - 0.00000239 * t3
    c1 = (0.1734 - 0.000393 * t) * math.sin(m * dr) + 0.0021 * math.sin(2 * dr * m)
    c1 += -0.4068 * math.sin(mpr * dr) + 0.0161 * math.sin(dr * 2 * mpr) - 0.0004 * math.sin(dr * 3 * mpr)
    c1 += 0.0104 * math.sin(dr * 2 * f) - 0.0051 * math.sin(dr * (m + mpr))
    c1 += -0.0074 * math.sin(dr * (m - mpr)) + 0.0004 * math.sin(dr * (2 * f + m))
    c1 += -0.0004 * math.sin(dr * (2 * f - m)) - 0.0006 * math.sin(dr * (2 * f + mpr))
    c1 += 0.0010 * math.sin(dr * (2 * f - mpr)) + 0.0005 * math.sin(dr * (2 * mpr + m))
    if t < -11:
        delta_t = 0.001 + 0.000839 * t + 0.0002261 * t2 - 0.00000845 * t3 - 0.000000081 * t * t3
    else:
        delta_t = -0.000278 + 0.000265 * t + 0.000262 * t2
    return jd1 + c1 - delta_t


def _new_moon_day(k: int, tz: float) -> int:
    return math.floor(_new_moon(k) + 0.5 + tz / 24)


def _sun_longitude_sector(day: int, tz: float) -> int:
    """Which of the 12 30-degree sectors the sun is in at local midnight starting `day`."""
    t = (day - 0.5 - tz / 24 - 2451545.0) / 36525
    t2 = t * t
    dr = math.pi / 180
    m = 357.52910 + 35999.05030 * t - 0.0001559 * t2 - 0.00000048 * t * t2
    l0 = 280.46645 + 36000.76983 * t + 0.0003032 * t2
    dl = (1.914600 - 0.004817 * t - 0.000014 * t2) * math.sin(dr * m)
    dl += (0.019993 - 0.000101 * t) * math.sin(dr * 2 * m) + 0.000290 * math.sin(dr * 3 * m)
    longitude = (l0 + dl) * dr
    longitude -= math.pi * 2 * math.floor(longitude / (math.pi * 2))
    return math.floor(longitude / math.pi * 6)


def _month11_start(year: int, tz: float) -> int:
    """The first day of the 11th lunar month (the one holding the winter solstice) of `year`."""
    off = _jd_from_date(date(year, 12, 31)) - 2415021
    k = math.floor(off / 29.530588853)
    day = _new_moon_day(k, tz)
    if _sun_longitude_sector(day, tz) >= 9:
        day = _new_moon_day(k - 1, tz)
    return day


def _leap_month_offset(a11: int, tz: float) -> int:
    k = math.floor((a11 - 2415021.076998695) / 29.530588853 + 0.5)
    i = 1
    arc = _sun_longitude_sector(_new_moon_day(k + i, tz), tz)
    while True:
        last = arc
        i += 1
        arc = _sun_longitude_sector(_new_moon_day(k + i, tz), tz)
        if arc == last or i >= 14:
            return i - 1


@lru_cache(maxsize=256)
def lunar_new_year(year: int, tz: float = VIETNAM_UTC_OFFSET) -> date:
    """The solar date of Tết Nguyên Đán (1st day of the 1st lunar month) in `year`."""
    a11 = _month11_start(year - 1, tz)
    b11 = _month11_start(year, tz)
    k = math.floor(0.5 + (a11 - 2415021.076998695) / 29.530588853)
    offset = 2  # month 1 is two months after month 11
    if b11 - a11 > 365 and offset >= _leap_month_offset(a11, tz):  # a leap month 11 or 12 comes first
        offset += 1
    return _date_from_jd(_new_moon_day(k + offset, tz))


@dataclass(frozen=True)
class Blackouts:
    """Days without surveys, in the shop's time zone."""

    tet: bool = True
    tet_before: int = 1  # days before the first day of Tết (Giao thừa, the eve)
    tet_after: int = 4  # days after it (the first days of the year are visits and family)
    dates: frozenset[date] = field(default_factory=frozenset)
    yearly: frozenset[tuple[int, int]] = field(default_factory=frozenset)  # (month, day) every year

    def is_blackout(self, day: date) -> bool:
        if day in self.dates or (day.month, day.day) in self.yearly:
            return True
        if not self.tet:
            return False
        for year in (day.year, day.year + 1):  # Tết in late January: the eve may be in the year before
            first = lunar_new_year(year)
            if first - timedelta(days=self.tet_before) <= day <= first + timedelta(days=self.tet_after):
                return True
        return False

    def end_of(self, at: datetime, tz: tzinfo) -> datetime:
        """The first moment at or after `at` that is not in a blackout day (local midnight after it)."""
        local = at.astimezone(tz)
        day = local.date()
        if not self.is_blackout(day):
            return at
        for _ in range(400):  # a year of blackouts would be a config mistake: stop looking
            day += timedelta(days=1)
            if not self.is_blackout(day):
                break
        return datetime.combine(day, datetime.min.time(), tzinfo=tz).astimezone(at.tzinfo)


NO_BLACKOUTS = Blackouts(tet=False)
