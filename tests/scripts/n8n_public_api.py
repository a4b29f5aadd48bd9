"""A stateful stand-in for n8n's public API (1.123, or 2.41 with version="2.41.1"), served
through `responses`.

It keeps the contract the sync relies on, as checked against a real n8n 1.123.50: cursor pages,
request bodies limited to the writable fields (400 otherwise), settings merged on PUT, credential
ids resolved by name when unknown, the Error Trigger-only workflow refusing activation (1.x) or
accepted (2.x), a delete right after a deactivation refused with 409 once (2.x), tags unique by
name, credentials listed by 2.x only. Every call is recorded in `calls` as (method, path, params, body)."""
from __future__ import annotations

import base64
import copy
import itertools
import json
import re
from urllib.parse import parse_qs, urlparse

import responses

BASE_URL = "https://rexera-staging.app.n8n.cloud"
API_KEY = "n8n_api_test_key_7f3a9c1e"
WRITABLE = {"name", "nodes", "connections", "settings"}
READ_ONLY = {"id", "active", "createdAt", "updatedAt", "tags"}
SETTINGS = {"saveExecutionProgress", "saveManualExecutions", "saveDataErrorExecution", "saveDataSuccessExecution",
            "executionTimeout", "errorWorkflow", "timezone", "executionOrder", "callerPolicy", "callerIds",
            "timeSavedPerExecution", "availableInMCP"}
NODE_FIELDS = {"id", "name", "webhookId", "disabled", "notesInFlow", "notes", "type", "typeVersion", "executeOnce",
               "alwaysOutputData", "retryOnFail", "maxTries", "waitBetweenTries", "continueOnFail", "onError",
               "position", "parameters", "credentials"}


class Body(str):
    """A queued outcome of FakeN8n.fail: a 200 answer with exactly this body (odd shapes)."""


class FakeN8n:
    def __init__(self, page_size: int = 250, version: str | None = "1.123.50"):
        self.page_size = page_size
        self.version = version  # None: an instance whose line the key cannot tell (GET /credentials: 403)
        self.refuses_error_workflows: bool | None = None  # None: as its version does (1.x refuses)
        self.unpublishing: set[str] = set()  # 2.x: deactivated a moment ago
        self.workflows: dict[str, dict] = {}
        self.tags: dict[str, str] = {}  # id -> name
        self.credentials: dict[tuple[str, str], str] = {}  # (type, name) -> id
        self.calls: list[tuple[str, str, dict, object]] = []
        self.failures: dict[tuple[str, str], list] = {}  # (method, path) -> [status or (status, headers) or exc]
        self._ids = (f"id{n:04d}" for n in itertools.count(1))
        self._clock = (f"2026-11-26T10:{n // 60:02d}:{n % 60:02d}.000Z" for n in itertools.count())

    # ---- set-up helpers -------------------------------------------------------------------
    def add_credential(self, kind: str, name: str) -> str:
        credential_id = next(self._ids)
        self.credentials[(kind, name)] = credential_id
        return credential_id

    def seed(self, workflow: dict, *, active: bool = False, tags: list[str] = ()) -> dict:
        """A workflow as if created in n8n's editor (ids real, extra fields n8n adds)."""
        stored = self._store(copy.deepcopy(workflow))
        stored["active"] = active
        stored["tags"] = [self._tag(name) for name in tags]
        return stored

    def fail(self, method: str, path: str, *outcomes) -> None:
        """The next calls of method+path answer these statuses (or (status, headers)), this Body, or raise."""
        self.failures.setdefault((method, path), []).extend(outcomes)

    def by_name(self, name: str) -> dict:
        return next(w for w in self.workflows.values() if w["name"] == name)

    def writes(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path, _, _ in self.calls if method != "GET"]

    # ---- the API ----------------------------------------------------------------------------
    def install(self, mock: responses.RequestsMock) -> None:
        pattern = re.compile(re.escape(BASE_URL) + r"/api/v1/.*")
        for method in ("GET", "POST", "PUT", "DELETE"):
            mock.add_callback(method, pattern, callback=self._handle)


    def _handle(self, request):
        url = urlparse(request.url)
        path = url.path[len("/api/v1"):]
        params = {key: values[0] for key, values in parse_qs(url.query).items()}
        body = json.loads(request.body) if request.body else None
        self.calls.append((request.method, path, params, body))
        queued = self.failures.get((request.method, path))
        if queued:
            outcome = queued.pop(0)
            if isinstance(outcome, Exception):
                raise outcome
            if isinstance(outcome, Body):
                return 200, {"Content-Type": "application/json"}, str(outcome)
            status, headers = outcome if isinstance(outcome, tuple) else (outcome, {})
            return status, headers, json.dumps({"message": f"failure {status}"})
        if request.headers.get("X-N8N-API-KEY") != API_KEY:
            return 401, {}, json.dumps({"message": "unauthorized"})
        status, answer = self._route(request.method, path, params, body)
        return status, {"Content-Type": "application/json"}, json.dumps(answer)

    def _route(self, method, path, params, body):
        if path == "/workflows" and method == "GET":
            return self._page(list(self.workflows.values()), params)
        if path == "/workflows" and method == "POST":
            problem = self._invalid(body)
            if problem:
                return 400, {"message": problem}
            return 200, self._store(body)
        if path == "/credentials" and method == "GET":  # 2.x lists them; 1.x answers 405
            if self.version is None:
                return 403, {"message": "Forbidden: the key lacks credential:list"}
            if self.version.startswith("1."):
                return 405, {"message": "GET method not allowed"}
            return 200, {"data": [{"id": i, "name": n, "type": t} for (t, n), i in self.credentials.items()],
                         "nextCursor": None}
        if path == "/tags" and method == "GET":
            return self._page([{"id": i, "name": n} for i, n in self.tags.items()], params)
        if path == "/tags" and method == "POST":
            if body["name"] in self.tags.values():
                return 409, {"message": "Tag already exists"}
            return 201, self._tag(body["name"])
        match = re.fullmatch(r"/workflows/([^/]+)(?:/(activate|deactivate|tags))?", path)
        if not match or match.group(1) not in self.workflows:
            return 404, {"message": "Not Found"}
        workflow, action = self.workflows[match.group(1)], match.group(2)
        if action is None and method == "GET":
            return 200, workflow
        if action is None and method == "PUT":
            problem = self._invalid(body)
            if problem:
                return 400, {"message": problem}
            self._resolve_credentials(body)
            workflow.update(nodes=body["nodes"], connections=body["connections"], name=body["name"],
                            settings={**workflow["settings"], **body["settings"]}, updatedAt=next(self._clock),
                            versionId=next(self._ids))
            return 200, workflow
        if action is None and method == "DELETE":
            if workflow["id"] in self.unpublishing:
                self.unpublishing.discard(workflow["id"])
                return 409, {"message": "Workflow is still being unpublished"}
            return 200, self.workflows.pop(workflow["id"])
        if action == "activate" and method == "POST":
            refuses = self.refuses_error_workflows
            if refuses is None:
                refuses = (self.version or "").startswith("1.")
            if refuses and all(node["type"] == "n8n-nodes-base.errorTrigger" or not node["type"].endswith(("Trigger", "webhook"))
                   for node in workflow["nodes"]):
                return 400, {"message": f'Workflow "{workflow["name"]}" (ID: {workflow["id"]}) has no node to start '
                                        "the workflow - at least one trigger, poller or webhook node is required"}
            workflow["active"] = True
            return 200, workflow
        if action == "deactivate" and method == "POST":
            workflow["active"] = False
            if not (self.version or "").startswith("1."):
                self.unpublishing.add(workflow["id"])
            return 200, workflow
        if action == "tags" and method == "PUT":
            ids = [tag["id"] for tag in body]
            if any(i not in self.tags for i in ids):
                return 404, {"message": "Some tags not found"}
            workflow["tags"] = [{"id": i, "name": self.tags[i]} for i in ids]
            return 200, workflow["tags"]
        return 405, {"message": f"{method} method not allowed"}

    def _page(self, items, params):
        limit = int(params.get("limit", 100))
        if limit > 250:
            return 400, {"message": "request/query/limit must be <= 250"}
        offset = json.loads(base64.b64decode(params["cursor"]))["offset"] if "cursor" in params else 0
        size = min(limit, self.page_size)
        end = offset + size
        cursor = base64.b64encode(json.dumps({"limit": size, "offset": end}).encode()).decode() \
            if end < len(items) else None
        return 200, {"data": items[offset:end], "nextCursor": cursor}

    @staticmethod
    def _invalid(body) -> str | None:
        for key in body:
            if key in READ_ONLY:
                return f"request/body/{key} is read-only"
            if key not in WRITABLE:
                return "request/body must NOT have additional properties"
        if set(body["settings"]) - SETTINGS:
            return "request/body/settings must NOT have additional properties"
        for index, node in enumerate(body["nodes"]):
            if set(node) - NODE_FIELDS:
                return f"request/body/nodes/{index} must NOT have additional properties"
        return None

    def _resolve_credentials(self, workflow: dict) -> None:
        known = set(self.credentials.values())
        for node in workflow["nodes"]:
            for kind, ref in (node.get("credentials") or {}).items():
                if ref.get("id") not in known and (kind, ref["name"]) in self.credentials:
                    ref["id"] = self.credentials[(kind, ref["name"])]

    def _store(self, body: dict) -> dict:
        self._resolve_credentials(body)
        workflow_id = next(self._ids)
        now = next(self._clock)
        stored = {"updatedAt": now, "createdAt": now, "id": workflow_id, "name": body["name"], "active": False,
                  "isArchived": False, "nodes": body["nodes"], "connections": body["connections"],
                  "settings": {**body["settings"], "callerPolicy": "workflowsFromSameOwner", "availableInMCP": False},
                  "staticData": None, "meta": None, "pinData": {}, "versionId": next(self._ids),
                  "triggerCount": 0, "shared": [{"role": "workflow:owner", "projectId": "p1"}], "tags": []}
        self.workflows[workflow_id] = stored
        return stored

    def _tag(self, name: str) -> dict:
        for tag_id, tag_name in self.tags.items():
            if tag_name == name:
                return {"id": tag_id, "name": name}
        tag_id = next(self._ids)
        self.tags[tag_id] = name
        return {"id": tag_id, "name": name}
