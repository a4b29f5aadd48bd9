"""Task requests and responses."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from app.schemas import PRIORITIES, SLA_STATUSES, TASK_STATUSES, CamelSchema, PageArgs, comma_list
from app.schemas.workflows import SERVER_OWNED_METADATA_NOTE, Workflow

EXECUTOR_TYPES = ["AI", "HIL"]
TASK_INCLUDES = ["workflow", "timeline", "executions", "sla"]
TASK_ACTIONS = ["complete", "retry", "escalate", "assign", "fail", "resume"]
TASK_KEY = validate.Regexp(r"^[a-z][a-z0-9_]*(:[A-Za-z0-9_.-]+)?$",
                           error="a task key looks like send_email or portal_access:county")
TASK_TYPE = validate.Regexp(r"^[a-z][a-z0-9_]*$", error="a task type is snake_case, like handle_client_update")
AGENT_NAME = validate.Regexp(r"^[a-z][a-z0-9_]{1,30}$", error="an agent name is lowercase, like nina")


class TaskListArgs(PageArgs):
    workflow_id = fields.UUID()
    executor_id = fields.UUID(metadata={"description": "the person the task is assigned to"})
    agent_name = fields.String(validate=AGENT_NAME)
    status = comma_list(TASK_STATUSES)
    sla_status = comma_list(SLA_STATUSES)
    executor_type = fields.String(validate=validate.OneOf(EXECUTOR_TYPES))
    include = comma_list(TASK_INCLUDES)


class TaskGetArgs(CamelSchema):
    include = comma_list(TASK_INCLUDES)


class TaskCreate(CamelSchema):
    workflow_id = fields.UUID(required=True)
    task_key = fields.String(validate=[validate.Length(1, 120), TASK_KEY],
                             metadata={"description": "default: <taskType>_<random>"})
    task_type = fields.String(required=True, validate=[validate.Length(1, 80), TASK_TYPE])
    title = fields.String(required=True, validate=validate.Length(1, 300))
    description = fields.String(validate=validate.Length(1, 5000))
    executor_type = fields.String(load_default="HIL", validate=validate.OneOf(EXECUTOR_TYPES))
    agent_name = fields.String(validate=[validate.Length(2, 31), AGENT_NAME])  # indexed: bounded
    assigned_to = fields.UUID()
    priority = fields.String(load_default="NORMAL", validate=validate.OneOf(PRIORITIES))
    depends_on = fields.List(fields.String(validate=TASK_KEY), load_default=list, validate=validate.Length(max=50))
    sla_minutes = fields.Integer(strict=True, validate=validate.Range(1, 100_000),
                                 metadata={"description": "business minutes; default: the SLA definition or 60"})
    parent_task_id = fields.UUID()
    agent_input = fields.Dict()

    @validates_schema
    def ai_tasks_name_their_agent(self, data, **kwargs):
        if data.get("executor_type") == "AI" and not data.get("agent_name"):
            raise ValidationError("an AI task needs agentName", "agentName")


class TaskUpdate(CamelSchema):
    title = fields.String(validate=validate.Length(1, 300))
    description = fields.String(allow_none=True, validate=validate.Length(1, 5000))
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    assigned_to = fields.UUID(allow_none=True)
    metadata = fields.Dict(metadata={"description": "merged into the task's metadata. " + SERVER_OWNED_METADATA_NOTE})


class TimelineEvent(CamelSchema):
    id = fields.UUID()
    event_type = fields.String()
    from_status = fields.String(allow_none=True)
    to_status = fields.String(allow_none=True)
    actor_type = fields.String()
    actor_id = fields.String(allow_none=True)
    message = fields.String(allow_none=True)
    data = fields.Dict()
    created_at = fields.DateTime()


class TaskExecution(CamelSchema):
    id = fields.UUID()
    attempt = fields.Integer()
    agent_name = fields.String(allow_none=True)
    status = fields.String()
    n8n_execution_id = fields.String(allow_none=True)
    started_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    duration_ms = fields.Integer(allow_none=True)
    tokens_used = fields.Integer(allow_none=True)
    cost_usd = fields.Float(allow_none=True)
    error_code = fields.String(allow_none=True)
    error_message = fields.String(allow_none=True)
    input = fields.Raw(allow_none=True)
    output = fields.Raw(allow_none=True)


class Task(CamelSchema):
    id = fields.UUID()
    workflow_id = fields.UUID()
    task_key = fields.String()
    task_type = fields.String()
    title = fields.String()
    description = fields.String(allow_none=True)
    sequence = fields.Integer()
    executor_type = fields.String(metadata={"enum": EXECUTOR_TYPES})
    agent_name = fields.String(allow_none=True)
    assigned_to = fields.UUID(allow_none=True)
    status = fields.String(metadata={"enum": TASK_STATUSES})
    priority = fields.String(metadata={"enum": PRIORITIES})
    depends_on = fields.List(fields.String())
    parent_task_id = fields.UUID(allow_none=True)
    branch_group = fields.String(allow_none=True)
    sla_minutes = fields.Integer(allow_none=True)
    sla_started_at = fields.DateTime(allow_none=True)
    sla_due_at = fields.DateTime(allow_none=True)
    sla_status = fields.String(metadata={"enum": SLA_STATUSES})
    agent_input = fields.Raw(allow_none=True)
    agent_output = fields.Raw(allow_none=True)
    result = fields.Raw(allow_none=True)
    error_message = fields.String(allow_none=True)
    attempt_count = fields.Integer()
    max_attempts = fields.Integer()
    # The resume URL itself is a capability to continue an n8n execution: never shown.
    is_waiting_on_n8n = fields.Method("get_waiting_on_n8n", data_key="isWaitingOnN8n", metadata={"type": "boolean"})
    started_at = fields.DateTime(allow_none=True)
    completed_at = fields.DateTime(allow_none=True)
    metadata = fields.Dict()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    workflow = fields.Nested(Workflow, allow_none=True)
    business_minutes_remaining = fields.Integer(allow_none=True, metadata={
        "description": "include=sla: business minutes until sla_due_at (negative when overdue); null when the task"
                       " is finished or has no due time"})
    timeline = fields.List(fields.Nested(TimelineEvent))
    executions = fields.List(fields.Nested(TaskExecution))

    def get_waiting_on_n8n(self, row):
        return row.get("resume_url") is not None


class TaskList(CamelSchema):
    tasks = fields.List(fields.Nested(Task))
    total_count = fields.Integer()
    has_more = fields.Boolean()
    next_cursor = fields.String(allow_none=True)


class TaskAction(CamelSchema):
    action = fields.String(required=True, validate=validate.OneOf(TASK_ACTIONS))
    data = fields.Dict(load_default=dict, metadata={"description": (
        "complete: {result?}; retry: {}; escalate: {reason}; assign: {assigneeId}; fail: {error}; "
        "resume: {complete?, result?, body?}")})


class TaskActionResult(CamelSchema):
    success = fields.Boolean()
    task_id = fields.UUID()
    workflow_id = fields.UUID()
    action = fields.String()
    previous_status = fields.String()
    new_status = fields.String()
    workflow_updated = fields.Boolean()
    workflow_status = fields.String()
    followup_tasks_created = fields.Integer()
    notifications_sent = fields.Integer()
    timestamp = fields.DateTime()
