"""Bearer tokens: only a token signed with the project's key, for the right audience and issuer,
in its validity window, naming a user, is accepted; roles and clients come from app_metadata
only."""
from __future__ import annotations

import base64
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.app.test_auth import jwk_of, jwks, jwks_app  # noqa: F401 (fixtures)
from tests.db.world import CLIENT_A, PEOPLE, row
from tests.security.state import assert_refused
from tests.support import JWT_SECRET, Person, mint_token

OPERATOR = PEOPLE["operator"]
NEW_PAYOFF = {"type": "PAYOFF_REQUEST", "clientId": str(CLIENT_A),
              "payload": {"address": "1 Main St", "borrowerName": "Pat Doe", "lenderName": "First Bank",
                          "loanNumber": "123", "payoffDate": "2026-12-15"}}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def forged(header: dict, claims: dict, signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(signature)}"


def with_claims(token: str, claims: dict) -> str:
    """The token with its claims replaced and its signature kept."""
    header, _, signature = token.split(".")
    return f"{header}.{b64(json.dumps(claims).encode())}.{signature}"


def valid_claims(**overrides) -> dict:
    now = int(time.time())
    return {**OPERATOR.claims, "sub": str(OPERATOR.user_id), "aud": "authenticated", "iat": now, "exp": now + 600,
            **overrides}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


BAD_TOKENS = {
    "alg none": lambda: forged({"alg": "none", "typ": "JWT"}, valid_claims()),
    "alg None": lambda: forged({"alg": "None", "typ": "JWT"}, valid_claims()),
    "alg none with a signature": lambda: forged({"alg": "none"}, valid_claims(), b"x" * 32),
    "no alg": lambda: forged({"typ": "JWT"}, valid_claims()),
    "HS256 with a wrong key": lambda: mint_token(OPERATOR, secret="another-secret-that-is-long-enough-0123"),
    "HS256 with an empty signature": lambda: mint_token(OPERATOR).rsplit(".", 1)[0] + ".",
    "claims changed after signing": lambda: with_claims(mint_token(OPERATOR),
                                                        valid_claims(app_metadata={"role": "hil_manager"})),
    "HS512": lambda: mint_token(OPERATOR, secret=JWT_SECRET * 2, algorithm="HS512"),
    "RS256 without a JWKS": lambda: mint_token(OPERATOR, secret=ec.generate_private_key(ec.SECP256R1()), algorithm="ES256"),
    "expired": lambda: mint_token(OPERATOR, expires_in=-60),
    "not yet valid (nbf)": lambda: mint_token(OPERATOR, nbf=int(time.time()) + 3600),
    "issued in the future (iat)": lambda: mint_token(OPERATOR, iat=int(time.time()) + 3600),
    "wrong audience": lambda: mint_token(OPERATOR, aud="service"),
    "no audience": lambda: jwt.encode({k: v for k, v in valid_claims().items() if k != "aud"}, JWT_SECRET),
    "no exp": lambda: jwt.encode({k: v for k, v in valid_claims().items() if k != "exp"}, JWT_SECRET),
    "exp as a string": lambda: mint_token(OPERATOR, exp=str(int(time.time()) + 600)),
    "no sub": lambda: jwt.encode({k: v for k, v in valid_claims().items() if k != "sub"}, JWT_SECRET),
    "sub not a user id": lambda: mint_token(OPERATOR, sub="admin"),
    "empty sub": lambda: mint_token(OPERATOR, sub=""),
    "not a JWT": lambda: "not-a-jwt",
    "two segments": lambda: ".".join(mint_token(OPERATOR).split(".")[:2]),
    "garbage segments": lambda: "a.b.c",
    "64 KiB of token": lambda: "a" * 65536,
}


@pytest.mark.parametrize("name", list(BAD_TOKENS))
def test_a_bad_token_is_refused_and_writes_nothing(client, unchanged, name):
    token = BAD_TOKENS[name]()
    for method, path, body in [("get", "/api/workflows", None), ("post", "/api/workflows", NEW_PAYOFF),
                               ("post", f"/api/workflows/{row('A101')}/actions", {"action": "cancel"}),
                               ("post", "/webhooks/inbound/client-message",
                                {"workflowId": str(row("A101")), "message": "hello"})]:
        response = getattr(client, method)(path, json=body, headers=bearer(token))
        error = assert_refused(response, 401)
        assert error["code"] in ("invalid_token", "token_expired")


def test_an_expired_token_says_so(client):
    assert assert_refused(client.get("/api/workflows", headers=bearer(mint_token(OPERATOR, expires_in=-60))),
                          401)["code"] == "token_expired"


def test_a_token_refused_once_is_refused_again(client):
    # The verified-token cache must not turn a second use into an acceptance or a 500.
    token = BAD_TOKENS["exp as a string"]()
    for _ in range(2):
        assert_refused(client.get("/api/workflows", headers=bearer(token)), 401)


@pytest.mark.parametrize("header", [
    {}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Bearer   "},
    {"Authorization": "Basic b3BlcmF0b3I6cGFzc3dvcmQ="}, {"Authorization": "Token abc"},
])
def test_missing_or_malformed_authorization_is_refused(client, unchanged, header):
    assert assert_refused(client.get("/api/workflows", headers=header), 401)["code"] == "missing_credentials"
    assert_refused(client.post("/api/workflows", json=NEW_PAYOFF, headers=header), 401)


@pytest.mark.parametrize("user_metadata", [
    {"role": "hil_manager", "user_type": "hil_user"},
    {"role": "hil_operator"},
    {"role": "client_admin", "client_id": str(CLIENT_A)},
    {"client_id": str(CLIENT_A), "user_type": "client_user"},
])
def test_roles_and_clients_in_user_metadata_grant_nothing(client, unchanged, user_metadata):
    # Someone signed in but without a profile here is nobody: refused outright, whatever
    # user_metadata claims.
    token = mint_token(PEOPLE["unprovisioned"], user_metadata=user_metadata)
    for method, path, body in [("get", "/api/workflows", None), ("get", f"/api/workflows/{row('A101')}", None),
                               ("post", "/api/workflows", NEW_PAYOFF),
                               ("post", f"/api/workflows/{row('A101')}/actions", {"action": "cancel"}),
                               ("get", "/api/views/dashboard", None)]:
        response = getattr(client, method)(path, json=body, headers=bearer(token))
        assert assert_refused(response, 401)["code"] == "person_inactive", path


def test_a_client_id_in_user_metadata_does_not_widen_a_client(client, unchanged):
    token = mint_token(PEOPLE["client_user_a"], user_metadata={"client_id": str(row("B001")), "role": "hil_manager"})
    listed = client.get("/api/workflows", headers=bearer(token))
    assert listed.status_code == 200 and listed.json["totalCount"] > 0
    assert {w["clientId"] for w in listed.json["workflows"]} == {str(CLIENT_A)}
    assert_refused(client.get(f"/api/workflows/{row('B101')}", headers=bearer(token)), 404)


@pytest.mark.parametrize("app_metadata", [
    "hil_manager", ["hil_manager"], {"role": "service_role"}, {"role": "postgres"}, {"role": "HIL_MANAGER"},
    {"role": "client_admin"},  # a client role without a client
])
def test_unknown_or_malformed_app_metadata_grants_nothing(client, unchanged, app_metadata):
    # Claims that name no role of a profile here: refused, for a stranger and for a known person.
    for person in (PEOPLE["unprovisioned"], PEOPLE["operator"], PEOPLE["client_user_a"]):
        token = mint_token(person, app_metadata=app_metadata)
        assert assert_refused(client.get("/api/workflows", headers=bearer(token)), 401)["code"] == "person_inactive"
        assert_refused(client.post("/api/workflows", json=NEW_PAYOFF, headers=bearer(token)), 401)


def test_a_token_of_an_unknown_user_without_a_role_sees_and_writes_nothing(client, unchanged):
    stranger = Person("stranger", None, user_id=uuid.uuid4())
    token = mint_token(stranger)
    for path in ("/api/workflows", "/api/tasks", "/api/communications", "/api/documents"):
        error = assert_refused(client.get(path, headers=bearer(token)), 401)
        assert error["code"] == "person_inactive" and "no person" in error["message"], path
    assert_refused(client.post("/api/workflows", json=NEW_PAYOFF, headers=bearer(token)), 401)
    assert_refused(client.patch(f"/api/workflows/{row('A101')}", json={"title": "mine"}, headers=bearer(token)), 401)


# ---------------------------------------------------------------------------------------------
# JWKS mode (hosted Supabase): ES256/RS256 keys from the JWKS URL, issuer checked
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def signing_key(jwks):  # noqa: F811
    key = ec.generate_private_key(ec.SECP256R1())
    jwks.keys = [jwk_of(key, "key-1", "ES256")]
    return key


def es256(key, jwks_server, **overrides):
    return mint_token(OPERATOR, secret=key, algorithm="ES256", headers={"kid": "key-1"},
                      **{"iss": jwks_server.issuer, **overrides})


def test_jwks_mode_accepts_the_right_token(jwks_app, jwks, signing_key):  # noqa: F811
    assert jwks_app.test_client().get("/api/workflows", headers=bearer(es256(signing_key, jwks))).status_code == 200


@pytest.mark.parametrize("name, make", [
    ("wrong issuer", lambda key, server: es256(key, server, iss="https://evil.example/auth/v1")),
    ("no issuer", lambda key, server: jwt.encode(valid_claims(), key, algorithm="ES256", headers={"kid": "key-1"})),
    ("wrong audience", lambda key, server: es256(key, server, aud="anon")),
    ("expired", lambda key, server: es256(key, server, expires_in=-60)),
    ("not yet valid", lambda key, server: es256(key, server, nbf=int(time.time()) + 3600)),
    ("another key, same kid", lambda key, server: es256(ec.generate_private_key(ec.SECP256R1()), server)),
    ("unknown kid", lambda key, server: mint_token(OPERATOR, secret=key, algorithm="ES256", headers={"kid": "key-9"},
                                                   iss=server.issuer)),
    ("HS256 signed with the public key", lambda key, server: jwt.encode(
        valid_claims(iss=server.issuer), base64.b64encode(key.public_key().public_numbers().x.to_bytes(32, "big")),
        algorithm="HS256", headers={"kid": "key-1"})),
    ("alg none", lambda key, server: forged({"alg": "none", "kid": "key-1"}, valid_claims(iss=server.issuer))),
])
def test_jwks_mode_refuses_bad_tokens(jwks_app, jwks, signing_key, db, name, make):  # noqa: F811
    from tests.security.state import fingerprint

    before = fingerprint(db)
    client = jwks_app.test_client()
    token = make(signing_key, jwks)
    assert_refused(client.get("/api/workflows", headers=bearer(token)), 401)
    assert_refused(client.post("/api/workflows", json=NEW_PAYOFF, headers=bearer(token)), 401)
    assert fingerprint(db) == before
