"""Documents: requests and responses."""
from __future__ import annotations

import re

from marshmallow import ValidationError, fields, validate, validates_schema
from webargs.fields import DelimitedList

from app.schemas import CamelSchema, PageArgs, comma_list
from app.schemas.communications import StrictBoolean, StrictInteger, Text, json_object

DOCUMENT_TYPES = ["WORKING", "DELIVERABLE", "ATTACHMENT"]
DOCUMENT_STATUSES = ["PENDING", "RECEIVED", "PROCESSING", "READY", "APPROVED", "REJECTED", "SUPERSEDED"]
# SUPERSEDED is set by the database when a newer version of a deliverable arrives.
REGISTRABLE_STATUSES = [s for s in DOCUMENT_STATUSES if s != "SUPERSEDED"]
CODE = r"^[a-z][a-z0-9_]{0,99}$"
CONTENT_TYPE = r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"
MAX_SIZE_BYTES = 10 * 1024 ** 3


def storage_path(value: str) -> None:
    """A relative object path in Supabase Storage: no leading slash, no '.' or '..' segments,
    no backslashes or control characters."""
    if value.startswith("/") or "\\" in value or re.search(r"[\x00-\x1f\x7f]", value):
        raise ValidationError("must be a relative path without control characters or backslashes")
    if any(segment in ("", ".", "..") for segment in value.split("/")):
        raise ValidationError("must not contain empty, '.' or '..' segments")


class DocumentListArgs(PageArgs):
    workflow_id = fields.UUID()
    task_id = fields.UUID()
    document_type = comma_list(DOCUMENT_TYPES)
    status = comma_list(DOCUMENT_STATUSES)
    tag = DelimitedList(fields.String(validate=validate.Regexp(CODE)), load_default=list,
                        validate=validate.Length(max=20))


class DocumentCreate(CamelSchema):
    workflow_id = fields.UUID(required=True)
    task_id = fields.UUID()
    document_type = fields.String(required=True, validate=validate.OneOf(DOCUMENT_TYPES))
    filename = Text(500, required=True)
    storage_path = Text(1000, validate=storage_path)
    content_type = Text(255, validate=validate.Regexp(CONTENT_TYPE))
    size_bytes = StrictInteger(validate=validate.Range(0, MAX_SIZE_BYTES))
    status = fields.String(validate=validate.OneOf(REGISTRABLE_STATUSES))
    is_client_visible = StrictBoolean()
    deliverable_key = fields.String(validate=validate.Regexp(CODE))
    deliverable_data = fields.Dict(validate=json_object())
    tags = fields.List(fields.String(validate=validate.Regexp(CODE)), validate=validate.Length(max=20),
                       load_default=list)

    @validates_schema
    def deliverables_have_keys(self, data, **kwargs):
        errors = {}
        if data.get("document_type") == "DELIVERABLE":
            if not data.get("deliverable_key"):
                errors["deliverableKey"] = ["a DELIVERABLE needs a deliverableKey"]
        elif data.get("document_type"):
            for field, name in (("deliverable_key", "deliverableKey"), ("deliverable_data", "deliverableData")):
                if field in data:
                    errors[name] = [f"only a DELIVERABLE takes {name}"]
        if errors:
            raise ValidationError(errors)


class Document(CamelSchema):
    id = fields.UUID()
    workflow_id = fields.UUID()
    task_id = fields.UUID(allow_none=True)
    document_type = fields.String(metadata={"enum": DOCUMENT_TYPES})
    status = fields.String(metadata={"enum": DOCUMENT_STATUSES})
    filename = fields.String()
    storage_path = fields.String(allow_none=True)
    content_type = fields.String(allow_none=True)
    size_bytes = fields.Integer(allow_none=True)
    deliverable_key = fields.String(allow_none=True)
    version = fields.Integer()
    previous_version_id = fields.UUID(allow_none=True)
    deliverable_data = fields.Dict(allow_none=True)
    is_client_visible = fields.Boolean()
    uploaded_by = fields.UUID(allow_none=True)
    tags = fields.List(fields.String())
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class DocumentList(CamelSchema):
    documents = fields.List(fields.Nested(Document))
    total_count = fields.Integer()
    has_more = fields.Boolean()
    next_cursor = fields.String(allow_none=True)
