"""Who sees which field, held against the one table (app/audience.py) as a property over the
whole surface: every operation of the OpenAPI document that answers with a resource, with every
include, and every /ws event type, as every kind of caller, on a world whose rows have a value
in every field (so a field that leaks would show).

For every object a caller receives, its keys are exactly the keys a HIL person receives at the
same place of the same answer, less those the table hides from that caller: a hidden field is
never present (omitted, not null), a shown field is never missing.
"""
from __future__ import annotations

import json

import pytest

from app import audience
from app.auth import Principal
from app.realtime.hub import StreamEvent
from tests.db.world import PEOPLE, row
from tests.security.surface import MACHINE_PREFIXES, OPERATIONS, VALID_BODIES
from tests.support import act_as_service

CALLERS = ("client_user_a", "client_admin_a", "operator", "manager", "agent_a")
KIND = {"client_user_a": audience.CLIENT, "client_admin_a": audience.CLIENT, "operator": audience.HIL_KIND,
        "manager": audience.HIL_KIND, "agent_a": audience.AGENT}
A = {code: str(row(code)) for code in ("A001", "A011", "A101", "A102", "A201", "A301", "A311", "A321", "A401",
                                       "A402", "A411", "A413", "A421", "A501", "A502", "A801", "A811")}
OPERATOR, MANAGER = str(row("C001")), str(row("C002"))
CALL = "aaaaaaaa-0000-4000-8000-000000000403"  # a client-visible call, with its metadata
CHILD = "aaaaaaaa-0000-4000-8000-000000000202"  # a branch of A201 (its parent)

# Every column the API shows gets a value: a field that leaks is then seen leaking.
FILL = [
    ("update public.workflows set manager_id = %(manager)s, created_by = %(operator)s, due_date = now() + interval '3 days',"
     " started_at = now() - interval '1 hour', completed_at = now(), n8n_execution_id = 'exec-' || left(id::text, 8) || right(id::text, 3),"
     " n8n_status = 'running', metadata = '{\"lostExecutions\": [{\"executionId\": \"exec-40\"}], \"failure\": \"none\"}'"
     " where id in (%(A101)s, %(A102)s)"),
    ("insert into public.tasks (id, workflow_id, client_id, task_key, task_type, title, agent_name, parent_task_id,"
     " branch_group) values (%(child)s, %(A101)s, %(A001)s, 'branch_check', 'branch_check', 'Branch', 'nina', %(A201)s,"
     " 'lenders')"),
    ("update public.tasks set description = 'Operator: call the lender, ask for Jo', assigned_to = %(operator)s,"
     " depends_on = '{verify_borrower}', parent_task_id = coalesce(parent_task_id, %(child)s),"
     " branch_group = coalesce(branch_group, 'lenders'), sla_minutes = 240, sla_started_at = now(),"
     " sla_due_at = now() + interval '2 days', agent_input = '{\"loanNumber\": \"L-A\"}',"
     " agent_output = '{\"finding\": \"lender moved\", \"lenderPhone\": \"+1 555 0100\"}',"
     " result = '{\"finding\": \"lender moved\"}', error_message = 'portal login failed',"
     " resume_url = 'n8n-resume:x', started_at = now() - interval '1 hour', completed_at = now(),"
     " metadata = '{\"escalation\": {\"reason\": \"stuck\", \"by\": \"cccccccc-0000-4000-8000-000000000001\"}}'"
     " where workflow_id = %(A101)s"),
    ("insert into public.task_timeline_events (task_id, workflow_id, event_type, from_status, to_status, actor_type,"
     " actor_id, message, data) values (%(A201)s, %(A101)s, 'note', 'PENDING', 'RUNNING', 'human', %(operator)s,"
     " 'escalated: stuck', '{\"reason\": \"stuck\"}')"),
    "update public.agent_results set processing_time_ms = 1200 where workflow_id = %(A101)s",
    ("update public.task_executions set status = 'SUCCEEDED', n8n_execution_id = 'exec-41', finished_at = now(), duration_ms = 1200,"
     " tokens_used = 900, error_code = 'PORTAL', error_message = 'portal login failed', input = '{\"q\": 1}',"
     " output = '{\"finding\": \"lender moved\"}' where workflow_id = %(A101)s"),
    ("update public.communications set task_id = %(A201)s, counterparty_id = %(A301)s, body = 'Your payoff is on its way',"
     " from_address = 'ops@rexera.example', to_addresses = '{client@a.example}', sender_id = %(operator)s,"
     " agent_name = 'mia', thread_id = %(A401)s, sent_at = now() where id in (%(A401)s, %(A402)s)"),
    ("insert into public.communications (id, workflow_id, task_id, counterparty_id, communication_type, direction,"
     " subject, body, from_address, to_addresses, is_client_visible, sender_id, agent_name, thread_id, sent_at)"
     " values (%(call)s, %(A101)s, %(A201)s, %(A301)s, 'call', 'OUTBOUND', 'Call with the lender', 'Summary',"
     " '+1 555 0100', '{+1 555 0101}', true, %(operator)s, 'iris', %(A401)s, now())"),
    ("insert into public.call_metadata (communication_id, phone_number, duration_seconds, recording_url, transcript,"
     " outcome, ivr_path) values (%(call)s, '+1 555 0100', 60, 'https://rec.example/1', 'transcript', 'answered',"
     " '{1,3}')"),
    ("update public.email_metadata set in_reply_to = '<prev@a.example>', references_header = '{<prev@a.example>}',"
     " cc = '{cc@a.example}', bcc = '{audit@rexera.example}' where id = %(A411)s"),
    ("update public.message_metadata set external_message_id = 'ext-1', delivery_status = 'delivered', read_at = now()"
     " where id = %(A413)s"),
    ("insert into public.communication_attachments (communication_id, document_id, filename, content_type, size_bytes,"
     " storage_path) values (%(A401)s, %(A501)s, 'payoff.pdf', 'application/pdf', 1000, 'a/payoff.pdf'),"
     " (%(call)s, %(A501)s, 'payoff.pdf', 'application/pdf', 1000, 'a/payoff.pdf')"),
    ("update public.communication_attachments set document_id = %(A501)s, content_type = 'image/png', size_bytes = 10,"
     " storage_path = 'a/shot.png' where id = %(A421)s"),
    ("update public.documents set task_id = %(A201)s, storage_path = 'a/payoff.pdf', content_type = 'application/pdf',"
     " size_bytes = 1000, previous_version_id = %(A502)s, deliverable_data = '{\"payoffAmount\": 1000}',"
     " uploaded_by = %(operator)s where id in (%(A501)s, %(A502)s)"),
    ("update public.counterparties set email = 'desk@lender.example', phone = '+1 555 0100',"
     " website = 'https://lender.example', address = '{\"line1\": \"1 Bank St\"}', has_ivr = true,"
     " requires_phone = true where id = %(A301)s"),
    ("update public.counterparty_contacts set title = 'Desk', email = 'jo@lender.example', phone = '+1 555 0102'"
     " where id = %(A321)s"),
    ("update public.workflow_counterparties set status = 'RESPONDED', contacted_at = now(), responded_at = now(),"
     " notes = 'Jo said the portal is down; call back at 3' where id = %(A311)s"),
    "update public.sla_alerts set acknowledged_by = %(operator)s, acknowledged_at = now() where id = %(A811)s",
    ("update public.notifications set task_id = %(A201)s, read_at = now()"
     " where workflow_id = %(A101)s"),
]


@pytest.fixture
def filled(db):
    params = {**A, "operator": OPERATOR, "manager": MANAGER, "call": CALL, "child": CHILD}
    act_as_service(db)
    for statement in FILL:
        db.execute(statement, params)
    # The step awaits review: a person's work (the queue, the SLA clocks) with a value everywhere.
    db.execute("update public.tasks set status = 'AWAITING_REVIEW' where id = %s", (A["A201"],))
    return db


# ---- Walking an answer against the table -----------------------------------------------------
def objects(resource: str, value, place: str = ""):
    """(place, resource, object) for every object of the table's resources in `value`."""
    if isinstance(value, list):
        for item in value:
            yield from objects(resource, item, place)
        return
    if not isinstance(value, dict):
        return
    yield place or resource, resource, value
    fields = audience.RESOURCES[resource]
    for key, item in value.items():
        field = fields.get(key)
        if field is not None and field.nested:
            yield from objects(field.nested, item, f"{place or resource}.{key}")


def keys_by_place(resource: str, answer) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for place, _, obj in objects(resource, answer):
        found.setdefault(place, set()).update(obj)
    return found


def check_answer(resource: str, answer, reference, kind: str, what: str) -> list[str]:
    """What is wrong with `answer` for a caller of `kind`, `reference` being a HIL person's."""
    problems = []
    expected_at = keys_by_place(resource, reference)
    for place, name, obj in objects(resource, answer):
        shown = audience.visible(name, kind)
        leaked = set(obj) - shown
        if leaked:
            problems.append(f"{what}: {place} shows {sorted(leaked)} to {kind}")
        missing = (expected_at.get(place, set()) & shown) - set(obj)
        if missing:
            problems.append(f"{what}: {place} lacks {sorted(missing)} for {kind}")
    return problems


def response_resource(spec: dict, template: str, method: str) -> str | None:
    responses = spec["paths"][template][method]["responses"]
    for status, answer in responses.items():
        if status.startswith("2"):
            schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
            ref = schema.get("$ref")
            return ref.rsplit("/", 1)[-1] if ref else None
    return None


def include_values(spec: dict, template: str, method: str) -> list[str]:
    for parameter in spec["paths"][template][method].get("parameters", []):
        if parameter.get("name") == "include":
            return parameter["schema"]["items"]["enum"]
    return []


READS = [op for op in OPERATIONS if op.method == "get" and not op.public
         and not op.template.startswith(("/webhooks/", *MACHINE_PREFIXES))]
# The list filters that bring the filled rows into a page (one workflow's tasks in plan order).
LIST_QUERIES = {"/api/tasks": {"workflowId": A["A101"]}, "/api/communications": {"workflowId": A["A101"]},
                "/api/documents": {"workflowId": A["A101"]}}

# Rows read one by one besides the world's usual ones: a call, with its call metadata.
MORE_IDS = {"communication_id": CALL}


@pytest.fixture(scope="module")
def spec():
    from tests.security.surface import openapi_operations  # noqa: F401 (the document the app serves)
    from app import create_app
    from tests.service_fixtures import make_settings

    class NoDatabase:
        observe = None

        def open(self, wait=False):
            pass

    return create_app(make_settings("postgresql://unused/unused"), database=NoDatabase()).extensions["api"].spec.to_dict()


def test_the_table_covers_every_field_of_every_answer(spec):
    """Every property of every schema an endpoint answers with (nested ones included) is in the
    table, and every table resource named after a schema has exactly the schema's fields."""
    schemas = spec["components"]["schemas"]
    problems = []
    for name, table in audience.RESOURCES.items():
        if name in schemas:
            declared = set(schemas[name].get("properties", {}))
            if declared != set(table):
                problems.append(f"{name}: schema {sorted(declared - set(table))}, table {sorted(set(table) - declared)}")
    reached = set()
    stack = [response_resource(spec, op.template, op.method) for op in OPERATIONS
             for op in [op] if not op.public and not op.template.startswith(("/webhooks/", *MACHINE_PREFIXES))]
    while stack:
        name = stack.pop()
        if name is None or name in reached:
            continue
        reached.add(name)
        if name not in audience.RESOURCES:
            problems.append(f"{name}: answered by an endpoint, not in the table")
            continue
        stack.extend(field.nested for field in audience.RESOURCES[name].values() if field.nested)
    assert problems == []
    # Every field not everyone sees says so in the document.
    for name in reached & set(schemas):
        for prop, body in schemas[name]["properties"].items():
            field = audience.RESOURCES[name][prop]
            assert body.get("x-audience") == sorted(field.audience - {audience.SERVICE}), (name, prop)
            if field.audience != audience.EVERYONE:
                assert "omitted for others" in body.get("description", ""), (name, prop)


def read_everything(as_, spec, caller: str) -> dict[str, tuple[str, object]]:
    """Every read operation's answer (with every include) for `caller`: what -> (resource, body)."""
    answers = {}
    for op in READS:
        resource = response_resource(spec, op.template, op.method)
        query = dict(LIST_QUERIES.get(op.template, {}))
        includes = include_values(spec, op.template, op.method)
        if includes:
            query["include"] = ",".join(includes)
        paths = [op.path()] + [op.path({name: value}) for name, value in MORE_IDS.items() if name in op.path_ids]
        for path in paths:
            response = as_(caller).get(path, query_string=query)
            if response.status_code == 200:
                answers[f"GET {path}?{query}"] = (resource, response.get_json())
    return answers


def test_every_read_answers_each_caller_with_the_fields_the_table_shows_it(filled, as_, spec):
    reference = read_everything(as_, spec, "operator")
    # The world has a value in every field of every resource the reads answer with: a HIL
    # person receives each one not null somewhere (so a leak could not hide behind a null).
    valued: dict[str, set[str]] = {}
    for resource, body in reference.values():
        for _, name, obj in objects(resource, body):
            valued.setdefault(name, set()).update(k for k, v in obj.items() if v not in (None, [], {}))
    for name, fields in valued.items():
        hidden_somewhere = {n for n, f in audience.RESOURCES[name].items() if f.audience != audience.EVERYONE}
        empty = hidden_somewhere - fields
        assert not empty, f"the world has no value in {name}.{sorted(empty)}"
    # ... and every resource with a field hidden from someone is read somewhere.
    hiding = {n for n, t in audience.RESOURCES.items() if any(f.audience != audience.EVERYONE for f in t.values())}
    assert hiding - set(audience.EVENTS.values()) - {"WorkflowActionResult"} <= set(valued), \
        sorted(hiding - set(valued))

    problems = []
    for caller in CALLERS:
        answers = read_everything(as_, spec, caller)
        assert answers, caller
        for what, (resource, body) in answers.items():
            problems += check_answer(resource, body, reference.get(what, (resource, body))[1], KIND[caller],
                                     f"{caller} {what}")
    assert problems == []


def test_what_clients_read_of_their_own_task_holds_nothing_internal(filled, as_):
    """The report's case, spelled out: a client user's own task, by every path."""
    for path, query in ((f"/api/tasks/{A['A201']}", {"include": "workflow,timeline,executions,sla"}),
                        ("/api/tasks", {"workflowId": A["A101"]})):
        text = as_("client_user_a").get(path, query_string=query).get_data(as_text=True)
        for secret in ("lender moved", "lenderPhone", "portal login failed", "escalation", "Operator: call",
                       OPERATOR, "exec-4"):
            assert secret not in text, (path, secret)
    text = as_("client_user_a").get(f"/api/counterparties/{A['A301']}").get_data(as_text=True)
    assert "call back at 3" not in text and "desk@lender.example" not in text
    text = as_("operator").get(f"/api/tasks/{A['A201']}").get_data(as_text=True)
    assert "lender moved" in text and "portal login failed" in text  # HIL people see it all


WRITES = [op for op in OPERATIONS if op.method != "get" and str(op) in VALID_BODIES
          and not op.template.startswith(("/webhooks/", *MACHINE_PREFIXES))]


@pytest.mark.parametrize("caller", CALLERS)
def test_every_write_answers_with_only_the_fields_the_table_shows(filled, as_, spec, caller):
    """What a create, update or action answers is shaped like a read (the same table)."""
    problems = []
    for op in WRITES:
        resource = response_resource(spec, op.template, op.method)
        if resource is None:
            continue
        body = VALID_BODIES[str(op)]
        response = getattr(as_(caller), op.method)(op.path(), json=body)
        if not 200 <= response.status_code < 300:
            continue
        answer = response.get_json()
        kind = KIND[caller]
        for place, name, obj in objects(resource, answer):
            leaked = set(obj) - audience.visible(name, kind)
            if leaked:
                problems.append(f"{caller} {op}: {place} shows {sorted(leaked)}")
    assert problems == []


# ---- /ws ---------------------------------------------------------------------------------
def stream_events(db, after: int) -> list[StreamEvent]:
    rows = db.execute("select seq, event_type, workflow_id, task_id, recipient_id, payload from public.realtime_events"
                      " where seq > %s order by seq", (after,)).fetchall()
    return [StreamEvent.from_row(r) for r in rows]


def principal_of(caller: str) -> Principal:
    person = PEOPLE[caller]
    if person.role == "agent":
        return Principal.agent(person.agent_name, person.workflow_id)
    return Principal.from_claims({"sub": str(person.user_id), "role": "authenticated", "aud": "authenticated",
                                  "app_metadata": {"role": person.role, **(
                                      {"client_id": str(person.client_id)} if person.client_id else {})}})


def test_every_ws_event_type_carries_to_each_caller_the_fields_the_table_shows(filled):
    db = filled
    after = db.execute("select coalesce(max(seq), 0) as s from public.realtime_events").fetchone()["s"]
    # One event of each type, every field with a value.
    db.execute("update public.workflows set status = 'PAUSED' where id = %s", (A["A101"],))
    db.execute("update public.tasks set status = 'FAILED' where id = %s", (A["A201"],))
    db.execute("insert into public.notifications (recipient_id, notification_type, title, message, workflow_id, task_id,"
               " action_required) values (%s, 'WORKFLOW_UPDATE', 'Update', 'Moved', %s, %s, true)",
               (A["A011"], A["A101"], A["A201"]))
    events = stream_events(db, after)
    assert {e.event_type for e in events} == set(audience.EVENTS)
    problems = []
    for event in events:
        resource = audience.EVENTS[event.event_type]
        full = json.loads(event.text)
        for name, obj in [(n, o) for _, n, o in objects(resource, full)]:
            empty = set(audience.RESOURCES[name]) - {k for k, v in obj.items() if v is not None}
            assert not empty, f"{event.event_type}: no value in {name}.{sorted(empty)}"
        for caller in CALLERS:
            received = json.loads(event.text_for(principal_of(caller)))
            problems += check_answer(resource, received, full, KIND[caller], f"{caller} {event.event_type}")
    assert problems == []


def test_a_socket_is_sent_only_text_for_its_caller():
    """The socket writes one text per event, live or replayed: StreamEvent.text_for its caller."""
    import inspect

    from app.realtime import endpoint

    source = inspect.getsource(endpoint)
    assert "event.text_for(self.principal)" in source
    assert "_send_text(event.text)" not in source
