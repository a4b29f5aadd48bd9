"""A person counts only while their profile says so. Deactivated, deleted, moved to another
role or client, or at a deactivated client: every endpoint answers 401 person_inactive at once
(not when the token expires) and writes nothing, and the database's own-row policies give them
nothing either (for Supabase's own REST API and Realtime, which do not pass through the
service). The WebSocket side is in tests/realtime/test_revocation.py.
"""
from __future__ import annotations

import json

import pytest
from psycopg import Rollback

from tests.db.world import CLIENT_B, CLIENT_PERSON_CHANGES as CHANGES, PEOPLE, row
from tests.security.state import assert_refused, changed_tables, fingerprint
from tests.security.surface import PERSON_OPERATIONS
from tests.support import act_as, act_as_service

# (A HIL person who wrote notes or owns workflows cannot be deleted: deactivating is how they go.)
HIL_CHANGES = {
    "deactivated": "update public.user_profiles set is_active = false where id = %(id)s",
    "moved to another role": "update public.user_profiles set role = 'hil_manager' where id = %(id)s",
}


def change(db, person_name: str, statement: str) -> None:
    person = PEOPLE[person_name]
    db.execute(statement, {"id": person.user_id, "client": person.client_id, "other": CLIENT_B})


CASES = [("client_user_a", kind, statement) for kind, statement in CHANGES.items()] + \
    [("operator", kind, statement) for kind, statement in HIL_CHANGES.items()]


@pytest.mark.parametrize("person_name, kind, statement", CASES, ids=[f"{p} {k}" for p, k, _ in CASES])
def test_every_endpoint_refuses_a_person_who_no_longer_counts(as_, db, person_name, kind, statement):
    change(db, person_name, statement)
    before = fingerprint(db)
    caller = as_(person_name)
    for op in PERSON_OPERATIONS:
        kwargs = {"json": op.valid_body} if op.takes_body else {}
        error = assert_refused(getattr(caller, op.method)(op.path(), **kwargs), 401)
        assert error["code"] == "person_inactive", (str(op), error)
    assert changed_tables(before, fingerprint(db)) == []


@pytest.mark.parametrize("kind, says", [("deactivated", "deactivated"), ("deleted", "no person"),
                                        ("moved to another role", "sign in again"),
                                        ("their client deactivated", "client is deactivated")])
def test_the_refusal_says_why(as_, db, kind, says):
    change(db, "client_user_a", CHANGES[kind])
    error = assert_refused(as_("client_user_a").get("/api/views/notifications"), 401)
    assert says in error["message"]


def test_a_person_made_active_again_counts_again(as_, db):
    change(db, "client_user_a", CHANGES["deactivated"])
    assert as_("client_user_a").get("/api/views/notifications").status_code == 401
    db.execute("update public.user_profiles set is_active = true where id = %s", (PEOPLE["client_user_a"].user_id,))
    body = as_("client_user_a").get("/api/views/notifications").json
    assert [n["id"] for n in body["notifications"]] == [str(row("A701"))]


# ---------------------------------------------------------------------------------------------
# The database's own-row policies (what Supabase's REST API and Realtime would give them)
# ---------------------------------------------------------------------------------------------
OWN_ROWS = {
    "notifications": "select count(*) as n from public.notifications",
    "user_profiles": "select count(*) as n from public.user_profiles",
    "user_preferences": "select count(*) as n from public.user_preferences",
    "realtime_events": "select count(*) as n from public.realtime_events where event_type = 'hil_notification'",
    "notifications_view": "select (public.notifications_view(false, null, null, 50, 0) ->> 'totalCount')::int as n",
}


@pytest.mark.parametrize("kind", [k for k in CHANGES if k != "deleted"])
def test_own_row_policies_give_a_person_who_no_longer_counts_nothing(db, kind):
    person = PEOPLE["client_user_a"]
    db.execute("""insert into public.realtime_events (event_type, recipient_id, payload)
                  values ('hil_notification', %s, '{}')""", (person.user_id,))
    act_as(db, person)
    seen = {name: db.execute(query).fetchone()["n"] for name, query in OWN_ROWS.items()}
    assert all(seen.values()), seen  # the control: while they count, each shows them something
    act_as_service(db)
    change(db, "client_user_a", CHANGES[kind])
    act_as(db, person)
    assert {name: db.execute(query).fetchone()["n"] for name, query in OWN_ROWS.items()} == dict.fromkeys(OWN_ROWS, 0)
    assert db.execute("select public.mark_notifications_read(null) as n").fetchone()["n"] == 0
    act_as_service(db)
    assert db.execute("select count(*) as n from public.notifications where recipient_id = %s and read_at is not null",
                      (person.user_id,)).fetchone()["n"] == 0


def test_the_person_check_names_no_one_to_a_stranger(db):
    act_as(db, PEOPLE["unprovisioned"])
    with pytest.raises(Exception) as raised:
        db.execute("select private.require_current_person()")
    assert raised.value.sqlstate == "28000" and "no person" in str(raised.value)
    db.rollback()
    db.execute("select 1")


def test_person_is_current_answers_for_each_change(db):
    person = PEOPLE["client_user_a"]
    metadata = json.dumps(person.claims["app_metadata"])
    ask = "select private.person_is_current(%s, %s::jsonb) as ok"
    assert db.execute(ask, (person.user_id, metadata)).fetchone()["ok"] is True
    for kind in CHANGES:
        with db.transaction():
            change(db, "client_user_a", CHANGES[kind])
            assert db.execute(ask, (person.user_id, metadata)).fetchone()["ok"] is False, kind
            raise Rollback()
