"""Which tokens count as a person: only a signed token whose top-level role is
"authenticated". A client user's claims with "role": "service_role" (or anon, or none, or any
other) are refused at every endpoint before anything runs, and the database never takes a
request made as anon or authenticated for the service, whatever its claims say.
"""
from __future__ import annotations

import json

import pytest

from tests.db.world import PEOPLE, row
from tests.security.state import assert_refused
from tests.security.surface import PERSON_OPERATIONS
from tests.support import mint_token

NOT_A_PERSON = {"service_role": "service_role", "anon": "anon", "missing": None, "empty": "", "postgres": "postgres",
                "supabase_admin": "supabase_admin", "upper case": "AUTHENTICATED", "padded": "authenticated ",
                "a number": 1, "a list": ["authenticated"], "an object": {"role": "authenticated"}}


def token_with_role(person_name: str, role) -> str:
    token = mint_token(PEOPLE[person_name], role=role)
    if role is None:  # no role claim at all
        import jwt

        from tests.support import JWT_SECRET
        claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"], audience="authenticated")
        del claims["role"]
        token = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    return token


@pytest.mark.parametrize("kind", NOT_A_PERSON)
@pytest.mark.parametrize("person_name", ["client_user_a", "operator"])
def test_a_token_whose_role_is_not_authenticated_is_refused_everywhere(client, unchanged, person_name, kind):
    headers = {"Authorization": f"Bearer {token_with_role(person_name, NOT_A_PERSON[kind])}"}
    for op in PERSON_OPERATIONS:
        hidden = {"workflow_id": row("B101"), "task_id": row("B201")}  # another client's rows, as in the report
        kwargs = {"json": op.valid_body} if op.takes_body else {}
        response = getattr(client, op.method)(op.path(hidden), headers=headers, **kwargs)
        error = assert_refused(response, 401)
        assert error["code"] == "invalid_token" and "authenticated" in error["message"], (str(op), error)


def test_the_report_case_cancels_nothing(client, db):
    # A client user's claims with role service_role, signed with the project's secret,
    # cancelling another client's workflow through the actions endpoint.
    headers = {"Authorization": f"Bearer {token_with_role('client_user_a', 'service_role')}"}
    response = client.post(f"/api/workflows/{row('B101')}/actions", json={"action": "cancel"}, headers=headers)
    assert_refused(response, 401)
    assert db.execute("select status from public.workflows where id = %s", (row("B101"),)).fetchone()["status"] == "IN_PROGRESS"


# ---------------------------------------------------------------------------------------------
# In the database: the request role decides what is the service path
# ---------------------------------------------------------------------------------------------
def request_as(db, request_role: str, claims: dict | None) -> None:
    db.execute("select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
               (request_role, json.dumps(claims) if claims is not None else ""))


SERVICE_CLAIMS = {"role": "service_role", "app_metadata": {"actor": "x"}}


@pytest.mark.parametrize("request_role, claims, expected", [
    ("service_role", SERVICE_CLAIMS, True),
    ("none", None, True),  # a direct connection (n8n's Postgres node, pg_cron)
    ("authenticated", SERVICE_CLAIMS, False),
    ("authenticated", {**PEOPLE["client_user_a"].claims, "role": "service_role"}, False),
    ("anon", SERVICE_CLAIMS, False),
    ("anon", None, False),
    ("authenticated", None, False),
    ("service_role", PEOPLE["operator"].claims, False),  # service role, a person's claims: neither
])
def test_the_service_path_is_decided_by_the_request_role(db, request_role, claims, expected):
    request_as(db, request_role, claims)
    assert db.execute("select private.is_service() as s").fetchone()["s"] is expected


@pytest.mark.parametrize("call", [
    "select public.workflow_action(%(w)s, 'cancel')",
    "select public.task_action(%(t)s, 'fail', '{\"error\": \"x\"}')",
    "select public.transition_task(%(t)s, 'FAILED')",
])
def test_person_claims_that_say_service_role_act_on_nothing_of_another_client(db, call):
    request_as(db, "authenticated", {**PEOPLE["client_user_a"].claims, "role": "service_role"})
    with pytest.raises(Exception) as raised:
        db.execute(call, {"w": row("B101"), "t": row("B201")})
    assert raised.value.sqlstate == "P0002"
    db.rollback()
    db.execute("select 1")
    assert db.execute("select status from public.workflows where id = %s", (row("B101"),)).fetchone()["status"] == "IN_PROGRESS"
