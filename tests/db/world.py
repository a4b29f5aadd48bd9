"""Names for the rows and people of tests/fixtures/world.sql.

A row code is an owner letter and a three-digit code: "A401" is
aaaaaaaa-0000-4000-8000-000000000401 (client A), "B401" its twin at client B, "C301" a
shared or HIL row.
"""
from __future__ import annotations

import uuid

from tests.support import Person

OWNERS = {"A": "aaaaaaaa", "B": "bbbbbbbb", "C": "cccccccc"}


def row(code: str) -> uuid.UUID:
    return uuid.UUID(f"{OWNERS[code[0]]}-0000-4000-8000-000000000{code[1:]}")


def rows(codes: str) -> set[uuid.UUID]:
    return {row(code) for code in codes.split()}


CLIENT_A = row("A001")
CLIENT_B = row("B001")

PEOPLE = {
    "anon": Person("anon", None, request_role="anon"),
    "unprovisioned": Person("unprovisioned", None, user_id=uuid.UUID("dddddddd-0000-4000-8000-000000000001")),
    "operator": Person("operator", "hil_operator", user_id=row("C001")),
    "manager": Person("manager", "hil_manager", user_id=row("C002")),
    "client_user_a": Person("client_user_a", "client_user", user_id=row("A011"), client_id=CLIENT_A),
    "client_admin_a": Person("client_admin_a", "client_admin", user_id=row("A012"), client_id=CLIENT_A),
    "client_user_b": Person("client_user_b", "client_user", user_id=row("B011"), client_id=CLIENT_B),
    "agent_a": Person("agent_a", "agent", workflow_id=row("A101"), agent_name="nina"),
}


# What makes a client person stop counting (private.person_is_current), as statements taking the
# person's %(id)s, their %(client)s and %(other)s client.
CLIENT_PERSON_CHANGES = {
    "deactivated": "update public.user_profiles set is_active = false where id = %(id)s",
    "deleted": "delete from auth.users where id = %(id)s",
    "moved to another role": "update public.user_profiles set role = 'client_admin' where id = %(id)s",
    "moved to another client": "update public.user_profiles set client_id = %(other)s where id = %(id)s",
    "their client deactivated": "update public.clients set is_active = false where id = %(client)s",
}
