"""Inbound webhooks: outside parties reaching a waiting workflow, and client messages."""
from __future__ import annotations

import hmac
import uuid

from flask import Blueprint, current_app, jsonify, request
from marshmallow import ValidationError, fields, validate
from psycopg.types.json import Jsonb

from app.auth import Principal, current_principal
from app.n8n import delivery
from app.db import get_db, switch_principal
from app.errors import ApiError
from app.inputs import json_body, verified_before_parsing
from app.ratelimits import refuse_unproven, spend
from app.schemas import CamelSchema
from app.schemas.workflows import validate_payload
from app.webhooks.signing import claimed_workflow_ids, inbound_token

bp = Blueprint("inbound_webhooks", __name__, url_prefix="/webhooks/inbound")


class InboundDocument(CamelSchema):
    filename = fields.String(required=True, validate=validate.Length(1, 500))
    storage_path = fields.String(validate=validate.Length(1, 1000))
    content_type = fields.String(validate=validate.Length(1, 200))
    size_bytes = fields.Integer(validate=validate.Range(0, 10 * 1024**3))


class PayoffStatement(CamelSchema):
    workflow_id = fields.UUID(required=True)
    statement = fields.Dict(required=True)
    documents = fields.List(fields.Nested(InboundDocument), load_default=list, validate=validate.Length(max=50))
    note = fields.String(validate=validate.Length(max=10000))
    sender = fields.String(data_key="from", validate=validate.Length(max=300))


class HoaDocuments(CamelSchema):
    workflow_id = fields.UUID(required=True)
    documents = fields.List(fields.Nested(InboundDocument), required=True, validate=validate.Length(1, 50))
    note = fields.String(validate=validate.Length(max=10000))
    sender = fields.String(data_key="from", validate=validate.Length(max=300))


class ClientMessage(CamelSchema):
    workflow_id = fields.UUID(required=True)
    message = fields.String(required=True, validate=validate.Length(1, 20000))
    payload_changes = fields.Dict()


def load(schema, body) -> dict:
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object", "invalid_body")
    try:
        return schema().load(body)
    except ValidationError as error:
        raise ApiError(422, "the request is not valid", "validation_error", {"json": error.messages}) from None


def token_for(secret: bytes, workflow_id: str) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = inbound_token(secret, workflow_id)
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode())


def prove_inbound() -> None:
    """Before the body is parsed: the bearer token must be the inbound token of a workflow the
    raw body names; that workflow's budget of deliveries is spent. Otherwise the refusal spends
    the sender address's refusal budget."""
    secret = current_app.config["SETTINGS"].n8n_callback_secret
    if secret is None:
        raise ApiError(503, "inbound webhooks are not configured here (N8N_CALLBACK_SECRET)", "unavailable")
    for workflow_id in claimed_workflow_ids(request.get_data()):
        if token_for(secret, workflow_id):
            spend("inbound", f"workflow:{workflow_id}")
            return
    raise refuse_unproven(ApiError(401, "send Authorization: Bearer <the workflow's inbound token>", "invalid_token"))


def check_inbound_token(workflow_id: uuid.UUID) -> None:
    """The parsed body's workflow is the one the token is for."""
    secret = current_app.config["SETTINGS"].n8n_callback_secret
    if not token_for(secret, str(workflow_id)):
        raise ApiError(401, "send Authorization: Bearer <the workflow's inbound token>", "invalid_token")


def receive(kind: str, data: dict, extra: dict):
    workflow_id = data["workflow_id"]
    check_inbound_token(workflow_id)
    documents = [InboundDocument().dump(d) for d in data.get("documents", [])]
    body = {**extra, "documents": documents, "note": data.get("note"), "from": data.get("sender")}
    result = get_db().run(Principal.service(f"inbound:{kind}"), lambda conn: conn.execute(
        "select public.receive_inbound(%s, %s, %s) as r", (kind, workflow_id, Jsonb(body))).fetchone()["r"])
    if result.get("forwarded"):  # the waiting execution is resumed through the outbox
        delivery.after_commit(workflow_id=workflow_id)
    response = jsonify(result)
    response.status_code = 202
    return response


@bp.post("/payoff-statement")
@verified_before_parsing
def payoff_statement():
    """A lender's payoff statement for a waiting payoff request."""
    prove_inbound()
    data = load(PayoffStatement, json_body())
    return receive("payoff_statement", data, {"statement": data["statement"]})


@bp.post("/hoa-documents")
@verified_before_parsing
def hoa_documents():
    """An HOA's documents for a waiting HOA acquisition."""
    prove_inbound()
    data = load(HoaDocuments, json_body())
    return receive("hoa_documents", data, {})


FINISHED = ("COMPLETED", "CANCELLED", "FAILED")


@bp.post("/client-message")
def client_message():
    """A client's message on their workflow: recorded (client-visible), the owner notified, a
    Ria `handle_client_update` task injected for payoff requests, and payload changes applied."""
    principal = current_principal()
    data = load(ClientMessage, json_body())
    workflow_id = data["workflow_id"]
    changes = data.get("payload_changes") or {}

    def work(conn):
        # Once the transaction has found the person still counts (else 401), what they may do.
        if not principal.is_client:
            raise ApiError(403, "client messages come from client users; HIL people write to a workflow with "
                                "POST /api/communications", "forbidden")
        # As the client: the workflow must be theirs, and the message is theirs.
        workflow = conn.execute("select id, workflow_type, payload, status from public.workflows where id = %s",
                                (workflow_id,)).fetchone()
        if workflow is None:
            raise ApiError(404, f"workflow {workflow_id} not found", "not_found")
        payload = validate_payload(workflow["workflow_type"], {**workflow["payload"], **changes}) if changes else None
        conn.execute("""insert into public.communications (workflow_id, communication_type, direction, status, body,
                                                          is_client_visible, sender_id)
                        values (%s, 'message', 'INBOUND', 'RECEIVED', %s, true, %s)""",
                     (workflow_id, data["message"], principal.user_id))
        # As the service, in the same transaction: a refusal anywhere below writes nothing.
        switch_principal(conn, Principal.service("inbound:client_message"))
        status = conn.execute("select status from public.workflows where id = %s for update",
                              (workflow_id,)).fetchone()["status"]  # as it is now, held until the end
        if payload is not None:
            if status in FINISHED:
                raise ApiError(409, f"the workflow is {status}: its order can no longer change; send the message "
                                    "without payloadChanges, or place a new order", "invalid_state")
            conn.execute("update public.workflows set payload = %s where id = %s", (Jsonb(payload), workflow_id))
        injected = None
        if workflow["workflow_type"] == "PAYOFF_REQUEST" and status not in FINISHED:
            injected = conn.execute(
                "select public.apply_n8n_event('inbound', %s, 'task.injected', %s) as r",
                (f"client-message:{uuid.uuid4()}", Jsonb({"workflowId": str(workflow_id), "task": {
                    "taskKey": f"handle_client_update:{uuid.uuid4().hex[:8]}", "taskType": "handle_client_update",
                    "title": "Handle client update", "agentName": "ria", "priority": "HIGH",
                    "input": {"message": data["message"], "payloadChanges": changes}}}))).fetchone()["r"]
        return payload, injected

    payload, injected = get_db().run(principal, work)
    result = {"received": True, "workflowId": str(workflow_id), "payloadChanged": payload is not None,
              "taskInjected": (injected or {}).get("body", {}).get("result", {}).get("taskKey")}
    response = jsonify(result)
    response.status_code = 202
    return response


def init_app(app) -> None:
    app.register_blueprint(bp)
