"""The webhooks in the OpenAPI document: what n8n, the error workflow, lenders, HOAs and client
users send, how each authenticates, and what each answers. The views (app/webhooks/n8n.py and
inbound.py) stay plain Flask views, since a callback's signature covers its raw bytes; this
module only describes them, with the schemas the views load."""
from __future__ import annotations

from marshmallow import Schema, fields, validate
from werkzeug.routing import Map, Rule

from app.schemas import CamelSchema
from app.webhooks.inbound import ClientMessage, HoaDocuments, PayoffStatement
from app.webhooks.n8n import EVENT_TYPES

SECURITY_SCHEMES = {
    "webhookSignature": {
        "type": "apiKey", "in": "header", "name": "webhook-signature",
        "description": "Standard Webhooks: `webhook-id` (the event id, unique per event), `webhook-timestamp` "
                       "(Unix seconds, within 5 minutes) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of "
                       "id.timestamp.body>`) with the workflow's key, derived from N8N_CALLBACK_SECRET and the "
                       "workflow id (docs/n8n.md)."},
    "n8nErrorToken": {"type": "apiKey", "in": "header", "name": "X-N8N-Error-Token",
                      "description": "The error workflow's token (N8N_ERROR_WEBHOOK_TOKEN)."},
    "inboundToken": {"type": "http", "scheme": "bearer",
                     "description": "The workflow's inbound token (derived from N8N_CALLBACK_SECRET and the "
                                    "workflow id; n8n puts it in the emails it sends for that workflow)."},
}


class CallbackData(Schema):
    workflow_id = fields.String(required=True, data_key="workflowId", validate=validate.Length(1, 64),
                                metadata={"description": "the workflow the event is about (its key signs the event)"})
    task_key = fields.String(data_key="taskKey", metadata={"description": "the task, for task events"})

    class Meta:
        unknown = "include"  # the event's own fields (output, error, resumeUrl, ...): docs/n8n.md


class CallbackEvent(Schema):
    type = fields.String(required=True, validate=validate.OneOf(sorted(EVENT_TYPES)))
    timestamp = fields.String(metadata={"description": "when n8n sent it (ISO 8601)"})
    data = fields.Nested(CallbackData, required=True)


class CallbackAnswer(Schema):
    received = fields.Boolean(required=True)
    event_id = fields.String(data_key="eventId", required=True)
    type = fields.String(required=True)
    result = fields.Dict(metadata={"description": "what the event changed"})

    class Meta:
        unknown = "include"


class ErrorReport(Schema):
    execution_id = fields.Raw(required=True, data_key="executionId",
                              metadata={"type": "string", "description": "the n8n execution that failed"})
    error = fields.Raw(metadata={"description": "n8n's error: an object with a message, or text"})

    class Meta:
        unknown = "include"  # the rest of what n8n's error trigger gives is kept out of the way


class ErrorReportAnswer(Schema):
    received = fields.Boolean(required=True)
    workflow_id = fields.String(data_key="workflowId")
    applied = fields.Boolean()

    class Meta:
        unknown = "include"


class InboundAnswer(CamelSchema):
    received = fields.Boolean(required=True)
    workflow_id = fields.String(required=True)
    task_key = fields.String(allow_none=True)
    documents_stored = fields.Integer()
    forwarded = fields.Boolean(metadata={"description": "the waiting execution is resumed with it now; false: kept "
                                                        "until the workflow waits for it"})


class ClientMessageAnswer(CamelSchema):
    received = fields.Boolean(required=True)
    workflow_id = fields.String(required=True)
    payload_changed = fields.Boolean(required=True)
    task_injected = fields.String(allow_none=True, required=True,
                                  metadata={"description": "the handle_client_update task added (payoff requests)"})


def operation(summary: str, description: str, body: str, answer: tuple[int, str], security: list[dict],
              refusals: dict[int, str]) -> dict:
    status, schema = answer
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    responses = {str(status): {"description": "accepted", "content": {"application/json": {"schema": {
        "$ref": f"#/components/schemas/{schema}"}}}}}
    responses.update({str(code): {"description": why, "content": error} for code, why in refusals.items()})
    responses["default"] = {"$ref": "#/components/responses/DEFAULT_ERROR"}
    return {"post": {"tags": ["webhooks"], "summary": summary, "description": description, "security": security,
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "$ref": f"#/components/schemas/{body}"}}}},
                     "responses": responses}}


def document(api) -> None:
    """Add the webhooks to the API's OpenAPI document."""
    spec = api.spec

    def add(path: str, operations: dict) -> None:
        rule = Rule(path, endpoint=path)
        Map([rule])  # bound: flask-smorest reads a path's parameters from its rule (these have none)
        spec.path(rule=rule, operations=operations)

    for name, scheme in SECURITY_SCHEMES.items():
        spec.components.security_scheme(name, scheme)
    for schema in (CallbackEvent, CallbackAnswer, ErrorReport, ErrorReportAnswer, PayoffStatement, HoaDocuments,
                   ClientMessage, InboundAnswer, ClientMessageAnswer):
        spec.components.schema(schema.__name__, schema=schema)
    unconfigured = {503: "not configured on this deployment (the variable named in the message)"}
    add("/webhooks/n8n", operations=operation(
        "A business event from n8n (task started, completed, failed, waiting, skipped, injected; workflow "
        "completed or failed; escalation)",
        "Signed with the workflow's key; applied once (a replay of an event id gets the first answer with "
        "`Webhook-Replay: true`). Events that contradict the workflow's state get 409 and are kept for "
        "operators; a finished workflow (COMPLETED, CANCELLED, FAILED) takes no event of any type (409 "
        "invalid_state, nothing written but the refusal on the event's receipt, which a retry gets again).",
        "CallbackEvent", (200, "CallbackAnswer"), [{"webhookSignature": []}],
        {400: "not an event", 401: "signature missing, wrong or out of time", 404: "no such workflow or task",
         409: "contradicts the workflow's state, or the workflow is finished", 422: "an event that cannot apply",
         **unconfigured}))
    add("/webhooks/n8n/errors", operations=operation(
        "n8n's error workflow: an execution failed unhandled",
        "Marks the workflow that execution runs failed and escalates it, once per execution. An execution n8n "
        "lost with its worker goes on in a new execution instead (docs/reliability.md). A finished workflow "
        "(COMPLETED, CANCELLED, FAILED) is not failed again: 409, nothing written.",
        "ErrorReport", (200, "ErrorReportAnswer"), [{"n8nErrorToken": []}],
        {400: "not a report", 401: "token missing or wrong", 404: "no workflow runs as that execution",
         409: "the workflow is finished", **unconfigured}))
    add("/webhooks/inbound/payoff-statement", operations=operation(
        "A lender's payoff statement for a payoff request",
        "Resumes the workflow waiting for it, or is kept until it waits.", "PayoffStatement",
        (202, "InboundAnswer"), [{"inboundToken": []}],
        {401: "inbound token missing or wrong", 404: "no such workflow", 409: "the workflow is finished",
         **unconfigured}))
    add("/webhooks/inbound/hoa-documents", operations=operation(
        "An HOA's documents for an HOA acquisition",
        "Resumes the workflow waiting for them, or is kept until it waits.", "HoaDocuments",
        (202, "InboundAnswer"), [{"inboundToken": []}],
        {401: "inbound token missing or wrong", 404: "no such workflow", 409: "the workflow is finished",
         **unconfigured}))
    add("/webhooks/inbound/client-message", operations=operation(
        "A client user's message about their workflow",
        "Recorded as the client's (visible to them); on a payoff request still running, Ria's "
        "handle_client_update task is added. payloadChanges change the order while it is not finished.",
        "ClientMessage", (202, "ClientMessageAnswer"), [{"bearerAuth": []}],
        {401: "token missing, wrong, or the person no longer counts", 403: "not a client user",
         404: "no such workflow the caller may see", 409: "payload changes to a finished workflow"}))
