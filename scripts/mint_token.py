"""Mint a local access token for a provisioned person, signed with SUPABASE_JWT_SECRET (HS256),
shaped like a Supabase Auth token, for trying the API with curl. Local use only.

With --inbound-for WORKFLOW_ID instead: the workflow's inbound token (from N8N_CALLBACK_SECRET),
the bearer an outside party (a lender, an HOA) sends to /webhooks/inbound/payoff-statement or
/webhooks/inbound/hoa-documents; n8n gets it with the trigger and puts it in its e-mails.

Exit codes: 0 printed, 1 no such person, 2 usage or configuration problem (a malformed database
URL, an unreachable or unmigrated database included), one line on stderr.
"""
from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.admin_cli import database_failure, database_url_problem, positive_int  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--email")
    who.add_argument("--user-id", type=uuid.UUID)
    who.add_argument("--inbound-for", type=uuid.UUID, metavar="WORKFLOW_ID")
    parser.add_argument("--expires-in", type=positive_int, default=3600, metavar="SECONDS",
                        help="seconds the token is valid, more than 0 (default 3600)")
    args = parser.parse_args(argv)
    if args.inbound_for:
        return print_inbound_token(parser, args.inbound_for)
    secret = os.environ.get("SUPABASE_JWT_SECRET", "")
    if len(secret) < 32:
        parser.error("set SUPABASE_JWT_SECRET (at least 32 characters), the same value the service uses")
    if not args.database_url:
        parser.error("pass --database-url or set DATABASE_URL")
    problem = database_url_problem(args.database_url)
    if problem:
        print(f"mint_token.py: {problem}", file=sys.stderr)
        return 2
    try:
        with psycopg.connect(args.database_url, connect_timeout=5) as conn:
            token = token_for(conn, secret, email=args.email, user_id=args.user_id, expires_in=args.expires_in)
    except psycopg.Error as error:
        message, code = database_failure(error, args.database_url)
        print(message, file=sys.stderr)
        return code
    if token is None:
        print(f"no such person: {args.email or args.user_id}", file=sys.stderr)
        return 1
    print(token)
    return 0


def print_inbound_token(parser: argparse.ArgumentParser, workflow_id: uuid.UUID) -> int:
    from app.config import ConfigError, Settings
    from app.webhooks.signing import inbound_token

    try:
        secret = Settings.from_env({"DATABASE_URL": "postgresql://unused/unused", "SUPABASE_JWT_SECRET": "x" * 32,
                                    "N8N_CALLBACK_SECRET": os.environ.get("N8N_CALLBACK_SECRET", "")}).n8n_callback_secret
    except ConfigError as error:
        parser.error("; ".join(error.problems))
    if secret is None:
        parser.error("set N8N_CALLBACK_SECRET, the same value the service uses")
    print(inbound_token(secret, str(workflow_id)))
    return 0


def token_for(conn: psycopg.Connection, secret: str, *, email: str | None = None, user_id: uuid.UUID | None = None,
              expires_in: int = 3600) -> str | None:
    """A token for the person with that e-mail or id, claims as Supabase Auth issues them
    (app_metadata from auth.users); None when there is no such person."""
    row = conn.execute("select id, email, raw_app_meta_data from auth.users where email = %s or id = %s",
                       (email and email.lower(), user_id)).fetchone()
    if row is None:
        return None
    from app.auth import mint_person_token

    return mint_person_token(secret, row[0], row[1], row[2], expires_in=expires_in,
                             issuer=os.environ.get("SUPABASE_JWT_ISSUER"))[0]


if __name__ == "__main__":
    sys.exit(main())
