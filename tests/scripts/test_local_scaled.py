"""The scaled topology's pieces that need no running system: HAProxy's configuration (checked by
HAProxy itself), what every queue-mode n8n process shares, and reading HAProxy's view of its
servers. The topology itself runs in tests/e2e/test_scaled_e2e.py."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import local_scaled  # noqa: E402
import n8n_local  # noqa: E402


def config(tmp_path: Path, instances: int = 3, webhooks: int = 2) -> str:
    ports = local_scaled.Ports(service=[20001 + i for i in range(instances)], n8n_main=21000,
                               n8n_webhooks=[22001 + i for i in range(webhooks)], n8n_workers=[23001], n8n_front=24000)
    return local_scaled.haproxy_config(25000, ports, tmp_path / "haproxy.sock")


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="HAProxy is not installed (apt-get install haproxy)")
def test_haproxy_accepts_the_configuration(tmp_path):
    path = tmp_path / "haproxy.cfg"
    path.write_text(config(tmp_path))
    checked = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr + checked.stdout


def test_every_instance_and_webhook_processor_is_a_checked_server(tmp_path):
    text = config(tmp_path, instances=3, webhooks=2)
    for port in (20001, 20002, 20003, 22001, 22002, 21000):
        assert f"127.0.0.1:{port} check" in text
    assert "option httpchk GET /api/health" in text
    # Production webhooks and resumes to the processors, the rest (editor, API) to the main.
    assert "path_beg /webhook/ /webhook-waiting/ /form/ /form-waiting/" in text
    assert "default_backend n8n_main" in text and "bind 127.0.0.1:25000" in text and "bind 127.0.0.1:24000" in text
    assert "timeout tunnel" in text  # open WebSockets are not cut at the HTTP timeouts


def test_haproxy_asks_for_no_more_descriptors_than_the_process_may_hold():
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert 2 * local_scaled.max_connections() + 100 <= max(soft, 612)


def test_queue_mode_shares_the_database_the_queue_and_prefixes_n8n_keys():
    env = n8n_local.queue_env(database_url="postgresql://n8n%40svc:p%2Fw@db.example:6432/rexera_n8n",
                              redis_url="redis://cache.example:6380/3", prefix="rexera-prod")
    assert env["EXECUTIONS_MODE"] == "queue" and env["DB_TYPE"] == "postgresdb"
    assert (env["DB_POSTGRESDB_HOST"], env["DB_POSTGRESDB_PORT"], env["DB_POSTGRESDB_DATABASE"]) == \
        ("db.example", "6432", "rexera_n8n")
    assert (env["DB_POSTGRESDB_USER"], env["DB_POSTGRESDB_PASSWORD"]) == ("n8n@svc", "p/w")
    assert (env["QUEUE_BULL_REDIS_HOST"], env["QUEUE_BULL_REDIS_PORT"], env["QUEUE_BULL_REDIS_DB"]) == \
        ("cache.example", "6380", "3")
    # The queue and n8n's cache and pub/sub under a prefix of this system's own.
    assert env["QUEUE_BULL_PREFIX"] == env["N8N_REDIS_KEY_PREFIX"] == "rexera-prod"
    assert env["N8N_DISABLE_PRODUCTION_MAIN_PROCESS"] == "true"


def test_an_unknown_role_is_refused_before_anything_starts(tmp_path):
    with pytest.raises(n8n_local.PrerequisiteError, match="worker or webhook"):
        n8n_local.start_role("scheduler", 1, tmp_path, encryption_key="k", webhook_url="http://x/", shared_env={})


def test_server_states_reads_haproxys_stats_socket(tmp_path):
    path = tmp_path / "stats.sock"
    answer = ("# pxname,svname,qcur,status\nservice,FRONTEND,,OPEN\nservice,service-1,0,UP\n"
              "service,service-2,0,DOWN\nservice,BACKEND,0,UP\nn8n_main,main,0,UP 1/2\n\n")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)
    asked = []

    def serve():
        conn, _ = server.accept()
        with conn:
            asked.append(conn.recv(100))
            conn.sendall(answer.encode())

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        states = local_scaled.server_states(path)
    finally:
        thread.join(5)
        server.close()
    assert asked == [b"show stat\n"]
    assert states == {"service/service-1": "UP", "service/service-2": "DOWN", "n8n_main/main": "UP 1/2"}
