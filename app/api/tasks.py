"""Tasks: list, inject, read, update, cancel, and the task actions."""
from __future__ import annotations

import uuid

from flask.views import MethodView

from app.api import Blueprint, ErrorResponse
from app.n8n import delivery
from app.auth import current_principal
from app.db import get_db
from app.errors import ApiError
from app.schemas.tasks import (Task, TaskAction, TaskActionResult, TaskCreate, TaskGetArgs, TaskList, TaskListArgs,
                               TaskUpdate)
from app.services import tasks as service

blp = Blueprint("tasks", __name__, url_prefix="/api/tasks", description="Tasks of workflows")

# Finished is final (docs/security.md#finished-is-final-and-what-the-server-owns).
FINISHED_409 = dict(schema=ErrorResponse, description=(
    "invalid_state: the task's or its workflow's status does not allow it; nothing of a finished workflow "
    "(COMPLETED, CANCELLED or FAILED) changes through an action, and no task is added to it (the message says "
    "the workflow is finished, and its status); nothing is written"))


@blp.route("")
class Tasks(MethodView):
    @blp.arguments(TaskListArgs(), location="query")
    @blp.response(200, TaskList)
    def get(self, args):
        """List the tasks you may see: one workflow's in its plan's order (workflowId), else newest first."""
        return get_db().run(current_principal(), lambda conn: service.list_tasks(conn, args))

    @blp.arguments(TaskCreate())
    @blp.response(201, Task)
    @blp.alt_response(409, **FINISHED_409)
    def post(self, data):
        """Inject a task into a running workflow (HIL people only)."""
        return get_db().run(current_principal(), lambda conn: service.create_task(conn, data))


@blp.route("/<uuid:task_id>")
class TaskById(MethodView):
    @blp.arguments(TaskGetArgs(), location="query")
    @blp.response(200, Task)
    def get(self, args, task_id: uuid.UUID):
        """One task, with the related records asked for in include=."""
        task = get_db().run(current_principal(), lambda conn: service.get_task(conn, task_id, args["include"]))
        if task is None:
            raise service.not_found(task_id)
        return task

    @blp.arguments(TaskUpdate())
    @blp.response(200, Task)
    @blp.alt_response(409, schema=ErrorResponse, description=(
        "invalid_state: the task's workflow is finished and the caller is no HIL person (an agent)"))
    def patch(self, changes, task_id: uuid.UUID):
        """Change a task's title, description, priority, assignee or metadata (status changes are actions).

        A task of a finished workflow (COMPLETED, CANCELLED, FAILED) is changed only by a HIL
        person: a correction, audited as task.corrected. metadata is merged; the keys the server
        writes are refused (422 naming each)."""
        def work(conn):
            if service.get_task(conn, task_id) is None:
                raise service.not_found(task_id)
            updated = service.update_task(conn, task_id, changes)
            if updated is None:
                raise ApiError(403, "your role may not change this task", "forbidden")
            return updated

        return get_db().run(current_principal(), work)

    @blp.response(200, Task)
    @blp.alt_response(409, **FINISHED_409)
    def delete(self, task_id: uuid.UUID):
        """Cancel a task (it is kept, with status CANCELLED)."""
        def work(conn):
            result = service.task_action(conn, task_id, "cancel", {"reason": "deleted through the API"})
            return result, service.get_task(conn, task_id)

        result, task = get_db().run(current_principal(), work)
        delivery.after_commit(result.get("dispatch_id"))
        return task


@blp.route("/<uuid:task_id>/actions")
class TaskActions(MethodView):
    @blp.arguments(TaskAction())
    @blp.response(200, TaskActionResult)
    @blp.alt_response(409, **FINISHED_409)
    def post(self, body, task_id: uuid.UUID):
        """Complete, retry, escalate, assign, fail or resume a task, atomically."""
        result = service.action_result(
            get_db().single(current_principal(), *service.task_action_query(task_id, body["action"], body["data"]),
                            writes=True))
        delivery.after_commit(result.get("dispatch_id"))
        return result
