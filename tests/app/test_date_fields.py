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


# A moment is stored and read back in UTC: one whose UTC value leaves years 1 to 9999 can be
# neither (9999-12-31T23:59:59-14:00 is in the year 10000). Refused as out of range, naming the
# field, wherever a date-time is read: never "NUL characters are not allowed" or a 500.
OUT_OF_RANGE_DATE_TIMES = ["9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59.999999-00:01", "0001-01-01T00:00:00+14:00",
                           "0001-01-01T00:00:00+00:01"]
EDGE_DATE_TIMES = {"9999-12-31T23:59:59Z": dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc),
                   "0001-01-01T00:00:00Z": dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc),
                   "9999-12-31T09:59:59-14:00": dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc)}


@pytest.mark.parametrize("schema, name, field", DATE_TIME_FIELDS, ids=[f"{s}.{n}" for s, n, _ in DATE_TIME_FIELDS])
def test_a_date_time_outside_the_years_1_to_9999_in_utc_is_out_of_range(schema, name, field):
    for value, moment in EDGE_DATE_TIMES.items():
        assert field.deserialize(value) == moment, value
    for value in OUT_OF_RANGE_DATE_TIMES:
        with pytest.raises(Exception) as refused:
            field.deserialize(value)
        assert "Out of range" in str(refused.value) and "NUL" not in str(refused.value), value


def date_time_places() -> list[tuple[object, str, str]]:
    """(operation, where, field) for every date-time a request can carry: the top-level body
    fields and the query parameters of format date-time in the OpenAPI document."""
    from app import create_app
    from tests.security.surface import OPERATIONS
    from tests.service_fixtures import make_settings

    class NoDatabase:
        observe = None

        def open(self, wait=False):
            pass

    spec = create_app(make_settings("postgresql://unused/unused"), database=NoDatabase()).extensions["api"].spec.to_dict()
    components = spec.get("components", {}).get("schemas", {})

    def resolve(schema: dict) -> dict:
        while "$ref" in schema:
            schema = components[schema["$ref"].rsplit("/", 1)[1]]
        return schema

    places = []
    for op in OPERATIONS:
        operation = spec["paths"][op.template][op.method]
        for parameter in operation.get("parameters", []):
            if parameter.get("in") == "query" and resolve(parameter.get("schema", {})).get("format") == "date-time":
                places.append((op, "query", parameter["name"]))
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if body and op.valid_body is not None:
            for name, prop in resolve(body).get("properties", {}).items():
                if resolve(prop).get("format") == "date-time" and not prop.get("readOnly"):
                    places.append((op, "json", name))
    return places


DATE_TIME_PLACES = date_time_places()


@pytest.fixture
def unchanged(db):
    """No table of the database changed (as tests/security/conftest.py's)."""
    from tests.security.state import fingerprint

    before = fingerprint(db)
    yield
    after = fingerprint(db)
    assert [name for name in before if before[name] != after.get(name)] == []


def test_the_date_time_places_are_found():
    found = {f"{op} {where}.{name}" for op, where, name in DATE_TIME_PLACES}
    assert {"POST /api/workflows json.dueDate", "PATCH /api/workflows/{workflow_id} json.dueDate",
            "GET /api/workflows query.createdAfter"} <= found, found


@pytest.mark.parametrize("value", OUT_OF_RANGE_DATE_TIMES)
@pytest.mark.parametrize("op, where, name", DATE_TIME_PLACES, ids=[f"{o} {w}.{n}" for o, w, n in DATE_TIME_PLACES])
def test_an_out_of_range_date_time_is_a_422_naming_the_field_everywhere(as_, unchanged, op, where, name, value):
    from tests.security.state import assert_refused

    caller = as_("operator")
    if where == "query":
        response = getattr(caller, op.method)(op.path(), query_string={name: value})
    else:
        response = getattr(caller, op.method)(op.path(), json={**op.valid_body, name: value})
    error = assert_refused(response, 422)
    assert name in str(error["details"]) and "Out of range" in str(error["details"]), error
    assert "NUL" not in error["message"]
