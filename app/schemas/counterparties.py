"""Counterparties, their contacts and their links to workflows: requests and responses."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from app.schemas import CamelSchema, PageArgs, comma_list
from app.schemas.communications import StrictBoolean, Text, email_address, http_url, json_object, phone_number

COUNTERPARTY_TYPES = ["hoa", "lender", "municipality", "utility", "tax_authority"]
LINK_STATUSES = ["PENDING", "CONTACTED", "RESPONDED", "COMPLETED"]


def not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("must not be blank")


class CounterpartyListArgs(PageArgs):
    type = comma_list(COUNTERPARTY_TYPES)
    search = Text(100)
    workflow_id = fields.UUID()


class ContactIn(CamelSchema):
    full_name = Text(200, required=True)
    title = Text(200)
    email = Text(320, validate=email_address)
    phone = Text(40, validate=phone_number)
    is_primary = StrictBoolean(load_default=False)


def at_most_entries(count: int):
    """An object of at most `count` entries (validate.Length would be documented as maxLength,
    which JSON Schema applies to strings only; the field says maxProperties)."""
    def check(value) -> None:
        if len(value) > count:
            raise ValidationError(f"at most {count} entries")
    return check


class CounterpartyCreate(CamelSchema):
    type = fields.String(required=True, validate=validate.OneOf(COUNTERPARTY_TYPES))
    name = Text(300, required=True, validate=not_blank)
    email = Text(320, validate=email_address)
    phone = Text(40, validate=phone_number)
    website = http_url(500)
    address = fields.Dict(keys=fields.String(validate=validate.Length(1, 50)),
                          values=fields.String(validate=validate.Length(max=500), allow_none=True),
                          validate=[at_most_entries(20), json_object(max_bytes=10_000, max_depth=2)],
                          metadata={"maxProperties": 20})
    has_ivr = StrictBoolean(load_default=False)
    requires_phone = StrictBoolean(load_default=False)
    contacts = fields.List(fields.Nested(ContactIn), validate=validate.Length(max=50), load_default=list)

    @validates_schema
    def one_primary_contact(self, data, **kwargs):
        if sum(1 for contact in data.get("contacts", []) if contact.get("is_primary")) > 1:
            raise ValidationError({"contacts": ["at most one contact may be primary"]})


class LinkCreate(CamelSchema):
    workflow_id = fields.UUID(required=True)
    status = fields.String(load_default="PENDING", validate=validate.OneOf(LINK_STATUSES))
    notes = Text(5000)


class LinkUpdate(CamelSchema):
    status = fields.String(required=True, validate=validate.OneOf(LINK_STATUSES))
    notes = Text(5000, allow_none=True)


class Contact(CamelSchema):
    id = fields.UUID()
    full_name = fields.String()
    title = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    is_primary = fields.Boolean()
    created_at = fields.DateTime()


class WorkflowLink(CamelSchema):
    id = fields.UUID()
    workflow_id = fields.UUID()
    counterparty_id = fields.UUID()
    status = fields.String(metadata={"enum": LINK_STATUSES})
    contacted_at = fields.DateTime(allow_none=True)
    responded_at = fields.DateTime(allow_none=True)
    notes = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class Counterparty(CamelSchema):
    id = fields.UUID()
    counterparty_type = fields.String(data_key="type", metadata={"enum": COUNTERPARTY_TYPES})
    name = fields.String()
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    website = fields.String(allow_none=True)
    address = fields.Dict()
    has_ivr = fields.Boolean()
    requires_phone = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    contacts = fields.List(fields.Nested(Contact))
    workflows = fields.List(fields.Nested(WorkflowLink))


class CounterpartyList(CamelSchema):
    counterparties = fields.List(fields.Nested(Counterparty))
    total_count = fields.Integer()
    has_more = fields.Boolean()
    next_cursor = fields.String(allow_none=True)
