"""gunicorn.conf.py as a deploy runs it: the control socket only where one is asked for, so two
services on one machine never share gunicorn's default path."""
from __future__ import annotations

import stat
from pathlib import Path

from tests.perf.bench_api import free_port, start_service
from tests.realtime.conftest import service_env, stop_service


def test_no_control_socket_unless_asked_and_then_at_the_path_given(realtime_database, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    asked = tmp_path / "rexera.ctl"
    plain, _ = start_service(service_env(realtime_database, free_port(), HOME=str(home)), "wsgi:app",
                             "gunicorn-settings-plain.log")
    try:
        with_socket, _ = start_service(service_env(realtime_database, free_port(), HOME=str(home),
                                                   GUNICORN_CONTROL_SOCKET=str(asked)), "wsgi:app",
                                       "gunicorn-settings-socket.log")
        try:
            assert stat.S_ISSOCK(asked.stat().st_mode)
            # gunicorn's default path, shared by every instance on the machine, is left alone.
            assert not Path(home, ".gunicorn").exists()
        finally:
            stop_service(with_socket)
    finally:
        stop_service(plain)
    assert not asked.exists()
