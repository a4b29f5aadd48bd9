"""scripts/preflight.py against the running system with a real n8n (the e2e group's system):
every check passes, then a wrong API key and an export out of step each fail."""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.e2e import harness
from tests.scripts.test_preflight import (EXPORTS, MUNI, ROOT, SCRIPT, SECRET_ROWS, SETTINGS_CHECKS, as_url, leaks,
                                          statuses, strong, write_env)


def system_env(world) -> dict[str, str]:
    """The environment the running system was started with, as a deployment's env file holds it,
    plus the two values this system does not use (agent keys and the cron secret)."""
    settings = world.settings
    return {"DATABASE_URL": as_url(world.database_url), "SUPABASE_JWT_SECRET": settings.supabase_jwt_secret,
            "N8N_BASE_URL": settings.n8n_base_url, "N8N_API_KEY": settings.n8n_api_key,
            "N8N_CALLBACK_SECRET": harness.callback_secret_text(settings),
            "N8N_WEBHOOK_TOKEN": settings.n8n_webhook_token,
            "N8N_ERROR_WEBHOOK_TOKEN": settings.n8n_error_webhook_token,
            "PUBLIC_BASE_URL": settings.public_base_url, "AGENT_BASE_URL": settings.agent_base_url,
            "RATE_LIMITS": "off", "DISPATCHER_ENABLED": "on", "AGENT_API_KEYS": f"*={strong()}",
            "CRON_SECRET": strong()}


def preflight_json(*args: str) -> tuple[int, dict[str, tuple[str, str]], str]:
    done = subprocess.run([sys.executable, str(SCRIPT), "--json", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    rows = {row["name"]: (row["status"], row["detail"]) for row in json.loads(done.stdout)["checks"]}
    return done.returncode, rows, done.stdout + done.stderr


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_the_running_system_passes_and_fails_on_purpose(e2e, tmp_path):
    env = system_env(e2e)
    env_file = write_env(tmp_path / "env", env)
    # The system's workflows were imported by the harness; a deployment pushes them with
    # sync_workflows.py, which here only adds its managed tag.
    pushed = subprocess.run([sys.executable, str(ROOT / "scripts" / "sync_workflows.py"), "push"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "N8N_BASE_URL": env["N8N_BASE_URL"], "N8N_API_KEY": env["N8N_API_KEY"]})
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr

    code, rows, output = preflight_json("--env-file", str(env_file))
    expected = dict.fromkeys(SETTINGS_CHECKS + SECRET_ROWS, "ok")
    expected["jwt"] = "warn"  # this system verifies HS256 tokens only: the legacy secret
    expected["secret:SUPABASE_JWT_SECRET"] = "warn"  # the tests' published secret, accepted on this machine
    assert statuses(rows) == expected, json.dumps(rows, indent=1)
    assert code == 0
    assert rows["n8n-workflows"][1] == "all 4 export(s) pushed, active as they should be and in step"
    assert rows["public-url"][1] == f"{env['PUBLIC_BASE_URL']}/api/health answers: ok"
    assert "is published in this repository (tests/support.py)" in rows["secret:SUPABASE_JWT_SECRET"][1]
    assert env["SUPABASE_JWT_SECRET"] not in output  # made of words: whole, not in pieces
    for name in ("N8N_API_KEY", "N8N_CALLBACK_SECRET", "N8N_WEBHOOK_TOKEN", "N8N_ERROR_WEBHOOK_TOKEN", "CRON_SECRET"):
        assert not leaks(output, env[name]), name

    # A wrong API key: that check fails, the two that need it are skipped.
    wrong = write_env(tmp_path / "wrong-key", {**env, "N8N_API_KEY": "n8n_api_" + strong(30)})
    code, rows, _ = preflight_json("--env-file", str(wrong))
    assert code == 1
    assert rows["n8n"][0] == "ok"
    assert rows["n8n-api-key"][0] == "fail" and rows["n8n-api-key"][1].startswith("n8n refused N8N_API_KEY (401)")
    assert rows["n8n-workflows"][0] == rows["n8n-credentials"][0] == "skip"

    # An export changed in the repository and not pushed: not in step.
    changed = tmp_path / "exports"
    shutil.copytree(EXPORTS, changed)
    export = json.loads((changed / "muni_lien_search.json").read_text())
    node = copy.deepcopy(export["nodes"][0])
    export["nodes"][0]["notes"] = "changed locally"
    (changed / "muni_lien_search.json").write_text(json.dumps(export, indent=2))
    code, rows, _ = preflight_json("--env-file", str(env_file), "--workflows-dir", str(changed))
    assert code == 1
    assert rows["n8n-workflows"] == ("fail", "1 of 4 export(s) not in step (scripts/sync_workflows.py push): "
                                             f"{MUNI}: node changed: {node['name']} (notes)")
    assert rows["n8n-credentials"][0] == "ok"
