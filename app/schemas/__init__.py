"""Marshmallow schemas: snake_case in Python and SQL, camelCase on the wire."""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
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


def encode_cursor(created_at: dt.datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    """The (created_at, id) a cursor points after; ValueError when it was not made by us."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = json.loads(raw)
        created = dt.datetime.fromisoformat(created_at)
        if created.tzinfo is None:
            raise ValueError("naive timestamp")
        return created, uuid.UUID(row_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as error:
        raise ValueError("the cursor is not valid") from error


PRIORITIES = ["LOW", "NORMAL", "HIGH", "URGENT"]
WORKFLOW_TYPES = ["MUNI_LIEN_SEARCH", "HOA_ACQUISITION", "PAYOFF_REQUEST"]
WORKFLOW_STATUSES = ["PENDING", "IN_PROGRESS", "AWAITING_REVIEW", "BLOCKED", "PAUSED", "COMPLETED", "FAILED", "CANCELLED"]
TASK_STATUSES = ["PENDING", "RUNNING", "WAITING", "AWAITING_REVIEW", "COMPLETED", "FAILED", "SKIPPED", "CANCELLED"]
SLA_STATUSES = ["ON_TIME", "AT_RISK", "BREACHED"]
