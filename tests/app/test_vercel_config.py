"""vercel.json in the form Vercel documents for Python today: zero-config entry point (index.py),
the function's duration limit, and the cron that calls the tick."""
from __future__ import annotations

import ast
import json
import re

from app.duties import TICK_OUTBOX_BUDGET_SECONDS
from tests.e2e.harness import ROOT

CONFIG = json.loads((ROOT / "vercel.json").read_text())
CRON_FIELD = r"(\*|\*/\d+|\d+(-\d+)?(,\d+(-\d+)?)*)"


def test_only_current_keys_are_used():
    assert set(CONFIG) <= {"$schema", "functions", "crons"}  # no legacy "builds" or "routes"


def test_the_function_is_the_entry_point_and_has_room_for_a_tick():
    assert list(CONFIG["functions"]) == ["index.py"]
    tree = ast.parse((ROOT / "index.py").read_text())
    imports = [node for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert [(i.module, [a.name for a in i.names]) for i in imports] == [("wsgi", ["app"])]
    limit = CONFIG["functions"]["index.py"]["maxDuration"]
    # The tick's outbox budget, plus one delivery timeout and the sweep, within Vercel's limits.
    assert TICK_OUTBOX_BUDGET_SECONDS + 10 + 10 <= limit <= 800


def test_the_cron_calls_the_tick_as_vercel_does(client):
    (cron,) = CONFIG["crons"]
    assert re.fullmatch(r"\s".join([CRON_FIELD] * 5), cron["schedule"])
    adapter = client.application.url_map.bind("localhost")
    assert adapter.match(cron["path"], method="GET")[0] == "internal.tick_get"
    # Vercel sends GET with Authorization: Bearer $CRON_SECRET; without the secret set here, 403.
    assert client.get(cron["path"], headers={"Authorization": "Bearer x"}).status_code == 403
