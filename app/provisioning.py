"""Provisioning clients (tenants) and the people who sign in, for scripts/provision.py.

Two ways to create a person:

* local: plain PostgreSQL with supabase/local/bootstrap.sql standing in for Supabase Auth.
  auth.users and public.user_profiles are written in one transaction.
* hosted: Supabase Auth is the only writer of auth.users, so the person is created through its
  admin API and the profile through the database afterwards; if the profile cannot be
  written, the Auth user is deleted again so nothing is left half-made.

Uniqueness (emails, client names) is the database's and Auth's business: a unique violation is
reported as a refusal, never checked beforehand. Every failure is a ProvisioningError carrying
a one-line reason and the exit code the script returns. No Flask here.
"""
from __future__ import annotations

import dataclasses
import json
import re
import uuid
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors
from psycopg.types.json import Jsonb

from app.migrations import is_hosted_supabase

if TYPE_CHECKING:  # only hosted mode imports the Supabase client (it is slow to import)
    import httpx
    from supabase_auth._sync.gotrue_admin_api import SyncGoTrueAdminAPI

ROLE_USER_TYPES = {
    "hil_operator": "hil_user",
    "hil_manager": "hil_user",
    "client_user": "client_user",
    "client_admin": "client_user",
}
ROLES = tuple(ROLE_USER_TYPES)

# What the audit trail records as the actor of rows written here (actor_type 'system').
AUDIT_ACTOR = "scripts/provision.py"

# One dot-separated domain with no empty labels; auth.users.email is varchar(255).
EMAIL_PATTERN = re.compile(r"^[^@\s]+@(?:[^@\s.]+\.)+[^@\s.]+$")
EMAIL_MAX_LENGTH = 254
# A host name such as example.com or mail.example.co.uk (clients.domain allows [a-z0-9.-]).
DOMAIN_PATTERN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
CLIENT_NAME_MAX_LENGTH = 200
EMAIL_TAKEN_CONSTRAINTS = {"users_email_partial_key", "user_profiles_email_key"}
EMAIL_TAKEN_AUTH_CODES = {"email_exists", "user_already_exists"}


# ============================================================================================
# Errors: one line each, with the exit code they mean
# ============================================================================================
class ProvisioningError(Exception):
    """Something was not provisioned; str() is the one-line reason."""

    exit_code = 3


class Refused(ProvisioningError):
    """The input is invalid or conflicts with what exists. Nothing was written."""

    exit_code = 1


class ConfigurationError(ProvisioningError):
    """Missing or wrong settings, or the database cannot be reached. Nothing was written."""

    exit_code = 2


class Failed(ProvisioningError):
    """Supabase Auth or the database failed for a reason other than the input. Nothing was left."""

    exit_code = 3


class HalfMade(ProvisioningError):
    """An Auth user was created and could not be deleted again: the reason names it."""

    exit_code = 4


# ============================================================================================
# Input
# ============================================================================================
@dataclasses.dataclass(frozen=True)
class NewClient:
    name: str
    domain: str | None = None


@dataclasses.dataclass(frozen=True)
class NewUser:
    email: str
    role: str
    client_id: str | None = None
    full_name: str | None = None

    @property
    def user_type(self) -> str:
        return ROLE_USER_TYPES[self.role]

    @property
    def app_metadata(self) -> dict[str, str]:
        """The claims the policies read (client_id only for client people)."""
        metadata = {"user_type": self.user_type, "role": self.role}
        if self.client_id is not None:
            metadata["client_id"] = self.client_id
        return metadata

    @property
    def user_metadata(self) -> dict[str, str]:
        return {"full_name": self.full_name} if self.full_name else {}


def check_client(name: str, domain: str | None = None) -> NewClient:
    """The client as it will be stored, or Refused naming what is wrong."""
    name = (name or "").strip()
    if not 1 <= len(name) <= CLIENT_NAME_MAX_LENGTH:
        raise Refused(f"client name must be 1 to {CLIENT_NAME_MAX_LENGTH} characters")
    if domain is not None:
        domain = domain.strip().lower() or None
    if domain is not None and (len(domain) > 253 or not DOMAIN_PATTERN.match(domain)):
        raise Refused(f"malformed domain {domain!r}: expected a host name such as example.com")
    return NewClient(name=name, domain=domain)


def check_user(email: str, role: str, client_id: str | None = None, full_name: str | None = None) -> NewUser:
    """The person as they will be stored, or Refused naming what is wrong.

    Emails are trimmed and lowercased, as Supabase Auth stores them, so local and hosted
    databases agree on what a duplicate is.
    """
    if role not in ROLE_USER_TYPES:
        raise Refused(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    email = (email or "").strip().lower()
    if len(email) > EMAIL_MAX_LENGTH or not EMAIL_PATTERN.match(email):
        raise Refused(f"malformed email {email!r}: expected name@domain.tld")
    if ROLE_USER_TYPES[role] == "client_user":
        if client_id is None:
            raise Refused(f"a {role} belongs to a client: pass --client-id")
        try:
            client_id = str(uuid.UUID(client_id.strip()))
        except ValueError:
            raise Refused(f"--client-id {client_id!r} is not a uuid") from None
    elif client_id is not None:
        raise Refused(f"a {role} is a HIL person and belongs to no client: drop --client-id")
    full_name = (full_name or "").strip() or None
    return NewUser(email=email, role=role, client_id=client_id, full_name=full_name)


# ============================================================================================
# Database
# ============================================================================================
def connect(database_url: str) -> psycopg.Connection:
    """An autocommit connection: each write opens its own transaction."""
    try:
        return psycopg.connect(database_url, autocommit=True, prepare_threshold=None)
    except psycopg.OperationalError as error:
        raise ConfigurationError(f"cannot reach the database: {_first_line(error)}") from None
    except psycopg.Error as error:
        raise ConfigurationError(f"bad database URL: {_first_line(error)}") from None


def _mark_actor(conn: psycopg.Connection) -> None:
    """Name this script as the actor the audit triggers record, for this transaction only."""
    conn.execute(
        "select set_config('request.jwt.claims', %s, true)",
        (json.dumps({"app_metadata": {"actor": AUDIT_ACTOR}}),),
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _database_problem(error: psycopg.Error, *, user: NewUser | None = None,
                      client: NewClient | None = None) -> ProvisioningError:
    """What a database error means for the person or client being written."""
    diag = error.diag
    constraint = diag.constraint_name or ""
    if isinstance(error, errors.UniqueViolation):
        if constraint in EMAIL_TAKEN_CONSTRAINTS and user is not None:
            return Refused(f"a user with email {user.email} already exists")
        if constraint == "clients_name_key" and client is not None:
            return Refused(f"a client named {client.name!r} already exists")
        return Refused(f"already exists ({constraint or diag.message_primary})")
    if isinstance(error, errors.ForeignKeyViolation):
        if constraint == "user_profiles_client_id_fkey" and user is not None:
            return Refused(f"--client-id {user.client_id}: no such client")
        if constraint == "user_profiles_id_fkey":
            return Failed("the database does not hold the Auth user just created: "
                          "do --database-url and SUPABASE_URL name the same project?")
    if isinstance(error, (errors.CheckViolation, errors.StringDataRightTruncation, errors.NotNullViolation)):
        return Refused(f"refused by the database: {diag.message_primary or _first_line(error)}")
    if isinstance(error, psycopg.OperationalError):
        return Failed(f"lost the database: {_first_line(error)}")
    return Failed(f"database error: {diag.message_primary or _first_line(error)} [SQLSTATE {error.sqlstate}]")


def _insert_profile(conn: psycopg.Connection, user_id: str, user: NewUser) -> None:
    conn.execute(
        """
        insert into public.user_profiles (id, email, full_name, user_type, role, client_id)
        values (%s, %s, %s, %s, %s, %s)
        """,
        (user_id, user.email, user.full_name, user.user_type, user.role, user.client_id),
    )


def user_result(user_id: Any, user: NewUser) -> dict[str, Any]:
    return {"id": str(user_id), "email": user.email, "role": user.role,
            "userType": user.user_type, "clientId": user.client_id}


def provision_client(conn: psycopg.Connection, client: NewClient) -> dict[str, Any]:
    """Insert one client; Refused if the name is taken."""
    try:
        with conn.transaction():
            _mark_actor(conn)
            row = conn.execute(
                "insert into public.clients (name, domain) values (%s, %s) returning id, name",
                (client.name, client.domain),
            ).fetchone()
    except psycopg.Error as error:
        raise _database_problem(error, client=client) from None
    return {"id": str(row[0]), "name": row[1]}


def provision_local_user(conn: psycopg.Connection, user: NewUser) -> dict[str, Any]:
    """auth.users and public.user_profiles in one transaction (plain PostgreSQL only)."""
    if is_hosted_supabase(conn):
        raise ConfigurationError(
            "this database is hosted Supabase, whose auth.users only Supabase Auth may write: "
            "set SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY (or pass --hosted)"
        )
    try:
        with conn.transaction():
            _mark_actor(conn)
            row = conn.execute(
                """
                insert into auth.users (email, raw_app_meta_data, raw_user_meta_data, email_confirmed_at)
                values (%s, %s, %s, now())
                returning id
                """,
                (user.email, Jsonb({"provider": "email", **user.app_metadata}), Jsonb(user.user_metadata)),
            ).fetchone()
            _insert_profile(conn, row[0], user)
    except psycopg.Error as error:
        raise _database_problem(error, user=user) from None
    return user_result(row[0], user)


# ============================================================================================
# Hosted: Supabase Auth admin API, then the profile through the database
# ============================================================================================
def auth_admin(supabase_url: str, service_role_key: str, *,
               http_client: httpx.Client | None = None) -> SyncGoTrueAdminAPI:
    """The Auth admin API of a Supabase project (http_client: an httpx.Client to send through)."""
    from supabase import ClientOptions, SupabaseException, create_client

    options = ClientOptions(auto_refresh_token=False, persist_session=False, httpx_client=http_client)
    try:
        return create_client(supabase_url, service_role_key, options).auth.admin
    except SupabaseException as error:
        raise ConfigurationError(f"SUPABASE_URL or SUPABASE_SERVICE_ROLE_KEY rejected: {error.message}") from None


def _create_auth_user(admin: SyncGoTrueAdminAPI, user: NewUser) -> str:
    from supabase_auth.errors import AuthApiError, AuthError

    try:
        response = admin.create_user({
            "email": user.email,
            "email_confirm": True,
            "app_metadata": user.app_metadata,
            "user_metadata": user.user_metadata,
        })
    except AuthApiError as error:
        if error.code in EMAIL_TAKEN_AUTH_CODES:
            raise Refused(f"a user with email {user.email} already exists") from None
        if error.status in (401, 403):
            raise ConfigurationError(f"Supabase Auth refused the service role key (HTTP {error.status}: "
                                     f"{error.message}): check SUPABASE_SERVICE_ROLE_KEY") from None
        if error.status == 422:
            raise Refused(f"Supabase Auth refused the user: {error.message}") from None
        raise Failed(f"Supabase Auth failed (HTTP {error.status}): {error.message}") from None
    except AuthError as error:
        raise Failed(f"Supabase Auth unreachable or unreadable: {error.message}") from None
    except Exception as error:  # e.g. a non-JSON error page, or a body that is not a user
        raise Failed(f"Supabase Auth answered unexpectedly ({type(error).__name__}): "
                     f"check whether {user.email} was created") from None
    return str(response.user.id)


def provision_hosted_user(conn: psycopg.Connection, admin: SyncGoTrueAdminAPI, user: NewUser) -> dict[str, Any]:
    """Create the Auth user, then the profile; delete the Auth user again if the profile fails.

    The client row is locked (key share) before Auth is asked, so a missing client is refused
    without creating anyone, and the client cannot disappear before the profile is committed.
    """
    created_id: str | None = None
    try:
        with conn.transaction():
            _mark_actor(conn)
            if user.client_id is not None:
                found = conn.execute(
                    "select id from public.clients where id = %s for key share", (user.client_id,)
                ).fetchone()
                if found is None:
                    raise Refused(f"--client-id {user.client_id}: no such client")
            created_id = _create_auth_user(admin, user)
            _insert_profile(conn, created_id, user)
    except BaseException as error:
        if created_id is None:
            if isinstance(error, psycopg.Error):
                raise _database_problem(error, user=user) from None
            raise
        problem = _as_problem(error, user)
        _delete_auth_user(admin, created_id, problem)
        if problem is None:  # KeyboardInterrupt and the like: undone, now let it go on
            raise
        raise type(problem)(f"{problem} (the Auth user just created was deleted again)") from None
    return user_result(created_id, user)


def _as_problem(error: BaseException, user: NewUser) -> ProvisioningError | None:
    if isinstance(error, ProvisioningError):
        return error
    if isinstance(error, psycopg.Error):
        return _database_problem(error, user=user)
    if isinstance(error, Exception):
        return Failed(f"unexpected {type(error).__name__}: {_first_line(error)}")
    return None


def _delete_auth_user(admin: SyncGoTrueAdminAPI, user_id: str, problem: ProvisioningError | None) -> None:
    try:
        admin.delete_user(user_id)
    except Exception as error:
        reason = getattr(error, "message", None) or _first_line(error)
        raise HalfMade(
            f"{problem or 'interrupted'}; deleting Auth user {user_id} again failed too ({reason}): "
            "delete that user in the Supabase dashboard"
        ) from None
