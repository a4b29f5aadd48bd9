"""Token verification: HS256 with the project secret, ES256/RS256 from the JWKS URL (served by
a small local HTTP server standing in for hosted Supabase Auth), agent keys, and the claims that
reach the database."""
from __future__ import annotations

import base64
import http.server
import json
import threading
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app import create_app
from tests.service_fixtures import AGENT_KEY, TransactionalDatabase, make_settings
from tests.db.world import PEOPLE, row
from tests.support import JWT_SECRET, mint_token



def get(client, token, path="/api/workflows"):
    return client.get(path, headers={"Authorization": f"Bearer {token}"})


def unsigned(claims: dict) -> str:
    def b64(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


@pytest.mark.parametrize("make_token, code", [
    (lambda: mint_token(PEOPLE["operator"], expires_in=-60), "token_expired"),
    (lambda: mint_token(PEOPLE["operator"], secret="another-secret-that-is-long-enough-123"), "invalid_token"),
    (lambda: mint_token(PEOPLE["operator"], aud="service"), "invalid_token"),
    (lambda: unsigned({**PEOPLE["operator"].claims, "exp": int(time.time()) + 60, "sub": str(uuid.uuid4())}), "invalid_token"),
    (lambda: "not-a-jwt", "invalid_token"),
    (lambda: mint_token(PEOPLE["operator"], secret=JWT_SECRET * 2, algorithm="HS512"), "invalid_token"),
])
def test_bad_tokens_get_401(client, make_token, code):
    response = get(client, make_token())
    assert response.status_code == 401
    assert response.json["error"]["code"] == code


def test_a_token_without_exp_is_refused(client):
    token = jwt.encode({**PEOPLE["operator"].claims, "sub": str(uuid.uuid4())}, JWT_SECRET, algorithm="HS256")
    assert get(client, token).status_code == 401


def test_a_role_in_user_metadata_grants_nothing(client):
    # A person without a profile is nobody here, whatever user_metadata says: every request 401.
    nobody = PEOPLE["unprovisioned"]
    token = mint_token(nobody, user_metadata={"role": "hil_manager", "user_type": "hil_user"})
    response = get(client, token)
    assert response.status_code == 401 and response.json["error"]["code"] == "person_inactive"
    response = client.post("/api/workflows", json={"type": "PAYOFF_REQUEST", "clientId": str(row("A001")),
                                                   "payload": {"address": "x", "borrowerName": "x", "lenderName": "x",
                                                               "loanNumber": "1", "payoffDate": "2026-12-01"}},
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and response.json["error"]["code"] == "person_inactive"


def test_the_database_sees_exactly_the_verified_claims(app, db):
    from app.auth import Principal

    token = mint_token(PEOPLE["client_user_a"])
    claims = app.extensions["token_verifier"].verify(token)
    principal = Principal.from_claims(claims)
    assert principal.client_id == row("A001") and principal.role == "client_user"
    with app.extensions["database"].transaction(principal) as conn:
        seen = conn.execute("select auth.uid() as uid, current_setting('role') as role, "
                            "auth.jwt() -> 'app_metadata' ->> 'client_id' as client").fetchone()
    assert seen == {"uid": PEOPLE["client_user_a"].user_id, "role": "authenticated", "client": str(row("A001"))}


# ---------------------------------------------------------------------------------------------
# JWKS (asymmetric keys), the hosted Supabase way
# ---------------------------------------------------------------------------------------------
def jwk_of(private_key, kid: str, alg: str) -> dict:
    public = jwt.algorithms.ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True) if alg == "ES256" \
        else jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    return {**public, "kid": kid, "alg": alg, "use": "sig"}


class JwksServer:
    """Serves a JWK set at /auth/v1/.well-known/jwks.json and counts the fetches."""

    def __init__(self):
        self.keys: list[dict] = []
        self.fetches = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.fetches += 1
                body = json.dumps({"keys": server.keys}).encode()
                self.send_response(200 if self.path == "/auth/v1/.well-known/jwks.json" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.issuer = f"{self.url}/auth/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def jwks():
    server = JwksServer()
    yield server
    server.httpd.shutdown()


@pytest.fixture
def jwks_app(db, database_url, jwks):
    settings = make_settings(database_url, supabase_url=jwks.url, jwt_issuer=jwks.issuer)
    object.__setattr__(settings, "supabase_jwt_secret", None)
    return create_app(settings, database=TransactionalDatabase(db))


@pytest.mark.parametrize("alg, key", [
    ("ES256", ec.generate_private_key(ec.SECP256R1())),
    ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
])
def test_asymmetric_tokens_verify_against_the_jwks_and_keys_are_cached(jwks_app, jwks, alg, key):
    jwks.keys = [jwk_of(key, "key-1", alg)]
    token = mint_token(PEOPLE["operator"], secret=key, algorithm=alg, headers={"kid": "key-1"}, iss=jwks.issuer)
    client = jwks_app.test_client()
    assert get(client, token).status_code == 200
    assert get(client, token).status_code == 200
    assert jwks.fetches == 1  # fetched once, then cached


def test_wrong_issuer_and_unknown_kid_are_refused(jwks_app, jwks):
    key = ec.generate_private_key(ec.SECP256R1())
    jwks.keys = [jwk_of(key, "key-1", "ES256")]
    client = jwks_app.test_client()
    wrong_issuer = mint_token(PEOPLE["operator"], secret=key, algorithm="ES256", headers={"kid": "key-1"}, iss="https://evil.test")
    assert get(client, wrong_issuer).status_code == 401
    unknown_kid = mint_token(PEOPLE["operator"], secret=key, algorithm="ES256", headers={"kid": "key-2"}, iss=jwks.issuer)
    assert get(client, unknown_kid).status_code == 401
    hs256 = mint_token(PEOPLE["operator"], iss=jwks.issuer)  # no HS256 secret configured here
    assert get(client, hs256).status_code == 401


# ---------------------------------------------------------------------------------------------
# Agents
# ---------------------------------------------------------------------------------------------
def agent_headers(**overrides):
    return {"X-API-Key": AGENT_KEY, "X-Agent-Name": "nina", "X-Workflow-Scope": str(row("A101")), **overrides}


def test_an_agent_sees_only_its_workflow(client):
    body = client.get("/api/workflows", headers=agent_headers()).json
    assert [w["id"] for w in body["workflows"]] == [str(row("A101"))]
    assert client.get(f"/api/workflows/{row('B101')}", headers=agent_headers()).status_code == 404


@pytest.mark.parametrize("overrides", [
    {"X-API-Key": "wrong-key-wrong-key-wrong"},
    {"X-Agent-Name": ""},
    {"X-Workflow-Scope": "not-a-uuid"},
    {"X-Agent-Name": "Robert'); drop table agents;--"},
])
def test_bad_agent_credentials_get_401(client, overrides):
    response = client.get("/api/workflows", headers=agent_headers(**overrides))
    assert response.status_code == 401 and response.json["error"]["code"] == "invalid_agent_credentials"


def test_per_agent_keys_bind_the_key_to_the_agent(db, database_url):
    settings = make_settings(database_url)
    object.__setattr__(settings, "agent_api_keys", {"nina": "nina-key-0123456789abcdef"})
    client = create_app(settings, database=TransactionalDatabase(db)).test_client()
    ok = client.get("/api/workflows", headers=agent_headers(**{"X-API-Key": "nina-key-0123456789abcdef"}))
    assert ok.status_code == 200
    stolen = client.get("/api/workflows", headers=agent_headers(**{"X-API-Key": "nina-key-0123456789abcdef",
                                                                    "X-Agent-Name": "mia"}))
    assert stolen.status_code == 401
