"""scripts/sync_workflows.py against n8n's public API contract (tests/scripts/n8n_public_api.py,
served by `responses`): paging, write bodies, activation, tags, every error path, exit codes.
The same behaviour against a real n8n is in tests/e2e/test_sync_workflows_e2e.py."""
from __future__ import annotations

import email.utils
import importlib.util
import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
import responses

from app.n8n import cloud
from tests.scripts.n8n_public_api import API_KEY, BASE_URL, SETTINGS, WRITABLE, Body, FakeN8n

ROOT = Path(__file__).resolve().parents[2]
EXPORTS = ROOT / "n8n_workflows"
ERROR_HANDLER = "Rexera - Error handler"
PAYOFF = "Rexera - Payoff request"
HOA = "Rexera - HOA acquisition"
MUNI = "Rexera - Municipal lien search"
CREDENTIALS = [("httpHeaderAuth", "Rexera trigger token"), ("httpHeaderAuth", "Rexera error token"),
               ("n8nApi", "Rexera n8n API")]


def load_script():
    spec = importlib.util.spec_from_file_location("sync_workflows_script", ROOT / "scripts" / "sync_workflows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = load_script()


@pytest.fixture
def n8n(monkeypatch):
    monkeypatch.setenv("N8N_BASE_URL", BASE_URL)
    monkeypatch.setenv("N8N_API_KEY", API_KEY)
    fake = FakeN8n()
    for kind, name in CREDENTIALS:
        fake.add_credential(kind, name)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake.install(mock)
        yield fake


@pytest.fixture
def exports(tmp_path) -> Path:
    directory = tmp_path / "n8n_workflows"
    directory.mkdir()
    for path in EXPORTS.glob("*.json"):
        shutil.copy(path, directory / path.name)
    return directory


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def run(exports, capsys):
    """run(*argv) -> (exit code, stdout, stderr); sleeps between retries are recorded, not slept."""
    sleeps = Sleeps()

    def run_(*argv: str) -> tuple[int, str, str]:
        code = script.main(["--dir", str(exports), *argv], retry=cloud.RetryPolicy(attempts=3, backoff=1, sleep=sleeps))
        out, err = capsys.readouterr()
        return code, out, err

    run_.sleeps = sleeps
    return run_


def export(name: str) -> dict:
    return json.loads((EXPORTS / name).read_text())


def pushed(n8n: FakeN8n, run) -> None:
    code, out, err = run("push")
    assert code == 0, out + err
    n8n.calls.clear()


# ---- normalized exports ---------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(EXPORTS.glob("*.json")), ids=lambda p: p.name)
def test_normalizing_a_committed_export_reproduces_it_byte_for_byte(path):
    text = path.read_text()
    assert cloud.render(cloud.normalize(json.loads(text))) == text


def test_normalizing_strips_instance_fields_and_maps_ids_back_to_names(n8n, run):
    pushed(n8n, run)
    stored = n8n.by_name(PAYOFF)
    assert stored["settings"]["errorWorkflow"] == n8n.by_name(ERROR_HANDLER)["id"]
    normalized = cloud.normalize(stored, {n8n.by_name(ERROR_HANDLER)["id"]: ERROR_HANDLER})
    assert list(normalized) == ["name", "nodes", "connections", "settings"]
    assert normalized["settings"] == {"executionOrder": "v1", "errorWorkflow": ERROR_HANDLER}
    trigger = next(node for node in normalized["nodes"] if node["name"] == "Rexera trigger")
    assert trigger["credentials"] == {"httpHeaderAuth": {"id": "rexera-trigger-token", "name": "Rexera trigger token"}}


# ---- pagination -----------------------------------------------------------------------------
def test_listing_follows_next_cursor_until_there_is_none(n8n):
    n8n.page_size = 2
    for index in range(5):
        n8n.seed({"name": f"Workflow {index}", "nodes": [], "connections": {}, "settings": {}})
    client = cloud.N8nClient(BASE_URL, API_KEY)
    names = [w["name"] for w in client.workflows()]
    assert names == [f"Workflow {index}" for index in range(5)]
    pages = [params for method, path, params, _ in n8n.calls if path == "/workflows"]
    assert len(pages) == 3
    assert "cursor" not in pages[0] and all("cursor" in page for page in pages[1:])
    assert all(page["limit"] == "250" for page in pages)


def test_push_finds_a_workflow_on_a_later_page_and_updates_it(n8n, run):
    pushed(n8n, run)
    n8n.page_size = 1
    n8n.by_name(MUNI)["nodes"][0]["position"] = [999, 999]
    code, out, _ = run("push")
    assert code == 0, out
    assert [call for call in n8n.writes() if call[0] in ("POST", "PUT")] == [
        ("PUT", f"/workflows/{n8n.by_name(MUNI)['id']}")]
    assert len(n8n.workflows) == 4


# ---- push -----------------------------------------------------------------------------------
def test_push_sends_only_the_writable_fields_and_settings(n8n, run):
    code, out, err = run("push")
    assert code == 0, out + err
    bodies = [body for method, path, _, body in n8n.calls if method == "POST" and path == "/workflows"]
    assert len(bodies) == 4
    for body in bodies:
        assert set(body) == WRITABLE
        assert set(body["settings"]) <= SETTINGS


def test_push_creates_the_error_handler_first_and_references_it_by_id(n8n, run):
    run("push")
    created = [body["name"] for method, path, _, body in n8n.calls if method == "POST" and path == "/workflows"]
    assert created[0] == ERROR_HANDLER
    handler_id = n8n.by_name(ERROR_HANDLER)["id"]
    for name in (PAYOFF, HOA, MUNI):
        assert n8n.by_name(name)["settings"]["errorWorkflow"] == handler_id


def test_push_sends_credential_ids_known_in_the_target(n8n, run):
    # A workflow made in the editor reveals the trigger credential's id in the target.
    trigger_id = n8n.credentials[("httpHeaderAuth", "Rexera trigger token")]
    n8n.seed({"name": "Made in the editor", "connections": {}, "settings": {}, "nodes": [
        {"name": "Hook", "type": "n8n-nodes-base.webhook", "parameters": {},
         "credentials": {"httpHeaderAuth": {"id": trigger_id, "name": "Rexera trigger token"}}}]})
    run("push", "--only", PAYOFF, "--only", ERROR_HANDLER)
    body = next(body for method, path, _, body in n8n.calls
                if method == "POST" and path == "/workflows" and body["name"] == PAYOFF)
    references = [ref for node in body["nodes"] for ref in (node.get("credentials") or {}).values()]
    assert references == [{"id": trigger_id, "name": "Rexera trigger token"}]


def test_push_reports_a_credential_missing_in_the_target_and_does_not_activate(n8n, run):
    del n8n.credentials[("httpHeaderAuth", "Rexera trigger token")]
    code, out, _ = run("push", "--only", PAYOFF, "--only", ERROR_HANDLER)
    assert code == 2
    assert ("FAILED: Rexera - Payoff request: these credentials are not in n8n (or not unique by name): "
            "'Rexera trigger token' (httpHeaderAuth); create them and push again (not activated) "
            f"(already applied: created as {n8n.by_name(PAYOFF)['id']}, tagged)") in out
    assert ("POST", f"/workflows/{n8n.by_name(PAYOFF)['id']}/activate") not in n8n.writes()
    assert "applied: Rexera - Error handler" in out


def test_push_activates_trigger_workflows_but_not_the_error_handler(n8n, run):
    code, out, _ = run("push")
    assert code == 0, out
    activated = {path for method, path in n8n.writes() if path.endswith("/activate")}
    assert activated == {f"/workflows/{n8n.by_name(name)['id']}/activate" for name in (PAYOFF, HOA, MUNI)}
    assert not n8n.by_name(ERROR_HANDLER)["active"]


def test_push_deactivates_a_workflow_that_should_not_be_active(n8n, run):
    pushed(n8n, run)
    n8n.by_name(ERROR_HANDLER)["active"] = True
    code, out, _ = run("push")
    assert code == 0, out
    assert n8n.writes() == [("POST", f"/workflows/{n8n.by_name(ERROR_HANDLER)['id']}/deactivate")]


def test_push_tags_every_workflow_as_managed_creating_the_tag_once(n8n, run):
    n8n.seed({"name": HOA, "nodes": [], "connections": {}, "settings": {}}, tags=["billing"])
    run("push")
    assert [body for method, path, _, body in n8n.calls if path == "/tags" and method == "POST"] == [
        {"name": cloud.MANAGED_TAG}]
    for workflow in n8n.workflows.values():
        assert cloud.MANAGED_TAG in {tag["name"] for tag in workflow["tags"]}
    assert {tag["name"] for tag in n8n.by_name(HOA)["tags"]} == {"billing", cloud.MANAGED_TAG}


def test_push_uses_the_managed_tag_when_someone_created_it_meanwhile(n8n, run):
    other = n8n.seed({"name": "Other", "nodes": [], "connections": {}, "settings": {}}, tags=[cloud.MANAGED_TAG])
    n8n.fail("GET", "/tags", Body('{"data": [], "nextCursor": null}'))  # not listed yet; POST /tags answers 409
    code, out, _ = run("push", "--only", ERROR_HANDLER)
    assert code == 0, out
    assert [call[2:] for call in n8n.calls if call[:2] == ("POST", "/tags")] == [({}, {"name": cloud.MANAGED_TAG})]
    assert n8n.by_name(ERROR_HANDLER)["tags"] == other["tags"]
    assert list(n8n.tags.values()) == [cloud.MANAGED_TAG]


def test_second_push_changes_nothing(n8n, run):
    pushed(n8n, run)
    code, out, _ = run("push")
    assert code == 0, out
    assert n8n.writes() == []
    assert "applied: 0, unchanged: 4, failed: 0, not attempted: 0" in out


def test_push_updates_a_changed_workflow_in_place(n8n, run):
    pushed(n8n, run)
    payoff = n8n.by_name(PAYOFF)
    payoff["nodes"] = payoff["nodes"][:-1]
    code, out, _ = run("push")
    assert code == 0, out
    assert n8n.writes() == [("PUT", f"/workflows/{payoff['id']}")]
    assert cloud.normalize(n8n.by_name(PAYOFF), {n8n.by_name(ERROR_HANDLER)["id"]: ERROR_HANDLER}) == \
        export("payoff_request.json")


def test_dry_run_lists_node_setting_and_activation_changes_and_writes_nothing(n8n, run):
    pushed(n8n, run)
    payoff = n8n.by_name(PAYOFF)
    removed = payoff["nodes"].pop()
    payoff["nodes"][0]["parameters"]["path"] = "changed/in/the/editor"
    payoff["nodes"].append({"id": "x", "name": "Added in the editor", "type": "n8n-nodes-base.noOp",
                            "typeVersion": 1, "position": [0, 0], "parameters": {}})
    payoff["settings"]["timezone"] = "Europe/Berlin"
    payoff["settings"]["executionOrder"] = "v0"
    payoff["active"] = False
    code, out, _ = run("push", "--dry-run")
    assert code == 0, out
    assert n8n.writes() == []
    assert f"node added: {removed['name']}" in out
    assert f"node changed: {payoff['nodes'][0]['name']} (parameters)" in out
    assert "node removed: Added in the editor" in out
    assert 'setting executionOrder: "v0" -> "v1"' in out
    assert "setting timezone is set in n8n but not in the export" in out
    assert "    activate" in out
    assert "would change: 1, unchanged: 3" in out


def test_dry_run_on_an_empty_instance_lists_creations(n8n, run):
    code, out, _ = run("push", "--dry-run")
    assert code == 0
    assert n8n.writes() == []
    assert out.count(": create\n") == 4
    payoff = json.loads((EXPORTS / "payoff_request.json").read_text())
    assert f"create ({len(payoff['nodes'])} nodes)" in out


def test_only_limits_the_run_to_one_workflow(n8n, run):
    code, out, _ = run("push", "--only", "payoff_request")
    assert code == 2  # its error workflow is not in the target
    assert "error workflow 'Rexera - Error handler' is not in the target" in out
    assert n8n.workflows == {}
    code, out, _ = run("push", "--only", ERROR_HANDLER, "--only", "payoff_request.json")
    assert code == 0, out
    assert sorted(w["name"] for w in n8n.workflows.values()) == [ERROR_HANDLER, PAYOFF]


def test_only_with_an_unknown_name_is_an_error(n8n, run):
    code, _, err = run("push", "--only", "Nope")
    assert code == 2
    assert "--only 'Nope': no such workflow" in err
    assert n8n.calls == []


def test_push_refuses_a_name_used_twice_in_the_target(n8n, run):
    n8n.seed({"name": PAYOFF, "nodes": [], "connections": {}, "settings": {}})
    n8n.seed({"name": PAYOFF, "nodes": [], "connections": {}, "settings": {}})
    code, out, _ = run("push")
    assert code == 2
    assert "FAILED: Rexera - Payoff request: several workflows in n8n have this name" in out
    assert sum(1 for w in n8n.workflows.values() if w["name"] == PAYOFF) == 2


# ---- prune ----------------------------------------------------------------------------------
def stale(n8n) -> dict:
    return n8n.seed({"name": "Rexera - Retired flow", "connections": {}, "settings": {}, "nodes": [
        {"name": "Hook", "type": "n8n-nodes-base.webhook", "parameters": {}}]}, active=True, tags=[cloud.MANAGED_TAG])


def test_prune_with_yes_deactivates_and_deletes_managed_workflows_without_export(n8n, run):
    pushed(n8n, run)
    retired = stale(n8n)
    unmanaged = n8n.seed({"name": "Someone else's", "nodes": [], "connections": {}, "settings": {}})
    code, out, _ = run("push", "--prune", "--yes")
    assert code == 0, out
    assert n8n.writes() == [("POST", f"/workflows/{retired['id']}/deactivate"), ("DELETE", f"/workflows/{retired['id']}")]
    assert unmanaged["id"] in n8n.workflows
    assert "applied: Rexera - Retired flow (deactivated and deleted)" in out


def test_prune_without_confirmation_deletes_nothing(n8n, run, monkeypatch):
    pushed(n8n, run)
    retired = stale(n8n)
    monkeypatch.setattr(script, "ask", lambda question: False)
    code, out, _ = run("push", "--prune")
    assert code == 2
    assert retired["id"] in n8n.workflows and n8n.writes() == []
    assert "not attempted: Rexera - Retired flow: prune not confirmed" in out


def test_prune_dry_run_lists_and_deletes_nothing(n8n, run):
    pushed(n8n, run)
    retired = stale(n8n)
    code, out, _ = run("push", "--prune", "--dry-run")
    assert code == 0
    assert retired["id"] in n8n.workflows and n8n.writes() == []
    assert "Rexera - Retired flow (would deactivate and delete)" in out


def test_prune_with_only_is_refused(n8n, run):
    code, _, err = run("push", "--prune", "--only", PAYOFF)
    assert code == 2 and "--prune works on the whole repository" in err
    assert n8n.calls == []


# ---- pull -----------------------------------------------------------------------------------
def test_pull_after_push_gives_byte_identical_exports(n8n, run, exports):
    pushed(n8n, run)
    for path in exports.glob("*.json"):
        path.unlink()
    code, out, _ = run("pull")
    assert code == 0, out
    # Files without an export are named after the workflow.
    assert (exports / "rexera_payoff_request.json").read_text() == (EXPORTS / "payoff_request.json").read_text()


def test_pull_into_the_repository_rewrites_nothing_when_in_step(n8n, run, exports):
    pushed(n8n, run)
    code, out, _ = run("pull")
    assert code == 0
    for path in EXPORTS.glob("*.json"):
        assert (exports / path.name).read_text() == path.read_text()
    assert "written: 0, unchanged: 4" in out
    assert n8n.writes() == []


def test_pull_shows_an_edit_in_the_editor_as_a_one_line_change(n8n, run, exports):
    pushed(n8n, run)
    n8n.by_name(PAYOFF)["nodes"][0]["parameters"]["path"] = "rexera/payoff-request-v2"
    code, out, _ = run("pull")
    assert code == 0
    before = (EXPORTS / "payoff_request.json").read_text().splitlines()
    after = (exports / "payoff_request.json").read_text().splitlines()
    changed = [(old, new) for old, new in zip(before, after) if old != new]
    assert len(before) == len(after) and changed == [
        ('        "path": "rexera/payoff-request",', '        "path": "rexera/payoff-request-v2",')]
    assert "written: 1, unchanged: 3" in out


def test_pull_leaves_unmanaged_workflows_out_unless_asked(n8n, run, exports):
    pushed(n8n, run)
    n8n.seed({"name": "Someone else's", "nodes": [], "connections": {}, "settings": {}})
    run("pull")
    assert not (exports / "someone_else_s.json").exists()
    code, _, _ = run("pull", "--only", "Someone else's")
    assert code == 0
    assert json.loads((exports / "someone_else_s.json").read_text()) == {
        "name": "Someone else's", "nodes": [], "connections": {}, "settings": {}}


def test_pull_leaves_an_export_that_n8n_lacks_alone(n8n, run, exports):
    pushed(n8n, run)
    del n8n.workflows[n8n.by_name(MUNI)["id"]]
    code, out, _ = run("pull")
    assert code == 0
    assert (exports / "muni_lien_search.json").read_text() == (EXPORTS / "muni_lien_search.json").read_text()
    assert "Rexera - Municipal lien search (muni_lien_search.json): not in n8n, left alone" in out


def test_archived_workflows_in_n8n_are_ignored(n8n, run):
    n8n.seed(export("error_handler.json"))["isArchived"] = True
    code, out, _ = run("push", "--only", ERROR_HANDLER)
    assert code == 0, out
    assert [body["name"] for method, path, _, body in n8n.calls if (method, path) == ("POST", "/workflows")] == [
        ERROR_HANDLER]


# ---- diff and status ------------------------------------------------------------------------
def test_diff_exits_0_when_in_step(n8n, run):
    pushed(n8n, run)
    code, out, _ = run("diff")
    assert code == 0
    assert "all 4 workflow(s) in step" in out


def test_diff_exits_1_when_they_differ_and_shows_the_patch(n8n, run):
    pushed(n8n, run)
    n8n.by_name(HOA)["nodes"][0]["parameters"]["path"] = "elsewhere"
    code, out, _ = run("diff", "--patch")
    assert code == 1
    assert "Rexera - HOA acquisition: differs" in out
    assert '-        "path": "elsewhere",' in out and '+        "path": "rexera/hoa-acquisition",' in out
    assert "1 of 4 workflow(s) differ" in out


def test_diff_counts_a_missing_workflow_and_a_managed_extra_as_differences(n8n, run):
    pushed(n8n, run)
    del n8n.workflows[n8n.by_name(MUNI)["id"]]
    stale(n8n)
    code, out, _ = run("diff")
    assert code == 1
    assert "only in the repository" in out
    assert "only in n8n (tagged as managed by this repository)" in out


def test_diff_exits_2_on_error(n8n, run):
    n8n.fail("GET", "/workflows", 400)
    code, _, err = run("diff")
    assert code == 2
    assert "GET /workflows: n8n answered 400" in err


def test_status_shows_active_state_last_update_and_drift(n8n, run):
    pushed(n8n, run)
    n8n.by_name(PAYOFF)["active"] = False
    code, out, _ = run("status")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["WORKFLOW", "FILE", "ACTIVE", "LAST", "UPDATE", "DRIFT"]
    payoff = next(line for line in lines if line.startswith(PAYOFF))
    assert "payoff_request.json" in payoff and " no " in payoff and "1: activate" in payoff
    assert n8n.by_name(PAYOFF)["updatedAt"] in payoff
    handler = next(line for line in lines if line.startswith(ERROR_HANDLER))
    assert " no " in handler and handler.endswith("in step")


# ---- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_is_reported_clearly_without_the_key(n8n, run, status):
    n8n.fail("GET", "/workflows", status)
    code, out, err = run("push")
    assert code == 2
    assert f"refused the API key ({status}" in err and "check N8N_API_KEY" in err
    assert API_KEY not in out + err
    assert n8n.writes() == []


def test_a_wrong_key_is_refused_by_the_instance(n8n, run, monkeypatch):
    monkeypatch.setenv("N8N_API_KEY", "wrong-key-123")
    code, out, err = run("status")
    assert code == 2
    assert "refused the API key (401 unauthorized)" in err
    assert "wrong-key-123" not in out + err


def test_a_refused_key_midway_stops_and_names_what_was_not_attempted(n8n, run):
    pushed(n8n, run)
    for name in (HOA, MUNI, PAYOFF):
        n8n.by_name(name)["nodes"][0]["position"] = [1, 1]
    n8n.fail("PUT", f"/workflows/{n8n.by_name(HOA)['id']}", 403)
    code, out, err = run("push")
    assert code == 2
    assert "FAILED: Rexera - HOA acquisition: n8n at" in out
    assert "not attempted: Rexera - Municipal lien search: stopped: n8n refused the API key" in out
    assert "not attempted: Rexera - Payoff request" in out
    assert API_KEY not in out + err


def test_missing_settings_are_named_and_nothing_is_called(n8n, run, monkeypatch):
    monkeypatch.delenv("N8N_API_KEY")
    code, _, err = run("status")
    assert code == 2
    assert "set N8N_API_KEY in the environment" in err
    assert n8n.calls == []


def test_a_workflow_gone_meanwhile_is_a_404_failure_and_the_others_are_applied(n8n, run):
    pushed(n8n, run)
    for name in (HOA, PAYOFF):
        n8n.by_name(name)["nodes"][0]["position"] = [1, 1]
    n8n.fail("PUT", f"/workflows/{n8n.by_name(HOA)['id']}", 404)
    code, out, _ = run("push")
    assert code == 2
    assert "FAILED: Rexera - HOA acquisition: PUT /workflows/" in out and "not found (404" in out
    assert "applied: Rexera - Payoff request (updated)" in out
    assert "applied: 1, unchanged: 2, failed: 1, not attempted: 0" in out


def test_a_setting_the_api_does_not_accept_is_not_sent_and_is_noted(n8n, run, exports):
    edited = export("payoff_request.json")
    edited["settings"]["saveEverything"] = True
    (exports / "payoff_request.json").write_text(json.dumps(edited))
    code, out, _ = run("push")
    assert code == 0, out
    assert "saveEverything" not in n8n.by_name(PAYOFF)["settings"]
    code, out, _ = run("push", "--dry-run")
    assert "note: setting saveEverything is not accepted by the public API" in out


def test_a_400_from_n8n_fails_that_workflow_and_reports_the_rest(n8n, run):
    pushed(n8n, run)
    n8n.by_name(MUNI)["nodes"][0]["position"] = [1, 1]
    n8n.fail("PUT", f"/workflows/{n8n.by_name(MUNI)['id']}", 400)
    code, out, _ = run("push")
    assert code == 2
    assert "FAILED: Rexera - Municipal lien search: PUT /workflows/" in out and "answered 400" in out
    assert "applied: 0, unchanged: 3, failed: 1, not attempted: 0" in out


def test_an_activation_refused_by_n8n_is_reported(n8n, run):
    pushed(n8n, run)
    n8n.by_name(PAYOFF)["active"] = False
    n8n.fail("POST", f"/workflows/{n8n.by_name(PAYOFF)['id']}/activate", 400)
    code, out, _ = run("push")
    assert code == 2
    assert "FAILED: Rexera - Payoff request: POST /workflows/" in out and "/activate: n8n answered 400" in out


def test_429_waits_as_long_as_retry_after_says(n8n, run):
    n8n.fail("GET", "/workflows", (429, {"Retry-After": "7"}))
    code, out, _ = run("status")
    assert code == 0, out
    assert run.sleeps == [7.0]


def test_429_with_an_http_date_retry_after_waits_until_then():
    policy = cloud.RetryPolicy()
    in_a_minute = email.utils.format_datetime(datetime.now(timezone.utc) + timedelta(seconds=60), usegmt=True)
    assert 58 <= policy.delay(1, in_a_minute) <= 60
    assert policy.delay(1, "Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert policy.delay(2, "soon") == 2 * policy.backoff


def test_429_asking_for_a_long_wait_gives_up_instead_of_hanging(n8n, run):
    n8n.fail("GET", "/workflows", (429, {"Retry-After": "3600"}))
    code, _, err = run("status")
    assert code == 2
    assert "GET /workflows: n8n answered 429 and asks to wait 3600 s; try again later" in err
    assert run.sleeps == []


def test_retries_are_announced_on_stderr(n8n, run):
    n8n.fail("GET", "/workflows", (429, {"Retry-After": "7"}))
    _, out, err = run("status")
    assert "GET /workflows: 429, retrying in 7 s" in err
    assert "retrying" not in out


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retried_with_backoff(n8n, run, status):
    n8n.fail("GET", "/workflows", status, status)
    code, out, _ = run("status")
    assert code == 0, out
    assert run.sleeps == [1, 2]


def test_5xx_after_the_last_attempt_is_an_error(n8n, run):
    n8n.fail("GET", "/workflows", 503, 503, 503)
    code, _, err = run("status")
    assert code == 2
    assert "GET /workflows: n8n answered 503 failure 503 after 3 attempt(s)" in err
    assert run.sleeps == [1, 2]


def test_network_errors_are_retried(n8n, run):
    n8n.fail("GET", "/workflows", requests.ConnectionError("connection refused"), requests.ReadTimeout("slow"))
    code, out, _ = run("status")
    assert code == 0, out
    assert run.sleeps == [1, 2]


def test_an_unreachable_instance_is_an_error_after_the_retries(n8n, run):
    n8n.fail("GET", "/workflows", *[requests.ConnectionError("connection refused")] * 3)
    code, _, err = run("diff")
    assert code == 2
    assert "could not be reached (ConnectionError) after 3 attempt(s)" in err


def test_a_create_is_not_retried_after_a_5xx_so_no_copy_is_made(n8n, run):
    n8n.fail("POST", "/workflows", 502)
    code, out, _ = run("push", "--only", ERROR_HANDLER)
    assert code == 2
    assert len([call for call in n8n.calls if call[:2] == ("POST", "/workflows")]) == 1
    assert run.sleeps == []
    assert "FAILED: Rexera - Error handler: POST /workflows: n8n answered 502" in out


def test_a_create_is_retried_after_429(n8n, run):
    n8n.fail("POST", "/workflows", (429, {"Retry-After": "3"}))
    code, out, _ = run("push", "--only", ERROR_HANDLER)
    assert code == 0, out
    assert run.sleeps == [3.0]
    assert len(n8n.workflows) == 1


def test_the_base_url_may_name_the_api_path():
    assert cloud.api_base("https://x.app.n8n.cloud/") == "https://x.app.n8n.cloud/api/v1"
    assert cloud.api_base("https://x.app.n8n.cloud/api/v1/") == "https://x.app.n8n.cloud/api/v1"


def test_the_update_body_holds_no_read_only_field(n8n, run):
    pushed(n8n, run)
    payoff = n8n.by_name(PAYOFF)
    payoff["nodes"][0]["position"] = [5, 5]
    payoff["nodes"][0]["createdAt"] = "2026-01-01T00:00:00.000Z"  # n8n may return node timestamps
    run("push")
    body = next(body for method, _, _, body in n8n.calls if method == "PUT")
    assert set(body) == WRITABLE
    assert all("createdAt" not in node for node in body["nodes"])
    assert body["settings"] == {"executionOrder": "v1", "errorWorkflow": n8n.by_name(ERROR_HANDLER)["id"]}


def test_a_create_is_not_retried_after_a_read_timeout(n8n, run):
    n8n.fail("POST", "/workflows", requests.ReadTimeout("n8n may have saved it"))
    code, out, _ = run("push", "--only", ERROR_HANDLER)
    assert code == 2
    assert len([call for call in n8n.calls if call[:2] == ("POST", "/workflows")]) == 1
    assert "could not be reached (ReadTimeout) after 1 attempt(s)" in out


def test_a_failure_after_the_write_names_what_was_already_applied(n8n, run):
    pushed(n8n, run)
    payoff = n8n.by_name(PAYOFF)
    payoff["nodes"][0]["position"] = [3, 3]
    payoff["tags"] = []
    n8n.fail("PUT", f"/workflows/{payoff['id']}/tags", 500, 500, 500)
    code, out, _ = run("push")
    assert code == 2
    assert (f"FAILED: Rexera - Payoff request: PUT /workflows/{payoff['id']}/tags: n8n answered 500 failure 500 "
            "after 3 attempt(s) (already applied: updated)") in out
    assert "applied: 0, unchanged: 3, failed: 1, not attempted: 0" in out


def test_dry_run_predicts_a_missing_error_workflow(n8n, run):
    code, out, _ = run("push", "--dry-run", "--only", PAYOFF)
    assert code == 2
    assert "would FAIL: its error workflow 'Rexera - Error handler' is not in the target" in out
    code, out, _ = run("push", "--dry-run")
    assert code == 0, out
    assert n8n.writes() == []


# ---- n8n 2.x (n8n Cloud): error workflows run only while active; unpublishing takes a moment --------
@pytest.fixture
def n8n_version(n8n):
    """The fake instance of a version (None: one whose line the API key cannot tell)."""
    def set_version(version: str | None) -> FakeN8n:
        n8n.version = version
        return n8n
    return set_version


def test_push_activates_the_error_handler_on_2x_and_a_second_push_changes_nothing(n8n_version, run):
    n8n = n8n_version("2.41.1")
    code, out, _ = run("push")
    assert code == 0, out
    assert all(workflow["active"] for workflow in n8n.workflows.values())
    n8n.calls.clear()
    code, out, _ = run("push")
    assert code == 0 and n8n.writes() == [], out


@pytest.mark.parametrize("refuses", [False, True], ids=["accepts (2.x)", "refuses (1.x)"])
def test_an_instance_that_does_not_say_its_version_gets_the_error_handler_activated_where_it_can(n8n_version, run,
                                                                                                  refuses):
    n8n = n8n_version(None)
    n8n.refuses_error_workflows = refuses
    code, out, _ = run("push")
    assert code == 0, out
    assert n8n.by_name(ERROR_HANDLER)["active"] is not refuses
    if refuses:
        assert "left inactive: this n8n (1.x) runs error workflows without activating them" in out


def test_prune_on_2x_deletes_once_the_workflow_is_unpublished(n8n_version, run):
    n8n = n8n_version("2.41.1")
    pushed(n8n, run)
    retired = stale(n8n)
    code, out, _ = run("push", "--prune", "--yes")
    assert code == 0, out
    assert retired["id"] not in n8n.workflows
    # Refused once with 409 "still being unpublished" right after the deactivation, then deleted.
    assert n8n.writes() == [("POST", f"/workflows/{retired['id']}/deactivate"), ("DELETE", f"/workflows/{retired['id']}"),
                            ("DELETE", f"/workflows/{retired['id']}")]


# ---- what an admin can type, what n8n can answer: one line, exit 2, never a traceback ------------
def exports_dir(kind: str, tmp_path: Path) -> Path:
    """A --dir that is missing, empty, or a file."""
    path = tmp_path / f"exports-{kind}"
    if kind == "empty":
        path.mkdir()
    elif kind == "file":
        path.write_text("{}")
    return path


DIR_PROBLEMS = {"missing": "does not exist", "empty": "holds no export (*.json)", "file": "is not a directory"}


@pytest.mark.parametrize("kind", DIR_PROBLEMS)
@pytest.mark.parametrize("command", [("push", "--prune", "--yes"), ("push", "--dry-run"), ("diff",), ("status",)],
                         ids=" ".join)
def test_a_dir_without_exports_is_refused_before_n8n_is_called(n8n, capsys, tmp_path, kind, command):
    managed = stale(n8n)
    directory = exports_dir(kind, tmp_path)
    code = script.main(["--dir", str(directory), *command])
    out, err = capsys.readouterr()
    assert code == 2
    assert err == f"sync_workflows.py: {directory} {DIR_PROBLEMS[kind]}: give the exports' directory with --dir " \
                  "(default n8n_workflows/)\n"
    assert n8n.calls == [] and managed["id"] in n8n.workflows and out == ""


def test_pull_refuses_a_dir_that_is_a_file(n8n, capsys, tmp_path):
    directory = exports_dir("file", tmp_path)
    code = script.main(["--dir", str(directory), "pull"])
    _, err = capsys.readouterr()
    assert code == 2 and f"{directory} is not a directory" in err
    assert n8n.calls == [] and directory.read_text() == "{}"


def test_prune_never_runs_without_exports_loaded(n8n, run, monkeypatch):
    pushed(n8n, run)
    managed = {w["id"] for w in n8n.workflows.values()}
    monkeypatch.setattr(cloud, "load_exports", lambda directory: {})
    code, out, _ = run("push", "--prune", "--yes")
    assert code == 2
    assert "FAILED: prune: refused: no export was loaded" in out
    assert set(n8n.workflows) == managed and n8n.writes() == []


PAYOFF_FILE = "payoff_request.json"
BROKEN_EXPORTS = {  # what the file holds -> what the message says
    "nodes a string": (lambda e: {**e, "nodes": "oops"}, "nodes is not a list"),
    "settings a string": (lambda e: {**e, "settings": "s"}, "settings is not an object"),
    "connections a list": (lambda e: {**e, "connections": []}, "connections is not an object of objects"),
    "connections of lists": (lambda e: {**e, "connections": {"Rexera trigger": []}},
                             "connections is not an object of objects"),
    "name a number": (lambda e: {"name": 5}, "no workflow name (a non-empty string)"),
    "no name": (lambda e: {k: v for k, v in e.items() if k != "name"}, "no workflow name"),
    "a JSON list": (lambda e: [e], "not a JSON object"),
    "a node not an object": (lambda e: {**e, "nodes": ["x"]}, "node 0 is not an object"),
    "a node without name": (lambda e: {**e, "nodes": [{"type": "n8n-nodes-base.code"}]}, "node 0 has no name"),
    "a node without type": (lambda e: {**e, "nodes": [{"name": "A"}]}, "node 0 has no type"),
    "two nodes of one name": (lambda e: {**e, "nodes": [e["nodes"][0], e["nodes"][0]]}, "two nodes are named"),
    "credentials a string": (lambda e: {**e, "nodes": [{**e["nodes"][0], "credentials": "x"}]},
                             "node 'Rexera trigger': credentials is not an object"),
}


@pytest.mark.parametrize("case", BROKEN_EXPORTS)
@pytest.mark.parametrize("command", [("push", "--dry-run"), ("push",), ("diff",)], ids=" ".join)
def test_a_broken_export_is_named_and_nothing_is_sent(n8n, run, exports, case, command):
    edit, problem = BROKEN_EXPORTS[case]
    (exports / PAYOFF_FILE).write_text(json.dumps(edit(export(PAYOFF_FILE))))
    code, out, err = run(*command)
    assert code == 2
    assert err.startswith(f"sync_workflows.py: {PAYOFF_FILE}: {problem}") and len(err.splitlines()) == 1
    assert n8n.calls == [] and out == ""


def test_an_export_that_is_not_utf8_is_named(n8n, run, exports):
    (exports / PAYOFF_FILE).write_bytes(b'{"name": "caf\xe9"}')
    code, _, err = run("push", "--dry-run")
    assert code == 2 and err.startswith(f"sync_workflows.py: {PAYOFF_FILE} is not valid JSON")
    assert n8n.calls == []


ODD_PAGES = {"a JSON list": ("[]", "a JSON list"), "null": ("null", "an empty body or null"),
             "an empty body": ("", "an empty body or null"), "data not a list": ('{"data": "x"}', "an object with keys data"),
             "items not objects": ('{"data": [1, 2]}', "an object with keys data")}


@pytest.mark.parametrize("case", ODD_PAGES)
@pytest.mark.parametrize("command", ["push", "diff", "status", "pull"])
def test_a_listing_of_an_unexpected_shape_is_named(n8n, run, case, command):
    body, shape = ODD_PAGES[case]
    n8n.fail("GET", "/workflows", Body(body))
    code, out, err = run(command)
    assert code == 2
    assert err == f"sync_workflows.py: GET /workflows: n8n answered {shape}, not a page of objects " \
                  '({"data": [...]}); is N8N_BASE_URL an n8n instance?\n'
    assert n8n.writes() == []


@pytest.mark.parametrize("workflow, problem", [({"id": "x1", "nodes": []}, "(id x1) the sync cannot read: no workflow name (a non-empty string)"),
                                               ({"name": PAYOFF}, "('Rexera - Payoff request') the sync cannot read: no id"),
                                               ({"id": "x2", "name": PAYOFF, "nodes": "oops"},
                                                "(id x2) the sync cannot read: nodes is not a list")])
def test_a_listed_workflow_the_sync_cannot_read_is_named(n8n, run, workflow, problem):
    n8n.fail("GET", "/workflows", Body(json.dumps({"data": [workflow], "nextCursor": None})))
    code, _, err = run("push")
    assert code == 2
    assert err == f"sync_workflows.py: GET /workflows: n8n listed a workflow {problem}\n"
    assert n8n.writes() == []


@pytest.mark.parametrize("answer, shape", [("{}", "an object with keys (none)"), ('{"name": "x"}', "an object with keys name"),
                                           ("[]", "a JSON list"), ("", "an empty body or null")])
def test_a_create_answered_without_an_id_fails_that_workflow_and_prints_the_summary(n8n, run, answer, shape):
    n8n.fail("POST", "/workflows", Body(answer))
    code, out, err = run("push")
    assert code == 2
    assert f"FAILED: {ERROR_HANDLER}: POST /workflows: n8n answered {shape}, not an object with id" in out
    assert "applied: 0, unchanged: 0, failed: 4, not attempted: 0" in out  # the others name the error handler
    assert "Traceback" not in err


def test_an_update_answered_with_a_list_fails_that_workflow(n8n, run):
    pushed(n8n, run)
    n8n.by_name(PAYOFF)["nodes"][0]["position"] = [1, 1]
    n8n.fail("PUT", f"/workflows/{n8n.by_name(PAYOFF)['id']}", Body("[]"))
    code, out, _ = run("push")
    assert code == 2
    assert f"FAILED: {PAYOFF}: PUT /workflows/{n8n.by_name(PAYOFF)['id']}: n8n answered a JSON list" in out


@pytest.mark.parametrize("base_url", ["rexera-staging.app.n8n.cloud", "http:", "http://", "ftp://rexera.example",
                                      "https://rexera.example:port", "localhost:5678"])
@pytest.mark.parametrize("command", ["push", "status"])
def test_a_base_url_that_is_not_an_http_url_is_named(n8n, run, monkeypatch, base_url, command):
    monkeypatch.setenv("N8N_BASE_URL", base_url)
    code, out, err = run(command)
    assert code == 2 and out == ""
    assert err.startswith("sync_workflows.py: N8N_BASE_URL ") and len(err.splitlines()) == 1
    assert n8n.calls == []


@pytest.mark.parametrize("status", [None, 401, 400], ids=["unreachable", "refused key", "n8n error"])
@pytest.mark.parametrize("command", ["push", "diff", "status", "pull"])
def test_a_password_in_the_base_url_is_never_printed(run, monkeypatch, status, command):
    monkeypatch.setenv("N8N_BASE_URL", "https://admin:hunter2secret@rexera.example")
    monkeypatch.setenv("N8N_API_KEY", API_KEY)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        if status:  # otherwise responses refuses the call: a connection error
            mock.add(responses.GET, "https://rexera.example/api/v1/workflows", status=status, json={"message": "no"})
            mock.add(responses.GET, "https://rexera.example/api/v1/credentials", status=405)
        code, out, err = run(command)
    assert code == 2
    assert "https://rexera.example/api/v1" in err or "GET /workflows: n8n answered 400" in err
    assert "hunter2secret" not in out + err and "admin:" not in out + err
