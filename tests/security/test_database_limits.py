"""Every database refusal a caller can provoke is a 4xx naming the field, never a 503.

A btree index holds keys of at most about 2,700 bytes (SQLSTATE 54000 beyond, which answered
503 "database unavailable" for a 998-character email.messageId). Every indexed text column of
the database is accounted for here: filled from a request field whose maxLength (in the OpenAPI
document) keeps the worst case, 4-byte characters all the way, inside the limit, or filled by the
service itself. A new indexed text column fails the first test until it is placed.
"""
from __future__ import annotations

import psycopg
import pytest

from app.errors import INDEX_FIELDS, from_database_error
from tests.db.world import row
from tests.security.state import assert_refused

BTREE_KEY_BYTES = 2700
WIDE = "\U0001d11e"  # a 4-byte character in UTF-8

EMAIL = {"workflowId": str(row("A101")), "type": "email", "direction": "INBOUND", "body": "Hello"}
# column -> (operation, body with the value at ?, the field's path, maxLength, any text or ASCII by pattern)
API_FILLED = {
    "email_metadata.message_id": ("post", "/api/communications", lambda v: {**EMAIL, "email": {"messageId": v}},
                                  "messageId", 500, "any"),
    "email_metadata.in_reply_to": ("post", "/api/communications", lambda v: {**EMAIL, "email": {"inReplyTo": v}},
                                   "inReplyTo", 500, "any"),
    "counterparties.name": ("post", "/api/counterparties", lambda v: {"type": "lender", "name": v}, "name", 300, "any"),
    "documents.deliverable_key": ("post", "/api/documents", lambda v: {
        "workflowId": str(row("A101")), "documentType": "DELIVERABLE", "filename": "a.pdf", "deliverableKey": v,
        "deliverableData": {}}, "deliverableKey", 100, "ascii"),
    "tasks.task_key": ("post", "/api/tasks", lambda v: {"workflowId": str(row("A101")), "taskType": "extra_check",
                                                         "title": "Extra", "taskKey": v}, "taskKey", 120, "ascii"),
    "tasks.agent_name": ("post", "/api/tasks", lambda v: {"workflowId": str(row("A101")), "taskType": "extra_check",
                                                           "title": "Extra", "executorType": "AI", "agentName": v},
                         "agentName", 31, "ascii"),
}
# Filled by the service, its seed or its own scripts, never from a request's free text (or, for
# the n8n callbacks' values, only from signed callbacks; a value past the limit there is still a
# 422 naming the field through app.errors.INDEX_FIELDS).
SERVICE_FILLED = {
    "audit_events.resource_type": "the audit triggers (table names)",
    "agents.name": "seed.sql",
    "agent_results.agent_name": "signed n8n callbacks (a known agent)",
    "clients.name": "scripts/provision.py",
    "communications.agent_name": "the agent principal's name (X-Agent-Name, at most 31 characters)",
    "contact_labels.code": "seed.sql", "contact_types.code": "seed.sql", "document_tags.code": "seed.sql",
    "cost_items.agent_name": "signed n8n callbacks (a known agent)",
    "hil_note_tags.tag": "the service",
    "invoices.invoice_number": "the service",
    "notifications.dedupe_key": "the service (its own keys)",
    "sla_definitions.agent_name": "seed.sql", "sla_definitions.task_type": "seed.sql",
    "sla_escalation_rules.notify_target": "seed.sql",
    "sla_performance_metrics.agent_name": "the SLA sweep", "sla_performance_metrics.task_type": "the SLA sweep",
    "task_executions.agent_name": "signed n8n callbacks (a known agent)",
    "task_templates.agent_name": "seed.sql", "task_templates.task_key": "seed.sql",
    "user_profiles.email": "scripts/provision.py",
    "webhook_receipts.source": "the service", "webhook_receipts.event_id": "signed webhook-id headers (INDEX_FIELDS)",
    "workflows.n8n_execution_id": "signed n8n callbacks (INDEX_FIELDS)",
    "counterparties.lower(name)": "counterparties.name (above)",
}


def indexed_text_columns(db) -> set[str]:
    rows = db.execute("""
        select t.relname as tbl, a.attname as col, pg_get_indexdef(x.indexrelid) as def
          from pg_index x
          join pg_class t on t.oid = x.indrelid
          join pg_namespace n on n.oid = t.relnamespace
          join pg_class i on i.oid = x.indexrelid
          join pg_am am on am.oid = i.relam and am.amname = 'btree'
          left join pg_attribute a on a.attrelid = t.oid and a.attnum = any(x.indkey) and a.attnum > 0
         where n.nspname = 'public'
           and (a.attnum is null or format_type(a.atttypid, a.atttypmod) in ('text', 'character varying', 'citext'))
    """).fetchall()
    found = set()
    for r in rows:
        if r["col"] is not None:
            found.add(f"{r['tbl']}.{r['col']}")
        elif "lower(name)" in r["def"]:
            found.add(f"{r['tbl']}.lower(name)")
        elif "(" in r["def"].split(" USING btree ", 1)[1].split(")", 1)[0][1:]:
            found.add(f"{r['tbl']}.{r['def']}")  # another expression index: place it above
    return found


def test_every_indexed_text_column_is_filled_from_a_bounded_field_or_by_the_service(db):
    assert indexed_text_columns(db) == set(API_FILLED) | set(SERVICE_FILLED)


@pytest.mark.parametrize("column", API_FILLED, ids=API_FILLED.keys())
def test_the_openapi_document_bounds_each_indexed_field_inside_the_key_limit(app, column):
    _method, _path, _body, field, max_length, charset = API_FILLED[column]
    assert max_length * (4 if charset == "any" else 1) < BTREE_KEY_BYTES - 100
    text = str(app.extensions["api"].spec.to_dict()["components"]["schemas"])
    assert f"'{field}': {{'type': 'string', 'minLength': 1, 'maxLength': {max_length}" in text \
        or f"'maxLength': {max_length}" in text


def worst(max_length: int, charset: str) -> str:
    return (WIDE * max_length) if charset == "any" else ("a" + "b" * (max_length - 1))


@pytest.mark.parametrize("column", API_FILLED, ids=API_FILLED.keys())
def test_the_longest_value_allowed_is_stored(as_, column):
    method, path, body, _field, max_length, charset = API_FILLED[column]
    value = worst(max_length, charset)
    if column == "tasks.agent_name":
        value = "nina"  # a known agent (its key also holds at 31 ASCII characters)
    response = getattr(as_("operator"), method)(path, json=body(value))
    assert response.status_code < 500 and response.status_code in (200, 201), (response.status_code, response.get_json())


@pytest.mark.parametrize("length", ["one past", "ten times"])
@pytest.mark.parametrize("column", API_FILLED, ids=API_FILLED.keys())
def test_a_value_past_the_limit_is_a_422_naming_the_field(as_, unchanged, column, length):
    method, path, body, field, max_length, charset = API_FILLED[column]
    value = worst(max_length + 1 if length == "one past" else max_length * 10, charset)
    error = assert_refused(getattr(as_("operator"), method)(path, json=body(value)), 422)
    assert error["code"] == "validation_error" and field in str(error["details"]), error


@pytest.mark.parametrize("index, field", INDEX_FIELDS.items(), ids=INDEX_FIELDS.keys())
def test_a_key_past_the_btree_limit_is_a_422_naming_the_field_never_a_503(db, index, field):
    """Should a value ever slip past its schema, PostgreSQL's own refusal (54000) still names it."""
    with pytest.raises(psycopg.errors.ProgramLimitExceeded) as refused, db.transaction():
        db.execute("create temporary table key_limit (v text)")
        db.execute(f'create index "{index}" on key_limit (v)')
        db.execute("insert into key_limit select string_agg(md5(g::text), '') from generate_series(1, 100) g")
    mapped = from_database_error(refused.value)
    assert (mapped.status, mapped.code) == (422, "value_too_long")
    assert mapped.details == {"json": {field: ["too long to be stored"]}} and field in mapped.message


@pytest.mark.parametrize("pieces", [100, 300], ids=["past the btree limit", "past a page"])
def test_an_unknown_index_past_its_limit_is_still_a_422(db, pieces):
    with pytest.raises(psycopg.errors.ProgramLimitExceeded) as refused, db.transaction():
        db.execute("create temporary table key_limit (v text)")
        db.execute("create index key_limit_somewhere on key_limit (v)")
        db.execute("insert into key_limit select string_agg(md5(g::text), '') from generate_series(1, %s) g",
                   (pieces,))
    mapped = from_database_error(refused.value)
    assert (mapped.status, mapped.code) == (422, "value_too_long") and "unavailable" not in mapped.message
