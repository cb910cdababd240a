"""Local billing dates and UTC instants.

Billing periods are local calendar dates in the network's time zone; readings and every
stored datetime are aware and in UTC.  A local day is 23, 24 or 25 hours long.
"""

from __future__ import annotations

import datetime as dt
import functools
from zoneinfo import ZoneInfo

# The dates the product works with: a year before one, its local midnight in UTC and
# month arithmetic stay inside ``datetime``'s years 1-9999.
EARLIEST_DATE = dt.date(1900, 1, 1)
LATEST_DATE = dt.date(2200, 12, 31)


DATE_OUT_OF_RANGE = f"Enter a date from {EARLIEST_DATE} to {LATEST_DATE}."


def date_in_range(day: dt.date) -> bool:
    return EARLIEST_DATE <= day <= LATEST_DATE


def local_midnight(day: dt.date, tz: str | ZoneInfo) -> dt.datetime:
    """The aware instant at which ``day`` starts in ``tz``, expressed in UTC."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    return dt.datetime.combine(day, dt.time.min, tzinfo=zone).astimezone(dt.UTC)


def local_day_bounds(day: dt.date, tz: str | ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """Half-open ``[start, end)`` UTC bounds of the local day ``day``."""
    return local_midnight(day, tz), local_midnight(day + dt.timedelta(days=1), tz)


def local_period_bounds(
    start: dt.date, end: dt.date, tz: str | ZoneInfo
) -> tuple[dt.datetime, dt.datetime]:
    """UTC bounds of the half-open local date range ``[start, end)``."""
    return local_midnight(start, tz), local_midnight(end, tz)


@functools.lru_cache(maxsize=1024)
def hours_in_local_period(start: dt.date, end: dt.date, tz: str) -> int:
    """Hours of the local dates ``[start, end)``: 24 a day, but 23 or 25 on DST days."""
    since, until = local_period_bounds(start, end, tz)
    return int((until - since).total_seconds() // 3600)


def hours_in_local_day(day: dt.date, tz: str | ZoneInfo) -> int:
    start, end = local_day_bounds(day, tz)
    return int((end - start).total_seconds() // 3600)


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def add_months(day: dt.date, months: int) -> dt.date:
    """First day of the month ``months`` after ``day``'s month."""
    index = day.year * 12 + (day.month - 1) + months
    return dt.date(index // 12, index % 12 + 1, 1)


def month_starts(start: dt.date, end: dt.date) -> list[dt.date]:
    """The first days of months in ``[start, end)``."""
    days = []
    day = start if start.day == 1 else add_months(start, 1)
    while day < end:
        days.append(day)
        day = add_months(day, 1)
    return days


def months_between(start: dt.date, end: dt.date) -> int:
    """Whole calendar months from ``start``'s month to ``end``'s (the inverse of
    :func:`add_months` for month starts)."""
    return (end.year - start.year) * 12 + end.month - start.month


def days_between(start: dt.date, end: dt.date) -> int:
    return (end - start).days
