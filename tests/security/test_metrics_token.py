"""/metrics shows every tenant's volumes: only a scraper holding METRICS_TOKEN reads it
(Authorization: Bearer, compared in constant time); with no token set there is no /metrics at
all (404). Every refusal is in the one error shape, shows no figure and writes nothing."""
from __future__ import annotations

import pytest

from app import create_app
from app.config import ConfigError, Settings
from tests.security.state import assert_refused
from tests.service_fixtures import METRICS_TOKEN, TransactionalDatabase, make_settings

WRONG_AUTHORIZATIONS = {
    "none": None,
    "empty": "",
    "Bearer and nothing": "Bearer ",
    "another token": "Bearer another-token-of-the-same-length-000",
    "one byte changed": "Bearer " + METRICS_TOKEN[:-1] + ("x" if METRICS_TOKEN[-1] != "x" else "y"),
    "a prefix": "Bearer " + METRICS_TOKEN[:-1],
    "with more after it": "Bearer " + METRICS_TOKEN + "0",
    "as Basic": "Basic " + METRICS_TOKEN,
    "as the scheme alone": METRICS_TOKEN,
    "non-ASCII": "Bearer " + METRICS_TOKEN[:-1] + "\u00e9",
    "a person's kind of token": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x",
}


def metrics_app(_session_connection, token):
    application = create_app(make_settings("postgresql://unused/unused", metrics_token=token),
                             database=TransactionalDatabase(_session_connection))
    application.config["TESTING"] = True
    return application


def get_metrics(application, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    return application.test_client().get("/metrics", headers=headers)


def test_the_token_reads_the_metrics(_session_connection, db):
    response = get_metrics(metrics_app(_session_connection, METRICS_TOKEN), f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 200 and "rexera_workflows" in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("authorization", WRONG_AUTHORIZATIONS.values(), ids=WRONG_AUTHORIZATIONS.keys())
def test_without_the_token_the_metrics_show_nothing(_session_connection, db, unchanged, authorization):
    response = get_metrics(metrics_app(_session_connection, METRICS_TOKEN), authorization)
    error = assert_refused(response, 401)
    assert error["code"] == "invalid_token" and "rexera_" not in response.get_data(as_text=True)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("authorization", [*WRONG_AUTHORIZATIONS.values(), f"Bearer {METRICS_TOKEN}"],
                         ids=[*WRONG_AUTHORIZATIONS.keys(), "the tests' token"])
def test_with_no_token_set_there_is_no_metrics_endpoint(_session_connection, db, unchanged, authorization):
    response = get_metrics(metrics_app(_session_connection, None), authorization)
    error = assert_refused(response, 404)
    assert error["code"] == "not_found" and "rexera_" not in response.get_data(as_text=True)


GOOD_ENV = {"DATABASE_URL": "postgresql://x@127.0.0.1/x", "SUPABASE_JWT_SECRET": "s" * 40}


@pytest.mark.parametrize("value", ["short", "a token with spaces in it", "t\u00f6ken-non-ascii-0123456789"])
def test_a_weak_or_malformed_metrics_token_stops_the_service_at_start(value):
    with pytest.raises(ConfigError, match="METRICS_TOKEN"):
        Settings.from_env({**GOOD_ENV, "METRICS_TOKEN": value})


def test_the_metrics_token_comes_from_the_environment():
    assert Settings.from_env(GOOD_ENV).metrics_token is None
    assert Settings.from_env({**GOOD_ENV, "METRICS_TOKEN": "m" * 32}).metrics_token == "m" * 32
