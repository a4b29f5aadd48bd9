"""The four read-only views: their arguments, and what they answer (documents that come whole from
SQL, in camelCase)."""
from __future__ import annotations

from marshmallow import INCLUDE, ValidationError, fields, validate, validates_schema

from app.schemas import PRIORITIES, TASK_STATUSES, WORKFLOW_TYPES, CamelSchema, comma_list
from app.schemas.workflows import Progress

TIMEFRAMES = ["today", "week", "month"]
NOTIFICATION_TYPES = ["WORKFLOW_UPDATE", "TASK_INTERRUPT", "HIL_MENTION", "CLIENT_MESSAGE_RECEIVED",
                      "COUNTERPARTY_MESSAGE_RECEIVED", "SLA_WARNING", "AGENT_FAILURE"]


class DashboardArgs(CamelSchema):
    hil_id = fields.UUID()
    timeframe = fields.String(load_default="today", validate=validate.OneOf(TIMEFRAMES))
    # The task queue's filters.
    status = comma_list(TASK_STATUSES)
    type = fields.String(validate=validate.OneOf(WORKFLOW_TYPES), metadata={"description": "workflow type"})
    client_id = fields.UUID()
    assigned_to = fields.UUID()
    q = fields.String(validate=validate.Length(1, 200),
                      metadata={"description": "workflow id, or part of its title, address or loan number"})


class PerformanceArgs(CamelSchema):
    timeframe = fields.String(load_default="week", validate=validate.OneOf(TIMEFRAMES))
    agent_name = fields.String(validate=validate.Regexp(r"^[a-z][a-z0-9_]{1,30}$"))
    workflow_type = fields.String(validate=validate.OneOf(WORKFLOW_TYPES))


class SlaArgs(CamelSchema):
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 500))


class NotificationArgs(CamelSchema):
    unread_only = fields.Boolean(load_default=False)
    type = fields.String(validate=validate.OneOf(NOTIFICATION_TYPES))
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 1_000_000))


class MarkRead(CamelSchema):
    """Which notifications to mark read: the ids given, or every unread one with all: true.
    Nothing is marked by default."""

    ids = fields.List(fields.UUID(), validate=validate.Length(1, 500))
    all = fields.Boolean(metadata={"description": "true: every unread notification of yours"})

    @validates_schema
    def ids_or_all(self, data, **kwargs):
        if ("ids" in data) == bool(data.get("all")):
            raise ValidationError('give either "ids" (a list of notification ids) or "all": true', "ids")


class Marked(CamelSchema):
    marked = fields.Integer()


# ---- What the views answer (documents PostgreSQL writes; what a client may read of them is
# decided there). Lists whose items vary with the caller are objects of the fields named.
class ViewPart(CamelSchema):
    class Meta:
        unknown = INCLUDE  # documented: additionalProperties


# ---- The rows of the views' lists, as PostgreSQL writes them (who sees which field:
# app/audience.py, written into each field's description).
class QueueItem(ViewPart):
    task_id = fields.UUID()
    workflow_id = fields.UUID()
    workflow_title = fields.String()
    workflow_type = fields.String(metadata={"enum": WORKFLOW_TYPES})
    client_id = fields.UUID()
    task_key = fields.String()
    title = fields.String()
    status = fields.String(metadata={"enum": TASK_STATUSES})
    priority = fields.String(metadata={"enum": PRIORITIES})
    executor_type = fields.String()
    agent_name = fields.String(allow_none=True)
    assigned_to = fields.UUID(allow_none=True)
    sla_due_at = fields.DateTime(allow_none=True)
    sla_status = fields.String()
    business_minutes_remaining = fields.Integer(allow_none=True)


class ActiveWorkflowItem(ViewPart):
    id = fields.UUID()
    title = fields.String()
    workflow_type = fields.String(metadata={"enum": WORKFLOW_TYPES})
    status = fields.String()
    priority = fields.String(metadata={"enum": PRIORITIES})
    client_id = fields.UUID()
    hil_owner_id = fields.UUID(allow_none=True)
    due_date = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime()
    sla_status = fields.String()
    progress = fields.Nested(Progress)


class TeamMember(ViewPart):
    user_id = fields.UUID()
    full_name = fields.String(allow_none=True)
    email = fields.String()
    role = fields.String()
    open_tasks = fields.Integer()
    at_risk = fields.Integer()
    breached = fields.Integer()


class Notification(ViewPart):
    id = fields.UUID()
    notification_type = fields.String(metadata={"enum": NOTIFICATION_TYPES})
    priority = fields.String(metadata={"enum": PRIORITIES})
    title = fields.String()
    message = fields.String(allow_none=True)
    action_required = fields.Boolean()
    workflow_id = fields.UUID(allow_none=True)
    task_id = fields.UUID(allow_none=True)
    read_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class AgentPerformance(ViewPart):
    agent_name = fields.String()
    display_name = fields.String(allow_none=True)
    tasks = fields.Integer()
    success_rate = fields.Float(allow_none=True)
    avg_processing_time_ms = fields.Float(allow_none=True)
    avg_confidence = fields.Float(allow_none=True)
    cost_per_task_usd = fields.Float(allow_none=True)
    total_cost_usd = fields.Float(allow_none=True)


class DailyCompliance(ViewPart):
    date = fields.Date(dump_only=True)  # an answer only
    tasks_total = fields.Integer()
    tasks_on_time = fields.Integer()
    compliance_rate = fields.Float(allow_none=True)


class WorkflowTypePerformance(ViewPart):
    workflow_type = fields.String(metadata={"enum": WORKFLOW_TYPES})
    total = fields.Integer()
    completed = fields.Integer()
    failed = fields.Integer()
    avg_completion_minutes = fields.Float(allow_none=True)
    sla_compliance_rate = fields.Float(allow_none=True)
    daily = fields.List(fields.Nested(DailyCompliance))


class SlaAlert(ViewPart):
    id = fields.UUID()
    task_id = fields.UUID(allow_none=True)
    workflow_id = fields.UUID(allow_none=True)
    alert_level = fields.String()
    percent_used = fields.Float(allow_none=True)
    message = fields.String(allow_none=True)
    raised_at = fields.DateTime()
    acknowledged_at = fields.DateTime(allow_none=True)
    acknowledged_by = fields.UUID(allow_none=True)


class SlaClock(ViewPart):
    task_id = fields.UUID()
    workflow_id = fields.UUID()
    task_key = fields.String()
    title = fields.String()
    status = fields.String(metadata={"enum": TASK_STATUSES})
    sla_status = fields.String()
    sla_started_at = fields.DateTime(allow_none=True)
    sla_due_at = fields.DateTime()
    sla_minutes = fields.Integer(allow_none=True)
    business_minutes_remaining = fields.Integer(allow_none=True)
    percent_used = fields.Float(allow_none=True)


def count(description: str | None = None):
    return fields.Integer(required=True, metadata={"description": description} if description else {})


def rate(description: str):
    return fields.Float(required=True, allow_none=True, metadata={"description": description + " (null: nothing to measure)"})


class DashboardSummary(ViewPart):
    active_workflows = count()
    pending_workflows = count()
    completed_workflows = count()
    tasks_awaiting_hil = count("tasks a person must act on")
    tasks_at_risk = count()
    tasks_breached = count()
    unread_notifications = count()


class DashboardMetrics(ViewPart):
    workflows_created = count()
    workflows_completed = count()
    avg_completion_minutes = rate("mean minutes from start to completion")
    sla_compliance_rate = rate("share of finished tasks within their SLA")


class DashboardView(ViewPart):
    timeframe = fields.String(required=True, metadata={"enum": TIMEFRAMES})
    generated_at = fields.DateTime(required=True)
    summary = fields.Nested(DashboardSummary, required=True)
    task_queue = fields.List(fields.Nested(QueueItem), required=True, metadata={"description": "tasks needing a person, most at risk first"})
    active_workflows = fields.List(fields.Nested(ActiveWorkflowItem), required=True)
    team = fields.List(fields.Nested(TeamMember), required=True, metadata={"description": "who holds what (HIL people only; empty for clients)"})
    recent_notifications = fields.List(fields.Nested(Notification), required=True)
    metrics = fields.Nested(DashboardMetrics, required=True)


class PerformanceSystem(ViewPart):
    total_workflows = count()
    completed_workflows = count()
    failed_workflows = count()
    total_tasks = count()
    success_rate = rate("share of agent tasks that succeeded")
    total_cost_usd = fields.Float(required=True, metadata={"description": "agent cost (0 for client users)"})
    avg_completion_minutes = rate("mean minutes from start to completion")


class PerformanceView(ViewPart):
    timeframe = fields.String(required=True, metadata={"enum": TIMEFRAMES})
    generated_at = fields.DateTime(required=True)
    system = fields.Nested(PerformanceSystem, required=True)
    agents = fields.List(fields.Nested(AgentPerformance), required=True, metadata={"description": "per agent (HIL people only)"})
    workflow_types = fields.List(fields.Nested(WorkflowTypePerformance), required=True,
                                 metadata={"description": "per workflow type, with SLA compliance per day (daily)"})


class SlaSummary(ViewPart):
    active = count()
    on_time = count()
    at_risk = count()
    breached = count()
    compliance_rate = rate("share of finished tasks within their SLA")


class SlaView(ViewPart):
    generated_at = fields.DateTime(required=True)
    summary = fields.Nested(SlaSummary, required=True)
    alerts = fields.List(fields.Nested(SlaAlert), required=True, metadata={"description": "open SLA alerts"})
    tracking = fields.List(fields.Nested(SlaClock), required=True,
                           metadata={"description": "open tasks with their business time remaining"})


class NotificationsView(ViewPart):
    notifications = fields.List(fields.Nested(Notification), required=True)
    total_count = count()
    has_more = fields.Boolean(required=True)
    unread_count = count()
    counts_by_type = fields.Dict(keys=fields.String(metadata={"enum": NOTIFICATION_TYPES}), values=fields.Integer(),
                                 required=True)
    counts_by_priority = fields.Dict(keys=fields.String(metadata={"enum": PRIORITIES}), values=fields.Integer(),
                                     required=True)
