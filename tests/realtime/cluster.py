"""A private PostgreSQL 15 cluster in a temporary directory, for tests that restart the
database (the shared server on 127.0.0.1:5432 must never be restarted: others use it).

initdb refuses to run as root, so as root the cluster belongs to the postgres OS user and every
pg_ctl call runs through runuser.
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

from app.migrations import apply_migrations

BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
WORLD = Path(__file__).resolve().parents[1] / "fixtures" / "world.sql"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateCluster:
    """initdb, start, restart and stop one throwaway cluster listening on 127.0.0.1:<port>."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="rexera-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = _free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            user = pwd.getpwnam("postgres")
            os.chmod(self.root, 0o755)
            os.chown(self.root, user.pw_uid, user.pw_gid)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        command = [str(BIN / args[0]), *args[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", action, "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "-o", options, *extra)

    def init(self) -> "PrivateCluster":
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self._pg_ctl("start")
        return self

    def restart(self) -> None:
        """Fast shutdown (every connection is cut, as in a crash-restart or failover) and start."""
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        self._pg_ctl("stop", "-m", "immediate")

    def create_world(self, database: str = "rexera") -> str:
        """A database migrated and seeded, with the shared test world; returns its URL."""
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"create database {database}")
        url = self.url(database)
        apply_migrations(url, seed=True)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(WORLD.read_text())
        return url

    def destroy(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)
