"""Marshmallow schemas: snake_case in Python and SQL, camelCase on the wire."""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import uuid

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema
from webargs.fields import DelimitedList


def camelcase(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class CamelSchema(Schema):
    """Every field is named in camelCase on the wire; unknown fields are refused."""

    class Meta:
        unknown = RAISE
        ordered = True

    def on_bind_field(self, field_name, field_obj):
        field_obj.data_key = camelcase(field_obj.data_key or field_name)


# What the OpenAPI document promises (format: date, format: date-time) and no more: the standard
# library also reads ISO 8601's other spellings (20261215, week dates like 2026-W50-1, basic
# times like 20261215T143000Z), which a client sending them almost surely did not mean.
CALENDAR_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:[Zz]|[+-]\d{2}:?\d{2})?$")


class IsoDate(fields.Date):
    """A calendar date written YYYY-MM-DD, whose error says the format expected."""

    default_error_messages = {"invalid": "Not a valid date: use YYYY-MM-DD, e.g. 2026-12-15.",
                              "format": "Not a valid date: use YYYY-MM-DD, e.g. 2026-12-15."}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not CALENDAR_DATE.match(value):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class IsoDateTime(fields.AwareDateTime):
    """A moment with its time zone (RFC 3339: 2026-12-15T14:30:00Z), whose error says the format
    expected."""

    default_error_messages = {"invalid": "Not a valid date and time: use ISO 8601 with a time zone, "
                                         "e.g. 2026-12-15T14:30:00Z or 2026-12-15T09:30:00-05:00.",
                              "invalid_awareness": "Give a time zone: e.g. 2026-12-15T14:30:00Z.",
                              "format": "Not a valid date and time: use ISO 8601, e.g. 2026-12-15T14:30:00Z.",
                              "range": "Out of range: the moment in UTC must fall between 0001-01-01T00:00:00Z and "
                                       "9999-12-31T23:59:59Z (this one is {utc})."}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not DATE_TIME.match(value):
            raise self.make_error("invalid")
        moment = super()._deserialize(value.upper(), attr, data, **kwargs)  # RFC 3339 allows t and z
        # A moment is stored and read back in UTC: one whose UTC value leaves years 1 to 9999
        # (9999-12-31T23:59:59-14:00 is in the year 10000) could be neither sent nor read back.
        try:
            moment.astimezone(dt.timezone.utc)
        except OverflowError:
            raise self.make_error("range", utc="after 9999-12-31T23:59:59Z" if moment.year > 1
                                  else "before 0001-01-01T00:00:00Z") from None
        return moment


def snakecase(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def comma_list(allowed: list[str]):
    """A comma-separated query value whose items must all be in `allowed`."""
    return DelimitedList(fields.String(validate=validate.OneOf(allowed)), load_default=list)


class PageArgs(CamelSchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 1_000_000))
    cursor = fields.String(load_default=None, validate=validate.Length(max=200))

    @validates_schema
    def one_way_to_page(self, data, **kwargs):
        if data.get("cursor") and data.get("offset"):
            raise ValidationError("use either offset or cursor, not both", "cursor")


class Page(CamelSchema):
    total_count = fields.Integer()
    has_more = fields.Boolean()
    next_cursor = fields.String(allow_none=True)


def encode_cursor(values: list) -> str:
    """An opaque cursor for the row whose order-by values these are."""
    plain = [v.isoformat() if isinstance(v, dt.datetime) else str(v) if isinstance(v, uuid.UUID) else v for v in values]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kinds: tuple[type, ...] = (dt.datetime, uuid.UUID)) -> list:
    """The order-by values a cursor points after, each read as its kind (an aware datetime, a
    uuid, an int, a str); ValueError when it was not made by us for this order."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(kinds):
            raise ValueError("wrong shape")
        decoded = []
        for value, kind in zip(values, kinds):
            if kind is dt.datetime:
                moment = dt.datetime.fromisoformat(value)
                if moment.tzinfo is None:
                    raise ValueError("naive timestamp")
                decoded.append(moment)
            elif kind is uuid.UUID:
                decoded.append(uuid.UUID(value))
            elif kind is int and type(value) is int or kind is str and type(value) is str:
                decoded.append(value)
            else:
                raise ValueError(f"not a {kind.__name__}")
        return decoded
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, AttributeError) as error:
        raise ValueError("the cursor is not valid") from error


PRIORITIES = ["LOW", "NORMAL", "HIGH", "URGENT"]
WORKFLOW_TYPES = ["MUNI_LIEN_SEARCH", "HOA_ACQUISITION", "PAYOFF_REQUEST"]
WORKFLOW_STATUSES = ["PENDING", "IN_PROGRESS", "AWAITING_REVIEW", "BLOCKED", "PAUSED", "COMPLETED", "FAILED", "CANCELLED"]
TASK_STATUSES = ["PENDING", "RUNNING", "WAITING", "AWAITING_REVIEW", "COMPLETED", "FAILED", "SKIPPED", "CANCELLED"]
SLA_STATUSES = ["ON_TIME", "AT_RISK", "BREACHED"]
