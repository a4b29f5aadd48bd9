"""Every date and date-time a caller sends, wherever it sits (bodies, payloads, query strings), is
read as the OpenAPI document writes it (format: date is YYYY-MM-DD; format: date-time is RFC 3339
with a zone) and not in ISO 8601's other spellings, which the standard library also reads: a
client that sends 20261215 or 2026-W50-1 gets a 422 saying the format, never a date it did not
mean. The property walks every schema of the service, so a date field added later is covered."""
from __future__ import annotations

import datetime as dt
import importlib
import inspect
import pkgutil

import pytest
from marshmallow import Schema, fields

import app.schemas
from app.schemas import IsoDate, IsoDateTime

OTHER_DATE_SPELLINGS = ["20261215", "2026-W50-1", "2026-W50", "2026-349", "2026-12", "2026-1-5", "2026-12-15T00:00:00Z",
                        "15/12/2026", "２０２６-12-15", " 2026-12-15", "2026-12-15\n", "2026-02-30", ""]
OTHER_DATE_TIME_SPELLINGS = ["20261215T143000Z", "2026-12-15T143000Z", "2026-W50-1T10:00:00Z", "2026-349T10:00:00Z",
                             "2026-12-15T14Z", "2026-12-15", "2026-12-15T14:30:00", "2026-12-15T14:30:00 Z",
                             "2026-12-15T14:30:00Z\n", "2026-12-15T25:00:00Z", "1765809000", ""]
GOOD_DATE_TIMES = {"2026-12-15T14:30:00Z": dt.datetime(2026, 12, 15, 14, 30, tzinfo=dt.timezone.utc),
                   "2026-12-15t14:30:00z": dt.datetime(2026, 12, 15, 14, 30, tzinfo=dt.timezone.utc),
                   "2026-12-15 14:30:00+00:00": dt.datetime(2026, 12, 15, 14, 30, tzinfo=dt.timezone.utc),
                   "2026-12-15T09:30:00.250-05:00": dt.datetime(2026, 12, 15, 14, 30, 0, 250000, tzinfo=dt.timezone.utc),
                   "2026-12-15T14:30Z": dt.datetime(2026, 12, 15, 14, 30, tzinfo=dt.timezone.utc)}


def date_fields() -> list[tuple[str, str, fields.Field]]:
    """(schema, field, the field) for every date or date-time field in the service's schemas."""
    found = []
    for module in pkgutil.iter_modules(app.schemas.__path__, "app.schemas."):
        for name, schema in inspect.getmembers(importlib.import_module(module.name), inspect.isclass):
            if issubclass(schema, Schema) and schema.__module__ == module.name:
                for field_name, field in schema._declared_fields.items():
                    if isinstance(field, (fields.Date, fields.DateTime)) and not field.dump_only:
                        found.append((name, field_name, field))
    return found


INPUT_FIELDS = [(schema, name, field) for schema, name, field in date_fields()
                if not isinstance(field, fields.DateTime) or isinstance(field, IsoDateTime) or field.load_only]
DATE_FIELDS = [f for f in INPUT_FIELDS if isinstance(f[2], fields.Date)]
DATE_TIME_FIELDS = [f for f in INPUT_FIELDS if isinstance(f[2], fields.DateTime)]


def test_every_date_field_a_caller_fills_is_one_of_the_strict_kinds():
    # Response schemas use plain fields (they only write); anything a request reads is strict.
    assert DATE_FIELDS and DATE_TIME_FIELDS
    loose = [f"{schema}.{name}" for schema, name, field in date_fields()
             if isinstance(field, fields.Date) and not isinstance(field, IsoDate)]
    assert loose == []


@pytest.mark.parametrize("schema, name, field", DATE_FIELDS, ids=[f"{s}.{n}" for s, n, _ in DATE_FIELDS])
def test_a_date_is_yyyy_mm_dd_and_nothing_else(schema, name, field):
    assert field.deserialize("2026-12-15") == dt.date(2026, 12, 15)
    for value in OTHER_DATE_SPELLINGS:
        with pytest.raises(Exception) as refused:
            field.deserialize(value)
        assert "use YYYY-MM-DD" in str(refused.value), value


@pytest.mark.parametrize("schema, name, field", DATE_TIME_FIELDS, ids=[f"{s}.{n}" for s, n, _ in DATE_TIME_FIELDS])
def test_a_date_time_is_rfc_3339_with_a_zone_and_nothing_else(schema, name, field):
    for value, moment in GOOD_DATE_TIMES.items():
        assert field.deserialize(value) == moment, value
    for value in OTHER_DATE_TIME_SPELLINGS:
        with pytest.raises(Exception) as refused:
            field.deserialize(value)
        assert "2026-12-15T14:30:00Z" in str(refused.value), value
