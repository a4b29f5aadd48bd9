"""Schema invariants that every table must keep, read from the catalog."""
from __future__ import annotations

import re

import pytest

REALTIME_TABLES = {"workflows", "tasks", "notifications", "communications", "documents", "sla_alerts", "realtime_events"}


def scalar(db, query, params=()):
    return db.execute(query, params).fetchone()


def test_the_data_model_has_at_least_35_tables(db):
    assert scalar(db, "select count(*) as n from pg_tables where schemaname = 'public'")["n"] >= 35


def test_every_public_table_has_row_level_security(db):
    without = db.execute("select tablename from pg_tables where schemaname = 'public' and not rowsecurity").fetchall()
    assert without == []


def test_every_public_table_is_commented(db):
    missing = db.execute(
        """select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = 'public' and c.relkind = 'r' and obj_description(c.oid, 'pg_class') is null"""
    ).fetchall()
    assert missing == []


def test_every_table_has_a_uuid_primary_key_and_created_at(db):
    bad = db.execute(
        """select c.relname
             from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = 'public' and c.relkind = 'r'
              and (not exists (
                     select 1 from pg_constraint k join pg_attribute a on a.attrelid = k.conrelid and a.attnum = k.conkey[1]
                      where k.conrelid = c.oid and k.contype = 'p' and array_length(k.conkey, 1) = 1
                        and a.attname = 'id' and a.atttypid = 'uuid'::regtype)
                   or not exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'created_at'))"""
    ).fetchall()
    assert bad == []


def test_tables_with_updated_at_keep_it_by_trigger(db):
    missing = db.execute(
        """select c.relname
             from pg_class c join pg_namespace n on n.oid = c.relnamespace
             join pg_attribute a on a.attrelid = c.oid and a.attname = 'updated_at'
            where n.nspname = 'public' and c.relkind = 'r'
              and not exists (select 1 from pg_trigger t join pg_proc p on p.oid = t.tgfoid
                               where t.tgrelid = c.oid and p.proname = 'touch_updated_at')"""
    ).fetchall()
    assert missing == []


def test_every_foreign_key_is_indexed(db):
    # An index whose leading columns are the foreign key's columns serves it.
    unindexed = db.execute(
        """select k.conrelid::regclass::text as table_name, k.conname
             from pg_constraint k join pg_namespace n on n.oid = k.connamespace
            where k.contype = 'f' and n.nspname = 'public'
              and not exists (
                select 1 from pg_index i
                 where i.indrelid = k.conrelid
                   and (i.indkey::int2[])[0:array_length(k.conkey, 1) - 1] @> k.conkey
                   and (i.indkey::int2[])[0:array_length(k.conkey, 1) - 1] <@ k.conkey)"""
    ).fetchall()
    assert unindexed == []


def test_policy_filter_columns_are_indexed(db):
    # The columns tenant and scope policies filter on.
    for table, column in [
        ("workflows", "client_id"), ("tasks", "client_id"), ("tasks", "workflow_id"), ("communications", "workflow_id"),
        ("documents", "workflow_id"), ("notifications", "recipient_id"), ("user_profiles", "client_id"),
        ("sla_tracking", "client_id"), ("invoices", "client_id"), ("realtime_events", "client_id"),
        ("realtime_events", "recipient_id"), ("realtime_events", "workflow_id"), ("hil_notes", "author_id"),
        ("workflow_counterparties", "workflow_id"), ("workflow_contacts", "workflow_id"), ("user_preferences", "user_id"),
    ]:
        leading = scalar(
            db,
            """select count(*) as n from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
                where i.indrelid = ('public.' || %s)::regclass and a.attname = %s""",
            (table, column),
        )["n"]
        assert leading > 0, f"{table}.{column} has no index leading with it"


def test_functions_pin_their_search_path(db):
    unpinned = db.execute(
        """select p.oid::regprocedure::text as fn from pg_proc p join pg_namespace n on n.oid = p.pronamespace
            where n.nspname in ('public', 'private')
              and not coalesce(p.proconfig @> array['search_path=""'], false)"""
    ).fetchall()
    assert unpinned == []


def test_the_helpers_policies_call_keep_their_plans(db):
    """A SQL function with a SET clause is never inlined and PostgreSQL 15 keeps no plan for it
    between statements: one called by a policy would be parsed and planned again in every
    statement that touches its table (the claim helpers cost 0.4 ms a statement that way). The
    helpers policies call, and the ones those call, are PL/pgSQL."""
    referenced = set()
    for policy in db.execute("select coalesce(qual, '') || ' ' || coalesce(with_check, '') as text from pg_policies"):
        referenced.update(re.findall(r"private\.(\w+)\(", policy["text"]))
    referenced |= {"app_role", "app_metadata", "uuid_or_null", "person_matches_profile"}
    replanned = db.execute(
        """select p.proname from pg_proc p join pg_language l on l.oid = p.prolang
            where p.pronamespace = 'private'::regnamespace and p.proname = any(%s)
              and l.lanname = 'sql' and p.proconfig is not null order by 1""", (sorted(referenced),)).fetchall()
    assert len(referenced) > 8
    assert replanned == []


def test_watched_tables_are_in_the_realtime_publication(db):
    published = {r["tablename"] for r in db.execute(
        "select tablename from pg_publication_tables where pubname = 'supabase_realtime' and schemaname = 'public'")}
    assert published == REALTIME_TABLES


@pytest.mark.parametrize("enum_name, labels", [
    ("workflow_status", ["PENDING", "IN_PROGRESS", "AWAITING_REVIEW", "BLOCKED", "PAUSED", "COMPLETED", "FAILED", "CANCELLED"]),
    ("task_status", ["PENDING", "RUNNING", "WAITING", "AWAITING_REVIEW", "COMPLETED", "FAILED", "SKIPPED", "CANCELLED"]),
    ("workflow_type", ["MUNI_LIEN_SEARCH", "HOA_ACQUISITION", "PAYOFF_REQUEST"]),
    ("sla_alert_level", ["GREEN", "YELLOW", "ORANGE", "RED", "BREACHED"]),
    ("counterparty_type", ["hoa", "lender", "municipality", "utility", "tax_authority"]),
    ("notification_type", ["WORKFLOW_UPDATE", "TASK_INTERRUPT", "HIL_MENTION", "CLIENT_MESSAGE_RECEIVED",
                           "COUNTERPARTY_MESSAGE_RECEIVED", "SLA_WARNING", "AGENT_FAILURE"]),
])
def test_enums_speak_the_shared_vocabulary(db, enum_name, labels):
    found = [r["enumlabel"] for r in db.execute(
        """select e.enumlabel from pg_enum e join pg_type t on t.oid = e.enumtypid
            where t.typname = %s order by e.enumsortorder""", (enum_name,))]
    assert found == labels


def test_seed_holds_the_three_task_plans_and_ten_agents(db):
    plans = {r["workflow_type"]: r["keys"] for r in db.execute(
        """select wt.workflow_type::text, array_agg(tt.task_key order by tt.sequence, tt.task_key) as keys
             from public.workflow_templates wt join public.task_templates tt on tt.workflow_template_id = wt.id
            group by wt.workflow_type""")}
    assert plans == {
        "MUNI_LIEN_SEARCH": ["research_municipality", "portal_access", "process_documents", "quality_validation",
                             "generate_invoice", "update_crm", "notify_client"],
        "HOA_ACQUISITION": ["research_hoa_contact", "make_phone_call", "send_email_request", "await_documents",
                            "analyze_hoa_docs", "quality_validation", "generate_invoice", "update_crm", "notify_client"],
        "PAYOFF_REQUEST": ["identify_lender_contact", "send_payoff_request", "await_statement", "extract_payoff_data",
                           "generate_invoice", "update_crm_record", "notify_client"],
    }
    agents = [r["name"] for r in db.execute("select name from public.agents order by name")]
    assert agents == sorted(["nina", "mia", "florian", "rex", "iris", "ria", "kosha", "cassy", "max", "corey"])


def test_every_planned_agent_is_capable_of_its_step(db):
    mismatched = db.execute(
        """select tt.task_key, tt.agent_name from public.task_templates tt join public.agents a on a.name = tt.agent_name
            where not (tt.task_type = any (a.capabilities))""").fetchall()
    assert mismatched == []


def test_business_calendar_is_seeded(db):
    hours = db.execute("select weekday, opens_at::text, closes_at::text, timezone from public.business_hours_config order by weekday").fetchall()
    assert [(h["weekday"], h["opens_at"], h["closes_at"], h["timezone"]) for h in hours] == [
        (d, "09:00:00", "17:00:00", "America/New_York") for d in range(1, 6)]
    years = {r["y"]: r["n"] for r in db.execute(
        "select extract(year from holiday_date)::int as y, count(*) as n from public.business_holidays group by 1")}
    assert years[2026] == 11 and years[2027] >= 11
