"""Independent Python model of the business calendar, for checking the SQL functions.

Deliberately simple: build each open local day's [opening, closing) interval with zoneinfo,
then walk the days one by one. Wall-clock semantics as in the migration: local date d contributes
[(d + opens_at) in tz, (d + closes_at) in tz). A local time that does not exist (spring forward)
or exists twice (fall back) maps to the later of its two candidate instants, which is what
PostgreSQL's `timestamp at time zone` does; an interval that ends before it starts is empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

UTC = timezone.utc
ONE_DAY = timedelta(days=1)
MAX_DAYS = 3660


@dataclass(frozen=True)
class Calendar:
    tz: str
    # ISO weekday (1 = Monday) -> (opens, closes) in seconds after local midnight; 86400 = 24:00.
    hours: dict[int, tuple[int, int]]
    holidays: frozenset[date]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)


def load_calendar(conn) -> Calendar:
    """Read business_hours_config and business_holidays (times as seconds, so 24:00 survives)."""
    rows = conn.execute(
        "select weekday, extract(epoch from opens_at)::integer as opens,"
        " extract(epoch from closes_at)::integer as closes, timezone"
        " from public.business_hours_config"
    ).fetchall()
    holidays = conn.execute("select holiday_date from public.business_holidays").fetchall()
    tz = rows[0]["timezone"] if rows else "UTC"
    return Calendar(
        tz=tz,
        hours={r["weekday"]: (r["opens"], r["closes"]) for r in rows},
        holidays=frozenset(h["holiday_date"] for h in holidays),
    )


def local_to_utc(day: date, seconds: int, zone: ZoneInfo) -> datetime:
    wall = datetime.combine(day, time()) + timedelta(seconds=seconds)
    return max(wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1))


def day_interval(cal: Calendar, day: date) -> tuple[datetime, datetime] | None:
    """The business interval of one local date, or None if no business time passes on it."""
    if day in cal.holidays or day.isoweekday() not in cal.hours:
        return None
    opens, closes = cal.hours[day.isoweekday()]
    start, end = local_to_utc(day, opens, cal.zone), local_to_utc(day, closes, cal.zone)
    return (start, end) if end > start else None


def add_business_minutes(cal: Calendar, start: datetime, minutes: int) -> datetime:
    if minutes < 0:
        raise ValueError("minutes must not be negative")
    if not cal.hours:
        raise ValueError("no business hours configured")
    left = timedelta(minutes=minutes)
    cursor = start
    first = start.astimezone(cal.zone).date() - ONE_DAY
    for offset in range(MAX_DAYS + 1):
        interval = day_interval(cal, first + offset * ONE_DAY)
        if interval is None or interval[1] <= cursor:
            continue
        begin = max(interval[0], cursor)
        if begin + left <= interval[1]:
            return begin + left
        left -= interval[1] - begin
        cursor = interval[1]
    raise ValueError("not enough business time")


def business_minutes_between(cal: Calendar, a: datetime, b: datetime) -> int:
    if b < a:
        return -business_minutes_between(cal, b, a)
    if not cal.hours:
        raise ValueError("no business hours configured")
    total = timedelta(0)
    day = a.astimezone(cal.zone).date() - ONE_DAY
    while day <= b.astimezone(cal.zone).date():
        interval = day_interval(cal, day)
        if interval is not None:
            overlap = min(interval[1], b) - max(interval[0], a)
            if overlap > timedelta(0):
                total += overlap
        day += ONE_DAY
    return total // timedelta(minutes=1)


def is_inside_business_hours(cal: Calendar, instant: datetime) -> bool:
    """opens < local time <= closes on an open, non-holiday local date (a due date's range)."""
    local = instant.astimezone(cal.zone)
    day = local.date()
    if day in cal.holidays or day.isoweekday() not in cal.hours:
        return False
    opens, closes = cal.hours[day.isoweekday()]
    seconds = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    return opens < seconds <= closes
