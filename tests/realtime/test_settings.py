"""Realtime settings from the environment: defaults, and each bad value named."""
from __future__ import annotations

import pytest

from app.config import ConfigError, Settings

BASE = {"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/rexera", "SUPABASE_JWT_SECRET": "s" * 40}


def test_realtime_defaults_and_overrides():
    defaults = Settings.from_env(BASE)
    assert (defaults.realtime_queue_size, defaults.realtime_heartbeat_seconds, defaults.realtime_retention_hours) == \
        (1000, 25, 72)
    assert defaults.realtime_database_url is None
    tuned = Settings.from_env({**BASE, "REALTIME_QUEUE_SIZE": "64", "REALTIME_RETENTION_HOURS": "24",
                               "REALTIME_DATABASE_URL": "postgresql://postgres@db.example:5432/postgres"})
    assert (tuned.realtime_queue_size, tuned.realtime_retention_hours) == (64, 24)
    assert tuned.realtime_database_url == "postgresql://postgres@db.example:5432/postgres"


@pytest.mark.parametrize("name, value", [
    ("REALTIME_QUEUE_SIZE", "0"), ("REALTIME_QUEUE_SIZE", "lots"), ("REALTIME_HEARTBEAT_SECONDS", "0"),
    ("REALTIME_AUTH_TIMEOUT_SECONDS", "999"), ("REALTIME_SEND_TIMEOUT_SECONDS", "-1"),
    ("REALTIME_REPLAY_LIMIT", "0"), ("REALTIME_RETENTION_HOURS", "0"), ("REALTIME_PRUNE_INTERVAL_SECONDS", "-5"),
    ("REALTIME_DATABASE_URL", "http://db.example"),
])
def test_a_bad_realtime_setting_is_named(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({**BASE, name: value})
