"""RLS matrix: every role against every table for select, insert, update and delete.

Each case acts as one person exactly as the service does (request role + JWT claims in the
transaction) and compares what the database lets through with what SPEC section 3 says,
both what is allowed and what is denied. Client B never reads, changes or deletes client A's
rows.
"""
from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import errors, sql

from tests.db.world import PEOPLE, row, rows
from tests.support import act_as, act_as_service

PERSON_NAMES = list(PEOPLE)
HIL = ("operator", "manager")

# --------------------------------------------------------------------------------------------
# The world's rows per table (tests/fixtures/world.sql)
# --------------------------------------------------------------------------------------------
WORLD = {
    "clients": "A001 B001",
    "user_profiles": "C001 C002 A011 A012 B011 B012",
    "user_preferences": "A961 B961",
    "workflows": "A101 A102 B101 B102",
    "workflow_dependencies": "A931 B931",
    "tasks": "A201 B201",
    "task_executions": "A211 B211",
    "agent_results": "A221 B221",
    "counterparties": "C301 A301 B301",
    "workflow_counterparties": "A311 B311",
    "counterparty_contacts": "A321 B321",
    "workflow_contacts": "A331 B331",
    "workflow_contact_labels": "A341 B341",
    "communications": "A401 A402 B401 B402",
    "email_metadata": "A411 B411",
    "call_metadata": "A412 B412",
    "message_metadata": "A413 B413",
    "communication_attachments": "A421 B421",
    "documents": "A501 A502 B501 B502",
    "document_tag_assignments": "A511 B511",
    "hil_notes": "A601 B601",
    "hil_note_tags": "A611 B611",
    "hil_note_attachments": "A621 B621",
    "notifications": "A701 A702 B701 B702",
    "sla_tracking": "A801 B801",
    "sla_alerts": "A811 B811",
    "cost_items": "A901 B901",
    "invoices": "A911 A912 B911 B912",
    "invoice_items": "A921 B921",
    "n8n_dispatches": "A941 B941",
    "webhook_receipts": "A951 B951",
    "sla_performance_metrics": "A971 B971",
}

# What a client user of client X sees of the world (X substituted), and what the agent working
# on workflow A101 sees. HIL people see every world row except other people's notifications
# and preferences.
CLIENT_SEES = {
    "clients": "X001",
    "user_profiles": "X011 X012",
    "workflows": "X101 X102",
    "workflow_dependencies": "X931",
    "tasks": "X201",
    "counterparties": "X301",
    "workflow_counterparties": "X311",
    "workflow_contacts": "X331",
    "workflow_contact_labels": "X341",
    "communications": "X401",  # X402 is internal
    "email_metadata": "X411",
    "message_metadata": "X413",
    "documents": "X501",  # X502 is a working file
    "document_tag_assignments": "X511",
    "sla_tracking": "X801",
    "invoices": "X911",  # X912 is a draft
    "invoice_items": "X921",
}
AGENT_A_SEES = {
    "workflows": "A101",
    "tasks": "A201",
    "task_executions": "A211",
    "agent_results": "A221",
    "counterparties": "A301",
    "workflow_counterparties": "A311",
    "counterparty_contacts": "A321",
    "workflow_contacts": "A331",
    "workflow_contact_labels": "A341",
    "communications": "A401 A402",
    "email_metadata": "A411",
    "call_metadata": "A412",
    "message_metadata": "A413",
    "communication_attachments": "A421",
    "documents": "A501 A502",
    "document_tag_assignments": "A511",
    "invoices": "A911 A912",
    "invoice_items": "A921",
}


def for_client(mapping: dict[str, str], letter: str) -> dict[str, str]:
    return {table: codes.replace("X", letter) for table, codes in mapping.items()}


def expected_select(person: str, table: str) -> set[uuid.UUID] | None:
    """The world rows `person` may read in `table`; None means the role has no privilege."""
    if person == "anon":
        return None
    if person in HIL:
        if table == "notifications":
            return rows("A702 B702") if person == "operator" else set()
        if table == "user_preferences":
            return set()
        return rows(WORLD[table])
    own = {
        "client_user_a": {**for_client(CLIENT_SEES, "A"), "user_preferences": "A961", "notifications": "A701"},
        "client_admin_a": for_client(CLIENT_SEES, "A"),
        "client_user_b": {**for_client(CLIENT_SEES, "B"), "user_preferences": "B961", "notifications": "B701"},
        "agent_a": AGENT_A_SEES,
        "unprovisioned": {},
    }[person]
    return rows(own[table]) if table in own else set()


# --------------------------------------------------------------------------------------------
# Update (`set id = id`, so nothing but the policies decides) and delete
# --------------------------------------------------------------------------------------------
EVERY_HIL = {person: None for person in HIL}  # None: every world row of the table
UPDATABLE = {
    "clients": {"manager": None},
    "user_profiles": {"manager": None, "client_admin_a": "A011 A012"},
    "user_preferences": {"client_user_a": "A961", "client_user_b": "B961"},
    "workflows": {**EVERY_HIL, "client_user_a": "A102", "client_admin_a": "A102", "client_user_b": "B102"},
    "workflow_dependencies": EVERY_HIL,
    "tasks": {**EVERY_HIL, "agent_a": "A201"},
    "task_executions": {"agent_a": "A211"},
    "counterparties": EVERY_HIL,
    "workflow_counterparties": {**EVERY_HIL, "agent_a": "A311"},
    "counterparty_contacts": EVERY_HIL,
    "workflow_contacts": {**EVERY_HIL, "client_admin_a": "A331"},
    "communications": {**EVERY_HIL, "agent_a": "A401 A402"},
    "email_metadata": {**EVERY_HIL, "agent_a": "A411"},
    "call_metadata": {**EVERY_HIL, "agent_a": "A412"},
    "message_metadata": {**EVERY_HIL, "agent_a": "A413"},
    "documents": {**EVERY_HIL, "agent_a": "A501 A502"},
    "hil_notes": EVERY_HIL,
    "notifications": {"operator": "A702 B702", "client_user_a": "A701", "client_user_b": "B701"},
    "sla_alerts": EVERY_HIL,
    "cost_items": {"manager": None},
    "invoices": {"manager": None},
    "invoice_items": {"manager": None},
}
DELETABLE = {
    "clients": {"manager": None},
    "user_profiles": {"manager": None, "client_admin_a": "A011"},
    "user_preferences": {"client_user_a": "A961", "client_user_b": "B961"},
    "workflow_dependencies": EVERY_HIL,
    "counterparties": {"manager": None},
    "workflow_counterparties": EVERY_HIL,
    "counterparty_contacts": EVERY_HIL,
    "workflow_contacts": {**EVERY_HIL, "client_admin_a": "A331"},
    "workflow_contact_labels": {**EVERY_HIL, "client_admin_a": "A341"},
    "email_metadata": EVERY_HIL,
    "call_metadata": EVERY_HIL,
    "message_metadata": EVERY_HIL,
    "communication_attachments": EVERY_HIL,
    "documents": {"manager": None},
    "document_tag_assignments": EVERY_HIL,
    "hil_notes": EVERY_HIL,
    "hil_note_tags": EVERY_HIL,
    "hil_note_attachments": EVERY_HIL,
    "notifications": {"operator": "A702 B702", "client_user_a": "A701", "client_user_b": "B701"},
    "cost_items": {"manager": None},
    "invoices": {"manager": None},
    "invoice_items": {"manager": None},
}


def expected_changeable(allowed: dict, person: str, table: str) -> set[uuid.UUID]:
    if person not in allowed.get(table, {}):
        return set()
    codes = allowed[table][person]
    return rows(WORLD[table] if codes is None else codes)


def attempt(conn: psycopg.Connection, person: str, statement: sql.Composable, params=()) -> bool:
    """Run one statement as `person` in a savepoint that is always rolled back.

    True when the policies let it through (a row was written, or a foreign key stopped it
    after the policies passed); False when they did not (no row, or a privilege or RLS error).
    """
    with conn.transaction(force_rollback=True):
        act_as(conn, PEOPLE[person])
        try:
            with conn.transaction():
                written = conn.execute(statement, params).rowcount
        except errors.InsufficientPrivilege:
            return False
        except (errors.ForeignKeyViolation, errors.RestrictViolation):
            return True
        return written > 0


def changeable_rows(conn, person: str, table: str, verb: str) -> set[uuid.UUID]:
    found = set()
    for row_id in rows(WORLD[table]):
        if verb == "update":
            statement = sql.SQL("update public.{} set id = id where id = %s").format(sql.Identifier(table))
        else:
            statement = sql.SQL("delete from public.{} where id = %s").format(sql.Identifier(table))
        if attempt(conn, person, statement, (row_id,)):
            found.add(row_id)
    return found


# --------------------------------------------------------------------------------------------
# The matrix
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("table", sorted(WORLD))
@pytest.mark.parametrize("person", PERSON_NAMES)
def test_select_shows_exactly_what_the_role_may_read(db, person, table):
    expected = expected_select(person, table)
    world_ids = list(rows(WORLD[table]))
    with db.transaction(force_rollback=True):
        act_as(db, PEOPLE[person])
        query = sql.SQL("select id from public.{} where id = any(%s)").format(sql.Identifier(table))
        if expected is None:
            with pytest.raises(errors.InsufficientPrivilege):
                db.execute(query, (world_ids,))
            return
        seen = {r["id"] for r in db.execute(query, (world_ids,))}
    assert seen == expected


@pytest.mark.parametrize("table", sorted(WORLD))
@pytest.mark.parametrize("person", PERSON_NAMES)
def test_update_changes_exactly_what_the_role_may_change(db, person, table):
    assert changeable_rows(db, person, table, "update") == expected_changeable(UPDATABLE, person, table)


@pytest.mark.parametrize("table", sorted(WORLD))
@pytest.mark.parametrize("person", PERSON_NAMES)
def test_delete_removes_exactly_what_the_role_may_remove(db, person, table):
    assert changeable_rows(db, person, table, "delete") == expected_changeable(DELETABLE, person, table)


# Inserts need a valid row per table. {o} is the owner prefix of the target client's rows
# (aaaaaaaa or bbbbbbbb), {c} the client letter, {me} the acting person's user id.
INSERTS = {
    "clients": "insert into public.clients (name) values ('New client {c} {n}')",
    "user_profiles": "insert into public.user_profiles (id, email, user_type, role, client_id) values "
                     "('{newuser}', 'new-{n}@{c}.example', 'client_user', 'client_user', '{o}-0000-4000-8000-000000000001')",
    "workflows": "insert into public.workflows (workflow_type, client_id, title) values "
                 "('HOA_ACQUISITION', '{o}-0000-4000-8000-000000000001', 'New {c}')",
    "tasks": "insert into public.tasks (workflow_id, client_id, task_key, task_type, title) values "
             "('{o}-0000-4000-8000-000000000101', '{o}-0000-4000-8000-000000000001', 'injected_{n}', 'handle_client_update', 'Injected')",
    "task_executions": "insert into public.task_executions (task_id, workflow_id, attempt) values "
                       "('{o}-0000-4000-8000-000000000201', '{o}-0000-4000-8000-000000000101', 9)",
    "agent_results": "insert into public.agent_results (task_id, workflow_id, agent_name, success) values "
                     "('{o}-0000-4000-8000-000000000201', '{o}-0000-4000-8000-000000000101', 'nina', true)",
    "counterparties": "insert into public.counterparties (counterparty_type, name) values ('lender', 'New lender {c} {n}')",
    "workflow_counterparties": "insert into public.workflow_counterparties (workflow_id, counterparty_id) values "
                               "('{o}-0000-4000-8000-000000000101', 'cccccccc-0000-4000-8000-000000000301')",
    "workflow_contacts": "insert into public.workflow_contacts (workflow_id, contact_type_id, full_name, notification_channel) values "
                         "('{o}-0000-4000-8000-000000000101', (select id from public.contact_types where code = 'seller'), 'Seller', 'none')",
    "communications": "insert into public.communications (workflow_id, communication_type, direction, body, is_client_visible) values "
                      "('{o}-0000-4000-8000-000000000101', 'message', 'INBOUND', 'hello', true)",
    "documents": "insert into public.documents (workflow_id, document_type, filename, is_client_visible) values "
                 "('{o}-0000-4000-8000-000000000101', 'ATTACHMENT', 'contract.pdf', true)",
    "hil_notes": "insert into public.hil_notes (workflow_id, author_id, body) values "
                 "('{o}-0000-4000-8000-000000000101', '{me}', 'a note')",
    "notifications": "insert into public.notifications (recipient_id, notification_type, title, message) values "
                     "('{o}-0000-4000-8000-000000000011', 'HIL_MENTION', 'Hi', 'You were mentioned')",
    "sla_alerts": "insert into public.sla_alerts (task_id, workflow_id, client_id, alert_level, percent_used, message) values "
                  "('{o}-0000-4000-8000-000000000201', '{o}-0000-4000-8000-000000000101', '{o}-0000-4000-8000-000000000001', 'RED', 96, 'late')",
    "cost_items": "insert into public.cost_items (workflow_id, category, description, amount_usd) values "
                  "('{o}-0000-4000-8000-000000000101', 'AGENT', 'call', 0.5)",
    "invoices": "insert into public.invoices (client_id, workflow_id, invoice_number) values "
                "('{o}-0000-4000-8000-000000000001', '{o}-0000-4000-8000-000000000101', 'INV-{c}-{N}')",
    "audit_events": "insert into public.audit_events (actor_type, event_type, resource_type) values ('human', 'workflow.created', 'workflow')",
    "realtime_events": "insert into public.realtime_events (event_type, client_id, payload) values "
                       "('workflow_status_changed', '{o}-0000-4000-8000-000000000001', '{{}}')",
    "contact_types": "insert into public.contact_types (code, name) values ('new_type_{n}', 'New')",
    "sla_definitions": "insert into public.sla_definitions (workflow_type, task_type, business_minutes) values "
                       "('HOA_ACQUISITION', 'new_step_{n}', 30)",
}
# Who may insert into each table, and for which client ("A", "B"; tables without a client use "A").
INSERTABLE = {
    "clients": {"manager": "AB"},
    "user_profiles": {"manager": "AB", "client_admin_a": "A"},
    "workflows": {"operator": "AB", "manager": "AB", "client_user_a": "A", "client_admin_a": "A", "client_user_b": "B"},
    "tasks": {"operator": "AB", "manager": "AB"},
    "task_executions": {"agent_a": "A"},
    "agent_results": {"agent_a": "A"},
    "counterparties": {"operator": "AB", "manager": "AB"},
    "workflow_counterparties": {"operator": "AB", "manager": "AB"},
    "workflow_contacts": {"operator": "AB", "manager": "AB", "client_admin_a": "A"},
    "communications": {"operator": "AB", "manager": "AB", "client_user_a": "A", "client_admin_a": "A",
                       "client_user_b": "B", "agent_a": "A"},
    "documents": {"operator": "AB", "manager": "AB", "client_user_a": "A", "client_admin_a": "A",
                  "client_user_b": "B", "agent_a": "A"},
    "hil_notes": {"operator": "AB", "manager": "AB"},
    "notifications": {"operator": "AB", "manager": "AB"},
    "sla_alerts": {},
    "cost_items": {"operator": "AB", "manager": "AB", "agent_a": "A"},
    "invoices": {"manager": "AB", "agent_a": "A"},
    "audit_events": {},
    "realtime_events": {},
    "contact_types": {"manager": "AB"},
    "sla_definitions": {"manager": "AB"},
}


@pytest.mark.parametrize("client", ["A", "B"])
@pytest.mark.parametrize("table", sorted(INSERTS))
@pytest.mark.parametrize("person", PERSON_NAMES)
def test_insert_is_allowed_exactly_where_the_role_may_write(db, person, table, client):
    owner = {"A": "aaaaaaaa", "B": "bbbbbbbb"}[client]
    new_user = uuid.uuid4()
    db.execute("insert into auth.users (id, email) values (%s, %s)", (new_user, f"{new_user}@test.example"))
    me = PEOPLE[person].user_id or uuid.uuid4()
    statement = INSERTS[table].format(o=owner, c=client, n=(n := uuid.uuid4().hex[:8]), N=n.upper(), me=me, newuser=new_user)
    allowed = client in INSERTABLE[table].get(person, "")
    assert attempt(db, person, sql.SQL(statement)) is allowed
    act_as_service(db)


# --------------------------------------------------------------------------------------------
# Catalogs and generated streams
# --------------------------------------------------------------------------------------------
SIGNED_IN_CATALOGS = [
    "workflow_templates", "task_templates", "allowed_counterparty_types", "contact_types",
    "contact_labels", "document_tags", "business_hours_config", "business_holidays",
]
HIL_CONFIG = ["sla_definitions", "sla_escalation_rules", "agents"]


@pytest.mark.parametrize("table", SIGNED_IN_CATALOGS + HIL_CONFIG)
@pytest.mark.parametrize("person", PERSON_NAMES)
def test_catalogs_are_readable_by_the_right_people(db, person, table):
    with db.transaction(force_rollback=True):
        act_as(db, PEOPLE[person])
        query = sql.SQL("select count(*) as n from public.{}").format(sql.Identifier(table))
        if person == "anon":
            with pytest.raises(errors.InsufficientPrivilege):
                db.execute(query)
            return
        count = db.execute(query).fetchone()["n"]
    if person == "unprovisioned":
        assert count == 0
    elif table in SIGNED_IN_CATALOGS or person in HIL:
        assert count > 0
    elif person == "agent_a" and table == "agents":
        assert count == 1  # its own entry only
    else:
        assert count == 0


def read_as(db, person: str, query: str, params=()) -> list[dict]:
    with db.transaction(force_rollback=True):
        act_as(db, PEOPLE[person])
        return db.execute(query, params).fetchall()


@pytest.mark.parametrize("person", PERSON_NAMES[1:])
def test_audit_trail_is_for_hil_eyes_only(db, person):
    counts = read_as(db, person, "select client_id, count(*) as n from public.audit_events group by client_id")
    by_client = {r["client_id"]: r["n"] for r in counts}
    if person in HIL:
        assert by_client.get(row("A001"), 0) > 0 and by_client.get(row("B001"), 0) > 0
    else:
        assert by_client == {}


@pytest.mark.parametrize("person", PERSON_NAMES[1:])
def test_task_timeline_is_internal(db, person):
    seen = {r["workflow_id"] for r in read_as(db, person, "select distinct workflow_id from public.task_timeline_events")}
    expected = {"operator": rows("A101 B101"), "manager": rows("A101 B101"), "agent_a": rows("A101")}.get(person, set())
    assert seen == expected


@pytest.mark.parametrize("person", PERSON_NAMES[1:])
def test_event_stream_shows_only_what_the_person_may_see(db, person):
    events = read_as(db, person, "select event_type, client_id, workflow_id, recipient_id from public.realtime_events")
    me = PEOPLE[person].user_id
    notifications = [e for e in events if e["event_type"] == "hil_notification"]
    changes = [e for e in events if e["event_type"] != "hil_notification"]
    assert all(e["recipient_id"] == me for e in notifications)
    clients_seen = {e["client_id"] for e in changes}
    expected_clients = {
        "operator": {row("A001"), row("B001")}, "manager": {row("A001"), row("B001")},
        "client_user_a": {row("A001")}, "client_admin_a": {row("A001")}, "client_user_b": {row("B001")},
        "agent_a": {row("A001")},
    }.get(person, set())
    assert clients_seen == expected_clients
    if person == "agent_a":
        assert {e["workflow_id"] for e in changes} == rows("A101")
    if person in ("operator", "client_user_a", "client_user_b"):
        assert len(notifications) > 0
