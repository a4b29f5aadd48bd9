"""The service under test: the real app over the session database, each test's requests
running in savepoints of the test's own transaction (rolled back afterwards)."""
from __future__ import annotations

import contextlib
import json

import pytest

from app import create_app
from app.config import Settings
from app.db import APPLY_REQUEST_CONTEXT, REQUIRE_CURRENT_PERSON, Database, request_headers_json
from tests.db.world import PEOPLE
from tests.support import JWT_SECRET, act_as_service, mint_token

AGENT_KEY = "agent-key-for-tests-0123456789"
CALLBACK_SECRET = b"callback-master-secret-for-tests-only!!"
ERROR_TOKEN = "error-token-for-tests-0123456789"
METRICS_TOKEN = "metrics-token-for-tests-0123456789"
METRICS_HEADERS = {"Authorization": f"Bearer {METRICS_TOKEN}"}


class TransactionalDatabase(Database):
    """Database whose transactions are savepoints in one test connection."""

    def __init__(self, conn):
        self.conn = conn

    def open(self, wait=False):
        pass

    def close(self):
        pass

    @contextlib.contextmanager
    def transaction(self, principal, timeout=None):
        try:
            with self.conn.transaction():
                self.conn.execute(APPLY_REQUEST_CONTEXT, (principal.request_role, json.dumps(principal.claims),
                                                          request_headers_json()))
                if principal.kind == "person":
                    self.conn.execute(REQUIRE_CURRENT_PERSON)
                yield self.conn
        finally:
            act_as_service(self.conn)

    def single(self, principal, query, params=(), *, all_rows=False, writes=False, idempotent=False):
        # The one-message read needs a connection of its own (tests/app/test_db.py covers it);
        # here it is the same query in a savepoint.
        return self.run(principal, lambda conn: (lambda cur: cur.fetchall() if all_rows else cur.fetchone())(
            conn.execute(query, params)))


def make_settings(database_url: str, **overrides) -> Settings:
    return Settings(**{"database_url": database_url, "supabase_jwt_secret": JWT_SECRET,
                       "agent_api_keys": {"*": AGENT_KEY}, "rate_limits_enabled": False,
                       "n8n_callback_secret": CALLBACK_SECRET, "n8n_error_webhook_token": ERROR_TOKEN,
                       "metrics_token": METRICS_TOKEN, **overrides})


@pytest.fixture(scope="session")
def _session_app(_session_connection, database_url):
    # Built once: create_app assembles the whole OpenAPI document (~0.1 s).
    application = create_app(make_settings(database_url), database=TransactionalDatabase(_session_connection))
    application.config["TESTING"] = True
    return application


@pytest.fixture
def app(_session_app, db):
    """The app, its requests running inside this test's rolled-back transaction."""
    _session_app.config.pop("RATE_LIMITS", None)
    return _session_app


@pytest.fixture
def client(app):
    return app.test_client()


class Caller:
    """Makes requests as one of the world's people."""

    def __init__(self, client, person_name: str):
        self.client = client
        self.person = PEOPLE[person_name]

    @property
    def headers(self) -> dict:
        if self.person.role == "agent":
            return {"X-API-Key": AGENT_KEY, "X-Agent-Name": self.person.agent_name,
                    "X-Workflow-Scope": str(self.person.workflow_id)}
        return {"Authorization": f"Bearer {mint_token(self.person)}"}

    def __getattr__(self, method):
        def call(path, **kwargs):
            headers = {**self.headers, **kwargs.pop("headers", {})}
            return getattr(self.client, method)(path, headers=headers, **kwargs)
        return call


@pytest.fixture
def as_(client):
    """as_("client_user_a").get("/api/workflows")"""
    return lambda person_name: Caller(client, person_name)
