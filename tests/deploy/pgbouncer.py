"""A PgBouncer of the test's own in transaction mode, as Supabase's pooler on port 6543 behaves:
server connections go back to the pool at every transaction's end, so session state (SET,
LISTEN, prepared statements) is not kept for a client and may reach another one."""
from __future__ import annotations

import dataclasses
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import conninfo
from psycopg.rows import dict_row

from tests.perf.bench_api import free_port

INSTALL_HINT = "pgbouncer is not installed: apt-get install -y pgbouncer"


def version(binary: str) -> tuple[int, ...]:
    text = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    return tuple(int(part) for part in re.search(r"PgBouncer (\d+)\.(\d+)", text).groups())


@dataclasses.dataclass
class PgBouncer:
    process: subprocess.Popen
    port: int
    directory: Path
    user: str

    def url(self, dbname: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    @property
    def log(self) -> str:
        return (self.directory / "pgbouncer.log").read_text(errors="replace")

    def admin(self, command: str) -> list[dict]:
        """A command of the admin console (which speaks the simple query protocol only)."""
        with psycopg.connect(self.url("pgbouncer"), autocommit=True, prepare_threshold=None) as conn:
            cursor = psycopg.ClientCursor(conn, row_factory=dict_row)
            cursor.execute(command)
            return cursor.fetchall() if cursor.description else []

    def show(self, what: str, database: str | None = None) -> list[dict]:
        """SHOW <what>, the rows of one database if named."""
        return [r for r in self.admin(f"SHOW {what}") if database is None or r.get("database") == database]

    def reconnect(self, database: str) -> None:
        """Replace the server connections (and whatever session state a test left on them)."""
        self.admin(f"RECONNECT {database}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def start(direct_url: str, *, pool_size: int = 2, extra: str = "") -> PgBouncer:
    """PgBouncer in front of the database of `direct_url` on a free port of 127.0.0.1, with the
    same name; pool_size server connections at most for the app's many client connections."""
    binary = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")
    if binary is None:
        raise RuntimeError(INSTALL_HINT)
    target = conninfo.conninfo_to_dict(direct_url)
    user, dbname = target.get("user", "postgres"), target["dbname"]
    port = free_port()
    directory = Path(tempfile.mkdtemp(prefix="rexera-pgbouncer-"))
    # PgBouncer refuses to run as root: it switches to the cluster's owner (or nobody) then.
    run_as = None
    if os.geteuid() == 0:
        run_as = next((name for name in ("postgres", "nobody") if _exists(name)), None)
    # Transaction pooling and no prepared statements, as Supabase's transaction pooler. PgBouncer
    # 1.21 added max_prepared_statements (0 is its default: none); older ones do not know it
    # and never keep prepared statements in this mode either.
    prepared = "max_prepared_statements = 0\n" if version(binary) >= (1, 21) else ""
    (directory / "userlist.txt").write_text(f'"{user}" ""\n')
    (directory / "pgbouncer.ini").write_text(
        f"[databases]\n"
        f"{dbname} = host={target.get('host', '127.0.0.1')} port={target.get('port', 5432)} dbname={dbname}\n"
        f"[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {directory / 'userlist.txt'}\nadmin_users = {user}\n"
        f"pool_mode = transaction\ndefault_pool_size = {pool_size}\nmin_pool_size = 0\nreserve_pool_size = 0\n"
        f"max_client_conn = 500\nserver_round_robin = 0\n{prepared}"
        f"logfile = {directory / 'pgbouncer.log'}\n{extra}")
    if run_as is not None:
        account = pwd.getpwnam(run_as)
        for path in (directory, *directory.iterdir()):
            os.chown(path, account.pw_uid, account.pw_gid)
    command = [binary, *(["-u", run_as] if run_as else []), str(directory / "pgbouncer.ini")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    bouncer = PgBouncer(process, port, directory, user)
    deadline = time.monotonic() + 10
    while True:
        try:
            with psycopg.connect(bouncer.url(dbname), autocommit=True, prepare_threshold=None, connect_timeout=2) as conn:
                conn.execute("select 1")
            return bouncer
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                log_file = directory / "pgbouncer.log"
                log = log_file.read_text(errors="replace") if log_file.exists() else ""
                bouncer.stop()
                raise RuntimeError(f"pgbouncer did not come up:\n{log[-2000:]}") from None
            time.sleep(0.05)


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
