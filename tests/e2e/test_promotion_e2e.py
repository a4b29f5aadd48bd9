"""docs/admin-scripts.md's promotion from staging to production, run as written: the two
environment files and the `staging`/`production` shell functions, then the block itself, in a
clone of the repository. Staging is the e2e system's n8n with a change saved as the editor saves
it; production is an n8n of its own with the committed exports pushed."""
from __future__ import annotations

import os
import re
import secrets
import subprocess

import pytest

from tests.e2e import harness
from tests.e2e.test_editor_round_trip_e2e import AFTER, BEFORE, MUNI, MUNI_FILE, NODE, save_as_the_editor_does

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
PAGE = harness.ROOT / "docs" / "admin-scripts.md"


def block_after(heading: str) -> str:
    text = PAGE.read_text()
    after = text[text.index(heading):]
    return after.split("```bash\n", 1)[1].split("```", 1)[0]


@pytest.fixture
def production(tmp_path, n8n_version):
    instance = harness.N8n(harness.n8n_local.free_port(), tmp_path / "production-n8n", n8n_version)
    instance.start()
    try:
        harness.create_credentials(instance, secrets.token_urlsafe(24), secrets.token_urlsafe(24))
        yield instance
    finally:
        instance.stop()


def test_a_change_made_in_staging_is_promoted_to_production_as_the_docs_say(world, production, tmp_path):
    staging = world.n8n
    clone = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", str(harness.ROOT), str(clone)], check=True)
    (clone / ".venv").symlink_to(harness.ROOT / ".venv")
    home = tmp_path / "home"
    (home / ".config" / "rexera").mkdir(parents=True)
    for name, n8n in (("staging", staging), ("production", production)):
        (home / ".config" / "rexera" / f"n8n-{name}.env").write_text(
            f"# {name}\nN8N_BASE_URL={n8n.base_url}\nN8N_API_KEY={n8n.api_key}\n")
    environments = block_after("## Environments")
    functions = "\n".join(line for line in environments.splitlines() if line.startswith(("staging()", "production()")))
    assert len(functions.splitlines()) == 2
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "GIT_AUTHOR_NAME": "Admin", "GIT_AUTHOR_EMAIL": "a@x.example",
           "GIT_COMMITTER_NAME": "Admin", "GIT_COMMITTER_EMAIL": "a@x.example"}
    # Production runs the committed exports; staging has the change.
    pushed = subprocess.run(["bash", "-c", functions + "\nproduction .venv/bin/python scripts/sync_workflows.py push"],
                            cwd=clone, env=env, capture_output=True, text=True, timeout=180)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    workflow_id = next(str(w["id"]) for w in harness.api(staging, "GET", "/api/v1/workflows?limit=250")["data"]
                       if w["name"] == MUNI)
    original = save_as_the_editor_does(staging, workflow_id, {NODE: (BEFORE, AFTER)})
    try:
        # The block as written, one command after the other, each command's exit status recorded
        # (diff exits 1 by design while production lacks the change).
        commands = [line for line in block_after("## Promoting a change").splitlines() if line.strip()]
        script = functions + "\n" + "\n".join(f"{line}\necho \"[exit $?]\"" for line in commands)
        done = subprocess.run(["bash", "-c", script], cwd=clone, env=env, capture_output=True, text=True, timeout=400)
        output = done.stdout + done.stderr
        exits = [int(code) for code in re.findall(r"\[exit (\d+)\]", done.stdout)]
        # pull, git diff, validate, commit, diff (differs), push --dry-run, push, diff (in step)
        assert exits == [0, 0, 0, 0, 1, 0, 0, 0], output
        assert f"wrote {MUNI_FILE}" in output, output
        log = subprocess.run(["git", "log", "-1", "--stat", "--format=%s"], cwd=clone, capture_output=True, text=True)
        assert log.stdout.startswith("Payoff request: wait 3 days for the statement") and MUNI_FILE in log.stdout
        promoted = next(w for w in harness.api(production, "GET", "/api/v1/workflows?limit=250")["data"]
                        if w["name"] == MUNI)
        code = next(n for n in harness.api(production, "GET", f"/api/v1/workflows/{promoted['id']}")["nodes"]
                    if n["name"] == NODE)["parameters"]["jsCode"]
        assert AFTER in code and BEFORE not in code
        assert staging.api_key not in output and production.api_key not in output
    finally:
        harness.api(staging, "PUT", f"/api/v1/workflows/{workflow_id}", original)
