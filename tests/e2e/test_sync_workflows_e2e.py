"""scripts/sync_workflows.py against a real local n8n (its own instance, started empty but for
the three credentials): push, pull, diff, status and prune as an admin runs them."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e import harness

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SCRIPT = harness.ROOT / "scripts" / "sync_workflows.py"
EXPORTS = harness.ROOT / "n8n_workflows"
NAMES = {"Rexera - Error handler": "error_handler.json", "Rexera - Payoff request": "payoff_request.json",
         "Rexera - HOA acquisition": "hoa_acquisition.json", "Rexera - Municipal lien search": "muni_lien_search.json"}


@pytest.fixture(scope="module")
def n8n(tmp_path_factory, n8n_version):
    instance = harness.N8n(harness.n8n_local.free_port(), tmp_path_factory.mktemp("n8n-sync"), n8n_version)
    instance.start()
    try:
        harness.create_credentials(instance, secrets.token_urlsafe(24), secrets.token_urlsafe(24))
        yield instance
    finally:
        instance.stop()


def sync(n8n, *args: str, directory: Path = EXPORTS) -> subprocess.CompletedProcess:
    env = {**os.environ, "N8N_BASE_URL": n8n.base_url, "N8N_API_KEY": n8n.api_key}
    result = subprocess.run([sys.executable, str(SCRIPT), "--dir", str(directory), *args], env=env,
                            capture_output=True, text=True, timeout=120, cwd=harness.ROOT)
    assert n8n.api_key not in result.stdout + result.stderr
    return result


def workflows(n8n) -> dict[str, dict]:
    return {w["name"]: w for w in harness.api(n8n, "GET", "/api/v1/workflows?limit=250")["data"]}


@pytest.fixture(scope="module")
def first_push(n8n):
    result = sync(n8n, "push")
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_first_push_creates_every_export_and_activates_them(n8n, first_push, n8n_version):
    # The error handler too where n8n runs it only when active (2.x); 1.x refuses to activate
    # it and runs it anyway.
    found = workflows(n8n)
    assert set(found) == set(NAMES)
    assert {name: w["active"] for name, w in found.items()} == {
        "Rexera - Error handler": not n8n_version.startswith("1."), "Rexera - Payoff request": True,
        "Rexera - HOA acquisition": True, "Rexera - Municipal lien search": True}
    handler_id = found["Rexera - Error handler"]["id"]
    for name in NAMES:
        assert "managed-by-rexera-repo" in {tag["name"] for tag in found[name]["tags"]}
        if name != "Rexera - Error handler":
            assert found[name]["settings"]["errorWorkflow"] == handler_id
        for node in found[name]["nodes"]:  # every credential resolved by name to its id in n8n
            for ref in (node.get("credentials") or {}).values():
                assert not ref["id"].startswith("rexera-"), (name, node["name"], ref)
    assert "applied: 4, unchanged: 0, failed: 0, not attempted: 0" in first_push.stdout


def test_pull_after_push_gives_byte_identical_files(n8n, first_push, tmp_path):
    into_copy = tmp_path / "copy"
    shutil.copytree(EXPORTS, into_copy)
    for name, file in NAMES.items():  # stale exports, so pull has to write every file again
        (into_copy / file).write_text(json.dumps({"name": name, "nodes": [], "connections": {}, "settings": {}}))
    result = sync(n8n, "pull", directory=into_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    for file in NAMES.values():
        assert (into_copy / file).read_bytes() == (EXPORTS / file).read_bytes(), file


def test_pull_into_an_empty_directory_writes_the_same_bytes(n8n, first_push, tmp_path):
    result = sync(n8n, "pull", directory=tmp_path / "fresh")
    assert result.returncode == 0, result.stdout + result.stderr
    pulled = sorted((tmp_path / "fresh").glob("*.json"))
    assert len(pulled) == 4
    for path in pulled:
        name = json.loads(path.read_text())["name"]
        assert path.read_bytes() == (EXPORTS / NAMES[name]).read_bytes(), name


def test_second_push_changes_nothing_and_dry_run_says_so(n8n, first_push):
    before = {name: (w["versionId"], w["updatedAt"]) for name, w in workflows(n8n).items()}
    dry = sync(n8n, "push", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "would change: 0, unchanged: 4" in dry.stdout
    again = sync(n8n, "push")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "applied: 0, unchanged: 4, failed: 0, not attempted: 0" in again.stdout
    assert {name: (w["versionId"], w["updatedAt"]) for name, w in workflows(n8n).items()} == before


def test_diff_and_status_see_an_edit_made_in_n8n_and_push_undoes_it(n8n, first_push):
    assert sync(n8n, "diff").returncode == 0
    payoff = workflows(n8n)["Rexera - Payoff request"]
    body = {key: payoff[key] for key in ("name", "nodes", "connections", "settings")}
    body["nodes"][0]["parameters"]["path"] = "edited/in/n8n"
    harness.api(n8n, "PUT", f"/api/v1/workflows/{payoff['id']}", body)
    diff = sync(n8n, "diff", "--patch")
    assert diff.returncode == 1, diff.stdout + diff.stderr
    assert "Rexera - Payoff request: differs" in diff.stdout and '-        "path": "edited/in/n8n",' in diff.stdout
    status = sync(n8n, "status")
    assert status.returncode == 0
    line = next(line for line in status.stdout.splitlines() if line.startswith("Rexera - Payoff request"))
    assert " yes " in line and "node changed: Rexera trigger (parameters)" in line
    dry = sync(n8n, "push", "--dry-run")
    assert "node changed: Rexera trigger (parameters)" in dry.stdout and "would change: 1, unchanged: 3" in dry.stdout
    push = sync(n8n, "push")
    assert "applied: Rexera - Payoff request (updated)" in push.stdout
    assert sync(n8n, "diff").returncode == 0
    assert workflows(n8n)["Rexera - Payoff request"]["active"] is True


def test_prune_deletes_a_managed_workflow_without_export(n8n, first_push):
    created = harness.api(n8n, "POST", "/api/v1/workflows", {
        "name": "Rexera - Retired flow", "connections": {}, "settings": {},
        "nodes": [{"name": "Start", "type": "n8n-nodes-base.manualTrigger", "typeVersion": 1, "position": [0, 0],
                   "parameters": {}}]})
    tag = next(t for t in harness.api(n8n, "GET", "/api/v1/tags")["data"] if t["name"] == "managed-by-rexera-repo")
    harness.api(n8n, "PUT", f"/api/v1/workflows/{created['id']}/tags", [{"id": tag["id"]}])
    assert sync(n8n, "diff").returncode == 1
    result = sync(n8n, "push", "--prune", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Rexera - Retired flow (deactivated and deleted)" in result.stdout
    status, _ = n8n.request("GET", f"/api/v1/workflows/{created['id']}")
    assert status == 404
    assert set(workflows(n8n)) == set(NAMES)


def test_a_credential_missing_in_n8n_fails_that_workflow_and_leaves_it_inactive(n8n, first_push, tmp_path):
    export = json.loads((EXPORTS / "payoff_request.json").read_text())
    export["name"] = "Rexera - Needs a missing credential"
    export["settings"].pop("errorWorkflow")
    for node in export["nodes"]:
        for ref in (node.get("credentials") or {}).values():
            ref.update(id="rexera-missing-token", name="Rexera missing token")
        if node["type"] == "n8n-nodes-base.webhook":
            node["parameters"]["path"] = "rexera/needs-missing-credential"
            node["webhookId"] = "7f0c1d22-0000-4000-8000-000000000001"
    (tmp_path / "needs.json").write_text(json.dumps(export))
    result = sync(n8n, "push", directory=tmp_path)
    assert result.returncode == 2
    assert "'Rexera missing token' (httpHeaderAuth)" in result.stdout
    stored = workflows(n8n)["Rexera - Needs a missing credential"]
    assert stored["active"] is False
    harness.api(n8n, "DELETE", f"/api/v1/workflows/{stored['id']}")


def test_a_wrong_key_is_refused_without_showing_it(n8n):
    env = {**os.environ, "N8N_BASE_URL": n8n.base_url, "N8N_API_KEY": "not-the-key-" + secrets.token_hex(8)}
    result = subprocess.run([sys.executable, str(SCRIPT), "status"], env=env, capture_output=True, text=True,
                            timeout=60, cwd=harness.ROOT)
    assert result.returncode == 2
    assert "refused the API key (401" in result.stderr
    assert env["N8N_API_KEY"] not in result.stdout + result.stderr


def test_listing_pages_through_the_real_cursor(n8n, first_push, monkeypatch):
    from app.n8n import cloud

    monkeypatch.setattr(cloud, "PAGE_SIZE", 1)
    listed = cloud.N8nClient(n8n.base_url, n8n.api_key).workflows()
    assert sorted(w["name"] for w in listed) == sorted(workflows(n8n))
    assert len(listed) == len({w["id"] for w in listed}) >= 4
