"""Who is calling: Supabase JWTs verified locally, agent API keys, and the service itself.

A verified caller becomes a Principal whose `claims` go into `request.jwt.claims` for the
request's transaction, so the database's RLS policies decide what it may see.
"""
from __future__ import annotations

import dataclasses
import hmac
import re
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any

import jwt
from flask import Flask, g, request

from app.config import Settings
from app.errors import ApiError

HIL_ROLES = ("hil_operator", "hil_manager")
CLIENT_ROLES = ("client_user", "client_admin")
AGENT_NAME = re.compile(r"^[a-z][a-z0-9_]{1,30}$")
ASYMMETRIC_ALGORITHMS = ["ES256", "RS256"]


@dataclasses.dataclass(frozen=True)
class Principal:
    kind: str  # person | agent | service
    request_role: str  # the Postgres request role: authenticated | service_role
    claims: dict[str, Any]
    user_id: uuid.UUID | None = None
    role: str | None = None
    user_type: str | None = None
    client_id: uuid.UUID | None = None
    agent_name: str | None = None
    workflow_id: uuid.UUID | None = None

    @property
    def is_hil(self) -> bool:
        return self.role in HIL_ROLES

    @property
    def is_manager(self) -> bool:
        return self.role == "hil_manager"

    @property
    def is_client(self) -> bool:
        return self.role in CLIENT_ROLES

    @property
    def actor_id(self) -> str:
        if self.kind == "agent":
            return f"agent:{self.agent_name}:{self.workflow_id}"
        if self.user_id:
            return f"user:{self.user_id}"
        return f"service:{self.claims.get('app_metadata', {}).get('actor', 'service')}"

    @classmethod
    def service(cls, actor: str = "service") -> "Principal":
        """The service path: bypasses RLS by design, named wherever it is used."""
        return cls("service", "service_role", {"role": "service_role", "app_metadata": {"actor": actor}})

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> "Principal":
        app_metadata = claims.get("app_metadata") if isinstance(claims.get("app_metadata"), dict) else {}
        role = app_metadata.get("role")
        role = role if role in HIL_ROLES + CLIENT_ROLES else None
        return cls(
            kind="person",
            request_role="authenticated",
            claims=claims,
            user_id=_uuid_or_none(claims.get("sub")),
            role=role,
            user_type=app_metadata.get("user_type"),
            client_id=_uuid_or_none(app_metadata.get("client_id")) if role in CLIENT_ROLES else None,
        )

    @classmethod
    def agent(cls, agent_name: str, workflow_id: uuid.UUID) -> "Principal":
        claims = {"role": "authenticated", "aud": "authenticated",
                  "app_metadata": {"role": "agent", "agent_name": agent_name, "workflow_id": str(workflow_id)}}
        return cls("agent", "authenticated", claims, role="agent", agent_name=agent_name, workflow_id=workflow_id)


LATEST_EXP = 253_402_300_799  # 9999-12-31T23:59:59Z: the last moment a timestamp here can show


def _uuid_or_none(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def mint_person_token(secret: str, user_id, email: str | None, app_metadata: dict | None, *, expires_in: int,
                      issuer: str | None = None) -> tuple[str, dict]:
    """An access token (HS256) with the claims Supabase Auth gives a person, and those claims:
    for local use only (the console's local sign-in, scripts/mint_token.py)."""
    now = int(time.time())
    claims = {"sub": str(user_id), "email": email, "role": "authenticated", "aud": "authenticated",
              "iat": now, "exp": now + expires_in, "app_metadata": app_metadata or {},
              "session_id": str(uuid.uuid4())}
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256"), claims


class TokenVerifier:
    """Verifies Supabase access tokens: HS256 with the project's JWT secret, or ES256/RS256
    with the keys published at the project's JWKS URL (fetched once, cached)."""

    CACHE_SIZE = 4096

    def __init__(self, settings: Settings):
        self.secret = settings.supabase_jwt_secret
        self.issuer = settings.jwt_issuer
        self.jwks = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=600, timeout=5) if settings.jwks_url else None
        # Verified tokens by their exact text, until they expire: a client sends the same
        # token many times, and the signature check is most of the cost of a cheap read.
        self._verified: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, token: str) -> dict[str, Any]:
        with self._lock:
            claims = self._verified.get(token)
            if claims is not None:
                self._verified.move_to_end(token)
        if claims is not None:
            if claims["exp"] > time.time():
                return claims
            with self._lock:
                self._verified.pop(token, None)
        claims = self._verify_signature(token)
        with self._lock:
            self._verified[token] = claims
            if len(self._verified) > self.CACHE_SIZE:
                self._verified.popitem(last=False)
        return claims

    def _verify_signature(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.InvalidTokenError, UnicodeError):  # UnicodeError: a lone surrogate (from a /ws message)
            raise ApiError(401, "the token is not a JWT", "invalid_token") from None
        algorithm = header.get("alg")
        options = {"require": ["exp", "sub", "aud"]}
        try:
            if algorithm == "HS256" and self.secret:
                key: Any = self.secret
                algorithms = ["HS256"]
            elif algorithm in ASYMMETRIC_ALGORITHMS and self.jwks:
                key = self.jwks.get_signing_key_from_jwt(token).key
                algorithms = ASYMMETRIC_ALGORITHMS
            else:
                raise ApiError(401, f"tokens signed with {algorithm!r} are not accepted", "invalid_token")
            claims = jwt.decode(token, key, algorithms=algorithms, audience="authenticated",
                                issuer=self.issuer, options=options, leeway=5)
        except jwt.ExpiredSignatureError:
            raise ApiError(401, "the token has expired", "token_expired") from None
        except jwt.PyJWKClientError:
            raise ApiError(401, "the token's signing key is unknown", "invalid_token") from None
        except jwt.InvalidTokenError as error:
            raise ApiError(401, f"the token is not valid: {error}", "invalid_token") from None
        # PyJWT also accepts a numeric string as exp (the cache compares it with a float) and
        # any string as sub; a person is a user id, or the audit trail cannot name them.
        if type(claims["exp"]) not in (int, float) or not 0 < claims["exp"] <= LATEST_EXP \
                or _uuid_or_none(claims["sub"]) is None:
            raise ApiError(401, "the token's exp must be a time before the year 10000 and its sub a user id",
                           "invalid_token")
        # A person's token says so: Supabase gives signed-in people "role": "authenticated". An
        # anon key, the service-role key or a token without a role is nobody's token here.
        if claims.get("role") != "authenticated":
            raise ApiError(401, "this is not a person's access token: its role must be \"authenticated\"",
                           "invalid_token")
        return claims


class AgentKeys:
    """Agent API keys from AGENT_API_KEYS (agent=key, or *=key for any agent)."""

    def __init__(self, keys: dict[str, str]):
        self.keys = keys

    def verify(self, agent_name: str, key: str) -> bool:
        expected = self.keys.get(agent_name) or self.keys.get("*")
        return expected is not None and hmac.compare_digest(expected.encode(), key.encode())


def authenticate(app: Flask) -> Principal:
    """The principal of the current request, or a 401."""
    agent_key = request.headers.get("X-API-Key")
    if agent_key is not None:
        name = (request.headers.get("X-Agent-Name") or "").strip().lower()
        scope = _uuid_or_none(request.headers.get("X-Workflow-Scope"))
        if not AGENT_NAME.match(name) or scope is None:
            raise ApiError(401, "agents send X-API-Key with X-Agent-Name and X-Workflow-Scope (a workflow id)",
                           "invalid_agent_credentials")
        if not app.extensions["agent_keys"].verify(name, agent_key):
            raise ApiError(401, "unknown agent or wrong API key", "invalid_agent_credentials")
        return Principal.agent(name, scope)
    authorization = request.headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "send Authorization: Bearer <access token>", "missing_credentials",
                       headers={"WWW-Authenticate": 'Bearer realm="rexera"'})
    claims = app.extensions["token_verifier"].verify(token.strip())
    return Principal.from_claims(claims)


def current_principal() -> Principal:
    principal = g.get("principal")
    if principal is None:
        raise ApiError(401, "authentication required", "missing_credentials")
    return principal


def init_app(app: Flask) -> None:
    settings: Settings = app.config["SETTINGS"]
    app.extensions["token_verifier"] = TokenVerifier(settings)
    app.extensions["agent_keys"] = AgentKeys(settings.agent_api_keys)
