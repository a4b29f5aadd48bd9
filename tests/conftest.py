"""Test bed: one fresh database per test session, migrated and seeded once; each test runs in
a transaction that is rolled back, so tests never see each other's writes."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo, sql
from psycopg.rows import dict_row

from app.migrations import apply_migrations

FIXTURES = Path(__file__).parent / "fixtures"
# The service under test (app, client, as_), for every test directory.
pytest_plugins = ["tests.service_fixtures"]
DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url() -> str:
    return os.environ.get("TEST_DATABASE_URL", DEFAULT_SERVER_URL)


def database_url_for(name: str) -> str:
    return conninfo.make_conninfo(server_url(), dbname=name)


def create_database(prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url(), autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return name


def drop_database(name: str) -> None:
    with psycopg.connect(server_url(), autocommit=True) as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def world_database(prefix: str):
    """Create a database, migrate and seed it, load the shared test world; yield its URL, then
    drop it."""
    name = create_database(prefix)
    url = database_url_for(name)
    try:
        apply_migrations(url, seed=True)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute((FIXTURES / "world.sql").read_text())
        yield url
    finally:
        drop_database(name)


@pytest.fixture(scope="session")
def database_url():
    """A database migrated and seeded once per session, with the shared test world loaded."""
    yield from world_database("rexera_test")


@pytest.fixture
def empty_database():
    """A database with nothing in it, dropped after the test (for migration tests)."""
    name = create_database("rexera_empty")
    try:
        yield database_url_for(name)
    finally:
        drop_database(name)


@pytest.fixture(scope="session")
def _session_connection(database_url):
    with psycopg.connect(database_url, row_factory=dict_row, prepare_threshold=None) as conn:
        yield conn


@pytest.fixture
def db(_session_connection):
    """A connection inside a transaction that is rolled back after the test."""
    conn = _session_connection
    conn.rollback()
    # Open the transaction now, so every conn.transaction() inside the test is a savepoint
    # (a transaction() block on an idle connection would commit).
    conn.execute("select 1")
    try:
        yield conn
    finally:
        conn.rollback()
