"""The scaled topology of scripts/local.py (`python3 scripts/local.py --scale`): what one machine
runs when one process of each is not enough, with the engines a deployment uses.

  * n8n in queue mode (n8n's own scaling): a main (editor, API, waking waiting executions),
    --n8n-workers workers (default 2) running the executions, --n8n-webhooks webhook processors
    (default 1) taking webhook calls; n8n's data in a PostgreSQL database of its own on the same
    server, its Bull queue on Redis (REDIS_URL, default redis://127.0.0.1:6379/0), one encryption key;
  * --instances service instances (default 2) under gunicorn, each with its dispatcher, SLA
    sweeper and realtime listener, sharing Redis for rate limits;
  * HAProxy (Debian's) in front: PORT serves the API, the console and /ws across the instances,
    health-checked on /api/health; a second port serves n8n: /webhook*, /webhook-waiting*, /form*
    to the webhook processors, the rest (editor, API) to the main.
A part that stops is started again (as a process manager would) and the restart is logged.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from local import Failure, System, free_port, say, wait_http

CONNECTIONS_PER_CLIENT = 512  # open connections per client address, at HAProxy
HAPROXY_CHECK_SECONDS = 1  # how often HAProxy asks each instance's /api/health
REDIS_DEFAULT = "redis://127.0.0.1:6379/0"


@dataclass
class Part:
    """One restartable process of the topology."""

    name: str
    start: Callable[[], subprocess.Popen]
    process: subprocess.Popen | None = None
    restarts: int = 0


@dataclass
class Ports:
    service: list[int] = field(default_factory=list)
    n8n_main: int = 0
    n8n_webhooks: list[int] = field(default_factory=list)
    n8n_workers: list[int] = field(default_factory=list)
    n8n_front: int = 0


def max_connections() -> int:
    """What HAProxy may hold at once: it needs two descriptors a connection, under this
    process's limit (it refuses to start asking for more)."""
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(256, min(50_000, (soft - 100) // 2)) if soft != resource.RLIM_INFINITY else 50_000


def haproxy_config(front: int, ports: Ports, stats_socket: Path) -> str:
    """One HAProxy: the service's port across the instances, and n8n's port split by path."""
    services = "\n".join(f"  server service-{i} 127.0.0.1:{port} check" for i, port in enumerate(ports.service, 1))
    webhooks = "\n".join(f"  server webhook-{i} 127.0.0.1:{port} check"
                         for i, port in enumerate(ports.n8n_webhooks, 1))
    return f"""# Written by scripts/local_scaled.py for this run; not edited by hand.
global
  maxconn {max_connections()}
  stats socket {stats_socket} mode 600 level operator   # `show stat`: each server UP or DOWN

defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout tunnel 1h          # an open WebSocket
  timeout http-keep-alive 10s
  timeout check 5s
  retries 2
  option redispatch          # a refused connection is tried on another instance
  default-server inter {HAPROXY_CHECK_SECONDS}s fall 2 rise 1

frontend service
  bind 127.0.0.1:{front}
  # Hostile callers (docs/security.md#holding-against-hostile-callers): the instances trust this
  # proxy's X-Forwarded-For (TRUSTED_PROXIES) and leave capping each client to it.
  option forwardfor
  timeout http-request 10s   # a request's head and body, whole
  stick-table type ip size 100k expire 60s store conn_cur
  tcp-request connection track-sc0 src
  tcp-request connection reject if {{ sc0_conn_cur gt {CONNECTIONS_PER_CLIENT} }}
  default_backend service

backend service
  balance roundrobin
  option httpchk GET /api/health
  http-check expect status 200
{services}

frontend n8n
  bind 127.0.0.1:{ports.n8n_front}
  acl production_webhook path_beg /webhook/ /webhook-waiting/ /form/ /form-waiting/
  use_backend n8n_webhooks if production_webhook
  default_backend n8n_main

backend n8n_webhooks
  balance roundrobin
  option httpchk GET /healthz
{webhooks}

backend n8n_main
  option httpchk GET /healthz
  server main 127.0.0.1:{ports.n8n_main} check
"""


def server_states(stats_socket: str | Path) -> dict[str, str]:
    """HAProxy's view of each server ("service/service-1": "UP", ...), from its stats socket."""
    import socket

    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(5)
        conn.connect(str(stats_socket))
        conn.sendall(b"show stat\n")
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    lines = data.decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    states = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("svname") not in (None, "", "FRONTEND", "BACKEND"):
            states[f"{row['pxname']}/{row['svname']}"] = row["status"]
    return states


class ScaledSystem(System):
    """The scaled topology; started, watched and stopped like System."""

    def __init__(self, args):
        super().__init__(args)
        self.ports = Ports()
        self.parts: list[Part] = []
        self.redis_url = os.environ.get("REDIS_URL") or REDIS_DEFAULT
        self.n8n_front_url = ""
        self.roles: dict[str, object] = {}  # n8n worker and webhook processes by part name
        self.stats_socket = self.state.path / "haproxy.sock"

    # -- start (System.start, with these steps) --
    def check_prerequisites(self) -> None:
        if not shutil.which("haproxy"):
            raise Failure("--scale needs HAProxy: apt-get install haproxy", 2)
        self.check_redis()

    def described(self) -> dict:
        return {"n8nUrl": self.n8n_front_url, "n8nMainUrl": self.n8n.base_url, "topology": "scaled",
                "redisUrl": self.redis_url, "parts": self.part_pids(),
                "instances": [f"http://127.0.0.1:{port}" for port in self.ports.service],
                "haproxyStats": str(self.stats_socket)}

    def check_redis(self) -> None:
        import redis

        try:
            redis.Redis.from_url(self.redis_url, socket_connect_timeout=2).ping()
        except redis.RedisError as error:
            raise Failure(f"--scale needs Redis at {self.redis_url} (REDIS_URL) for n8n's queue and the shared "
                          f"rate limits: {error}; install it with apt-get install redis-server", 2) from error

    def part_pids(self) -> dict[str, int]:
        pids = {part.name: part.process.pid for part in self.parts if part.process is not None}
        if self.n8n is not None:
            pids["n8n-main"] = self.n8n.pid
        return pids

    def start_part(self, name: str, start: Callable[[], subprocess.Popen]) -> Part:
        part = Part(name, start)
        part.process = start()
        self.parts.append(part)
        return part

    def start_balancer(self) -> None:
        config = self.state.path / "haproxy.cfg"
        config.write_text(haproxy_config(self.args.port, self.ports, self.stats_socket))
        checked = subprocess.run(["haproxy", "-c", "-q", "-f", str(config)], capture_output=True, text=True)
        if checked.returncode:
            raise Failure(f"HAProxy refused {config}: {checked.stderr.strip() or checked.stdout.strip()}")
        self.start_part("haproxy", lambda: self.spawn("haproxy", ["haproxy", "-db", "-f", str(config)]))
        say(f"HAProxy: the service on {self.base_url}, n8n on {self.n8n_front_url}")

    def n8n_database_url(self) -> str:
        """n8n's own database on the same PostgreSQL server, made when missing."""
        import psycopg
        from psycopg import conninfo, sql

        name = f"{self.database_name()}_n8n"
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            if conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone() is None:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        parts = conninfo.conninfo_to_dict(self.database_url)
        user = parts.get("user") or "postgres"
        password = f":{parts['password']}" if parts.get("password") else ""
        return f"postgresql://{user}{password}@{parts.get('host') or '127.0.0.1'}:{parts.get('port') or 5432}/{name}"

    def database_name(self) -> str:
        from psycopg import conninfo

        return conninfo.conninfo_to_dict(self.database_url).get("dbname") or "rexera"

    def forget_n8n_cache(self, prefix: str) -> None:
        """n8n's cache in Redis outlives n8n's database (a reset, a dropped database): what it
        remembers of webhooks would refuse our workflows' activation. The queue is kept."""
        import redis

        client = redis.Redis.from_url(self.redis_url)
        for key in client.scan_iter(match=f"{prefix}:cache:*", count=1000):
            client.delete(key)

    def start_n8n(self, keys: dict):
        """HAProxy first (its ports are where the parts are told to meet), then n8n's processes."""
        self.ports = Ports(service=[free_port() for _ in range(self.args.instances)], n8n_main=free_port(),
                           n8n_webhooks=[free_port() for _ in range(self.args.n8n_webhooks)],
                           n8n_workers=[free_port() for _ in range(self.args.n8n_workers)],
                           n8n_front=self.args.n8n_port or free_port())
        self.n8n_front_url = f"http://127.0.0.1:{self.ports.n8n_front}"
        self.start_balancer()
        n8n_local = self.ensure_n8n()
        version = self.args.n8n_version
        chosen = n8n_local.release(version).version
        data_dir = self.state.path / f"n8n-queue-{chosen}"
        prefix = f"rexera-{self.database_name()}"
        shared = n8n_local.queue_env(database_url=self.n8n_database_url(), redis_url=self.redis_url, prefix=prefix)
        self.forget_n8n_cache(prefix)
        extra = {**shared, **(getattr(self.args, "n8n_env", None) or {})}
        try:
            self.n8n = n8n_local.start(self.ports.n8n_main, data_dir / "main", webhook_url=f"{self.n8n_front_url}/",
                                       version=version, progress=say, extra_env=extra)
        except n8n_local.N8nError as error:
            raise Failure(f"n8n's main did not start: {error}") from error
        say(f"n8n main on {self.n8n.base_url} (owner login in {data_dir / 'main' / 'owner.json'})")
        # Pushed before workers and webhook processors start: they find the workflows in the database.
        self.sync_n8n(keys)
        key = n8n_local.encryption_key(data_dir / "main")
        roles = [("worker", port) for port in self.ports.n8n_workers] + \
                [("webhook", port) for port in self.ports.n8n_webhooks]
        counts: dict[str, int] = {}
        for role, port in roles:
            counts[role] = counts.get(role, 0) + 1
            name = f"n8n-{role}-{counts[role]}"

            def start_role(role=role, port=port, name=name) -> subprocess.Popen:
                try:
                    process = n8n_local.start_role(role, port, data_dir / name, encryption_key=key,
                                                   webhook_url=f"{self.n8n_front_url}/", shared_env=extra,
                                                   concurrency=self.args.n8n_concurrency, version=version,
                                                   log_file=self.state.logs / f"{name}.log", progress=say)
                except n8n_local.N8nError as error:
                    raise Failure(f"{name} did not start: {error}") from error
                self.roles[name] = process
                return process.process

            self.start_part(name, start_role)
        self.wait_in_rotation("n8n_")
        return self.n8n

    def service_env(self, keys: dict, n8n, simulator_url: str) -> dict:
        env = super().service_env(keys, n8n, simulator_url)
        env["N8N_BASE_URL"] = self.n8n_front_url  # webhooks to the processors, the API to the main
        env["REDIS_URL"] = self.redis_url
        env["TRUSTED_PROXIES"] = "127.0.0.1"  # HAProxy, which caps each client itself
        return env

    def start_service(self, keys: dict, n8n, simulator_url: str) -> None:
        env = self.service_env(keys, n8n, simulator_url)
        for i, port in enumerate(self.ports.service, 1):
            name = f"service-{i}"

            def start_instance(name=name, port=port) -> subprocess.Popen:
                process = self.spawn(name, [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                                     {**env, "PORT": str(port), "WEB_CONCURRENCY": "1"})
                wait_http(f"http://127.0.0.1:{port}/api/health/database", name, 60, process,
                          self.state.logs / f"{name}.log")
                return process

            self.start_part(name, start_instance)
            say(f"{name} on 127.0.0.1:{port}")
        self.wait_in_rotation("service/")
        say(f"service on {self.base_url} ({len(self.ports.service)} instances behind HAProxy)")

    def wait_in_rotation(self, prefix: str, timeout: float = 30) -> None:
        """Until HAProxy counts every server whose name starts with `prefix` as UP."""
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            try:
                states = {name: state for name, state in server_states(self.stats_socket).items()
                          if name.startswith(prefix)}
            except OSError:
                states = {}
            if states and all(state.startswith("UP") for state in states.values()):
                return
            time.sleep(0.25)
        raise Failure(f"HAProxy does not count every {prefix} server as up: {states or 'no answer'}")

    # -- run --
    def watch(self) -> None:
        """Until Ctrl-C: a part that stops is started again; n8n's main stopping ends the run."""
        while True:
            for part in self.parts:
                if part.process is not None and part.process.poll() is not None:
                    say(f"{part.name} stopped (status {part.process.returncode}); starting it again")
                    part.restarts += 1
                    part.process = part.start()
                    self.state.write_running({**(self.state.running() or {}), "parts": self.part_pids()})
                    say(f"{part.name} running again (pid {part.process.pid}, restart {part.restarts})")
            if self.n8n is not None and not self.n8n.running():
                raise Failure(f"n8n's main stopped unexpectedly (log {self.n8n.log_path})")
            time.sleep(0.5)

    # -- stop --
    def stop(self) -> None:
        # Instances first (they stop sending), then n8n's workers and webhook processors, then
        # what System stops (HAProxy, the simulator, n8n's main, the throwaway cluster).
        self.stop_processes([process for name, process, _ in self.children if name.startswith("service-")])
        for role in self.roles.values():
            role.stop()
        super().stop()
