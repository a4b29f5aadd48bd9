"""Run the whole Rexera system on this machine in one command: database, agent simulator, n8n with
the workflows, and the service with its dispatcher and SLA sweeper; then, if asked, a live demo.

    python3 scripts/local.py [up] [--port 8000] [--demo] [--state-dir .local]
    python3 scripts/local.py --scale [--instances 2] [--n8n-workers 2] [--n8n-webhooks 1]
                                     (n8n in queue mode, several service instances behind HAProxy:
                                      scripts/local_scaled.py)
    python3 scripts/local.py demo [--demo-timeout 600] (against a system already up)
    python3 scripts/local.py links                     (fresh console sign-in links, one per demo person)
    python3 scripts/local.py reset                     (stop nothing; delete the state directory, only
                                                        one local.py made: it holds secrets.json or running.json)

up installs what it needs on first use (.venv with requirements.txt, n8n through npm into a
cache outside the checkout), then:
  * PostgreSQL: DATABASE_URL when it is set and answers; otherwise a throwaway cluster of its own
    under <state-dir>/postgres, made with the PostgreSQL binaries on the machine;
  * migrates, seeds and loads the demo tenants (Acme Title, Beacon Escrow and their people);
  * starts the agent simulator, n8n (credentials created, workflows pushed with
    scripts/sync_workflows.py), and the service under gunicorn with the dispatcher and the SLA
    sweeper, on PORT (default 8000);
  * prints where everything listens, ready-made tokens for the demo operator and client user, and
    a console sign-in link per demo person (a one-time code, good for 30 minutes; the service
    runs with CONSOLE_LOCAL_SIGN_IN=on, which is off anywhere else unless set).
Ctrl-C stops every child cleanly. With --demo, up runs the demo once everything is up, then
stops the system and exits with the demo's status (what the CI smoke test does).

Secrets made for the local system (JWT secret, callback secret, tokens) live in
<state-dir>/secrets.json, readable by the owner only; the state directory is never committed.

Exit codes: 0 done (or stopped with Ctrl-C); 1 a part failed to start or the demo failed;
2 bad usage or a missing prerequisite (one line saying what to install or change).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

# Run as a script, this module is __main__; scripts/local_scaled.py imports it as `local`: one module.
sys.modules.setdefault("local", sys.modules[__name__])

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
DEFAULT_STATE_DIR = ROOT / ".local"
DEFAULT_JWT_SECRET = "local-development-secret-0123456789abcdef"
DATABASE_NAME = "rexera"
OPERATOR_EMAIL = "operator@rexera.example"
CLIENT_EMAIL = "client@acmetitle.example"
# The demo people the console's sign-in links are printed for (supabase/demo.sql).
CONSOLE_PEOPLE = [(OPERATOR_EMAIL, "HIL operator"), ("manager@rexera.example", "HIL manager"),
                  (CLIENT_EMAIL, "client user, Acme Title"), ("admin@acmetitle.example", "client admin, Acme Title"),
                  ("client@beaconescrow.example", "client user, Beacon Escrow")]
SIGN_IN_LINK_MINUTES = 30
# Files only local.py writes into its state directory: reset deletes a directory holding one of them.
STATE_MARKERS = ("secrets.json", "running.json")


class Failure(Exception):
    """A part could not start; the message says which and why."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def say(message: str) -> None:
    print(f"[local] {message}", flush=True)


# ---- step 0: the virtual environment (standard library only up to here) ----------------------
def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def ensure_venv(argv: list[str]) -> None:
    """Create .venv and install requirements.txt when they changed, then run this script again
    with the environment's Python (once)."""
    requirements = ROOT / "requirements.txt"
    stamp = VENV / ".requirements.sha256"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    python = VENV / "bin" / "python"
    if not python.exists():
        say("creating the virtual environment .venv")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if not stamp.exists() or stamp.read_text().strip() != digest:
        say("installing requirements.txt into .venv (first run only)")
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "-r", str(requirements)], check=True)
        stamp.write_text(digest + "\n")
    if not in_venv():
        os.execv(str(python), [str(python), str(Path(__file__).resolve()), *argv])


# ---- small helpers -----------------------------------------------------------------------------
def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_http(url: str, what: str, timeout: float, process: subprocess.Popen | None = None, log: Path | None = None):
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise Failure(f"{what} exited with status {process.returncode} while starting{log_hint(log)}")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)
    raise Failure(f"{what} did not answer {url} within {timeout:.0f} s{log_hint(log)}")


def log_hint(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    return f"; last lines of {log}:\n{tail}"


class State:
    """The state directory: secrets (0600), logs, and what is running (for demo)."""

    def __init__(self, path: Path):
        self.path = path
        self.logs = path / "logs"

    def prepare(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)

    def secrets(self) -> dict:
        file = self.path / "secrets.json"
        if file.exists():
            kept = json.loads(file.read_text())
            if "cronSecret" in kept and "metricsToken" in kept:
                return kept
            # State from before the tick, or before /metrics wanted a token.
            kept.setdefault("cronSecret", secrets.token_urlsafe(32))
            kept.setdefault("metricsToken", secrets.token_urlsafe(32))
            file.write_text(json.dumps(kept, indent=2) + "\n")
            return kept
        made = {
            "jwtSecret": os.environ.get("SUPABASE_JWT_SECRET") or DEFAULT_JWT_SECRET,
            "callbackSecret": secrets.token_bytes(32).hex(),
            "triggerToken": secrets.token_urlsafe(24),
            "errorToken": secrets.token_urlsafe(24),
            "agentKey": secrets.token_urlsafe(24),
            "cronSecret": secrets.token_urlsafe(32),
            "metricsToken": secrets.token_urlsafe(32),  # METRICS_TOKEN: /metrics for a scraper holding it
        }
        file.touch(mode=0o600)
        file.write_text(json.dumps(made, indent=2) + "\n")
        return made

    def write_running(self, running: dict) -> None:
        (self.path / "running.json").write_text(json.dumps(running, indent=2) + "\n")

    def running(self) -> dict | None:
        file = self.path / "running.json"
        return json.loads(file.read_text()) if file.exists() else None

    def clear_running(self) -> None:
        (self.path / "running.json").unlink(missing_ok=True)
        (self.path / "env").unlink(missing_ok=True)

    def write_env(self, variables: dict[str, str]) -> Path:
        """<state-dir>/env: what a shell needs to talk to the running system (`source .local/env`);
        owner-only, it holds tokens. Removed when the system stops."""
        file = self.path / "env"
        file.touch(mode=0o600)
        file.write_text("# Written by scripts/local.py while the system runs; source it in a shell.\n"
                        + "".join(f"export {name}={shlex.quote(value)}\n" for name, value in variables.items()))
        return file


# ---- PostgreSQL --------------------------------------------------------------------------------
def reachable(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def postgres_binaries() -> Path | None:
    """The bin directory holding initdb and pg_ctl: on PATH, else Debian's versioned directories."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(os.path.realpath(on_path)).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]), reverse=True)
    return candidates[0].parent if candidates else None


class Cluster:
    """A throwaway PostgreSQL cluster under <state-dir>/postgres, trust auth, 127.0.0.1 only.
    PostgreSQL refuses to run as root, so as root it runs as the `postgres` system user."""

    def __init__(self, directory: Path, port: int):
        self.directory = directory
        self.data = directory / "data"
        self.socket_dir = directory / "run"
        self.log = directory / "postgres.log"
        self.port = port
        self.bin = postgres_binaries()
        if self.bin is None:
            raise Failure("no PostgreSQL server binaries (initdb, pg_ctl) on this machine: install them "
                          "(Debian/Ubuntu: apt-get install postgresql) or set DATABASE_URL to a server you have", 2)
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None or subprocess.run(["id", "-u", "postgres"], capture_output=True).returncode:
                raise Failure("running as root needs a `postgres` system user to own the throwaway cluster "
                              "(or set DATABASE_URL)", 2)
            self.as_user = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE_NAME}"

    def run(self, *command: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_user, *command], capture_output=True, text=True)

    def start(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(self.directory, "postgres")
            shutil.chown(self.socket_dir, "postgres")
        if not (self.data / "PG_VERSION").exists():
            say(f"creating a throwaway PostgreSQL cluster in {self.data}")
            done = self.run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                            "--encoding=UTF8", "--locale=C")
            if done.returncode:
                raise Failure(f"initdb failed: {done.stderr.strip()[-800:]}")
        if self.as_user and self.log.exists():
            shutil.chown(self.log, "postgres")
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
        done = self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                        "-t", "60", "start")
        if done.returncode:
            raise Failure(f"PostgreSQL did not start: {done.stderr.strip()[-400:]}{log_hint(self.log)}")
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            if not conn.execute("select 1 from pg_database where datname = %s", (DATABASE_NAME,)).fetchone():
                conn.execute(f'create database "{DATABASE_NAME}"')

    def stop(self) -> None:
        self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")


def cluster_directory(state: State) -> Path:
    """<state-dir>/postgres; as root, where the `postgres` user cannot reach that (a private
    parent directory), a directory of its own under the system's temporary directory, recorded
    in the state directory so reset removes it too."""
    preferred = state.path / "postgres"
    if os.geteuid() != 0:
        return preferred
    preferred.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(state.path)],
                      capture_output=True).returncode == 0:
        return preferred
    elsewhere = elsewhere_cluster_directory(state)
    elsewhere.mkdir(mode=0o700, exist_ok=True)
    (state.path / "postgres-location").write_text(str(elsewhere) + "\n")
    say(f"the postgres user cannot reach {state.path}; the cluster lives in {elsewhere}")
    return elsewhere


def elsewhere_cluster_directory(state: State) -> Path:
    """The cluster's directory under the system's temporary directory, one per state directory:
    the only path outside it that reset deletes."""
    import tempfile

    return Path(tempfile.gettempdir()) / f"rexera-postgres-{hashlib.sha256(str(state.path).encode()).hexdigest()[:12]}"


def prepare_database(url: str) -> None:
    from app.migrations import apply_migrations

    import psycopg
    from psycopg import conninfo

    name = conninfo.conninfo_to_dict(url).get("dbname")
    if name and not reachable(url):  # the server answers, the database may not exist yet
        admin = conninfo.make_conninfo(url, dbname="postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            if not conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
                say(f"creating database {name}")
                conn.execute(f'create database "{name}"')
    report = apply_migrations(url, seed=True, demo=True)
    applied = getattr(report, "applied", None)
    say(f"database ready ({len(applied) if applied is not None else 'all'} migration(s) applied now)")


def server_reachable(url: str) -> bool:
    from psycopg import conninfo

    return reachable(url) or reachable(conninfo.make_conninfo(url, dbname="postgres"))


# ---- the system --------------------------------------------------------------------------------
class System:
    """Every part, started in order and stopped in reverse."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.state = State(Path(args.state_dir).resolve())
        self.children: list[tuple[str, subprocess.Popen, Path]] = []
        self.cluster: Cluster | None = None
        self.n8n = None
        self.database_url = ""
        self.base_url = f"http://127.0.0.1:{args.port}"

    # -- start --
    def start(self) -> dict:
        self.check_prerequisites()
        if not port_free(self.args.port):
            raise Failure(f"port {self.args.port} is taken: stop what listens there or pass --port (or PORT=...)", 2)
        self.state.prepare()
        keys = self.state.secrets()
        self.start_database()
        simulator_url = self.start_simulator()
        n8n = self.start_n8n(keys)
        self.start_service(keys, n8n, simulator_url)
        running = {"baseUrl": self.base_url, "databaseUrl": self.database_url, "n8nUrl": n8n.base_url,
                   "simulatorUrl": simulator_url, "pid": os.getpid(), **self.described()}
        self.state.write_running(running)
        return running

    def check_prerequisites(self) -> None:
        """What must be on the machine beyond what start() installs (the scaled topology's)."""

    def described(self) -> dict:
        """More of what runs, for running.json (the scaled topology's parts)."""
        return {}

    def start_database(self) -> None:
        url = os.environ.get("DATABASE_URL")
        if url and server_reachable(url):
            say("using the PostgreSQL at DATABASE_URL")
            self.database_url = url
        else:
            if url:
                say("DATABASE_URL does not answer; starting a throwaway cluster instead")
            port = self.args.postgres_port or free_port()
            self.cluster = Cluster(cluster_directory(self.state), port)
            self.cluster.start()
            self.database_url = self.cluster.url
        prepare_database(self.database_url)

    def spawn(self, name: str, command: list[str], env: dict | None = None) -> subprocess.Popen:
        log = self.state.logs / f"{name}.log"
        handle = open(log, "a")  # noqa: SIM115 (the child writes it for its whole life)
        process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=handle,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.children.append((name, process, log))
        return process

    def start_simulator(self) -> str:
        port = free_port()
        process = self.spawn("agents", [sys.executable, "scripts/agent_simulator.py", "--port", str(port),
                                        "--latency-ms", str(self.args.agent_latency_ms)])
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health", "the agent simulator", 20, process, self.state.logs / "agents.log")
        say(f"agent simulator on {url}")
        return url

    def ensure_n8n(self):
        """scripts/n8n_local.py, with the n8n line asked for installed (the first run installs it)."""
        sys.path.insert(0, str(ROOT / "scripts"))
        import n8n_local

        version = self.args.n8n_version
        if n8n_local.installed_binary(version=version) is None:
            say(f"installing n8n {n8n_local.release(version).version} through npm (first run only, several minutes)")
            try:
                n8n_local.install(version=version, progress=say)
            except n8n_local.PrerequisiteError as error:
                raise Failure(f"n8n needs Node.js and npm: {error}", 2) from error
            except n8n_local.N8nError as error:
                raise Failure(f"installing n8n failed: {error}") from error
        return n8n_local

    def start_n8n(self, keys: dict):
        n8n_local = self.ensure_n8n()
        version = self.args.n8n_version
        port = self.args.n8n_port or free_port()
        data_dir = self.state.path / f"n8n-{n8n_local.release(version).version}"  # one per version: 2.x migrates the database
        try:
            # n8n_env: settings of n8n's own (benchmarks compare them); none by default.
            self.n8n = n8n_local.start(port, data_dir, webhook_url=f"http://127.0.0.1:{port}/", version=version,
                                       progress=say, extra_env=getattr(self.args, "n8n_env", None))
        except n8n_local.N8nError as error:
            raise Failure(f"n8n did not start: {error}") from error
        say(f"n8n on {self.n8n.base_url} (owner login in {data_dir / 'owner.json'}, API key in {data_dir / 'api-key'})")
        self.sync_n8n(keys)
        return self.n8n

    def sync_n8n(self, keys: dict) -> None:
        """The credentials the exports use (by name), then the exports themselves."""
        import n8n_credentials

        n8n_credentials.ensure(self.n8n, trigger_token=keys["triggerToken"], error_token=keys["errorToken"])
        env = {"N8N_BASE_URL": self.n8n.base_url, "N8N_API_KEY": self.n8n.api_key}
        exports = getattr(self.args, "exports_dir", None)  # another set of exports (benchmarks compare them)
        done = subprocess.run([sys.executable, "scripts/sync_workflows.py", *(["--dir", str(exports)] if exports else []),
                               "push", "--yes"], cwd=ROOT,
                              env={**os.environ, **env}, capture_output=True, text=True)
        (self.state.logs / "sync.log").write_text(done.stdout + done.stderr)
        if done.returncode:
            raise Failure(f"pushing the workflows to n8n failed{log_hint(self.state.logs / 'sync.log')}")
        say("n8n workflows pushed (scripts/sync_workflows.py push)")

    def service_env(self, keys: dict, n8n, simulator_url: str) -> dict:
        from app.webhooks.signing import encode_key

        return {
            "DATABASE_URL": self.database_url,
            "SUPABASE_JWT_SECRET": keys["jwtSecret"],
            "N8N_BASE_URL": n8n.base_url,
            "N8N_API_KEY": n8n.api_key,
            "N8N_CALLBACK_SECRET": "whsec_" + encode_key(bytes.fromhex(keys["callbackSecret"])),
            "N8N_WEBHOOK_TOKEN": keys["triggerToken"],
            "N8N_ERROR_WEBHOOK_TOKEN": keys["errorToken"],
            "PUBLIC_BASE_URL": self.base_url,
            "AGENT_BASE_URL": simulator_url,
            "AGENT_API_KEYS": f"*={keys['agentKey']}",
            "CRON_SECRET": keys["cronSecret"],
            "METRICS_TOKEN": keys["metricsToken"],
            "CONSOLE_LOCAL_SIGN_IN": "on",
            "DISPATCHER_ENABLED": "on",
            "SLA_SWEEP_INTERVAL_SECONDS": os.environ.get("SLA_SWEEP_INTERVAL_SECONDS") or "60",
            # The execution watch (lost n8n executions): the service's defaults unless set here.
            **{name: os.environ[name] for name in ("N8N_WATCH_INTERVAL_SECONDS", "N8N_WATCH_QUIET_SECONDS")
               if os.environ.get(name)},
            "PORT": str(self.args.port),
            "HOST": "127.0.0.1",
            "PYTHONPATH": str(ROOT),
            # Settings a caller adds (the benchmarks switch the per-caller rate limits off).
            **(getattr(self.args, "service_env", None) or {}),
        }

    def start_service(self, keys: dict, n8n, simulator_url: str) -> None:
        process = self.spawn("service", [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                             self.service_env(keys, n8n, simulator_url))
        wait_http(f"{self.base_url}/api/health/database", "the service", 60, process, self.state.logs / "service.log")
        say(f"service on {self.base_url}")

    # -- run --
    def watch(self) -> None:
        """Until Ctrl-C or a child dies."""
        while True:
            for name, process, log in self.children:
                if process.poll() is not None:
                    raise Failure(f"{name} stopped unexpectedly (status {process.returncode}){log_hint(log)}")
            if self.n8n is not None and not self.n8n.running():
                raise Failure(f"n8n stopped unexpectedly{log_hint(Path(self.n8n.log_path))}")
            time.sleep(1)

    # -- stop --
    def started_anything(self) -> bool:
        return bool(self.children) or self.n8n is not None or self.cluster is not None

    @staticmethod
    def stop_processes(processes: list[subprocess.Popen]) -> None:
        """SIGTERM to each one's process group, then SIGKILL to any still there after 25 s."""
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def stop(self) -> None:
        self.stop_processes([process for _, process, _ in reversed(self.children)])
        if self.n8n is not None:
            self.n8n.stop()
        if self.cluster is not None:
            self.cluster.stop()
        self.state.clear_running()


def tokens(database_url: str, secret: str, hours: int = 12) -> dict[str, str]:
    """Access tokens for the demo operator and client user, as Supabase Auth would issue them."""
    import psycopg
    from mint_token import token_for

    with psycopg.connect(database_url) as conn:
        found = {email: token_for(conn, secret, email=email, expires_in=hours * 3600)
                 for email in (OPERATOR_EMAIL, CLIENT_EMAIL)}
    return {email: token for email, token in found.items() if token is not None}


def sign_in_links(database_url: str, base: str) -> list[tuple[str, str, str]]:
    """(email, who, link) for each demo person: a one-time code each, never a token in a URL."""
    import psycopg

    links = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        for email, who in CONSOLE_PEOPLE:
            code = conn.execute("select public.issue_console_sign_in_code(%s, %s)",
                                (email, SIGN_IN_LINK_MINUTES * 60)).fetchone()[0]
            if code is not None:
                links.append((email, who, f"{base}/console/#code={code}"))
    return links


def link_lines(database_url: str, base: str) -> list[str]:
    lines = [f"Console {base}/console/  sign in with a link (each works once, for {SIGN_IN_LINK_MINUTES} minutes;"
             " more: python3 scripts/local.py links):"]
    lines += [f"  {who:<28} {link}" for _email, who, link in sign_in_links(database_url, base)]
    return lines


def banner(state: State, running: dict, keys: dict, service_env: dict) -> None:
    found = tokens(running["databaseUrl"], keys["jwtSecret"])
    base = running["baseUrl"]
    # The service's own settings too, so `scripts/preflight.py --env-file .local/env` checks this system.
    variables = {"REXERA_URL": base, **{name: value for name, value in service_env.items()
                                        if name not in ("PORT", "HOST", "PYTHONPATH")}}
    for email, token in found.items():
        variables["OPERATOR_TOKEN" if email == OPERATOR_EMAIL else "CLIENT_TOKEN"] = token
    env_file = state.write_env(variables)
    lines = [
        "",
        "Rexera is running:",
        f"  console            {base}/console/",
        f"  API                {base}/api      (health: {base}/api/health)",
        f"  interactive docs   {base}/api/docs",
        f"  live events        {base.replace('http', 'ws', 1)}/ws",
        f"  n8n editor         {running['n8nUrl']}",
        f"  agent simulator    {running['simulatorUrl']}",
        f"  database           {running['databaseUrl']}",
    ]
    if running.get("topology") == "scaled":
        lines.append(f"  scaled             {', '.join(running['parts'])} (HAProxy in front; pids in "
                     f"{display_path(state.path / 'running.json')})")
    lines += [
        "",
        "Tokens (12 hours):",
    ]
    for email, token in found.items():
        variable = "OPERATOR_TOKEN" if email == OPERATOR_EMAIL else "CLIENT_TOKEN"
        lines.append(f"  {variable}={token}   # {email}")
    lines += ["", *link_lines(running["databaseUrl"], base)]
    lines += ["", f"In another shell:  source {display_path(env_file)}   (REXERA_URL, the tokens, DATABASE_URL ...)",
              "Try:  curl -H \"Authorization: Bearer $CLIENT_TOKEN\" $REXERA_URL/api/workflows",
              "Demo: python3 scripts/local.py demo      Stop: Ctrl-C", ""]
    print("\n".join(lines), flush=True)


def display_path(path: Path) -> str:
    """A path as short as it can be shown: relative to the checkout when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# ---- commands ----------------------------------------------------------------------------------
def command_up(args: argparse.Namespace) -> int:
    if args.scale:
        from local_scaled import ScaledSystem

        system = ScaledSystem(args)
    else:
        system = System(args)
    interrupted = False

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    # Ctrl-C stops it however it was started: a shell that runs it in the background (`... &`)
    # has it ignore SIGINT, and Python then installs no handler of its own.
    signal.signal(signal.SIGINT, on_signal)
    try:
        running = system.start()
        keys = system.state.secrets()
        banner(system.state, running, keys, system.service_env(keys, system.n8n, running["simulatorUrl"]))
        if args.demo:
            import demo

            return demo.run(running["baseUrl"], running["databaseUrl"], keys, timeout=args.demo_timeout)
        system.watch()
        return 0
    except KeyboardInterrupt:
        interrupted = True
        return 0
    except Failure as failure:
        print(f"[local] {failure}", file=sys.stderr, flush=True)
        return failure.exit_code
    finally:
        if system.started_anything():
            # The children run in sessions of their own: a second Ctrl-C (or a SIGTERM) during the
            # stop must not cut it short and leave them running.
            signal.signal(signal.SIGINT, still_stopping)
            signal.signal(signal.SIGTERM, still_stopping)
            say("stopping" + (" (interrupted)" if interrupted else ""))
            system.stop()
            say("stopped")


def still_stopping(signum, frame) -> None:
    os.write(sys.stderr.fileno(), b"[local] still stopping everything; one moment\n")


def running_system(args: argparse.Namespace) -> tuple[State, dict | None]:
    """The state directory and the system running from it; None (said on stderr) when none is."""
    state = State(Path(args.state_dir).resolve())
    running = state.running()
    if running is None:
        print("[local] nothing is running: start it with `python3 scripts/local.py` first", file=sys.stderr)
    return state, running


def command_demo(args: argparse.Namespace) -> int:
    state, running = running_system(args)
    if running is None:
        return 2
    import demo

    return demo.run(running["baseUrl"], running["databaseUrl"], state.secrets(), timeout=args.demo_timeout)


def command_links(args: argparse.Namespace) -> int:
    _state, running = running_system(args)
    if running is None:
        return 2
    print("\n".join(link_lines(running["databaseUrl"], running["baseUrl"])), flush=True)
    return 0


def command_reset(args: argparse.Namespace) -> int:
    state = State(Path(args.state_dir).resolve())
    if not state.path.exists():
        say(f"nothing to remove at {state.path}")
        return 0
    if not any((state.path / name).is_file() for name in STATE_MARKERS):
        print(f"[local] {state.path} is not a local.py state directory (it holds no {' or '.join(STATE_MARKERS)}): "
              "nothing removed", file=sys.stderr)
        return 2
    try:
        running = state.running()
    except ValueError:  # a half-written running.json: nothing can be running from it
        running = None
    if running is not None and _alive(running.get("pid")):
        print(f"[local] the system is running (pid {running['pid']}): stop it with Ctrl-C first", file=sys.stderr)
        return 2
    location = state.path / "postgres-location"
    if location.is_file():
        cluster = Path(location.read_text().strip())
        if cluster == elsewhere_cluster_directory(state):
            shutil.rmtree(cluster, ignore_errors=True)
        else:
            say(f"left {cluster} alone: postgres-location names no cluster of this state directory")
    shutil.rmtree(state.path)
    say(f"removed {state.path}")
    return 0


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, TypeError, ValueError):
        return False


def port_number(text: str) -> int:
    """A TCP port, from --port or PORT (argparse converts the default through this too)."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535); check --port or PORT")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="local.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="up", choices=["up", "demo", "links", "reset"])
    parser.add_argument("--port", type=port_number, default=os.environ.get("PORT", "8000"),
                        help="the API's port (default $PORT or 8000)")
    parser.add_argument("--state-dir", default=os.environ.get("REXERA_STATE_DIR", str(DEFAULT_STATE_DIR)),
                        help="where state, logs and secrets live (default $REXERA_STATE_DIR or .local)")
    parser.add_argument("--demo", action="store_true", help="up: run the demo once up, then stop")
    parser.add_argument("--demo-timeout", type=float, default=600, help="seconds the demo may take (default 600)")
    parser.add_argument("--n8n-port", type=int, default=0, help="n8n's port (default: a free one)")
    parser.add_argument("--n8n-version", default="2", choices=["2", "1"],
                        help="the n8n line: 2 (2.41.1, what n8n Cloud runs; the default) or 1 (1.123.50)")
    parser.add_argument("--postgres-port", type=int, default=0, help="the throwaway cluster's port (default: a free one)")
    parser.add_argument("--agent-latency-ms", type=int, default=300,
                        help="simulated agent latency, so the demo can be watched (default 300)")
    scale = parser.add_argument_group("the scaled topology (scripts/local_scaled.py)")
    scale.add_argument("--scale", action="store_true",
                       help="n8n in queue mode and several service instances behind HAProxy (needs haproxy, Redis)")
    scale.add_argument("--instances", type=int, default=2, help="service instances (default 2)")
    scale.add_argument("--n8n-workers", type=int, default=2, help="n8n workers (default 2)")
    scale.add_argument("--n8n-webhooks", type=int, default=1, help="n8n webhook processors (default 1)")
    scale.add_argument("--n8n-concurrency", type=int, default=10,
                       help="executions each n8n worker runs at once (default 10)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if Path(args.state_dir).exists() and not Path(args.state_dir).is_dir():
        print(f"[local] {Path(args.state_dir).resolve()} is not a directory: --state-dir (or REXERA_STATE_DIR) "
              "names local.py's state directory", file=sys.stderr)
        return 2
    if args.command != "reset":
        ensure_venv(argv)
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "scripts"))
    return {"up": command_up, "demo": command_demo, "links": command_links,
            "reset": command_reset}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
