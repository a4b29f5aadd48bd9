"""A stand-in for n8n's webhook and public API endpoints, for dispatcher tests (the real n8n
runs in the end-to-end group): 2.x by default, 1.x (no stop operation) with has_stop = False."""
from __future__ import annotations

import http.server
import json
import threading
import time


class FakeN8n:
    def __init__(self):
        self.requests: list[dict] = []
        self.status = 200
        self.answers: list[tuple[int, dict]] = []  # answered first, in order, before status/body
        self.body: dict | None = None  # None: {"executionId": "exec-<n>"}, a new id per request
        self.has_stop = True  # POST /api/v1/executions/{id}/stop exists (2.x); 1.x answers 404
        self.delay = 0.0  # seconds each POST/DELETE waits before answering (a slow or hung n8n)
        self.healthy = True  # what GET /healthz says
        self.health_checks = 0
        # GET /api/v1/executions/{id}: the answer n8n's API gives for each id (status code, body);
        # unknown ids answer 404.
        self.executions: dict[str, tuple[int, dict]] = {}
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if fake.delay:
                    time.sleep(fake.delay)
                with fake.lock:
                    fake.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                          "json": json.loads(raw) if raw else None})
                    status = fake.status
                    body = fake.body if fake.body is not None else {"executionId": f"exec-{len(fake.requests)}"}
                    if fake.answers:
                        status, body = fake.answers.pop(0)
                    if self.path.endswith("/stop") and not fake.has_stop:
                        status, body = 404, {"message": "not found"}
                self.reply(status, body)

            do_DELETE = do_POST

            def reply(self, status: int, body) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                prefix = "/api/v1/executions/"
                if self.path.startswith(prefix):
                    with fake.lock:
                        fake.requests.append({"method": "GET", "path": self.path, "headers": dict(self.headers),
                                              "json": None})
                        status, body = fake.executions.get(self.path[len(prefix):], (404, {"message": "Not Found"}))
                    self.reply(status, body)
                    return
                with fake.lock:
                    fake.health_checks += 1
                self.send_response(200 if self.path == "/healthz" and fake.healthy else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
