"""Per-subscriber authorization equals RLS: each kind of caller receives over the socket exactly
what the REST API (and the stream table under its own claims) shows it, and nothing else."""
from __future__ import annotations

import json

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.db.world import CLIENT_A, CLIENT_B, PEOPLE, row
from tests.support import act_as

WATCHERS = ("operator", "client_user_a", "client_admin_a", "client_user_b", "agent_a")


def stream_seqs_as(database_url: str, person, after: int, where: str) -> set[int]:
    """What RLS lets `person` read from the stream, asked the way PostgREST would."""
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        act_as(conn, person)
        return {r["seq"] for r in conn.execute(
            f"select seq from public.realtime_events where seq > %s and {where}", (after,))}


def last_seq(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("select coalesce(max(seq), 0) from public.realtime_events").fetchone()[0]


def test_each_caller_receives_what_the_api_shows_it_and_nothing_else(service):
    start = last_seq(service.database_url)
    operator = PEOPLE["operator"]
    sockets = {}
    for name in WATCHERS:
        sockets[name] = service.connect(PEOPLE[name])
        sockets[name].subscribe("workflows")
    sockets["agent_a"].subscribe(f"workflow:{row('A101')}")

    changed = [service.create_workflow(operator, CLIENT_A), service.create_workflow(operator, CLIENT_B)]
    for workflow_id in changed:
        service.act(operator, workflow_id, "start")
    for action in ("pause", "resume"):
        service.act(operator, str(row("A101")), action)
        service.act(operator, str(row("B101")), action)
    changed += [str(row("A101")), str(row("B101"))]
    end = last_seq(service.database_url)

    for name, sock in sockets.items():
        person = PEOPLE[name]
        channels = "event_type = 'workflow_status_changed'"
        if name == "agent_a":
            channels += f" or workflow_id = '{row('A101')}'"
        expected = stream_seqs_as(service.database_url, person, start, f"seq <= {end} and ({channels})")
        assert expected, name
        received = sock.events_until(lambda events, expected=expected: {e["id"] for e in events} >= expected,
                                     timeout=10)
        received += sock.quiet_events(0.5)
        received_ids = [e["id"] for e in received]
        assert sorted(set(received_ids)) == sorted(expected), name
        assert len(received_ids) == len(set(received_ids)), name
        seen_workflows = {e["workflowId"] for e in received}
        readable = {w for w in changed if service.api(person, "GET", f"/api/workflows/{w}").status_code == 200}
        assert seen_workflows == readable, name
        sock.close()

    # The expectations above are not vacuous: the tenants and the agent see different things.
    assert {str(row("A101"))} == {w for w in changed
                                  if service.api(PEOPLE["agent_a"], "GET", f"/api/workflows/{w}").status_code == 200}


def test_notifications_reach_their_recipient_only(service):
    user_a, user_b = PEOPLE["client_user_a"], PEOPLE["client_user_b"]
    socket_a, socket_b = service.connect(user_a), service.connect(user_b)
    operator_socket = service.connect(PEOPLE["operator"])
    for sock in (socket_a, socket_b, operator_socket):
        sock.subscribe("notifications")
    ids = {}
    with psycopg.connect(service.database_url, autocommit=True) as conn:
        for person in (user_a, user_b):
            ids[person.name] = str(conn.execute(
                "insert into public.notifications (recipient_id, notification_type, priority, title, message, "
                "action_required, workflow_id) values (%s, 'WORKFLOW_UPDATE', 'HIGH', 'Moved', %s, true, %s) "
                "returning id", (person.user_id, f"for {person.name}", row(person.name[-1].upper() + "101"))
            ).fetchone()[0])
    for person, sock in ((user_a, socket_a), (user_b, socket_b)):
        events = sock.events_until(lambda events: len(events) >= 1) + sock.quiet_events(0.5)
        assert [e["notificationId"] for e in events] == [ids[person.name]]
        event = events[0]
        assert event["type"] == "hil_notification" and event["priority"] == "high" and event["actionRequired"] is True
        assert event["message"] == f"for {person.name}" and event["workflowId"]
        listed = service.api(person, "GET", "/api/views/notifications").text
        assert ids[person.name] in listed and all(other not in listed for other in ids.values() if other != ids[person.name])
    assert operator_socket.quiet_events(0.5) == []
    for sock in (socket_a, socket_b, operator_socket):
        sock.close()


def test_an_agent_sees_only_its_workflow_even_on_a_guessed_channel(service):
    agent = service.connect(PEOPLE["agent_a"])
    agent.subscribe(f"workflow:{row('A101')}")
    agent.send({"type": "subscribe", "channel": f"workflow:{row('A102')}"})
    assert agent.expect("error")["code"] == "not_found"
    other = service.create_workflow(PEOPLE["operator"], CLIENT_A)
    service.act(PEOPLE["operator"], other, "start")
    service.act(PEOPLE["operator"], str(row("A101")), "pause")
    service.act(PEOPLE["operator"], str(row("A101")), "resume")
    events = agent.events_until(lambda events: any(e.get("status") == "IN_PROGRESS" and
                                                   e["type"] == "workflow_status_changed" for e in events))
    events += agent.quiet_events(0.5)
    assert events and {e["workflowId"] for e in events} == {str(row("A101"))}
    assert json.dumps(events).count(other) == 0
    agent.close()


def test_a_person_without_a_profile_is_refused(service):
    nobody = service.connect(PEOPLE["unprovisioned"], authenticate=False)
    error = nobody.receive()
    assert error["type"] == "error" and error["code"] == "person_inactive", error
    with pytest.raises(AssertionError, match="code 4001"):
        nobody.receive()
    response = service.api(PEOPLE["unprovisioned"], "GET", "/api/workflows")
    assert response.status_code == 401 and response.json()["error"]["code"] == "person_inactive"
