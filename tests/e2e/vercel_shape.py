"""The service as Vercel runs it, as closely as this machine allows.

Each function instance is a process of its own that imports `index` (the entry point Vercel's
Python runtime finds by itself) with VERCEL=1 set and serves one request at a time. Between
requests the instance is frozen (SIGSTOP), as Vercel freezes a function after its response:
no thread of the service runs then. A front (this module's `VercelShape`, the deployment URL)
hands each request to an idle instance, cold-starts a new one when all are busy (up to
`max_instances`), and retires an instance after `requests_per_instance` requests, so cold
starts happen all along. A scheduler thread plays Vercel Cron: GET /api/internal/tick with
`Authorization: Bearer $CRON_SECRET` every `cron_seconds` (a minute on Vercel).

`python tests/e2e/vercel_shape.py PORT` is the instance itself.
"""
from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade"}


class Instance:
    """One function instance: a process serving one request at a time, frozen in between."""

    def __init__(self, env: dict, log_dir: Path, number: int):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.served = 0
        self.log = open(log_dir / f"instance-{number}.log", "wb")
        self.process = subprocess.Popen([sys.executable, __file__, str(self.port)], cwd=ROOT, env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"instance {number} exited with {self.process.returncode}; see {self.log.name}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"instance {number} did not listen within 30 s")

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def retire(self) -> None:
        self.process.kill()  # a stopped process is killed all the same
        self.process.wait(timeout=10)
        self.log.close()


class VercelShape:
    def __init__(self, env: dict, port: int, log_dir: Path, max_instances: int = 4, requests_per_instance: int = 25,
                 cron_seconds: float = 2.0):
        self.env = {**env, "VERCEL": "1"}
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_dir = log_dir
        self.max_instances = max_instances
        self.requests_per_instance = requests_per_instance
        self.cron_seconds = cron_seconds
        self.idle: list[Instance] = []
        self.live = 0
        self.started = 0
        self.requests = 0
        self.ticks: list[dict] = []
        self.condition = threading.Condition()
        self.stopping = threading.Event()
        shape = self

        class Front(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                status, reply_headers, content = shape.handle(self.command, self.path, headers, body)
                self.send_response(status)
                for key, value in reply_headers.items():
                    if key.lower() not in HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = forward

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Front)
        self.threads = [threading.Thread(target=self.server.serve_forever, name="vercel-front", daemon=True),
                        threading.Thread(target=self._cron, name="vercel-cron", daemon=True)]

    # -- the platform --
    def _acquire(self) -> Instance:
        with self.condition:
            while True:
                if self.idle:
                    return self.idle.pop()
                if self.live < self.max_instances:
                    self.live += 1
                    self.started += 1
                    number = self.started
                    break
                self.condition.wait()
        try:
            instance = Instance(self.env, self.log_dir, number)
        except Exception:
            with self.condition:
                self.live -= 1
                self.condition.notify()
            raise
        return instance

    def _release(self, instance: Instance) -> None:
        instance.served += 1
        if instance.served >= self.requests_per_instance or self.stopping.is_set():
            instance.retire()
            with self.condition:
                self.live -= 1
                self.condition.notify()
            return
        instance.freeze()
        with self.condition:
            self.idle.append(instance)
            self.condition.notify()

    def handle(self, method: str, path: str, headers: dict, body: bytes | None) -> tuple[int, dict, bytes]:
        instance = self._acquire()
        instance.thaw()
        try:
            response = requests.request(method, instance.url + path, headers=headers, data=body, timeout=60,
                                        allow_redirects=False)
            return response.status_code, dict(response.headers), response.content
        finally:
            with self.condition:
                self.requests += 1
            self._release(instance)

    def _cron(self) -> None:
        while not self.stopping.wait(self.cron_seconds):
            try:
                answer = requests.get(f"{self.base_url}/api/internal/tick", timeout=60,
                                      headers={"Authorization": f"Bearer {self.env['CRON_SECRET']}"})
                self.ticks.append({"status": answer.status_code, **(answer.json() if answer.content else {})})
            except requests.RequestException as error:
                self.ticks.append({"status": None, "error": type(error).__name__})

    # -- lifetime --
    def start(self) -> "VercelShape":
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        with self.condition:
            idle, self.idle = self.idle, []
        for instance in idle:
            instance.retire()

    def figures(self) -> dict:
        delivered = sum((t.get("outbox") or {}).get("delivered", 0) for t in self.ticks)
        return {"instancesStarted": self.started, "requests": self.requests, "ticks": len(self.ticks),
                "ticksFailed": sum(t["status"] != 200 for t in self.ticks), "deliveredByTicks": delivered}


def serve(port: int) -> None:
    """The instance: import the entry point as Vercel does, then one request at a time."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    sys.path.insert(0, str(ROOT))
    import index  # noqa: E402  (the entry point; its module-level `app`)

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    make_server("127.0.0.1", port, index.app, handler_class=Quiet).serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
