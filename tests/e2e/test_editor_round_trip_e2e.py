"""An edit made in n8n's editor is a normal change (issue 18): in the running system (the exports
imported into a real n8n, the service and its dispatcher, the simulated agents), one node is
changed the way the editor saves a workflow (the whole workflow back through n8n's API), pulled
with scripts/sync_workflows.py into a copy of n8n_workflows/, seen as exactly that one-line
change, validated, and run end to end with the change reaching the service. An edit made inside
a shared block (the signing code every callback carries) is caught with the file to edit
instead, and scripts/workflow_shared.py --apply takes it out while keeping the real edit. On
each supported n8n line; the workflow is put back as it was afterwards."""
from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.e2e import harness
from tests.e2e.harness import new_id

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

EXPORTS = harness.ROOT / "n8n_workflows"
SCRIPTS = harness.ROOT / "scripts"
MUNI, MUNI_FILE = "Rexera - Municipal lien search", "muni_lien_search.json"
# The edit: the title of the task injected per portal, which reaches the service in task.injected.
NODE = "Inject a task per portal"
BEFORE, AFTER = "title: 'Search ' + name", "title: 'Search the records of ' + name"
# A stray edit inside the shared signing code of another node.
STRAY_NODE = "Fail process_documents"
STRAY_BEFORE, STRAY_AFTER = "executionId: String($execution.id), attempt: 1 }", \
    "executionId: String($execution.id), attempt: 1, edited: true }"


def run(script: str, *args: str, n8n=None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if n8n is not None:
        env.update(N8N_BASE_URL=n8n.base_url, N8N_API_KEY=n8n.api_key)
    result = subprocess.run([sys.executable, str(SCRIPTS / script), *args], env=env, capture_output=True,
                            text=True, timeout=180, cwd=harness.ROOT)
    if n8n is not None:
        assert n8n.api_key not in result.stdout + result.stderr
    return result


def pull_into_a_copy(n8n, directory: Path) -> subprocess.CompletedProcess:
    shutil.copytree(EXPORTS, directory)
    result = run("sync_workflows.py", "--dir", str(directory), "pull", n8n=n8n)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def save_as_the_editor_does(n8n, workflow_id: str, change) -> dict:
    """GET the workflow, change one node's code, PUT the whole workflow back (2.x publishes it
    again, as the editor's Publish does; 1.x reactivates it). Returns what was there before."""
    stored = harness.api(n8n, "GET", f"/api/v1/workflows/{workflow_id}")
    body = json.loads(json.dumps({key: stored[key] for key in ("name", "nodes", "connections", "settings")}))
    for name, (old, new) in change.items():
        node = next(node for node in body["nodes"] if node["name"] == name)
        assert node["parameters"]["jsCode"].count(old) == 1, (name, old)
        node["parameters"]["jsCode"] = node["parameters"]["jsCode"].replace(old, new)
    harness.api(n8n, "PUT", f"/api/v1/workflows/{workflow_id}", body)
    return {key: stored[key] for key in ("name", "nodes", "connections", "settings")}


def changed_lines(before: list[str], after: list[str]) -> list[str]:
    """The removed (-) and added (+) lines of a diff."""
    return [line for line in difflib.unified_diff(before, after, n=0, lineterm="")
            if line[:1] in "+-" and line[:3] not in ("+++", "---")]


def code_lines(export: dict, name: str) -> list[str]:
    return next(node for node in export["nodes"] if node["name"] == name)["parameters"]["jsCode"].splitlines()


def muni_payload() -> dict:
    return {"address": f"{new_id()} Congress Avenue, Austin, TX 78701", "county": "Travis",
            "parcelNumber": f"P-{new_id()}", "buyer": "Robin Castillo",
            "closingDate": (date.today() + timedelta(days=14)).isoformat(),
            "searchTypes": ["tax_liens", "utility_liens", "municipal_liens"]}


def test_an_edit_in_the_editor_is_pulled_as_one_line_validated_and_runs(world, tmp_path):
    n8n = world.n8n
    workflow_id = next(str(w["id"]) for w in harness.api(n8n, "GET", "/api/v1/workflows?limit=250")["data"]
                       if w["name"] == MUNI)
    original = save_as_the_editor_does(n8n, workflow_id, {NODE: (BEFORE, AFTER)})
    try:
        # Pulled: the other exports are untouched, this one differs by the one line of the edit.
        edited = tmp_path / "edited"
        pulled = pull_into_a_copy(n8n, edited)
        assert f"{MUNI} ({MUNI_FILE}): wrote {MUNI_FILE}" in pulled.stdout, pulled.stdout
        assert "written: 1, unchanged: 3, failed: 0" in pulled.stdout, pulled.stdout
        for path in EXPORTS.glob("*.json"):
            if path.name != MUNI_FILE:
                assert (edited / path.name).read_bytes() == path.read_bytes(), path.name
        committed_text, pulled_text = (EXPORTS / MUNI_FILE).read_text(), (edited / MUNI_FILE).read_text()
        diff = changed_lines(committed_text.splitlines(), pulled_text.splitlines())
        assert len(diff) == 2 and diff[0].startswith('-        "jsCode": ') \
            and diff[1].startswith('+        "jsCode": '), diff
        committed, pulled_export = json.loads(committed_text), json.loads(pulled_text)
        code_diff = changed_lines(code_lines(committed, NODE), code_lines(pulled_export, NODE))
        line = next(line for line in code_lines(committed, NODE) if BEFORE in line)
        assert code_diff == ["-" + line, "+" + line.replace(BEFORE, AFTER)], code_diff
        assert [node for node in pulled_export["nodes"] if node["name"] != NODE] == \
            [node for node in committed["nodes"] if node["name"] != NODE]
        assert {key: pulled_export[key] for key in ("name", "connections", "settings")} == \
            {key: committed[key] for key in ("name", "connections", "settings")}

        # Validated: the validator (CI's command) and the shared-code check pass on the pulled copy.
        files = sorted(str(path) for path in edited.glob("*.json"))
        validated = run("validate_workflows.py", *files)
        assert validated.returncode == 0 and validated.stdout == "", validated.stdout + validated.stderr
        checked = run("workflow_shared.py", "--check", "--dir", str(edited))
        assert checked.returncode == 0, checked.stdout + checked.stderr

        # Run end to end: the service creates the portal tasks with the edited title.
        started = world.start("MUNI_LIEN_SEARCH", muni_payload())
        workflow = world.wait_final(started, deadline=150)
        assert workflow["status"] == "COMPLETED", world.describe(workflow)
        portals = {key: task for key, task in workflow["tasksByKey"].items() if key.startswith("portal_access:")}
        assert portals, world.describe(workflow)
        for key, task in portals.items():
            assert task["title"].startswith("Search the records of "), (key, task["title"])
        rows = world.query("select title from public.tasks where workflow_id = %s and task_key like 'portal_access:%%'",
                           (started,))
        assert rows and all(row["title"].startswith("Search the records of ") for row in rows)

        # A stray edit inside a shared block (in another node of the same workflow) is caught.
        save_as_the_editor_does(n8n, workflow_id, {STRAY_NODE: (STRAY_BEFORE, STRAY_AFTER)})
        stray = tmp_path / "stray"
        pull_into_a_copy(n8n, stray)
        # (The copy has its own shared/ folder, which the message names: the folder's name, shared/, the file.)
        refused = run("validate_workflows.py", *sorted(str(path) for path in stray.glob("*.json")))
        assert refused.returncode == 1, refused.stdout + refused.stderr
        shared = (EXPORTS / "shared" / "sign-callback.js").read_text().splitlines()
        line = next(number for number, text in enumerate(shared, 1) if "attempt: 1 }, data);" in text)
        assert refused.stdout.splitlines() == [
            f"{stray / MUNI_FILE}: {STRAY_NODE}: shared block sign-callback differs from "
            f"stray/shared/sign-callback.js (line {line} of the file reads `...ionId: String($execution.id), "
            "attempt: 1, edited: true }, data);` here, `...ionId: String($execution.id), attempt: 1 }, data);` in the "
            "file): code in a shared block is edited in stray/shared/sign-callback.js, not in the editor; make "
            "the change there if it is wanted, then run scripts/workflow_shared.py --apply (it rewrites every copy, "
            "this one included)"], refused.stdout
        assert run("workflow_shared.py", "--dir", str(stray)).returncode == 1
        # --apply drops the stray edit and keeps the real one: the export is the one pulled before.
        applied = run("workflow_shared.py", "--apply", "--dir", str(stray))
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert (stray / MUNI_FILE).read_bytes() == (edited / MUNI_FILE).read_bytes()
    finally:
        harness.api(n8n, "PUT", f"/api/v1/workflows/{workflow_id}", original)
    # Back as committed: pulling now changes nothing.
    again = tmp_path / "again"
    pull_into_a_copy(n8n, again)
    assert (again / MUNI_FILE).read_bytes() == (EXPORTS / MUNI_FILE).read_bytes()
