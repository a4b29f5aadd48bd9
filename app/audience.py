"""Who sees which field: the one table, and the one function that applies it.

Row-level security decides which rows a caller reads (a client's own workflows, an agent's one
workflow). This table decides which *fields* of those rows leave the service, for every
resource the API answers with, the collections an include= adds, the rows of the views, and the
/ws events. Every answer passes through `shape()` on its way out:

- REST and the views: app.api.Blueprint.response (every endpoint's documented response schema
  must have an entry here, or the app does not start: a new endpoint cannot forget it);
- /ws: app.realtime.hub.StreamEvent.text_for, the only text a socket is sent for an event, live
  or replayed.

Kinds of caller (`kind_of`): client (client_user, client_admin; and any person whose role the
service does not know), hil (hil_operator, hil_manager), agent (an X-API-Key caller scoped to one
workflow), service (the service's own path). A field a caller may not see is **omitted** (the key
is absent, never null): a null keeps its meaning ("no value"), and a client cannot tell a hidden
field from one that does not exist. HIL people and the service see every field (checked below),
so their answers pass through untouched; a key that is not in the table is shown to them only
(fail closed).

Audiences:
    EVERYONE  client, hil, agent, service: what the customer ordered and how far it has come.
    WORK      hil, agent, service: the work itself: agents' input and output, results, errors,
              the plan's internals, how counterparties are reached.
    HIL       hil, service: people (who is assigned, who wrote, who owns) and the service's own
              running (n8n executions, the execution watch's metadata, escalations).
"""
from __future__ import annotations

import dataclasses
import json

CLIENT, HIL_KIND, AGENT, SERVICE = "client", "hil", "agent", "service"
KINDS = (CLIENT, HIL_KIND, AGENT, SERVICE)
EVERYONE = frozenset(KINDS)
WORK = frozenset({HIL_KIND, AGENT, SERVICE})
HIL = frozenset({HIL_KIND, SERVICE})
# Kinds that see every field of every resource: their answers are passed on as built.
SEES_EVERYTHING = frozenset({HIL_KIND, SERVICE})

AUDIENCE_NAMES = {EVERYONE: "everyone (clients, HIL people, agents)", WORK: "HIL people and agents only",
                  HIL: "HIL people only"}


@dataclasses.dataclass(frozen=True)
class Field:
    audience: frozenset
    nested: str | None = None  # the resource of the value (an object, or a list of them)
    why: str = ""


def E(nested=None, why=""):  # noqa: N802 (reads as a column of the table)
    return Field(EVERYONE, nested, why)


def W(why, nested=None):  # noqa: N802
    return Field(WORK, nested, why)


def H(why, nested=None):  # noqa: N802
    return Field(HIL, nested, why)


PERSON_ID = "a person's id: who works on what is HIL-internal"
AGENT_WORK = "agent and operator work product: may hold findings, contacts, internal reasoning"
PLAN = "how the plan runs (executors, dependencies, retries) is internal to the work"
TASK_LINK = "which internal task a record belongs to"
REACH = "how a counterparty is reached is the work's, not the client's"

_TASK_FIELDS = {
    "id": E(), "workflowId": E(), "taskKey": E(), "taskType": E(),
    "title": E(why="the client-safe name of the step"),
    "description": W("HIL task descriptions: instructions to operators and agents"),
    "sequence": E(why="the step's place in the plan (order only)"),
    "executorType": W(PLAN), "agentName": W(PLAN), "assignedTo": H(PERSON_ID),
    "status": E(), "priority": E(), "dependsOn": W(PLAN), "parentTaskId": W(PLAN), "branchGroup": W(PLAN),
    "slaMinutes": E(), "slaStartedAt": E(), "slaDueAt": E(), "slaStatus": E(),
    "agentInput": W(AGENT_WORK), "agentOutput": W(AGENT_WORK), "result": W(AGENT_WORK),
    "errorMessage": W("errors of agents and portals (\"portal login failed\")"),
    "attemptCount": W(PLAN), "maxAttempts": W(PLAN),
    "isWaitingOnN8n": W("whether n8n holds the step (the orchestration's internals)"),
    "startedAt": E(), "completedAt": E(),
    "metadata": H("escalations (reason, the operator's id) and the service's own keys"),
    "createdAt": E(), "updatedAt": E(),
    "workflow": E("Workflow"), "businessMinutesRemaining": E(why="business time left on the step's SLA"),
    "timeline": W("the task's internal history (who did what, with data)", "TimelineEvent"),
    "executions": W("agent attempts with input, output, cost", "TaskExecution"),
}

RESOURCES: dict[str, dict[str, Field]] = {
    # ---- workflows -------------------------------------------------------------------------
    "Workflow": {
        "id": E(), "type": E(), "status": E(), "clientId": E(), "title": E(),
        "payload": E(why="the order as the client placed it"), "priority": E(),
        "hilId": H(PERSON_ID + " (the workflow's owner)"), "managerId": H(PERSON_ID),
        "createdBy": H(PERSON_ID + " (an operator may place an order for a client)"),
        "dueDate": E(), "startedAt": E(), "completedAt": E(),
        "n8nExecutionId": H("n8n's execution id: the orchestration's internals"),
        "n8nStatus": H("n8n's view of the execution: the orchestration's internals"),
        "slaStatus": E(), "progress": E("Progress"),
        "metadata": H("the execution watch's keys (lostExecutions, failure), n8n ids, escalations"),
        "createdAt": E(), "updatedAt": E(),
        "tasks": E("TaskSummary"), "communications": E("CommunicationSummary"),
        "documents": E("DocumentSummary"), "counterparties": E("CounterpartyLink"),
    },
    "Progress": {"totalTasks": E(), "completedTasks": E(), "progressPercentage": E()},
    "WorkflowList": {"workflows": E("Workflow"), "totalCount": E(), "hasMore": E(), "nextCursor": E()},
    "TaskSummary": {
        "id": E(), "taskKey": E(), "taskType": E(), "title": E(), "status": E(),
        "executorType": W(PLAN), "agentName": W(PLAN), "assignedTo": H(PERSON_ID), "priority": E(),
        "sequence": E(), "dependsOn": W(PLAN), "slaDueAt": E(), "slaStatus": E(), "startedAt": E(),
        "completedAt": E(),
    },
    "CommunicationSummary": {
        "id": E(), "taskId": W(TASK_LINK), "type": E(), "direction": E(), "status": E(), "subject": E(),
        "isClientVisible": E(), "createdAt": E(),
    },
    "DocumentSummary": {
        "id": E(), "taskId": W(TASK_LINK), "documentType": E(), "status": E(), "filename": E(), "version": E(),
        "deliverableKey": E(), "isClientVisible": E(), "createdAt": E(),
    },
    "CounterpartyLink": {
        "id": E(), "linkId": E(), "type": E(), "name": E(), "status": E(why="how far the exchange has come"),
        "contactedAt": E(), "respondedAt": E(),
    },
    "WorkflowActionResult": {
        "success": E(), "workflowId": E(), "action": E(), "previousStatus": E(), "newStatus": E(),
        "tasksCreated": E(), "n8nExecutionId": H("n8n's execution id"), "timestamp": E(),
    },
    # ---- tasks -----------------------------------------------------------------------------
    "Task": _TASK_FIELDS,
    "TaskList": {"tasks": E("Task"), "totalCount": E(), "hasMore": E(), "nextCursor": E()},
    "TimelineEvent": {
        "id": W("internal history"), "eventType": W("internal history"), "fromStatus": W("internal history"),
        "toStatus": W("internal history"), "actorType": W("internal history"), "actorId": H(PERSON_ID),
        "message": W("internal history"), "data": W(AGENT_WORK), "createdAt": W("internal history"),
    },
    "TaskExecution": {name: W("agent attempts: input, output, cost, errors") for name in (
        "id", "attempt", "agentName", "status", "n8nExecutionId", "startedAt", "finishedAt", "durationMs",
        "tokensUsed", "costUsd", "errorCode", "errorMessage", "input", "output")},
    "TaskActionResult": {
        "success": E(), "taskId": E(), "workflowId": E(), "action": E(), "previousStatus": E(), "newStatus": E(),
        "workflowUpdated": E(), "workflowStatus": E(), "followupTasksCreated": E(), "notificationsSent": E(),
        "timestamp": E(),
    },
    # ---- communications (clients read client-visible ones only: RLS) ------------------------
    "Communication": {
        "id": E(), "workflowId": E(), "taskId": W(TASK_LINK), "counterpartyId": E(), "type": E(), "direction": E(),
        "status": E(), "subject": E(), "body": E(), "fromAddress": E(), "toAddresses": E(), "isClientVisible": E(),
        "senderId": H(PERSON_ID + " (who wrote it)"), "agentName": W("which agent wrote it"), "threadId": E(),
        "sentAt": E(), "createdAt": E(), "updatedAt": E(),
    },
    "CommunicationList": {"communications": E("Communication"), "totalCount": E(), "hasMore": E(), "nextCursor": E()},
    "EmailMetadata": {"messageId": E(), "inReplyTo": E(), "references": E(), "cc": E(),
                      "bcc": W("blind copies are the sender's own")},
    "CallMetadata": {"phoneNumber": E(), "durationSeconds": E(), "recordingUrl": W("the raw recording"),
                     "transcript": E(), "outcome": E(), "ivrPath": W(REACH)},
    "MessageMetadata": {"channel": E(), "externalMessageId": E(), "deliveryStatus": E(), "readAt": E()},
    "Attachment": {"id": E(), "documentId": E(), "filename": E(), "contentType": E(), "sizeBytes": E(),
                   "storagePath": E(), "createdAt": E()},
    # ---- documents (clients read client-visible ones only: RLS) -----------------------------
    "Document": {
        "id": E(), "workflowId": E(), "taskId": W(TASK_LINK), "documentType": E(), "status": E(), "filename": E(),
        "storagePath": E(), "contentType": E(), "sizeBytes": E(), "deliverableKey": E(), "version": E(),
        "previousVersionId": E(), "deliverableData": E(why="the deliverable's content is what the client ordered"),
        "isClientVisible": E(), "uploadedBy": H(PERSON_ID + " (who uploaded it)"), "tags": E(), "createdAt": E(),
        "updatedAt": E(),
    },
    "DocumentList": {"documents": E("Document"), "totalCount": E(), "hasMore": E(), "nextCursor": E()},
    # ---- counterparties (clients read those linked to their workflows: RLS) -----------------
    "Counterparty": {
        "id": E(), "type": E(), "name": E(), "email": W(REACH), "phone": W(REACH), "website": W(REACH),
        "address": W(REACH), "hasIvr": W(REACH), "requiresPhone": W(REACH), "createdAt": E(), "updatedAt": E(),
        "contacts": W("the people we reach there (RLS shows clients none)", "Contact"),
        "workflows": E("WorkflowLink"),
    },
    "CounterpartyList": {"counterparties": E("Counterparty"), "totalCount": E(), "hasMore": E(), "nextCursor": E()},
    "Contact": {name: W(REACH) for name in ("id", "fullName", "title", "email", "phone", "isPrimary", "createdAt")},
    "WorkflowLink": {
        "id": E(), "workflowId": E(), "counterpartyId": E(), "status": E(), "contactedAt": E(), "respondedAt": E(),
        "notes": W("operators' and agents' notes on the exchange"), "createdAt": E(), "updatedAt": E(),
    },
    # ---- views (documents built by PostgreSQL; RLS decides their rows) ----------------------
    "DashboardView": {
        "timeframe": E(), "generatedAt": E(), "summary": E("DashboardSummary"), "taskQueue": E("QueueItem"),
        "activeWorkflows": E("ActiveWorkflowItem"), "team": E("TeamMember", why="empty unless HIL"),
        "recentNotifications": E("Notification"), "metrics": E("DashboardMetrics"),
    },
    "DashboardSummary": {name: E() for name in (
        "activeWorkflows", "pendingWorkflows", "completedWorkflows", "tasksAwaitingHil", "tasksAtRisk",
        "tasksBreached", "unreadNotifications")},
    "DashboardMetrics": {name: E() for name in (
        "workflowsCreated", "workflowsCompleted", "avgCompletionMinutes", "slaComplianceRate")},
    "QueueItem": {
        "taskId": E(), "workflowId": E(), "workflowTitle": E(), "workflowType": E(), "clientId": E(), "taskKey": E(),
        "title": E(), "status": E(), "priority": E(), "executorType": W(PLAN), "agentName": W(PLAN),
        "assignedTo": H(PERSON_ID), "slaDueAt": E(), "slaStatus": E(), "businessMinutesRemaining": E(),
    },
    "ActiveWorkflowItem": {
        "id": E(), "title": E(), "workflowType": E(), "status": E(), "priority": E(), "clientId": E(),
        "hilOwnerId": H(PERSON_ID + " (the workflow's owner)"), "dueDate": E(), "updatedAt": E(), "slaStatus": E(),
        "progress": E("Progress"),
    },
    "TeamMember": {name: H("who holds what: HIL people's workload") for name in (
        "userId", "fullName", "email", "role", "openTasks", "atRisk", "breached")},
    "Notification": {name: E(why="the caller's own notifications") for name in (
        "id", "notificationType", "priority", "title", "message", "actionRequired", "workflowId", "taskId", "readAt",
        "createdAt")},
    "PerformanceView": {
        "timeframe": E(), "generatedAt": E(), "system": E("PerformanceSystem"),
        "agents": E("AgentPerformance", why="empty unless HIL"), "workflowTypes": E("WorkflowTypePerformance"),
    },
    "PerformanceSystem": {name: E() for name in (
        "totalWorkflows", "completedWorkflows", "failedWorkflows", "totalTasks", "successRate",
        "avgCompletionMinutes")} | {"totalCostUsd": E(why="0 for clients: the database counts no cost for them")},
    "AgentPerformance": {name: H("agents' results and costs") for name in (
        "agentName", "displayName", "tasks", "successRate", "avgProcessingTimeMs", "avgConfidence", "costPerTaskUsd",
        "totalCostUsd")},
    "WorkflowTypePerformance": {name: E() for name in (
        "workflowType", "total", "completed", "failed", "avgCompletionMinutes", "slaComplianceRate")}
    | {"daily": E("DailyCompliance")},
    "DailyCompliance": {name: E() for name in ("date", "tasksTotal", "tasksOnTime", "complianceRate")},
    "SlaView": {"generatedAt": E(), "summary": E("SlaSummary"), "alerts": E("SlaAlert"), "tracking": E("SlaClock")},
    "SlaSummary": {name: E() for name in ("active", "onTime", "atRisk", "breached", "complianceRate")},
    "SlaAlert": {
        "id": E(), "taskId": E(), "workflowId": E(), "alertLevel": E(), "percentUsed": E(), "message": E(),
        "raisedAt": E(), "acknowledgedAt": E(), "acknowledgedBy": H(PERSON_ID + " (who acknowledged it)"),
    },
    "SlaClock": {name: E() for name in (
        "taskId", "workflowId", "taskKey", "title", "status", "slaStatus", "slaStartedAt", "slaDueAt", "slaMinutes",
        "businessMinutesRemaining", "percentUsed")},
    "NotificationsView": {
        "notifications": E("Notification"), "totalCount": E(), "hasMore": E(), "unreadCount": E(),
        "countsByType": E(), "countsByPriority": E(),
    },
    "Marked": {"marked": E()},
    # ---- /ws events (the seed's event shapes plus the event id) -----------------------------
    "WorkflowStatusChangedEvent": {
        "id": E(), "type": E(), "workflowId": E(), "status": E(), "timestamp": E(),
        "metadata": E("WorkflowEventMetadata"),
    },
    "WorkflowEventMetadata": {name: E() for name in (
        "workflowType", "previousStatus", "totalTasks", "completedTasks", "progressPercentage", "slaStatus")},
    "TaskExecutionUpdatedEvent": {
        "id": E(), "type": E(), "taskId": E(), "workflowId": E(), "taskKey": E(), "status": E(), "previousStatus": E(),
        "result": W(AGENT_WORK), "error": W("errors of agents and portals"), "slaStatus": E(), "timestamp": E(),
    },
    "HilNotificationEvent": {name: E(why="the recipient's own notification") for name in (
        "id", "type", "notificationId", "notificationType", "priority", "title", "message", "actionRequired",
        "workflowId", "taskId", "timestamp")},
}

RESOURCES["CommunicationDetail"] = {
    **RESOURCES["Communication"], "email": E("EmailMetadata"), "call": E("CallMetadata"),
    "message": E("MessageMetadata"), "attachments": E("Attachment")}

# The resource of each /ws event type.
EVENTS = {"workflow_status_changed": "WorkflowStatusChangedEvent",
          "task_execution_updated": "TaskExecutionUpdatedEvent",
          "hil_notification": "HilNotificationEvent"}
# Response schemas that carry nobody's data (public health), answered as they are.
UNSHAPED = frozenset({"Health", "ComponentHealth"})

for _resource, _fields in RESOURCES.items():
    for _name, _field in _fields.items():
        assert SEES_EVERYTHING <= _field.audience, f"{_resource}.{_name}: HIL people and the service see every field"
        assert _field.nested is None or _field.nested in RESOURCES, f"{_resource}.{_name}: unknown {_field.nested}"


def kind_of(principal) -> str:
    """The kind of caller a principal is (client when in doubt: the narrowest)."""
    if principal is None:
        return CLIENT
    if principal.kind == "service":
        return SERVICE
    if principal.kind == "agent":
        return AGENT
    if principal.is_hil:
        return HIL_KIND
    return CLIENT


def visible(resource: str, kind: str) -> set[str]:
    """The fields of `resource` that `kind` sees."""
    return {name for name, field in RESOURCES[resource].items() if kind in field.audience}


def shape(resource: str, value, kind: str):
    """`value` (the wire form of `resource`: an object, a list of them, or null) as `kind` may
    see it: fields it may not see omitted, at every depth; keys not in the table omitted too."""
    if kind in SEES_EVERYTHING or value is None:
        return value
    if isinstance(value, list):
        return [shape(resource, item, kind) for item in value]
    if not isinstance(value, dict):
        return value
    fields = RESOURCES[resource]
    shaped = {}
    for key, item in value.items():
        field = fields.get(key)
        if field is None or kind not in field.audience:
            continue
        shaped[key] = shape(field.nested, item, kind) if field.nested else item
    return shaped


def shape_event(payload: dict, kind: str) -> dict:
    """A /ws event (its payload with its id) as `kind` may see it; of an event type not in the
    table, those who do not see everything get its id and type only."""
    resource = EVENTS.get(payload.get("type"))
    if resource is None:
        return payload if kind in SEES_EVERYTHING else {"id": payload.get("id"), "type": payload.get("type")}
    return shape(resource, payload, kind)


def shape_json_text(resource: str, text: str | bytes, kind: str) -> str:
    return json.dumps(shape(resource, json.loads(text), kind), separators=(",", ":"))


def describe(resource: str, name: str) -> str | None:
    """The sentence the OpenAPI document carries for a field not everyone sees."""
    field = RESOURCES.get(resource, {}).get(name)
    if field is None or field.audience == EVERYONE:
        return None
    return f"Shown to {AUDIENCE_NAMES[field.audience]} (omitted for others): {field.why}."


def annotate_schemas(schemas) -> None:
    """Write into each marshmallow schema's fields who sees them (description and
    x-audience), for the OpenAPI document. Idempotent."""
    for schema in schemas:
        fields = RESOURCES.get(schema.__name__)
        if fields is None:
            continue
        for attribute, declared in schema._declared_fields.items():
            wire = declared.data_key or _camel(attribute)
            field = fields.get(wire)
            if field is None:
                continue
            declared.metadata = {**declared.metadata, "x-audience": sorted(field.audience - {SERVICE})}
            note = describe(schema.__name__, wire)
            base = declared.metadata.get("description", "")
            if note and note not in base:
                declared.metadata["description"] = f"{base} {note}".strip()


def schema_tree(schema) -> list[type]:
    """A marshmallow schema class (or instance) and every schema class nested in it."""
    from marshmallow import fields as mfields

    found: list[type] = []
    stack = [schema if isinstance(schema, type) else type(schema)]
    while stack:
        cls = stack.pop()
        if cls in found:
            continue
        found.append(cls)
        for declared in cls._declared_fields.values():
            inner = declared.inner if isinstance(declared, mfields.List) else declared
            if isinstance(inner, mfields.Nested):
                nested = inner.nested
                if isinstance(nested, type) or not isinstance(nested, (str, dict)) and not callable(nested):
                    stack.append(nested if isinstance(nested, type) else type(nested))
    return found


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
