"""Arguments of the four read-only views (their bodies come whole from SQL, in camelCase)."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from app.schemas import PRIORITIES, TASK_STATUSES, WORKFLOW_TYPES, CamelSchema, comma_list

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
