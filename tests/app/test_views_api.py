"""The four views over HTTP: parameters, shapes, tenant isolation, marking read."""
from __future__ import annotations

import pytest

from tests.db.world import row


def test_dashboard_for_an_operator(as_):
    response = as_("operator").get("/api/views/dashboard?timeframe=week")
    assert response.status_code == 200, response.json
    body = response.json
    assert {"summary", "taskQueue", "activeWorkflows", "recentNotifications", "metrics"} <= set(body)
    assert body["summary"]["activeWorkflows"] >= 2
    assert {n["id"] for n in body["recentNotifications"]} == {str(row("A702")), str(row("B702"))}


def test_dashboard_for_a_client_shows_only_their_client(as_):
    body = as_("client_user_b").get("/api/views/dashboard").json
    assert {w["clientId"] for w in body["activeWorkflows"]} <= {str(row("B001"))}
    assert str(row("A101")) not in str(body)


@pytest.mark.parametrize("path", [
    "/api/views/dashboard?timeframe=year",
    "/api/views/dashboard?hilId=nope",
    "/api/views/performance?workflowType=X",
    "/api/views/performance?agentName=Robert%27%3B--",
    "/api/views/sla?limit=0",
    "/api/views/notifications?limit=999",
    "/api/views/notifications?type=SPAM",
    "/api/views/notifications?unreadOnly=maybe",
])
def test_bad_view_parameters_get_422(as_, path):
    response = as_("operator").get(path)
    assert response.status_code == 422 and response.json["error"]["code"] == "validation_error"


def test_performance_and_sla_views_answer(as_):
    performance = as_("manager").get("/api/views/performance?timeframe=month").json
    assert {"system", "agents", "workflowTypes"} <= set(performance)
    assert len(performance["agents"]) == 10
    sla = as_("operator").get("/api/views/sla?limit=10").json
    assert {"summary", "alerts", "tracking"} <= set(sla)
    assert {a["id"] for a in sla["alerts"]} >= {str(row("A811")), str(row("B811"))}


def test_notifications_are_the_callers_own_and_can_be_marked_read(as_, db):
    body = as_("client_user_a").get("/api/views/notifications").json
    assert [n["id"] for n in body["notifications"]] == [str(row("A701"))]
    assert body["unreadCount"] == 1
    stolen = as_("client_user_a").post("/api/views/notifications/read", json={"ids": [str(row("B701"))]})
    assert stolen.status_code == 200 and stolen.json == {"marked": 0}
    assert db.execute("select read_at from public.notifications where id = %s", (row("B701"),)).fetchone()["read_at"] is None
    nothing_said = as_("client_user_a").post("/api/views/notifications/read", json={})
    assert nothing_said.status_code == 422 and "ids" in nothing_said.json["error"]["details"]["json"]
    assert as_("client_user_a").get("/api/views/notifications?unreadOnly=true").json["totalCount"] == 1
    mine = as_("client_user_a").post("/api/views/notifications/read", json={"all": True})
    assert mine.json == {"marked": 1}
    assert as_("client_user_a").get("/api/views/notifications?unreadOnly=true").json["totalCount"] == 0
