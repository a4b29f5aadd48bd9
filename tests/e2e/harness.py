"""End-to-end harness: the service serving for real on a free port (with its dispatcher), the
agent simulator in process, and a real local n8n with the exported workflows imported.

Everything here talks HTTP to the others exactly as in production: the dispatcher triggers n8n,
n8n calls the simulated agents and posts signed callbacks to the service."""
from __future__ import annotations

import base64
import copy
import importlib.util
import io
import json
import os
import secrets
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import requests
from psycopg.rows import dict_row
from werkzeug.serving import WSGIRequestHandler, make_server

from app import create_app
from app.config import Settings
from app.webhooks.signing import inbound_token, signed_headers, workflow_key
from tests.db.world import PEOPLE
from tests.support import JWT_SECRET, mint_token

ROOT = Path(__file__).resolve().parents[2]
# REXERA_E2E_WORKFLOWS: run against exports elsewhere (e.g. a pulled copy, or one after workflow_shared.py --apply).
WORKFLOWS_DIR = Path(os.environ.get("REXERA_E2E_WORKFLOWS") or ROOT / "n8n_workflows")
EXPORTS = {  # file -> workflow type (None: the error handler)
    "error_handler.json": None,
    "payoff_request.json": "PAYOFF_REQUEST",
    "hoa_acquisition.json": "HOA_ACQUISITION",
    "muni_lien_search.json": "MUNI_LIEN_SEARCH",
}
ERROR_HANDLER_NAME = "Rexera - Error handler"
FINAL_WORKFLOW_STATUSES = {"COMPLETED", "FAILED", "CANCELLED", "BLOCKED", "AWAITING_REVIEW"}
SIMULATOR_SEED = 20261126


def load_script(name: str):
    """scripts/<name>.py as a module (scripts/ is not a package)."""
    module_name = f"{name}_e2e_script"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


n8n_local = load_script("n8n_local")
agent_simulator = load_script("agent_simulator")
n8n_credentials = load_script("n8n_credentials")


# ---- the service ----------------------------------------------------------------------------
class CallbackRecorder:
    """WSGI middleware keeping every request to /webhooks/n8n (raw body and headers), so a test
    can replay exactly what n8n sent."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app
        self.lock = threading.Lock()
        self.calls: list[dict] = []

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/webhooks/n8n" and environ.get("REQUEST_METHOD") == "POST":
            stream = environ["wsgi.input"]
            length = environ.get("CONTENT_LENGTH")
            body = stream.read(int(length)) if length else stream.read()
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
                       if key.startswith("HTTP_")}
            statuses = []

            def recording_start_response(status, response_headers, exc_info=None):
                statuses.append(int(status.split()[0]))
                return start_response(status, response_headers, exc_info)

            result = self.wsgi_app(environ, recording_start_response)
            with self.lock:
                self.calls.append({"body": body, "headers": headers, "status": statuses[0] if statuses else None})
            return result
        return self.wsgi_app(environ, start_response)

    def for_workflow(self, workflow_id) -> list[dict]:
        with self.lock:
            calls = list(self.calls)
        found = []
        for call in calls:
            try:
                envelope = json.loads(call["body"])
            except ValueError:
                continue
            if str((envelope.get("data") or {}).get("workflowId")) == str(workflow_id):
                found.append({**call, "envelope": envelope})
        return found


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


class Service:
    """The app served by werkzeug's threaded server in a daemon thread."""

    def __init__(self, settings: Settings, port: int):
        self.settings = settings
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.app = create_app(settings)
        self.recorder = CallbackRecorder(self.app.wsgi_app)
        self.app.wsgi_app = self.recorder
        self.server = make_server("127.0.0.1", port, self.app, threaded=True, request_handler=QuietHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="e2e-service", daemon=True)

    def start(self) -> "Service":
        self.thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base_url}/api/health", timeout=2).status_code < 500:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError("the service did not answer /api/health")

    def stop(self) -> None:
        dispatcher = self.app.extensions.get("dispatcher")
        if dispatcher is not None:
            _, stop, thread = dispatcher
            stop.set()
            thread.join(timeout=15)
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
        self.app.extensions["database"].close()


def make_settings(database_url: str, port: int, n8n_base_url: str, n8n_api_key: str, agent_base_url: str,
                  trigger_token: str, error_token: str) -> Settings:
    return Settings(
        database_url=database_url,
        supabase_jwt_secret=JWT_SECRET,
        n8n_base_url=n8n_base_url,
        n8n_api_key=n8n_api_key,
        n8n_callback_secret=secrets.token_bytes(32),
        n8n_webhook_token=trigger_token,
        n8n_error_webhook_token=error_token,
        public_base_url=f"http://127.0.0.1:{port}",
        agent_base_url=agent_base_url,
        rate_limits_enabled=False,
        dispatcher_enabled=True,
        deliver_inline=True,  # as from the environment: requests deliver what they queue
        db_pool_min=1,
        db_pool_max=10,
    )


def callback_secret_text(settings: Settings) -> str:
    """The master secret as N8N_CALLBACK_SECRET would spell it."""
    return "whsec_" + base64.b64encode(settings.n8n_callback_secret).decode()


# ---- n8n --------------------------------------------------------------------------------------
def wait_for_exports(timeout: float) -> dict[str, Path]:
    deadline = time.monotonic() + timeout
    while True:
        missing = [name for name in EXPORTS if not (WORKFLOWS_DIR / name).exists()]
        if not missing:
            break
        if time.monotonic() > deadline:
            raise FileNotFoundError(f"n8n exports missing in {WORKFLOWS_DIR}: {', '.join(missing)}")
        time.sleep(2)
    # A file still being written would not parse yet: give it a moment.
    paths = {}
    for name in EXPORTS:
        path = WORKFLOWS_DIR / name
        for _ in range(10):
            try:
                json.loads(path.read_text())
                break
            except ValueError:
                time.sleep(1)
        paths[name] = path
    return paths


def api(n8n, method: str, path: str, body=None, expect=(200,)):
    status, answer = n8n.request(method, path, body)
    if status not in expect:
        raise RuntimeError(f"n8n {method} {path} answered {status}: {json.dumps(answer)[:2000]}")
    return answer


def create_credentials(n8n, trigger_token: str, error_token: str) -> dict[str, str]:
    """The three credentials the exports reference by name; returns name -> id."""
    return n8n_credentials.ensure(n8n, trigger_token=trigger_token, error_token=error_token)


def prepare_export(export: dict, credential_ids: dict[str, str], error_handler_id: str | None) -> dict:
    """Only what the public API accepts, with credential ids resolved by name and the error
    workflow referenced by id."""
    nodes = copy.deepcopy(export["nodes"])
    for node in nodes:
        for reference in (node.get("credentials") or {}).values():
            name = reference.get("name")
            if name not in credential_ids:
                raise KeyError(f"node {node.get('name')!r} uses unknown credential {name!r}")
            reference["id"] = credential_ids[name]
    settings = dict(export.get("settings") or {})
    if error_handler_id is not None and settings.get("errorWorkflow"):
        settings["errorWorkflow"] = error_handler_id
    return {"name": export["name"], "nodes": nodes, "connections": export["connections"], "settings": settings}


def import_workflows(n8n, credential_ids: dict[str, str], paths: dict[str, Path]) -> dict[str, str]:
    """Import and activate every export, the error handler first; returns file -> n8n id."""
    ids: dict[str, str] = {}
    error_handler_id = None
    for name in EXPORTS:  # error_handler.json comes first
        export = json.loads(paths[name].read_text())
        body = prepare_export(export, credential_ids, error_handler_id)
        created = api(n8n, "POST", "/api/v1/workflows", body)
        ids[name] = str(created["id"])
        if name == "error_handler.json":
            error_handler_id = ids[name]
            # An error workflow runs without being active; n8n refuses to activate one whose
            # only trigger is the Error Trigger.
            status, answer = n8n.request("POST", f"/api/v1/workflows/{ids[name]}/activate")
            if status != 200 and "no node to start" not in json.dumps(answer):
                raise RuntimeError(f"n8n refused to activate the error handler: {status} {answer}")
            continue
        api(n8n, "POST", f"/api/v1/workflows/{ids[name]}/activate")
    return ids


class N8n:
    """A local n8n that can be stopped and started again on the same port and data dir."""

    def __init__(self, port: int, data_dir: Path, version: str | None = None):
        self.port, self.data_dir, self.version = port, data_dir, n8n_local.release(version).version
        self.instance = None

    def start(self):
        self.instance = n8n_local.start(self.port, self.data_dir, webhook_url=f"http://127.0.0.1:{self.port}/",
                                        version=self.version, progress=lambda message: None)
        return self.instance

    def stop(self) -> None:
        if self.instance is not None:
            self.instance.stop()

    def __getattr__(self, name):
        return getattr(self.instance, name)

    def log_tail(self, lines: int = 80) -> str:
        try:
            return "\n".join(Path(self.instance.log_path).read_text(errors="replace").splitlines()[-lines:])
        except (OSError, AttributeError):
            return ""


# ---- the world as seen by tests ---------------------------------------------------------------
class World:
    def __init__(self, service: Service, simulator, n8n: N8n, database_url: str):
        self.service, self.simulator, self.n8n, self.database_url = service, simulator, n8n, database_url
        self.http = requests.Session()

    @property
    def settings(self) -> Settings:
        return self.service.settings

    # -- database --
    def query(self, sql: str, params=()) -> list[dict]:
        with psycopg.connect(self.database_url, row_factory=dict_row, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def execute(self, sql: str, params=()) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute(sql, params)

    def counts(self, workflow_id) -> dict:
        """Row counts of everything a callback can write, for one workflow."""
        tables = ["tasks", "task_executions", "task_timeline_events", "agent_results", "webhook_receipts",
                  "n8n_dispatches", "communications", "documents", "notifications", "audit_events"]
        found = {}
        for table in tables:
            try:
                found[table] = self.query(f"select count(*) as n from public.{table} where workflow_id = %s",
                                          (str(workflow_id),))[0]["n"]
            except psycopg.errors.UndefinedColumn:
                continue
        found["task_states"] = sorted((r["task_key"], r["status"]) for r in self.query(
            "select task_key, status from public.tasks where workflow_id = %s", (str(workflow_id),)))
        found["workflow"] = self.query("select status, updated_at from public.workflows where id = %s",
                                       (str(workflow_id),))[0]
        return found

    # -- API as a client --
    def headers(self, person: str = "client_user_a") -> dict:
        return {"Authorization": f"Bearer {mint_token(PEOPLE[person], secret=JWT_SECRET)}"}

    def create_workflow(self, workflow_type: str, payload: dict, person: str = "client_user_a", **extra) -> dict:
        response = self.http.post(f"{self.service.base_url}/api/workflows", headers=self.headers(person),
                                  json={"type": workflow_type, "payload": payload, **extra}, timeout=30)
        assert response.status_code == 201, response.text
        return response.json()

    def action(self, workflow_id, action: str, data: dict | None = None, person: str = "client_user_a") -> dict:
        response = self.http.post(f"{self.service.base_url}/api/workflows/{workflow_id}/actions",
                                  headers=self.headers(person), json={"action": action, "data": data or {}},
                                  timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def get_workflow(self, workflow_id, person: str = "operator") -> dict:
        response = self.http.get(f"{self.service.base_url}/api/workflows/{workflow_id}",
                                 params={"include": "tasks"}, headers=self.headers(person), timeout=30)
        assert response.status_code == 200, response.text
        workflow = response.json()
        workflow["tasksByKey"] = {task["taskKey"]: task for task in workflow.get("tasks") or []}
        return workflow

    def start(self, workflow_type: str, payload: dict, **extra) -> str:
        workflow = self.create_workflow(workflow_type, payload, **extra)
        result = self.action(workflow["id"], "start")
        assert result["newStatus"] == "IN_PROGRESS", result
        return workflow["id"]

    def wait_for(self, workflow_id, predicate, deadline: float, what: str, interval: float = 0.25) -> dict:
        """Poll the workflow (with tasks) until predicate(workflow) or the deadline (seconds)."""
        end = time.monotonic() + deadline
        workflow = None
        while time.monotonic() < end:
            workflow = self.get_workflow(workflow_id)
            if predicate(workflow):
                return workflow
            time.sleep(interval)
        raise AssertionError(f"timed out waiting for {what}; workflow {workflow_id} is {self.describe(workflow)}\n"
                             f"dispatches: {self.query('select kind, status, attempts, last_error from public.n8n_dispatches where workflow_id = %s', (workflow_id,))}\n"
                             f"n8n execution: {self.n8n_failure(workflow_id)}\n"
                             f"n8n log:\n{self.n8n.log_tail(40)}")

    def n8n_failure(self, workflow_id) -> str:
        """Where and why the workflow's n8n execution stopped (for failure messages)."""
        try:
            rows = self.query("select n8n_execution_id from public.workflows where id = %s", (str(workflow_id),))
            execution_id = rows[0]["n8n_execution_id"] if rows else None
            if not execution_id:
                return "no execution id"
            status, execution = self.n8n.request("GET", f"/api/v1/executions/{execution_id}?includeData=true")
            if status != 200:
                return f"GET execution answered {status}"
            result = (execution.get("data") or {}).get("resultData") or {}
            error = result.get("error") or {}
            return json.dumps({"status": execution.get("status"), "lastNode": result.get("lastNodeExecuted"),
                               "error": {k: error.get(k) for k in ("message", "description", "node")
                                         if error.get(k)}}, default=str)[:3000]
        except Exception as error:  # diagnostics only
            return f"unavailable ({type(error).__name__}: {error})"

    def wait_final(self, workflow_id, deadline: float = 90) -> dict:
        return self.wait_for(workflow_id, lambda w: w["status"] in FINAL_WORKFLOW_STATUSES, deadline,
                             "a final status")

    def wait_task(self, workflow_id, task_key: str, statuses: set[str], deadline: float = 60) -> dict:
        return self.wait_for(workflow_id, lambda w: (w["tasksByKey"].get(task_key) or {}).get("status") in statuses
                             or w["status"] in FINAL_WORKFLOW_STATUSES - {"AWAITING_REVIEW"},
                             deadline, f"task {task_key} in {sorted(statuses)}")

    @staticmethod
    def describe(workflow: dict | None) -> str:
        if workflow is None:
            return "unknown"
        tasks = ", ".join(f"{t['taskKey']}={t['status']}" for t in workflow.get("tasks") or [])
        return f"{workflow['status']} [{tasks}]"

    # -- inbound deliveries --
    def inbound_token(self, workflow_id) -> str:
        return inbound_token(self.settings.n8n_callback_secret, str(workflow_id))

    def deliver_inbound(self, kind: str, body: dict) -> requests.Response:
        """kind: payoff-statement or hoa-documents."""
        return self.http.post(f"{self.service.base_url}/webhooks/inbound/{kind}", json=body, timeout=30,
                              headers={"Authorization": f"Bearer {self.inbound_token(body['workflowId'])}"})

    # -- callbacks --
    def replay_callback(self, call: dict) -> requests.Response:
        """Re-send a recorded callback: same webhook-id and body, signed again (a retry by n8n)."""
        envelope = json.loads(call["body"])
        key = workflow_key(self.settings.n8n_callback_secret, envelope["data"]["workflowId"])
        headers = signed_headers(key, call["headers"]["webhook-id"], call["body"])
        headers["Content-Type"] = "application/json"
        return self.http.post(f"{self.service.base_url}/webhooks/n8n", data=call["body"], headers=headers, timeout=30)


def new_id() -> str:
    return uuid.uuid4().hex[:8]
