"""Acting as a person in a test transaction, exactly as the service does per request."""
from __future__ import annotations

import dataclasses
import json
import time
import uuid

import jwt
import psycopg

JWT_SECRET = "test-secret-only-for-tests-0123456789abcdef"


@dataclasses.dataclass(frozen=True)
class Person:
    """Someone the policies know: a role claim set as PostgREST would set it."""

    name: str
    role: str | None
    user_id: uuid.UUID | None = None
    client_id: uuid.UUID | None = None
    workflow_id: uuid.UUID | None = None
    agent_name: str | None = None
    request_role: str = "authenticated"

    @property
    def claims(self) -> dict:
        if self.request_role == "anon":
            return {"role": "anon"}
        app_metadata: dict = {}
        if self.role in ("hil_operator", "hil_manager"):
            app_metadata = {"user_type": "hil_user", "role": self.role}
        elif self.role in ("client_user", "client_admin"):
            app_metadata = {"user_type": "client_user", "role": self.role, "client_id": str(self.client_id)}
        elif self.role == "agent":
            app_metadata = {"role": "agent", "agent_name": self.agent_name, "workflow_id": str(self.workflow_id)}
        claims = {"role": self.request_role, "aud": "authenticated", "app_metadata": app_metadata}
        if self.user_id:
            claims["sub"] = str(self.user_id)
        return claims


def act_as(conn: psycopg.Connection, person: Person) -> None:
    """Apply the person's request role and claims to the current transaction."""
    conn.execute(
        "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
        (person.request_role, json.dumps(person.claims)),
    )


def act_as_service(conn: psycopg.Connection) -> None:
    """Back to the connecting superuser with no claims: the service path."""
    conn.execute("select set_config('role', 'none', true), set_config('request.jwt.claims', '', true)")


def mint_token(person: Person, *, secret: str = JWT_SECRET, expires_in: int = 3600, algorithm: str = "HS256",
               headers: dict | None = None, **overrides) -> str:
    """A Supabase-style access token for `person`, signed with a throwaway key."""
    now = int(time.time())
    claims = {**person.claims, "iat": now, "exp": now + expires_in, "aud": "authenticated",
              "sub": str(person.user_id or uuid.uuid4()), "email": f"{person.name}@test.example", **overrides}
    return jwt.encode(claims, secret, algorithm=algorithm, headers=headers)


def terminate_backends(conn: psycopg.Connection, pids: list[int]) -> None:
    """End those server processes (a database restart, as their clients see it) and wait until
    they are gone."""
    for pid in pids:
        conn.execute("select pg_terminate_backend(%s)", (pid,))
    for _ in range(100):
        if not conn.execute("select 1 from pg_stat_activity where pid = any(%s)", (pids,)).fetchone():
            return
        time.sleep(0.02)
