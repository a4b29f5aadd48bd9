"""Views: read-only, one database round trip each (SQL functions under the caller's RLS)."""
from __future__ import annotations


from app.api import Blueprint, json_response
from app.auth import current_principal
from app.db import get_db
from app.schemas.views import (DashboardArgs, DashboardView, MarkRead, Marked, NotificationArgs, NotificationsView,
                               PerformanceArgs, PerformanceView, SlaArgs, SlaView)

blp = Blueprint("views", __name__, url_prefix="/api/views", description="Dashboards and reports")


def call_view(sql: str, params: tuple):
    """The view's document as PostgreSQL wrote it (`sql` selects it as text, named view)."""
    return json_response(get_db().single(current_principal(), sql, params)["view"])


@blp.route("/dashboard")
@blp.arguments(DashboardArgs(), location="query")
@blp.response(200, DashboardView)
def dashboard(args):
    """Summary counts, the HIL task queue by SLA risk (filtered by task status, workflow type,
    client, assignee, or a search of workflow id, title, address and loan number), active
    workflows, who holds what (team), notifications, metrics."""
    return call_view("select public.dashboard_view(%s, %s, now(), %s::public.task_status[], %s, %s, %s, %s)::text as view",
                     (args.get("hil_id"), args["timeframe"], args["status"] or None, args.get("type"),
                      args.get("client_id"), args.get("assigned_to"), args.get("q")))


@blp.route("/performance")
@blp.arguments(PerformanceArgs(), location="query")
@blp.response(200, PerformanceView)
def performance(args):
    """System, per-agent and per-workflow-type performance over a timeframe."""
    return call_view("select public.performance_view(%s, %s, %s)::text as view",
                     (args["timeframe"], args.get("agent_name"), args.get("workflow_type")))


@blp.route("/sla")
@blp.arguments(SlaArgs(), location="query")
@blp.response(200, SlaView)
def sla(args):
    """SLA summary, open alerts, and live tracking with business time remaining."""
    return call_view("select public.sla_view(now(), %s)::text as view", (args["limit"],))


@blp.route("/notifications")
@blp.arguments(NotificationArgs(), location="query")
@blp.response(200, NotificationsView)
def notifications(args):
    """Your notifications, with counts by type and priority."""
    return call_view("select public.notifications_view(%s, %s, %s, %s, %s)::text as view",
                     (args["unread_only"], args.get("type"), args.get("priority"), args["limit"], args["offset"]))


@blp.route("/notifications/read", methods=["POST"])
@blp.arguments(MarkRead())
@blp.response(200, Marked)
def mark_read(body):
    """Mark your notifications read: the ids given, or every unread one with all: true."""
    return {"marked": get_db().run(current_principal(), lambda conn: conn.execute(
        "select public.mark_notifications_read(%s) as n", (body.get("ids"),)).fetchone()["n"])}
