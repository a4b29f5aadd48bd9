"""Workflows: list, create, read, update, cancel, and the workflow actions."""
from __future__ import annotations

import json
import uuid

from flask.views import MethodView

from app.api import Blueprint, ErrorResponse, json_response
from app.n8n import delivery
from app.auth import current_principal
from app.db import get_db
from app.errors import ApiError
from app.schemas.workflows import (WorkflowAction, WorkflowActionResult, WorkflowCreate, WorkflowGetArgs,
                                   WorkflowList, WorkflowListArgs, WorkflowUpdate, Workflow, validate_payload)
from app.services import workflows as service
from app.services.tasks import action_result

blp = Blueprint("workflows", __name__, url_prefix="/api/workflows", description="Business workflows")


def not_found(workflow_id) -> ApiError:
    return ApiError(404, f"workflow {workflow_id} not found", "not_found")


# Finished is final (docs/security.md#finished-is-final-and-what-the-server-owns).
FINISHED_409 = dict(schema=ErrorResponse, description=(
    "invalid_state: the workflow's status does not allow it; a finished workflow (COMPLETED, CANCELLED or FAILED) "
    "takes no action (the message says it is finished, and its status), and nothing is written, but a HIL "
    "person's resume or cancel of a FAILED workflow (its recovery)"))


@blp.route("")
class Workflows(MethodView):
    @blp.arguments(WorkflowListArgs(), location="query")
    @blp.response(200, WorkflowList)
    def get(self, args):
        """List the workflows you may see, newest first."""
        page = service.workflow_documents_page(
            get_db().single(current_principal(), *service.workflow_page_statement(args), all_rows=True), args["limit"])
        return json_response(
            '{"workflows":[' + ",".join(page["documents"]) + "]," + json.dumps(
                {"totalCount": page["total_count"], "hasMore": page["has_more"], "nextCursor": page["next_cursor"]})[1:])

    @blp.arguments(WorkflowCreate())
    @blp.response(201, Workflow)
    def post(self, data):
        """Create a workflow (PENDING until started)."""
        principal = current_principal()
        data["payload"] = validate_payload(data["type"], data["payload"])

        def work(conn):
            # In the transaction, which first finds whether the person still counts (else 401).
            if "client_id" not in data:
                if not principal.is_client:
                    raise ApiError(422, "clientId is required", "validation_error", {"json": {"clientId": ["required"]}})
                data["client_id"] = principal.client_id
            return service.create_workflow(conn, principal, data)

        return get_db().run(principal, work)


@blp.route("/<uuid:workflow_id>")
class WorkflowById(MethodView):
    @blp.arguments(WorkflowGetArgs(), location="query")
    @blp.response(200, Workflow)
    def get(self, args, workflow_id: uuid.UUID):
        """One workflow, with the related collections asked for in include=."""
        row = get_db().single(current_principal(), *service.workflow_document_query(workflow_id, args["include"]))
        document = row and row["document"]
        if document is None:
            raise not_found(workflow_id)
        return json_response(document)

    @blp.arguments(WorkflowUpdate())
    @blp.response(200, Workflow)
    def patch(self, changes, workflow_id: uuid.UUID):
        """Change a workflow's title, payload, priority, owners or due date (status changes are actions).

        On a finished workflow (COMPLETED, CANCELLED, FAILED) only a HIL person changes it: a
        correction, audited as workflow.corrected. metadata replaces the caller's keys; the keys
        the server writes are kept, and sending one with another value is 422 naming it."""
        def work(conn):
            current = service.get_workflow(conn, workflow_id)
            if current is None:
                raise not_found(workflow_id)
            if "payload" in changes:
                changes["payload"] = validate_payload(current["workflow_type"], {**current["payload"], **changes["payload"]})
            updated = service.update_workflow(conn, current_principal(), workflow_id, changes)
            if updated is None:
                raise ApiError(403, "your role may not change this workflow now", "forbidden")
            return updated

        return get_db().run(current_principal(), work)

    @blp.response(200, Workflow)
    @blp.alt_response(409, **FINISHED_409)
    def delete(self, workflow_id: uuid.UUID):
        """Cancel a workflow (it is kept, with status CANCELLED).

        A FAILED workflow is cancelled by a HIL person only (its recovery); a COMPLETED or
        CANCELLED one by nobody."""
        def work(conn):
            result = service.workflow_action(conn, workflow_id, "cancel", {"reason": "deleted through the API"})
            return result, service.get_workflow(conn, workflow_id)

        result, workflow = get_db().run(current_principal(), work)
        delivery.after_commit(result.get("dispatch_id"))
        return workflow


@blp.route("/<uuid:workflow_id>/actions")
class WorkflowActions(MethodView):
    @blp.arguments(WorkflowAction())
    @blp.response(200, WorkflowActionResult)
    @blp.alt_response(409, **FINISHED_409)
    def post(self, body, workflow_id: uuid.UUID):
        """Start, pause, resume, cancel or complete a workflow, atomically.

        Clients may start and cancel their own workflows, HIL people take every action. A
        finished workflow takes none, but a FAILED one is recovered by a HIL person: `resume`
        starts it again from its last checkpoint (the failed n8n execution retired, so that
        anything it still sends is refused; its failed tasks PENDING again; a new execution
        queued that skips every step done), `cancel` closes it out. Neither is a client's, the
        service's or n8n's."""
        result = action_result(
            get_db().single(current_principal(), *service.workflow_action_query(workflow_id, body["action"], body["data"]),
                            writes=True))
        delivery.after_commit(result.get("dispatch_id"))
        return result
