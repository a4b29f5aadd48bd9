"""Smoke test of the README's first command: `python3 scripts/local.py --demo` on embedded
defaults (no DATABASE_URL: a throwaway PostgreSQL cluster of its own), the whole system up, the
demo run to completion, everything stopped again. Bounded in time."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e import harness

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def as_from_a_terminal() -> None:
    """In the child: Ctrl-C as a terminal gives it (a run started in the background by a
    non-interactive shell inherits SIGINT ignored, and Python then never raises KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def local(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "scripts/local.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.mark.timeout(900)
def test_the_first_readme_command_runs_the_system_and_the_demo_completes(tmp_path, n8n_version):
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    process = subprocess.Popen([sys.executable, "scripts/local.py", "up", "--demo", "--port", str(port),
                                "--state-dir", str(tmp_path / "state"), "--agent-latency-ms", "50",
                                "--n8n-version", n8n_version.split(".")[0]],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True, preexec_fn=as_from_a_terminal)
    try:
        output, _ = process.communicate(timeout=840)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=60)
        pytest.fail(f"local.py did not finish in time:\n{output[-4000:]}")
    assert process.returncode == 0, output[-4000:]
    assert "creating a throwaway PostgreSQL cluster" in output, output[:2000]
    assert "interactive docs" in output and "CLIENT_TOKEN=" in output and "OPERATOR_TOKEN=" in output
    assert "all three workflows COMPLETED" in output, output[-4000:]
    summary = [line.split() for line in output.splitlines()
               if re.match(r"(PAYOFF_REQUEST|HOA_ACQUISITION|MUNI_LIEN_SEARCH) +[A-Z_]+ +\d+/\d+ ", line)]
    assert sorted(row[0] for row in summary) == ["HOA_ACQUISITION", "MUNI_LIEN_SEARCH", "PAYOFF_REQUEST"], summary
    for workflow_type, status, tasks, _duration, sla in summary:
        done, total = tasks.split("/")
        assert status == "COMPLETED" and done == total and int(total) > 0 and sla in ("ON_TIME", "AT_RISK"), summary
    # Everything stopped: the API port is free, the cluster is down, no secret was printed.
    assert not listening(port)
    location = tmp_path / "state" / "postgres-location"
    cluster = Path(location.read_text().strip()) if location.exists() else tmp_path / "state" / "postgres"
    assert (cluster / "data" / "PG_VERSION").exists() and not (cluster / "data" / "postmaster.pid").exists()
    assert local("reset", "--state-dir", str(tmp_path / "state")).returncode == 0
    assert not cluster.exists() and not (tmp_path / "state").exists()
    assert "callbackSecret" not in output and "whsec_" not in output


@pytest.mark.timeout(600)
def test_a_second_ctrl_c_while_stopping_still_stops_everything(tmp_path, n8n_version):
    """An impatient operator presses Ctrl-C twice: the second lands during the stop, which goes
    on; n8n, the agent simulator, the service and the cluster (each in a session of its own)
    are all stopped."""
    port, n8n_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    process = subprocess.Popen([sys.executable, "scripts/local.py", "up", "--port", str(port), "--n8n-port",
                                str(n8n_port), "--state-dir", str(tmp_path / "state"),
                                "--n8n-version", n8n_version.split(".")[0]],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True, preexec_fn=as_from_a_terminal)
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Demo: "):  # the banner's last line: everything is up
                break
            if "stopping" in line:
                pytest.fail("".join(lines)[-4000:])
        assert listening(port) and listening(n8n_port), "".join(lines)[-4000:]
        run_the_readmes_curl_block(tmp_path / "state" / "env")
        run_the_whole_life_by_hand(tmp_path / "state" / "env")
        run_the_docs_blocks(tmp_path / "state" / "env")
        check_with_preflight(tmp_path / "state" / "env")
        use_the_console_links("".join(lines), port, tmp_path / "state")
        watch_the_demo_in_the_console(tmp_path / "state")
        process.send_signal(signal.SIGINT)
        for line in process.stdout:
            lines.append(line)
            if line.startswith("[local] stopping"):
                process.send_signal(signal.SIGINT)  # the second one, during the stop
                break
        lines += process.stdout.readlines()
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    output = "".join(lines)
    assert process.returncode == 0, output[-4000:]
    assert "still stopping" in output and output.rstrip().endswith("[local] stopped"), output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    assert not listening(port) and not listening(n8n_port)
    location = tmp_path / "state" / "postgres-location"
    cluster = Path(location.read_text().strip()) if location.exists() else tmp_path / "state" / "postgres"
    assert not (cluster / "data" / "postmaster.pid").exists()
    assert not (tmp_path / "state" / "env").exists()  # the env file goes with the system
    assert local("reset", "--state-dir", str(tmp_path / "state")).returncode == 0


def use_the_console_links(banner: str, port: int, state: Path) -> None:
    """The banner's console sign-in links (one per demo person) each sign in once; `links`
    prints fresh ones."""
    import requests

    links = re.findall(r"(http://127\.0\.0\.1:\d+/console/#code=([0-9a-f]+))", banner)
    assert len(links) == 5 and len({code for _link, code in links}) == 5, banner[-3000:]
    assert f"http://127.0.0.1:{port}/console/" in banner
    base = f"http://127.0.0.1:{port}"
    for _link, code in links:
        first = requests.post(f"{base}/console/auth/code", json={"code": code}, timeout=10)
        assert first.status_code == 200, first.text
        assert requests.post(f"{base}/console/auth/code", json={"code": code}, timeout=10).status_code == 401
    answers = {requests.post(f"{base}/console/auth/code", json={"code": code}, timeout=10).status_code
             for _link, code in re.findall(r"(http://\S+/console/#code=([0-9a-f]+))",
                                           local("links", "--state-dir", str(state)).stdout)}
    assert answers == {200}
    page = requests.get(f"{base}/console/", timeout=10)
    assert page.status_code == 200 and 'data-sign-in="code"' in page.text


def watch_the_demo_in_the_console(state: Path) -> None:
    """`python3 scripts/local.py demo` watched in the console by the demo client user: the three
    orders appear and complete on the page as it runs, without a reload."""
    from selenium.webdriver.common.by import By

    from tests.browser.conftest import new_driver, wait_for

    printed = local("links", "--state-dir", str(state)).stdout
    link = next(line.split()[-1] for line in printed.splitlines() if "client user, Acme Title" in line)
    driver = new_driver()
    try:
        driver.get(link)
        wait_for(lambda: driver.find_element(By.ID, "connection").get_attribute("data-state") == "live",
                 timeout=20, message="the console, live")
        rows = lambda: driver.find_elements(By.CSS_SELECTOR, "#orders tr[data-workflow-id]")  # noqa: E731
        completed = lambda: sum("completed" in row.text for row in rows())  # noqa: E731
        before = (len(rows()), completed())
        driver.execute_script("window.__stillTheSamePage = true")
        demo = local("demo", "--state-dir", str(state), timeout=300)
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-2000:]
        wait_for(lambda: len(rows()) == before[0] + 3 and completed() == before[1] + 3, timeout=10,
                 message="the demo's three orders, completed, on the page")
        assert driver.execute_script("return window.__stillTheSamePage") is True
    finally:
        driver.quit()


def readme_block(marker: str, page: str = "README.md") -> str:
    """The bash block after an HTML comment starting with `marker` in the README (or a page)."""
    text = (ROOT / page).read_text()
    after = text[text.index(f"<!-- {marker}"):]
    return after.split("```bash\n", 1)[1].split("```", 1)[0]


def run_the_readmes_curl_block(env_file: Path) -> None:
    """The README's "Trying it with curl" as a newcomer runs it after the quick start, verbatim
    but for where this test's state directory is."""
    block = readme_block("try-with-curl")
    assert "source .local/env" in block
    script = "set -euo pipefail\n" + block.replace("source .local/env", f"source {env_file}")
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    answers, text, decoder = [], done.stdout.strip(), json.JSONDecoder()
    while text:  # curl prints the bodies one after the other
        answer, end = decoder.raw_decode(text)
        answers.append(answer)
        text = text[end:].strip()
    assert "workflows" in answers[0] and "error" not in answers[0], answers[0]
    assert answers[1]["type"] == "PAYOFF_REQUEST" and answers[1]["status"] == "PENDING", answers[1]
    assert "notifications" in answers[2], answers[2]


def run_the_whole_life_by_hand(env_file: Path) -> None:
    """The README's whole life of one payoff request, by hand, verbatim but for the env file."""
    block = readme_block("whole-life")
    script = "set -euo pipefail\n" + block.replace("source .local/env", f"source {env_file}")
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    done = subprocess.run(["timeout", "240", "bash", "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "IN_PROGRESS" and lines[1] in ("RUNNING", "COMPLETED"), lines
    final = json.loads(lines[-1])
    assert final["status"] == "COMPLETED", final
    assert final["progress"]["completedTasks"] == final["progress"]["totalTasks"] > 0, final


def run_bash(script: str, seconds: int = 240) -> list[str]:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    done = subprocess.run(["timeout", str(seconds), "bash", "-c", "set -euo pipefail\n" + script], cwd=ROOT,
                          capture_output=True, text=True, timeout=seconds + 60, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().splitlines()


def run_the_docs_blocks(env_file: Path) -> None:
    """docs/deploying.md's first workflow (as the local client user), then docs/n8n.md's lender
    answer for a payoff request brought to await_statement by the README's own lines."""
    first = readme_block("first-workflow", "docs/deploying.md")
    lines = run_bash(f"source {env_file}\nTOKEN=$CLIENT_TOKEN URL=$REXERA_URL\n" + first)
    assert lines[0] == "IN_PROGRESS" and any(line.startswith("await_statement ") for line in lines[1:]), lines
    whole_life = readme_block("whole-life").replace("source .local/env", f"source {env_file}")
    until_waiting = whole_life[:whole_life.index("# the agents' steps are done")]
    lender = readme_block("lender-answer", "docs/n8n.md")
    wait_done = ('until [ "$(curl -s -H "Authorization: Bearer $CLIENT_TOKEN" "$REXERA_URL/api/workflows/$WORKFLOW"'
                 ' | jq -r .status)" = COMPLETED ]; do sleep 1; done; echo COMPLETED')
    lines = run_bash(until_waiting + "\n" + lender + "\n" + wait_done)
    answer = json.loads(next(line for line in lines if line.startswith("{")))
    assert answer["forwarded"] is True and answer["received"] is True, lines
    assert lines[-1] == "COMPLETED", lines


def check_with_preflight(env_file: Path) -> None:
    """docs/deploying.md's preflight against the local system, from the env file local.py writes:
    every check passes (warnings: the local HS256 secret, published in this repository)."""
    done = subprocess.run([sys.executable, "scripts/preflight.py", "--json", "--env-file", str(env_file)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env={"PATH": os.environ["PATH"]})
    assert done.returncode == 0, done.stdout + done.stderr
    statuses = {row["name"]: row["status"] for row in json.loads(done.stdout)["checks"]}
    assert {name for name, status in statuses.items() if status != "ok"} <= {"jwt", "secret:SUPABASE_JWT_SECRET"}, statuses
    assert {"database", "migrations", "seed", "n8n", "n8n-api-key", "n8n-workflows", "n8n-credentials",
            "public-url", "secret:CRON_SECRET"} <= set(statuses), statuses


def test_a_taken_port_is_refused_with_a_clear_message(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = local("--port", str(port), "--state-dir", str(tmp_path / "state"))
    assert done.returncode == 2
    assert f"port {port} is taken" in done.stderr
    assert "stopping" not in done.stdout  # nothing was started


def test_demo_without_a_running_system_says_so(tmp_path):
    done = local("demo", "--state-dir", str(tmp_path / "state"))
    assert done.returncode == 2 and "nothing is running" in done.stderr


def test_reset_removes_the_state_directory(tmp_path):
    state = tmp_path / "state"
    (state / "logs").mkdir(parents=True)
    (state / "secrets.json").write_text("{}")
    done = local("reset", "--state-dir", str(state))
    assert done.returncode == 0 and not state.exists()
