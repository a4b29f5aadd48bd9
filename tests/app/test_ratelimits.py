"""Rate limits per principal and category, with 429 and Retry-After in the error shape."""
from __future__ import annotations

import pytest

from app import create_app
from tests.service_fixtures import Caller, TransactionalDatabase, make_settings
from tests.db.world import row


@pytest.fixture
def limited_client(db, database_url):
    settings = make_settings(database_url)
    object.__setattr__(settings, "rate_limits_enabled", True)
    app = create_app(settings, database=TransactionalDatabase(db))
    app.config["TESTING"] = True
    app.extensions["limiter"].reset()
    return app


def test_the_standard_limit_answers_429_with_retry_after(limited_client):
    limited_client.config["RATE_LIMITS"] = {"standard": "3/hour"}
    operator = Caller(limited_client.test_client(), "operator")
    statuses = [operator.get("/api/workflows").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = operator.get(f"/api/workflows/{row('A101')}")
    assert response.status_code == 429
    assert response.json["error"]["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) > 0


def test_limits_are_per_principal_and_per_category(limited_client):
    limited_client.config["RATE_LIMITS"] = {"standard": "2/hour"}
    client = limited_client.test_client()
    operator, manager = Caller(client, "operator"), Caller(client, "manager")
    assert [operator.get("/api/workflows").status_code for _ in range(3)] == [200, 200, 429]
    assert manager.get("/api/workflows").status_code == 200
    # actions have their own budget
    response = operator.post(f"/api/workflows/{row('A102')}/actions", json={"action": "start"})
    assert response.status_code == 200, response.json


def test_instances_share_limits_through_redis(db, database_url):
    settings = make_settings(database_url, redis_url="redis://127.0.0.1:6379/0")
    object.__setattr__(settings, "rate_limits_enabled", True)
    first, second = (create_app(settings, database=TransactionalDatabase(db)) for _ in range(2))
    first.extensions["limiter"].reset()
    for app in (first, second):
        app.config["RATE_LIMITS"] = {"standard": "2/hour"}
    assert Caller(first.test_client(), "manager").get("/api/workflows").status_code == 200
    assert Caller(second.test_client(), "manager").get("/api/workflows").status_code == 200
    assert Caller(first.test_client(), "manager").get("/api/workflows").status_code == 429
    first.extensions["limiter"].reset()
