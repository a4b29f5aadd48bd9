"""Business-time arithmetic: public.add_business_minutes and public.business_minutes_between.

Fixed examples run against the seeded calendar (Mon-Fri 09:00-17:00 America/New_York, US federal
holidays 2026-2027); tests that need another calendar change the rows inside the test's
transaction, which the `db` fixture rolls back. Properties compare the SQL with the independent
zoneinfo model in business_time_reference.py.

Hypothesis settings: max_examples=300 per property on the seeded calendar (5 properties) and
max_examples=300 for the random-calendar property, deadline=None, database=None (no .hypothesis
directory), suppress_health_check=[HealthCheck.function_scoped_fixture]; starts drawn across
2026-2027 in UTC at minute resolution (second resolution for business_minutes_between), minutes
0..10,000.
"""

from __future__ import annotations

import functools
import time as clock
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import business_time_reference as ref

UTC = timezone.utc
NY = ZoneInfo("America/New_York")

SEEDED = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
RANDOM_CALENDARS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)


def add(db, start: datetime | None, minutes: int | None) -> datetime | None:
    row = db.execute(
        "select public.add_business_minutes(%s::timestamptz, %s::integer) as due", (start, minutes)
    ).fetchone()
    return row["due"]


def between(db, a: datetime | None, b: datetime | None) -> int | None:
    row = db.execute(
        "select public.business_minutes_between(%s::timestamptz, %s::timestamptz) as minutes", (a, b)
    ).fetchone()
    return row["minutes"]


def set_calendar(db, tz: str, hours: dict[int, tuple[str, str]], holidays=()) -> None:
    db.execute("delete from public.business_hours_config")
    db.execute("delete from public.business_holidays")
    for weekday, (opens, closes) in hours.items():
        db.execute(
            "insert into public.business_hours_config (weekday, opens_at, closes_at, timezone)"
            " values (%s, %s::time, %s::time, %s)",
            (weekday, opens, closes, tz),
        )
    for day in holidays:
        db.execute(
            "insert into public.business_holidays (holiday_date, name) values (%s, 'test holiday')", (day,)
        )


# ============================================================================================
# Fixed examples on the seeded calendar
# ============================================================================================
def test_friday_afternoon_plus_an_hour_is_monday_half_past_nine(db):
    assert add(db, ny(2026, 11, 20, 16, 30), 60) == ny(2026, 11, 23, 9, 30)
    assert between(db, ny(2026, 11, 20, 16, 30), ny(2026, 11, 23, 9, 30)) == 60


def test_start_on_saturday_counts_from_monday_opening(db):
    assert add(db, ny(2026, 11, 21, 10, 0), 30) == ny(2026, 11, 23, 9, 30)
    assert between(db, ny(2026, 11, 21, 10, 0), ny(2026, 11, 23, 9, 0)) == 0


def test_start_before_opening_counts_from_opening(db):
    assert add(db, ny(2026, 11, 24, 7, 0), 90) == ny(2026, 11, 24, 10, 30)


def test_minutes_running_out_at_closing_return_the_closing_time(db):
    assert add(db, ny(2026, 11, 24, 9, 0), 480) == ny(2026, 11, 24, 17, 0)
    assert add(db, ny(2026, 11, 20, 16, 0), 60) == ny(2026, 11, 20, 17, 0)  # a Friday: not Monday 09:00
    assert add(db, ny(2026, 11, 24, 9, 0), 481) == ny(2026, 11, 25, 9, 1)


def test_zero_minutes_return_start_inside_hours_and_next_opening_outside(db):
    assert add(db, ny(2026, 11, 24, 9, 0), 0) == ny(2026, 11, 24, 9, 0)
    assert add(db, ny(2026, 11, 24, 16, 59, 59), 0) == ny(2026, 11, 24, 16, 59, 59)
    assert add(db, ny(2026, 11, 20, 17, 0), 0) == ny(2026, 11, 23, 9, 0)
    assert add(db, ny(2026, 11, 24, 8, 59), 0) == ny(2026, 11, 24, 9, 0)


def test_thanksgiving_is_skipped(db):
    # Wednesday 2026-11-25 16:00 + 2 h: one hour Wednesday, Thursday is Thanksgiving, one hour Friday.
    assert add(db, ny(2026, 11, 25, 16, 0), 120) == ny(2026, 11, 27, 10, 0)
    assert between(db, ny(2026, 11, 26, 0, 0), ny(2026, 11, 27, 0, 0)) == 0


def test_seven_business_days_skip_the_weekend_and_thanksgiving(db):
    assert add(db, ny(2026, 11, 23, 10, 0), 7 * 480) == ny(2026, 12, 3, 10, 0)


def test_spring_forward_weekend_keeps_wall_clock_hours(db):
    # 2026-03-08 02:00 EST -> 03:00 EDT. Friday 16:00 EST is 21:00 UTC; Monday 10:00 EDT is 14:00 UTC.
    due = add(db, ny(2026, 3, 6, 16, 0), 120)
    assert due == datetime(2026, 3, 9, 14, 0, tzinfo=UTC)
    assert between(db, ny(2026, 3, 6, 9, 0), ny(2026, 3, 10, 9, 0)) == 2 * 480


def test_fall_back_weekend_keeps_wall_clock_hours(db):
    # 2026-11-01 02:00 EDT -> 01:00 EST. Friday 16:00 EDT is 20:00 UTC; Monday 10:00 EST is 15:00 UTC.
    due = add(db, ny(2026, 10, 30, 16, 0), 120)
    assert due == datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
    assert between(db, ny(2026, 10, 30, 9, 0), ny(2026, 11, 3, 9, 0)) == 2 * 480


def test_business_day_on_a_dst_change_day_is_eight_hours(db):
    db.execute(
        "insert into public.business_hours_config (weekday, opens_at, closes_at, timezone)"
        " values (7, '09:00', '17:00', 'America/New_York')"
    )
    for sunday in (date(2026, 3, 8), date(2026, 11, 1)):
        opening = datetime(sunday.year, sunday.month, sunday.day, 9, 0, tzinfo=NY)
        assert add(db, opening, 480) == datetime(sunday.year, sunday.month, sunday.day, 17, 0, tzinfo=NY)
        assert between(db, opening - timedelta(hours=9), opening + timedelta(hours=15)) == 480


def test_all_day_hours_on_dst_change_days_count_real_time(db):
    # 00:00-24:00 on the change day holds 23 real hours in March and 25 in November.
    db.execute(
        "insert into public.business_hours_config (weekday, opens_at, closes_at, timezone)"
        " values (7, '00:00', '24:00', 'America/New_York')"
    )
    assert between(db, ny(2026, 3, 7, 12), ny(2026, 3, 9, 0)) == 23 * 60
    assert between(db, ny(2026, 10, 31, 12), ny(2026, 11, 2, 0)) == 25 * 60
    assert add(db, ny(2026, 11, 1, 0, 0), 25 * 60) == ny(2026, 11, 2, 0, 0)


def test_multi_week_span_ends_at_friday_closing(db):
    # Three full weeks from Monday 2026-11-30 09:00 (no holidays): ends Friday 17:00, not Monday.
    assert add(db, ny(2026, 11, 30, 9, 0), 15 * 480) == ny(2026, 12, 18, 17, 0)
    assert between(db, ny(2026, 11, 30, 9, 0), ny(2026, 12, 21, 9, 0)) == 15 * 480


def test_multi_week_span_over_christmas_and_new_year(db):
    # Ten business days from Monday 2026-12-21: 12-25 and 2027-01-01 are holidays.
    assert add(db, ny(2026, 12, 21, 9, 0), 10 * 480) == ny(2027, 1, 5, 17, 0)


def test_between_is_antisymmetric_and_floors_to_whole_minutes(db):
    a, b = ny(2026, 11, 24, 9, 0), ny(2026, 11, 24, 10, 0, 59)
    assert between(db, a, b) == 60
    assert between(db, b, a) == -60
    assert between(db, a, a) == 0


def test_null_start_or_bounds_give_null(db):
    assert add(db, None, 10) is None
    assert between(db, None, ny(2026, 11, 24, 9, 0)) is None
    assert between(db, ny(2026, 11, 24, 9, 0), None) is None


def test_results_do_not_depend_on_the_session_time_zone(db):
    db.execute("set local timezone = 'Asia/Tokyo'")
    assert add(db, ny(2026, 11, 20, 16, 30), 60) == ny(2026, 11, 23, 9, 30)
    assert add(db, ny(2026, 3, 6, 16, 0), 120) == datetime(2026, 3, 9, 14, 0, tzinfo=UTC)
    assert between(db, ny(2026, 10, 30, 9, 0), ny(2026, 11, 3, 9, 0)) == 2 * 480


def test_hundred_thousand_minutes_finish_quickly_and_match_the_reference(db):
    cal = ref.load_calendar(db)
    start = ny(2026, 1, 2, 16, 30)
    began = clock.perf_counter()
    due = add(db, start, 100_000)
    assert clock.perf_counter() - began < 0.5
    assert due == ref.add_business_minutes(cal, start, 100_000)
    assert between(db, start, due) == 100_000


# ============================================================================================
# Other calendars (changed inside the test's transaction)
# ============================================================================================
def test_saturday_hours_are_used_when_configured(db):
    db.execute(
        "insert into public.business_hours_config (weekday, opens_at, closes_at, timezone)"
        " values (6, '10:00', '14:00', 'America/New_York')"
    )
    assert add(db, ny(2026, 11, 20, 16, 30), 60) == ny(2026, 11, 21, 10, 30)
    assert add(db, ny(2026, 11, 21, 13, 0), 120) == ny(2026, 11, 23, 10, 0)


def test_custom_holiday_is_skipped(db):
    db.execute("insert into public.business_holidays (holiday_date, name) values ('2026-11-23', 'Office move')")
    assert add(db, ny(2026, 11, 20, 16, 30), 60) == ny(2026, 11, 24, 9, 30)


def test_calendar_in_another_time_zone(db):
    london = ZoneInfo("Europe/London")
    set_calendar(db, "Europe/London", {d: ("09:00", "17:00") for d in range(1, 6)})
    # UK clocks go forward on 2026-03-29, three weeks after the US.
    due = add(db, datetime(2026, 3, 27, 16, 30, tzinfo=london), 60)
    assert due == datetime(2026, 3, 30, 9, 30, tzinfo=london)
    assert due == datetime(2026, 3, 30, 8, 30, tzinfo=UTC)
    assert add(db, datetime(2026, 11, 26, 9, 0, tzinfo=london), 60) == datetime(2026, 11, 26, 10, 0, tzinfo=london)


# ============================================================================================
# Errors
# ============================================================================================
def test_negative_minutes_are_rejected(db):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="negative"):
        with db.transaction():
            add(db, ny(2026, 11, 24, 9, 0), -1)


def test_null_minutes_are_rejected(db):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="null"):
        with db.transaction():
            add(db, ny(2026, 11, 24, 9, 0), None)


def test_no_configured_hours_is_an_error(db):
    db.execute("delete from public.business_hours_config")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="no business hours configured"):
        with db.transaction():
            add(db, ny(2026, 11, 24, 9, 0), 0)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="no business hours configured"):
        with db.transaction():
            between(db, ny(2026, 11, 24, 9, 0), ny(2026, 11, 25, 9, 0))


def test_calendar_without_any_open_day_gives_up_with_an_error(db):
    set_calendar(db, "America/New_York", {1: ("09:00", "17:00")})
    db.execute(
        "insert into public.business_holidays (holiday_date, name)"
        " select d::date, 'every Monday' from generate_series('2026-01-05'::date, '2037-01-05'::date, '7 days') d"
    )
    began = clock.perf_counter()
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="3660 days"):
        with db.transaction():
            add(db, ny(2026, 1, 1, 9, 0), 1)
    assert clock.perf_counter() - began < 1.0


# ============================================================================================
# Properties against the reference model (seeded calendar)
# ============================================================================================
DAYS = st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 12, 31))
# Local times around the interesting instants (opening, closing, DST changes) or any minute.
LOCAL_MINUTES = st.one_of(
    st.sampled_from([0, 90, 150, 8 * 60 + 59, 9 * 60, 9 * 60 + 1, 16 * 60 + 59, 17 * 60, 17 * 60 + 1]),
    st.integers(0, 24 * 60 - 1),
)


@st.composite
def starts(draw) -> datetime:
    """An instant in 2026-2027 in UTC, minute resolution: uniform or near a New York boundary."""
    if draw(st.booleans()):
        moment = draw(
            st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31, 23, 59),
                         timezones=st.just(UTC))
        )
        return moment.replace(second=0, microsecond=0)
    day, minutes = draw(DAYS), draw(LOCAL_MINUTES)
    local = datetime(day.year, day.month, day.day, minutes // 60, minutes % 60, tzinfo=NY)
    return local.astimezone(UTC)


MINUTES = st.one_of(
    st.integers(0, 10_000),
    st.integers(0, 20).map(lambda k: k * 480),  # whole business days: ends at a closing time
    st.integers(0, 60).map(lambda k: k * 60),
)


@pytest.fixture
def calendar(db) -> ref.Calendar:
    return ref.load_calendar(db)


@SEEDED
@given(start=starts(), minutes=MINUTES)
def test_add_business_minutes_matches_the_reference(db, calendar, start, minutes):
    assert add(db, start, minutes) == ref.add_business_minutes(calendar, start, minutes)


@SEEDED
@given(a=starts(), span=st.integers(-15 * 24 * 3600, 15 * 24 * 3600))
def test_business_minutes_between_matches_the_reference(db, calendar, a, span):
    b = a + timedelta(seconds=span)
    assert between(db, a, b) == ref.business_minutes_between(calendar, a, b)


@SEEDED
@given(start=starts(), minutes=MINUTES)
def test_between_start_and_due_date_gives_back_the_minutes(db, start, minutes):
    row = db.execute(
        "with due as (select public.add_business_minutes(%s::timestamptz, %s::integer) as at)"
        " select public.business_minutes_between(%s::timestamptz, due.at) as back from due",
        (start, minutes, start),
    ).fetchone()
    assert row["back"] == minutes


@SEEDED
@given(start=starts(), m1=MINUTES, m2=MINUTES)
def test_more_minutes_never_give_an_earlier_due_date(db, start, m1, m2):
    low, high = sorted((m1, m2))
    assert add(db, start, low) <= add(db, start, high)


@SEEDED
@given(start=starts(), minutes=MINUTES.filter(lambda m: m > 0))
def test_due_date_lies_inside_business_hours(db, calendar, start, minutes):
    due = add(db, start, minutes)
    assert due > start
    assert ref.is_inside_business_hours(calendar, due), due.astimezone(NY)


# ============================================================================================
# Property on random calendars: other zones (DST at 00:00, half-hour DST), odd hours, holidays
# ============================================================================================
ZONES = [
    "America/New_York", "America/Los_Angeles", "Europe/London", "Australia/Lord_Howe",
    "America/Havana", "America/Santiago", "Asia/Kolkata", "UTC",
]


@functools.cache
def dst_change_days(tz: str) -> list[date]:
    """Local dates in 2026-2027 on which the zone's UTC offset changes."""
    zone, days = ZoneInfo(tz), []
    noon = datetime(2026, 1, 1, 12, tzinfo=UTC)
    while noon.year < 2028:
        if (noon + timedelta(days=1)).astimezone(zone).utcoffset() != noon.astimezone(zone).utcoffset():
            days.append((noon + timedelta(days=1)).astimezone(zone).date())
        noon += timedelta(days=1)
    return days


EARLY_MINUTES = st.sampled_from([0, 30, 60, 90, 120, 150, 180])  # where zones change their clocks


@st.composite
def calendars(draw) -> ref.Calendar:
    hours: dict[int, tuple[int, int]] = {}
    for weekday in draw(st.sets(st.integers(1, 7), min_size=1)):
        opens = draw(st.one_of(EARLY_MINUTES, st.integers(0, 24 * 60 - 1)))
        closes = draw(st.one_of(EARLY_MINUTES.filter(lambda m: m > opens), st.integers(opens + 1, 24 * 60)))
        hours[weekday] = (opens * 60, closes * 60)
    holidays = draw(st.frozensets(DAYS, max_size=12))
    return ref.Calendar(tz=draw(st.sampled_from(ZONES)), hours=hours, holidays=holidays)


def hhmm(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


@st.composite
def calendar_and_start(draw) -> tuple[ref.Calendar, datetime]:
    """A random calendar and a start: anywhere in 2026-2027, or up to 3 days before a DST change."""
    cal = draw(calendars())
    change_days = dst_change_days(cal.tz)
    if change_days and draw(st.booleans()):
        day = draw(st.sampled_from(change_days))
        start = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(
            seconds=draw(st.integers(0, 3 * 24 * 3600))
        )
    else:
        start = draw(
            st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31),
                         timezones=st.just(UTC))
        ).replace(microsecond=0)
    return cal, start


@RANDOM_CALENDARS
@given(
    cal_start=calendar_and_start(),
    minutes=st.one_of(st.integers(0, 10_000), st.integers(0, 600)),
    span=st.integers(-10 * 24 * 3600, 10 * 24 * 3600),
)
def test_random_calendars_match_the_reference(db, cal_start, minutes, span):
    cal, start = cal_start
    with db.transaction(force_rollback=True):
        set_calendar(
            db, cal.tz, {d: (hhmm(o), hhmm(c)) for d, (o, c) in cal.hours.items()}, sorted(cal.holidays)
        )
        try:
            expected = ref.add_business_minutes(cal, start, minutes)
        except ValueError:  # too little business time within 3660 days: SQL must give up too
            with pytest.raises(psycopg.errors.InvalidParameterValue, match="3660 days"):
                with db.transaction():
                    add(db, start, minutes)
            return
        due = add(db, start, minutes)
        assert due == expected
        assert between(db, start, due) == minutes
        if minutes > 0:
            local_day = due.astimezone(cal.zone).date()
            intervals = [ref.day_interval(cal, local_day - k * ref.ONE_DAY) for k in (0, 1)]
            assert any(iv and iv[0] < due <= iv[1] for iv in intervals)
        other = start + timedelta(seconds=span)
        assert between(db, start, other) == ref.business_minutes_between(cal, start, other)
