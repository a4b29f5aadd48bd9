"""Create a client (tenant) or a person who signs in, and print it as JSON.

  provision.py client create --name NAME [--domain DOMAIN]
  provision.py user create --email EMAIL --role ROLE [--client-id ID] [--full-name NAME]

Roles: hil_operator and hil_manager (no client), client_user and client_admin (--client-id of
an existing client). Local mode writes auth.users and public.user_profiles in one transaction.
Hosted mode (SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY both set, or --hosted) creates the
person through the Supabase Auth admin API and the profile through --database-url.

Exit codes: 0 created (JSON on stdout); 1 refused: bad input or already exists, nothing
written; 2 bad usage or settings (including a service role key Auth rejects), or unreachable
database, nothing written; 3 Supabase Auth or the database failed otherwise, nothing left
behind; 4 an Auth user was created and could not be deleted again (the message names it).
Every failure is one line on stderr; the key and the database password are never printed.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import provisioning  # noqa: E402
from app.provisioning import ConfigurationError, ProvisioningError  # noqa: E402
from scripts.admin_cli import EXIT_INTERRUPTED, not_migrated  # noqa: E402

if TYPE_CHECKING:
    import httpx

EXIT_UNEXPECTED = 3
# What provisioning writes; their absence means the migrations were not applied.
WRITTEN_TABLES = ("public.clients", "auth.users", "public.user_profiles")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2), like every other failure of this script."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def build_parser() -> Parser:
    parser = Parser(prog="provision.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="PostgreSQL URL (default: $DATABASE_URL); hosted mode writes profiles here too")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--hosted", dest="hosted", action="store_const", const=True,
                      help="create people through Supabase Auth (needs SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY)")
    mode.add_argument("--local", dest="hosted", action="store_const", const=False,
                      help="write auth.users directly even if SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are set")
    nouns = parser.add_subparsers(dest="noun", required=True, metavar="{client,user}")

    client = nouns.add_parser("client", help="clients (tenants)")
    client_verbs = client.add_subparsers(dest="verb", required=True, metavar="{create}")
    client_create = client_verbs.add_parser("create", help="create a client")
    client_create.add_argument("--name", required=True, help="unique client name")
    client_create.add_argument("--domain", help="e-mail domain, e.g. example.com")

    user = nouns.add_parser("user", help="people who sign in")
    user_verbs = user.add_subparsers(dest="verb", required=True, metavar="{create}")
    user_create = user_verbs.add_parser("create", help="create a person (Auth user and profile)")
    user_create.add_argument("--email", required=True)
    user_create.add_argument("--role", required=True, metavar="ROLE", help=", ".join(provisioning.ROLES))
    user_create.add_argument("--client-id", help="the client of a client_user or client_admin")
    user_create.add_argument("--full-name")
    return parser


def hosted_settings(forced: bool | None) -> tuple[str, str] | None:
    """(SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY) in hosted mode, None in local mode."""
    url = os.environ.get("SUPABASE_URL", "").strip()
    key = os.environ.get("SUPABASE_SERVICE_ROLE_KEY", "").strip()
    if forced is False:
        return None
    if forced and not (url and key):
        missing = " and ".join(name for name, value in
                               (("SUPABASE_URL", url), ("SUPABASE_SERVICE_ROLE_KEY", key)) if not value)
        raise ConfigurationError(f"--hosted needs {missing} in the environment")
    return (url, key) if url and key else None


def secrets_of(database_url: str | None) -> list[str]:
    """What must never be printed: the database password and the service role key."""
    found = [os.environ.get("SUPABASE_SERVICE_ROLE_KEY", "").strip()]
    if database_url:
        found += re.findall(r"://[^:/@\s]*:([^@\s]+)@", database_url)
        found += re.findall(r"\bpassword\s*=\s*'?([^'\s]+)", database_url)
    return [secret for secret in found if secret]


def one_line(message: str, secrets: list[str]) -> str:
    for secret in secrets:
        message = message.replace(secret, "***")
    return " ".join(message.split())


def connect(database_url: str):
    """provisioning.connect, refusing (exit 2) a database the migrations were not applied to."""
    conn = provisioning.connect(database_url)
    problem = not_migrated(conn, WRITTEN_TABLES)
    if problem:
        conn.close()
        raise ConfigurationError(problem)
    return conn


def run(args: argparse.Namespace, http_client: httpx.Client | None) -> dict:
    if args.noun == "client":
        client = provisioning.check_client(args.name, args.domain)
        hosted_settings(args.hosted)  # same rule for both nouns; clients are written the same way
        with connect(args.database_url) as conn:
            return provisioning.provision_client(conn, client)

    user = provisioning.check_user(args.email, args.role, args.client_id, args.full_name)
    hosted = hosted_settings(args.hosted)
    with connect(args.database_url) as conn:
        if hosted is None:
            return provisioning.provision_local_user(conn, user)
        admin = provisioning.auth_admin(*hosted, http_client=http_client)
        return provisioning.provision_hosted_user(conn, admin, user)


def main(argv: list[str] | None = None, *, http_client: httpx.Client | None = None) -> int:
    """Run the command; http_client (an httpx.Client) is what hosted mode talks to Auth through."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("no database: pass --database-url or set DATABASE_URL")
    secrets = secrets_of(args.database_url)
    try:
        result = run(args, http_client)
    except ProvisioningError as error:
        print(one_line(str(error), secrets), file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # never a traceback
        text = str(error).strip().splitlines()
        print(one_line(f"unexpected {type(error).__name__}: {text[0] if text else ''}", secrets), file=sys.stderr)
        return EXIT_UNEXPECTED
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
