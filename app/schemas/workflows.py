"""Workflow payloads per type, requests and responses."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate

from app.schemas import (PRIORITIES, SLA_STATUSES, TASK_STATUSES, WORKFLOW_STATUSES, WORKFLOW_TYPES, CamelSchema,
                         IsoDate, IsoDateTime, PageArgs, comma_list)

URGENCY = ["low", "normal", "high", "urgent"]
text = lambda max_length=300, **kw: fields.String(validate=validate.Length(1, max_length), **kw)  # noqa: E731


class MuniLienSearchPayload(CamelSchema):
    address = text(500, required=True)
    county = text(120, required=True)
    parcel_number = text(80, required=True)
    buyer = text(200, required=True)
    closing_date = IsoDate(required=True)
    search_types = fields.List(fields.String(validate=validate.OneOf(["tax_liens", "utility_liens", "municipal_liens"])),
                               validate=validate.Length(1, 3))
    urgency = fields.String(validate=validate.OneOf(URGENCY))


class HoaAcquisitionPayload(CamelSchema):
    address = text(500, required=True)
    hoa_name = text(200, required=True)
    documents_requested = fields.List(
        fields.String(validate=validate.OneOf(["bylaws", "financials", "meeting_minutes", "budget"])),
        required=True, validate=validate.Length(1, 4))
    buyer = text(200, required=True)
    closing_date = IsoDate(required=True)
    urgency = fields.String(validate=validate.OneOf(URGENCY))
    communication_preference = fields.String(validate=validate.OneOf(["email", "phone", "email_then_phone", "both"]))


class PayoffRequestPayload(CamelSchema):
    address = text(500, required=True)
    borrower_name = text(200, required=True)
    lender_name = text(200, required=True)
    loan_number = text(60, required=True)
    payoff_date = IsoDate(required=True)
    estimated_balance = fields.Decimal(places=2, as_string=False, validate=validate.Range(0, 100_000_000),
                                       metadata={"minimum": 0, "maximum": 100_000_000})
    urgency = fields.String(validate=validate.OneOf(URGENCY))
    include_per_diem = fields.Boolean()


PAYLOAD_SCHEMAS = {
    "MUNI_LIEN_SEARCH": MuniLienSearchPayload,
    "HOA_ACQUISITION": HoaAcquisitionPayload,
    "PAYOFF_REQUEST": PayoffRequestPayload,
}


def describe_payloads() -> str:
    """The payload each type takes, in words, for the OpenAPI document (from the schemas above)."""
    lines = ["The order's details; what it takes depends on `type` (camelCase keys, dates as YYYY-MM-DD):"]
    for workflow_type, schema in PAYLOAD_SCHEMAS.items():
        declared = schema().fields
        required = [f.data_key or n for n, f in declared.items() if f.required]
        optional = [f.data_key or n for n, f in declared.items() if not f.required]
        lines.append(f"- {workflow_type}: required {', '.join(required)}; optional {', '.join(optional)}")
    return "\n".join(lines)


def validate_payload(workflow_type: str, payload: dict) -> dict:
    """The payload as stored: validated for its type, camelCase keys, JSON-ready values."""
    schema = PAYLOAD_SCHEMAS[workflow_type]()
    try:
        loaded = schema.load(payload)
    except ValidationError as error:
        raise ValidationError({"payload": error.messages}) from error
    dumped = schema.dump(loaded)
    if "estimatedBalance" in dumped:
        dumped["estimatedBalance"] = float(dumped["estimatedBalance"])
    return dumped


WORKFLOW_INCLUDES = ["tasks", "communications", "documents", "counterparties"]

# What the OpenAPI document says of metadata a caller writes. The keys are the database's one list
# (private.server_owned_metadata_keys(), which refuses them); tests/security/test_server_owned_keys.py
# checks that this text names exactly those.
SERVER_OWNED_METADATA_NOTE = (
    "The keys the server writes itself (lostExecutions, lossesInARow, failure, cancelReason, escalation, waitingOn, "
    "pendingInbound) are refused from every caller: 422 validation_error naming each in details.json.metadata.")


class WorkflowListArgs(PageArgs):
    client_id = fields.UUID()
    hil_id = fields.UUID()
    status = comma_list(WORKFLOW_STATUSES)
    type = comma_list(WORKFLOW_TYPES)
    created_after = IsoDateTime()
    created_before = IsoDateTime()
    include = comma_list(WORKFLOW_INCLUDES)


class WorkflowGetArgs(CamelSchema):
    include = comma_list(WORKFLOW_INCLUDES)


class WorkflowCreate(CamelSchema):
    type = fields.String(required=True, validate=validate.OneOf(WORKFLOW_TYPES))
    client_id = fields.UUID()
    title = text(300)
    # x-payload-schemas: the payload schema of each type (components of the document), from which
    # forms are built (the console's new order form).
    payload = fields.Dict(required=True, metadata={
        "description": describe_payloads(),
        "x-payload-schemas": {t: f"#/components/schemas/{schema.__name__}" for t, schema in PAYLOAD_SCHEMAS.items()}})
    priority = fields.String(load_default="NORMAL", validate=validate.OneOf(PRIORITIES))
    hil_id = fields.UUID()
    manager_id = fields.UUID()
    due_date = IsoDateTime()
    metadata = fields.Dict(metadata={"description": "the caller's own keys. " + SERVER_OWNED_METADATA_NOTE})


class WorkflowUpdate(CamelSchema):
    title = text(300)
    payload = fields.Dict()
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    hil_id = fields.UUID(allow_none=True)
    manager_id = fields.UUID(allow_none=True)
    due_date = IsoDateTime(allow_none=True)
    metadata = fields.Dict(metadata={"description": "replaces the caller's keys (the server's are kept as it wrote "
                                                    "them). " + SERVER_OWNED_METADATA_NOTE})


class Progress(CamelSchema):
    total_tasks = fields.Integer()
    completed_tasks = fields.Integer()
    progress_percentage = fields.Integer()


class TaskSummary(CamelSchema):
    id = fields.UUID()
    task_key = fields.String()
    task_type = fields.String()
    title = fields.String()
    status = fields.String(metadata={"enum": TASK_STATUSES})
    executor_type = fields.String()
    agent_name = fields.String(allow_none=True)
    assigned_to = fields.UUID(allow_none=True)
    priority = fields.String()
    sequence = fields.Integer()
    depends_on = fields.List(fields.String())
    sla_due_at = fields.DateTime(allow_none=True)
    sla_status = fields.String()
    started_at = fields.DateTime(allow_none=True)
    completed_at = fields.DateTime(allow_none=True)


class CommunicationSummary(CamelSchema):
    id = fields.UUID()
    task_id = fields.UUID(allow_none=True)
    communication_type = fields.String(data_key="type")
    direction = fields.String()
    status = fields.String()
    subject = fields.String(allow_none=True)
    is_client_visible = fields.Boolean()
    created_at = fields.DateTime()


class DocumentSummary(CamelSchema):
    id = fields.UUID()
    task_id = fields.UUID(allow_none=True)
    document_type = fields.String()
    status = fields.String()
    filename = fields.String()
    version = fields.Integer()
    deliverable_key = fields.String(allow_none=True)
    is_client_visible = fields.Boolean()
    created_at = fields.DateTime()


class CounterpartyLink(CamelSchema):
    id = fields.UUID(attribute="counterparty_id")
    link_id = fields.UUID(attribute="id")
    counterparty_type = fields.String(data_key="type")
    name = fields.String()
    status = fields.String()
    contacted_at = fields.DateTime(allow_none=True)
    responded_at = fields.DateTime(allow_none=True)


class Workflow(CamelSchema):
    id = fields.UUID()
    workflow_type = fields.String(data_key="type", metadata={"enum": WORKFLOW_TYPES})
    status = fields.String(metadata={"enum": WORKFLOW_STATUSES})
    client_id = fields.UUID()
    title = fields.String()
    payload = fields.Dict()
    priority = fields.String()
    hil_owner_id = fields.UUID(data_key="hilId", allow_none=True)
    manager_id = fields.UUID(allow_none=True)
    created_by = fields.UUID(allow_none=True)
    due_date = fields.DateTime(allow_none=True)
    started_at = fields.DateTime(allow_none=True)
    completed_at = fields.DateTime(allow_none=True)
    n8n_execution_id = fields.String(allow_none=True)
    n8n_status = fields.String(allow_none=True)
    sla_status = fields.String(metadata={"enum": SLA_STATUSES})
    progress = fields.Method("get_progress", metadata={"type": "object"})
    metadata = fields.Dict()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    tasks = fields.List(fields.Nested(TaskSummary))
    communications = fields.List(fields.Nested(CommunicationSummary))
    documents = fields.List(fields.Nested(DocumentSummary))
    counterparties = fields.List(fields.Nested(CounterpartyLink))

    def get_progress(self, row):
        total, done = row["total_tasks"], row["completed_tasks"]
        # Half up, as PostgreSQL's round() does in the documents it builds.
        return {"totalTasks": total, "completedTasks": done,
                "progressPercentage": (200 * done + total) // (2 * total) if total else 0}


class WorkflowList(CamelSchema):
    workflows = fields.List(fields.Nested(Workflow))
    total_count = fields.Integer()
    has_more = fields.Boolean()
    next_cursor = fields.String(allow_none=True)


class WorkflowAction(CamelSchema):
    action = fields.String(required=True, validate=validate.OneOf(["start", "pause", "resume", "cancel", "complete"]))
    data = fields.Dict(load_default=dict)


class WorkflowActionResult(CamelSchema):
    success = fields.Boolean()
    workflow_id = fields.UUID()
    action = fields.String()
    previous_status = fields.String()
    new_status = fields.String()
    tasks_created = fields.Integer()
    n8n_execution_id = fields.String(allow_none=True)
    timestamp = fields.DateTime()
