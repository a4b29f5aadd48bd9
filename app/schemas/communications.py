"""Communications: requests and responses, plus the strict field types the resource schemas
(communications, documents, counterparties) share."""
from __future__ import annotations

import re

from marshmallow import ValidationError, fields, validate, validates_schema

from app.schemas import CamelSchema, IsoDateTime, PageArgs, comma_list

# ============================================================================================
# Strict fields for JSON bodies: a wrong JSON type is refused (no "yes" for true, no "12" for
# 12), and no string may hold what Postgres text and jsonb cannot store (NUL, lone surrogates),
# so bad input is a 422 and never a 500 from the driver.
# ============================================================================================
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: str) -> str:
    if UNSTORABLE.search(value):
        raise ValidationError("contains characters that cannot be stored (NUL or lone surrogates)")
    return value


class Text(fields.String):
    """A string of 1..max_length characters (max_bytes, when given, bounds its UTF-8 size)."""

    def __init__(self, max_length: int = 300, *, min_length: int = 1, max_bytes: int | None = None, **kwargs):
        validators = [validate.Length(min_length, max_length)]
        if max_bytes is not None:
            validators.append(utf8_at_most(max_bytes))
        extra = kwargs.pop("validate", None)
        if extra is not None:
            validators.extend(extra if isinstance(extra, list) else [extra])
        super().__init__(validate=validators, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return storable(super()._deserialize(value, attr, data, **kwargs))


def utf8_at_most(limit: int):
    def check(value: str) -> None:
        if len(value.encode("utf-8", "surrogatepass")) > limit:
            raise ValidationError(f"must be at most {limit} bytes")
    return check


class StrictBoolean(fields.Boolean):
    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class StrictInteger(fields.Integer):
    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return super()._deserialize(value, attr, data, **kwargs)


def json_object(max_bytes: int = 256 * 1024, max_depth: int = 10):
    """Validator for a JSON object field: storable strings, bounded size and depth."""
    def check(value) -> None:
        stack = [(value, 1)]
        size = 0
        while stack:
            item, depth = stack.pop()
            if depth > max_depth:
                raise ValidationError(f"nests deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    storable(key)
                    size += len(key)
                    stack.append((child, depth + 1))
            elif isinstance(item, list):
                stack.extend((child, depth + 1) for child in item)
            elif isinstance(item, str):
                storable(item)
                size += len(item)
            size += 1
            if size > max_bytes:
                raise ValidationError(f"must be at most about {max_bytes} bytes")
    return check


EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+?[0-9][0-9 ().-]{2,29}$")


def email_or_phone(value: str) -> None:
    if not (EMAIL.match(value) or PHONE.match(value)):
        raise ValidationError("must be an email address or a phone number")


def email_address(value: str) -> None:
    if not EMAIL.match(value):
        raise ValidationError("must be an email address")


def phone_number(value: str) -> None:
    if not PHONE.match(value):
        raise ValidationError("must be a phone number (digits, spaces, ().- and an optional leading +)")


def http_url(max_length: int = 2000, **kwargs):
    return fields.URL(schemes={"http", "https"}, validate=validate.Length(max=max_length), **kwargs)


# ============================================================================================
# Communications
# ============================================================================================
COMMUNICATION_TYPES = ["email", "call", "message", "sms"]
DIRECTIONS = ["INBOUND", "OUTBOUND", "INTERNAL"]
COMMUNICATION_STATUSES = ["DRAFT", "QUEUED", "SENT", "DELIVERED", "RECEIVED", "READ", "FAILED"]
MESSAGE_CHANNELS = ["portal", "sms", "chat"]
MAX_BODY_BYTES = 100 * 1024
# Which channel metadata each communication type takes.
METADATA_FOR_TYPE = {"email": "email", "call": "call", "message": "message", "sms": "message"}


class CommunicationListArgs(PageArgs):
    workflow_id = fields.UUID()
    task_id = fields.UUID()
    type = comma_list(COMMUNICATION_TYPES)
    status = comma_list(COMMUNICATION_STATUSES)
    direction = comma_list(DIRECTIONS)
    is_client_visible = fields.Boolean()


class EmailMetadataIn(CamelSchema):
    # Indexed (a btree key holds at most about 2,700 bytes): 500 characters of any script fit.
    message_id = Text(500)
    in_reply_to = Text(500)
    references = fields.List(Text(998), validate=validate.Length(max=100), load_default=list)
    cc = fields.List(Text(320, validate=email_address), validate=validate.Length(max=50), load_default=list)
    bcc = fields.List(Text(320, validate=email_address), validate=validate.Length(max=50), load_default=list)


class CallMetadataIn(CamelSchema):
    phone_number = Text(40, validate=phone_number)
    duration_seconds = StrictInteger(validate=validate.Range(0, 7 * 24 * 3600))
    recording_url = http_url()
    transcript = Text(1_000_000, max_bytes=1_000_000)
    outcome = Text(200)


class MessageMetadataIn(CamelSchema):
    channel = fields.String(load_default="portal", validate=validate.OneOf(MESSAGE_CHANNELS))
    external_message_id = Text(300)


class CommunicationCreate(CamelSchema):
    workflow_id = fields.UUID(required=True)
    task_id = fields.UUID()
    counterparty_id = fields.UUID()
    type = fields.String(required=True, validate=validate.OneOf(COMMUNICATION_TYPES))
    direction = fields.String(required=True, validate=validate.OneOf(DIRECTIONS))
    status = fields.String(validate=validate.OneOf(COMMUNICATION_STATUSES))
    subject = Text(998)
    body = Text(MAX_BODY_BYTES, min_length=0, max_bytes=MAX_BODY_BYTES)
    from_address = Text(320, validate=email_or_phone)
    to_addresses = fields.List(Text(320, validate=email_or_phone), validate=validate.Length(max=50), load_default=list)
    is_client_visible = StrictBoolean()
    thread_id = fields.UUID()
    sent_at = IsoDateTime()
    email = fields.Nested(EmailMetadataIn)
    call = fields.Nested(CallMetadataIn)
    message = fields.Nested(MessageMetadataIn)

    @validates_schema
    def metadata_matches_the_type(self, data, **kwargs):
        kind = data.get("type")
        if kind is None:
            return
        errors = {}
        for block in ("email", "call", "message"):
            if block in data and METADATA_FOR_TYPE[kind] != block:
                errors[block] = [f"{block} metadata does not go with a communication of type {kind}"]
        if data.get("direction") == "INTERNAL" and data.get("is_client_visible"):
            errors["isClientVisible"] = ["internal communications are never client-visible"]
        if errors:
            raise ValidationError(errors)


class EmailMetadata(CamelSchema):
    message_id = fields.String(allow_none=True)
    in_reply_to = fields.String(allow_none=True)
    references = fields.List(fields.String(), attribute="references_header")
    cc = fields.List(fields.String())
    bcc = fields.List(fields.String())


class CallMetadata(CamelSchema):
    phone_number = fields.String(allow_none=True)
    duration_seconds = fields.Integer(allow_none=True)
    recording_url = fields.String(allow_none=True)
    transcript = fields.String(allow_none=True)
    outcome = fields.String(allow_none=True)
    ivr_path = fields.List(fields.String())


class MessageMetadata(CamelSchema):
    channel = fields.String()
    external_message_id = fields.String(allow_none=True)
    delivery_status = fields.String(allow_none=True)
    read_at = fields.DateTime(allow_none=True)


class Attachment(CamelSchema):
    id = fields.UUID()
    document_id = fields.UUID(allow_none=True)
    filename = fields.String()
    content_type = fields.String(allow_none=True)
    size_bytes = fields.Integer(allow_none=True)
    storage_path = fields.String(allow_none=True)
    created_at = fields.DateTime()


class Communication(CamelSchema):
    id = fields.UUID()
    workflow_id = fields.UUID()
    task_id = fields.UUID(allow_none=True)
    counterparty_id = fields.UUID(allow_none=True)
    communication_type = fields.String(data_key="type", metadata={"enum": COMMUNICATION_TYPES})
    direction = fields.String(metadata={"enum": DIRECTIONS})
    status = fields.String(metadata={"enum": COMMUNICATION_STATUSES})
    subject = fields.String(allow_none=True)
    body = fields.String(allow_none=True)
    from_address = fields.String(allow_none=True)
    to_addresses = fields.List(fields.String())
    is_client_visible = fields.Boolean()
    sender_id = fields.UUID(allow_none=True)
    agent_name = fields.String(allow_none=True)
    thread_id = fields.UUID(allow_none=True)
    sent_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class CommunicationDetail(Communication):
    email = fields.Nested(EmailMetadata, allow_none=True)
    call = fields.Nested(CallMetadata, allow_none=True)
    message = fields.Nested(MessageMetadata, allow_none=True)
    attachments = fields.List(fields.Nested(Attachment))


class CommunicationList(CamelSchema):
    communications = fields.List(fields.Nested(Communication))
    total_count = fields.Integer()
    has_more = fields.Boolean()
    next_cursor = fields.String(allow_none=True)
