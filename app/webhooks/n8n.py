"""The n8n callback endpoints: signed business events, and the error workflow's reports."""
from __future__ import annotations

import hmac

from flask import Blueprint, current_app, jsonify, request
from psycopg.types.json import Jsonb

from app.auth import Principal
from app.n8n import delivery
from app.n8n.watch import lost_in_words
from app.db import get_db
from app.errors import ApiError, error_response
from app.inputs import json_body, verified_before_parsing
from app.ratelimits import refuse_unproven, spend
from app.webhooks.signing import SignatureError, claimed_workflow_ids, verify, workflow_keys

bp = Blueprint("n8n_webhooks", __name__, url_prefix="/webhooks/n8n")

EVENT_TYPES = {"task.started", "task.completed", "task.failed", "task.waiting", "task.skipped", "task.injected",
               "workflow.completed", "workflow.failed", "escalation"}
REFUSAL_CODES = {404: "not_found", 409: "invalid_state", 422: "invalid_event"}


def parse_envelope(envelope) -> dict:
    """{"type", "timestamp", "data": {"workflowId", ...}} or a 400 saying what is wrong."""
    if not isinstance(envelope, dict) or not isinstance(envelope.get("data"), dict):
        raise ApiError(400, 'the body must be {"type", "timestamp", "data": {...}}', "invalid_body")
    if envelope.get("type") not in EVENT_TYPES:
        raise ApiError(400, f"unknown event type; expected one of {', '.join(sorted(EVENT_TYPES))}", "invalid_body")
    workflow_id = envelope["data"].get("workflowId")
    if not isinstance(workflow_id, str) or not 0 < len(workflow_id) <= 64:
        raise ApiError(400, "data.workflowId is required", "invalid_body")
    return envelope


def answer(result: dict):
    """The stored answer of an event, replayed the same way every time."""
    status, body = result["statusCode"], result["body"]
    headers = {"Webhook-Replay": "true"} if result.get("replay") else {}
    if status >= 400:
        return error_response(status, REFUSAL_CODES.get(status, "refused"), body.get("reason", "refused"),
                              {"eventId": body.get("eventId"), "type": body.get("type"), "replay": result.get("replay")},
                              headers)
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers)
    return response


def verify_callback(secret: bytes, body: bytes) -> tuple[str, str]:
    """(event id, workflow id) of a callback signed with the key of a workflow its raw body
    names, or the refusal (which spends the sender address's refusal budget)."""
    claimed = claimed_workflow_ids(body)
    if not claimed:
        raise refuse_unproven(ApiError(401, 'the body names no "workflowId" whose key could have signed it',
                                       "invalid_signature"))
    problem = None
    for workflow_id in claimed:
        try:
            return verify(workflow_keys(secret, workflow_id), body, request.headers), workflow_id
        except SignatureError as error:
            problem = problem or error
    raise refuse_unproven(ApiError(401, str(problem), "invalid_signature"))


@bp.post("")
@verified_before_parsing
def callback():
    """A business event from n8n, verified with its workflow's key before anything else: on the
    raw bytes, before they are parsed; then it spends that workflow's budget of callbacks."""
    secret = current_app.config["SETTINGS"].n8n_callback_secret
    if secret is None:
        raise ApiError(503, "callbacks are not configured here (N8N_CALLBACK_SECRET)", "unavailable")
    body = request.get_data()  # the raw bytes signed (app.inputs checked their type and size)
    event_id, signed_for = verify_callback(secret, body)
    spend("callbacks", f"workflow:{signed_for}")
    envelope = parse_envelope(json_body())
    if envelope["data"]["workflowId"] != signed_for:
        raise ApiError(400, "data.workflowId is not the workflow whose key signed the body", "invalid_body")
    # One round trip (BEGIN as the service, the event, COMMIT); a retry after a lost connection
    # is answered from the event's receipt, never applied twice.
    result = get_db().single(Principal.service("n8n"), "select public.apply_n8n_event('n8n', %s, %s, %s) as r",
                             (event_id, envelope["type"], Jsonb(envelope["data"])), writes=True, idempotent=True)["r"]
    if not result.get("replay") and (result["body"].get("result") or {}).get("resumedWithPendingInbound"):
        # What the wait was for had come first: the resume just queued goes out now.
        delivery.after_commit(workflow_id=envelope["data"]["workflowId"])
    return answer(result)


@bp.post("/errors")
@verified_before_parsing
def error_report():
    """The error workflow's report of an execution that failed unhandled: marks the workflow
    owning that execution failed and escalates it. Idempotent by execution id. An execution n8n
    lost with its worker (n8n's own words for it: app.n8n.watch.lost_in_words) is no failure of
    the workflow's: it goes on in a new execution (public.recover_lost_execution), and a later
    report of an execution already replaced changes nothing."""
    token = current_app.config["SETTINGS"].n8n_error_webhook_token
    if token is None:
        raise ApiError(503, "error reports are not configured here (N8N_ERROR_WEBHOOK_TOKEN)", "unavailable")
    given = request.headers.get("X-N8N-Error-Token", "")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise refuse_unproven(ApiError(401, "send X-N8N-Error-Token", "invalid_token"))
    spend("error_reports", "n8n-error-workflow")
    report = json_body()
    if not isinstance(report, dict) or not isinstance(report.get("executionId"), (str, int)):
        raise ApiError(400, 'the body must be {"executionId", "error": {...}}', "invalid_body")
    execution_id = str(report["executionId"])[:100]
    error = report.get("error") if isinstance(report.get("error"), (dict, str)) else None

    def work(conn):
        message = error.get("message") if isinstance(error, dict) else error
        owner = conn.execute("select id, status from public.workflows where n8n_execution_id = %s",
                             (execution_id,)).fetchone()
        if owner is None:
            replaced = conn.execute("select id from public.workflows where metadata -> 'lostExecutions' @> %s",
                                    (Jsonb([{"executionId": execution_id}]),)).fetchone()
            if replaced is None:
                raise ApiError(404, f"no workflow runs as n8n execution {execution_id}", "not_found")
            return {"statusCode": 200, "replay": True, "body": {
                "received": True, "applied": False, "workflowId": str(replaced["id"]),
                "reason": f"n8n execution {execution_id} was lost and its workflow goes on in another"}}
        if isinstance(message, str) and lost_in_words(message):
            if owner["status"] in ("COMPLETED", "CANCELLED", "FAILED"):  # finished is final (private.is_finished)
                raise ApiError(409, f"workflow is finished ({owner['status']}): n8n's report of a lost execution "
                                    "is not applied", "invalid_state")
            recovered = conn.execute("select public.recover_lost_execution(%s, %s, %s) as r",
                                     (owner["id"], execution_id, f"n8n's error workflow: {message[:500]}")).fetchone()["r"]
            return {"statusCode": 200, "replay": False, "body": {
                "received": True, "workflowId": str(owner["id"]), "lostExecution": recovered}}
        return conn.execute(
            "select public.apply_n8n_event('n8n_error', %s, 'workflow.failed', %s) as r",
            (execution_id, Jsonb({"workflowId": str(owner["id"]), "executionId": execution_id,
                                  "error": (message or "unhandled error in n8n")[:2000]}))).fetchone()["r"]

    return answer(get_db().run(Principal.service("n8n-error-workflow"), work))


def init_app(app) -> None:
    app.register_blueprint(bp)
