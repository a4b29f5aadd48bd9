"""Keeps an n8n instance (n8n Cloud or self-hosted) in step with the exports in n8n_workflows/
through n8n's public API: push, pull, diff and status, used by scripts/sync_workflows.py.

What the public API of n8n 1.123 does, and this module relies on:
- `GET /api/v1/workflows` pages with `limit` (at most 250) and `nextCursor`;
- `POST` and `PUT /api/v1/workflows[/{id}]` accept only `name`, `nodes`, `connections` and
  `settings` (400 "is read-only" / "must NOT have additional properties" otherwise), and
  `settings` only the keys of SETTINGS_ORDER; `PUT` merges the new settings into the old ones,
  so a setting can be changed but never removed this way;
- credentials cannot be listed (`GET /api/v1/credentials` answers 405), but when a node names a
  credential id the instance does not know, n8n looks the credential up by name and type in the
  owner's project and stores its id; when none (or several) match, the unknown id stays;
- `POST /api/v1/workflows/{id}/activate` refuses (400) a workflow whose only trigger is an
  Error Trigger; error workflows run without being active;

What n8n 2.x (2.41, as on n8n Cloud) does differently, and this module handles:
- an error workflow runs only while it is active ("is not active and cannot be executed"), and
  activating one is accepted: push activates it, and on 1.x takes the refusal as "runs anyway";
- deleting a workflow right after deactivating it answers 409 "still being unpublished" for a
  moment: prune retries the delete;
- `GET /api/v1/credentials` lists credentials (1.x: 405); names are still how exports find them.
- tags: `GET`/`POST /api/v1/tags` (409 when the name exists), `PUT /api/v1/workflows/{id}/tags`
  replaces a workflow's tags with the given ids.
"""
from __future__ import annotations

import dataclasses
import difflib
import email.utils
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

MANAGED_TAG = "managed-by-rexera-repo"
WRITE_FIELDS = ("name", "nodes", "connections", "settings")
# The node fields the public API accepts, in the order the exports write them.
NODE_ORDER = ("parameters", "id", "name", "type", "typeVersion", "position", "webhookId", "disabled",
              "notesInFlow", "notes", "credentials", "executeOnce", "retryOnFail", "maxTries",
              "waitBetweenTries", "alwaysOutputData", "continueOnFail", "onError")
# The settings the public API accepts, in the order the exports write them.
SETTINGS_ORDER = ("executionOrder", "errorWorkflow", "timezone", "saveDataErrorExecution",
                  "saveDataSuccessExecution", "saveManualExecutions", "saveExecutionProgress",
                  "executionTimeout", "callerPolicy", "callerIds", "timeSavedPerExecution", "availableInMCP")
# What n8n adds to every workflow it saves; an export without them means the same.
SETTINGS_DEFAULTS = {"callerPolicy": "workflowsFromSameOwner", "availableInMCP": False}
# Triggers that cannot make a workflow active (n8n refuses, or they start nothing on their own).
PASSIVE_TRIGGERS = {"n8n-nodes-base.errorTrigger", "n8n-nodes-base.manualTrigger",
                    "n8n-nodes-base.executeWorkflowTrigger"}
PAGE_SIZE = 250


# ============================================================================================
# The public API client
# ============================================================================================

class N8nApiError(Exception):
    """n8n answered with an error, or could not be reached after the retries."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class AuthError(N8nApiError):
    """401 or 403: the key is wrong, revoked, or lacks a scope. Nothing else will work either."""


class NotFoundError(N8nApiError):
    pass


@dataclasses.dataclass
class RetryPolicy:
    """Retries for 429 (after Retry-After), 5xx and network errors, with exponential backoff."""

    attempts: int = 4
    backoff: float = 1.0  # seconds before the first retry; doubled each time
    max_delay: float = 30.0  # cap of the backoff
    max_retry_after: float = 300.0  # a longer Retry-After gives up instead of waiting
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before the next attempt: Retry-After when n8n sends a readable one."""
        if retry_after:
            seconds = _retry_after_seconds(retry_after)
            if seconds is not None:
                return seconds
        return min(self.backoff * 2 ** (attempt - 1), self.max_delay)


def _retry_after_seconds(value: str) -> float | None:
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())


USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s'\"]*@")


def without_userinfo(text: str) -> str:
    """The text with the user:password@ of every URL in it cut out, so it can be printed."""
    return USERINFO.sub(r"\1", text)


def base_url_problem(base_url: str) -> str | None:
    """Why N8N_BASE_URL cannot be an n8n instance's address; None when it can."""
    try:
        parsed = urlsplit(base_url.strip())
        parsed.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError as error:
        return f"is not a URL ({error})"
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return "must be an http(s) URL with a host, e.g. https://rexera-staging.app.n8n.cloud"
    return None


def api_base(base_url: str) -> str:
    """https://x.app.n8n.cloud, .../ or .../api/v1 -> https://x.app.n8n.cloud/api/v1"""
    base = base_url.strip().rstrip("/")
    if base.endswith("/api/v1"):
        base = base[: -len("/api/v1")]
    return base + "/api/v1"


class N8nClient:
    """The few calls of n8n's public API that the sync needs. The key travels only in the
    X-N8N-API-KEY header and is never part of an error message."""

    def __init__(self, base_url: str, api_key: str, *, retry: RetryPolicy | None = None,
                 session: requests.Session | None = None, timeout: float = 30,
                 say: Callable[[str], None] = lambda line: None):
        self.base_url = api_base(base_url)
        self.shown_url = without_userinfo(self.base_url)  # what messages name
        self.retry = retry or RetryPolicy()
        self.say = say
        self.session = session or requests.Session()
        self.session.headers.update({"X-N8N-API-KEY": api_key, "Accept": "application/json"})
        self.timeout = timeout

    def request(self, method: str, path: str, *, params: dict | None = None, body: Any = None,
                unsafe: bool = False) -> Any:
        """One call with retries. unsafe: a POST that creates something; it is retried only
        when n8n surely did not act on it (429, connection refused), never after a 5xx or a
        read timeout, so a retry never creates a second copy."""
        what = f"{method} {path}"
        for attempt in range(1, self.retry.attempts + 1):
            last = attempt == self.retry.attempts
            try:
                response = self.session.request(method, self.base_url + path, params=params, json=body,
                                                timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as error:
                refused = isinstance(error, requests.ConnectionError) and not isinstance(error, requests.ReadTimeout)
                if last or (unsafe and not refused):
                    raise N8nApiError(f"{what}: n8n at {self.shown_url} could not be reached "
                                      f"({type(error).__name__}) after {attempt} attempt(s)") from None
                self._wait(what, type(error).__name__, self.retry.delay(attempt))
                continue
            status = response.status_code
            if status == 429 or (status >= 500 and not unsafe):
                if last:
                    raise N8nApiError(f"{what}: n8n answered {status} {_message(response)} "
                                      f"after {attempt} attempt(s)", status)
                delay = self.retry.delay(attempt, response.headers.get("Retry-After"))
                if delay > self.retry.max_retry_after:
                    raise N8nApiError(f"{what}: n8n answered {status} and asks to wait {delay:.0f} s; "
                                      "try again later", status)
                self._wait(what, str(status), delay)
                continue
            if status in (401, 403):
                raise AuthError(f"n8n at {self.shown_url} refused the API key ({status} {_message(response)}): "
                                "check N8N_API_KEY (and its scopes) for this instance", status)
            if status == 404:
                raise NotFoundError(f"{what}: not found (404 {_message(response)})", status)
            if status >= 400:
                raise N8nApiError(f"{what}: n8n answered {status} {_message(response)}", status)
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                raise N8nApiError(f"{what}: n8n answered {status} with a body that is not JSON", status) from None
        raise AssertionError("unreachable")

    def _wait(self, what: str, why: str, seconds: float) -> None:
        self.say(f"    {what}: {why}, retrying in {seconds:g} s")
        self.retry.sleep(seconds)

    def paginate(self, path: str, params: dict | None = None) -> Iterator[dict]:
        cursor = None
        while True:
            query = {**(params or {}), "limit": PAGE_SIZE}
            if cursor:
                query["cursor"] = cursor
            page = self.request("GET", path, params=query)
            items = page.get("data") if isinstance(page, dict) else None
            if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                raise N8nApiError(f"GET {path}: n8n answered {_shape(page)}, not a page of objects "
                                  "({\"data\": [...]}); is N8N_BASE_URL an n8n instance?")
            yield from items
            cursor = page.get("nextCursor")
            if not cursor:
                return

    def workflows(self) -> list[dict]:
        return list(self.paginate("/workflows", {"excludePinnedData": "true"}))

    def server_line(self) -> int | None:
        """Which n8n line the instance runs, as its public API shows it: 2.x lists credentials
        (GET /credentials answers 200), 1.x does not (405). None when it cannot tell (a key
        without that scope, an error)."""
        try:
            response = self.session.get(self.base_url + "/credentials", params={"limit": 1},
                                        timeout=min(self.timeout, 10))
        except requests.RequestException:
            return None
        return {200: 2, 405: 1}.get(response.status_code)

    def object_request(self, method: str, path: str, *, body: Any = None, unsafe: bool = False,
                       needs: tuple[str, ...] = ()) -> dict:
        """request() whose answer must be a JSON object holding the keys `needs`."""
        answer = self.request(method, path, body=body, unsafe=unsafe)
        if not isinstance(answer, dict) or any(key not in answer for key in needs):
            wanted = f"an object with {', '.join(needs)}" if needs else "an object"
            raise N8nApiError(f"{method} {path}: n8n answered {_shape(answer)}, not {wanted}")
        return answer

    def create_workflow(self, body: dict) -> dict:
        return self.object_request("POST", "/workflows", body=body, unsafe=True, needs=("id",))

    def update_workflow(self, workflow_id: str, body: dict) -> dict:
        return self.object_request("PUT", f"/workflows/{workflow_id}", body=body)

    def delete_workflow(self, workflow_id: str) -> None:
        self.request("DELETE", f"/workflows/{workflow_id}")

    def activate(self, workflow_id: str) -> dict:
        return self.request("POST", f"/workflows/{workflow_id}/activate")

    def deactivate(self, workflow_id: str) -> dict:
        return self.request("POST", f"/workflows/{workflow_id}/deactivate")

    def tags(self) -> list[dict]:
        return list(self.paginate("/tags"))

    def create_tag(self, name: str) -> dict:
        return self.object_request("POST", "/tags", body={"name": name}, unsafe=True, needs=("id",))

    def set_workflow_tags(self, workflow_id: str, tag_ids: list[str]) -> list[dict]:
        return self.request("PUT", f"/workflows/{workflow_id}/tags", body=[{"id": i} for i in tag_ids])


def _shape(answer: Any) -> str:
    """What kind of JSON n8n answered, for a message (never its content)."""
    if answer is None:
        return "an empty body or null"
    if isinstance(answer, dict):
        return f"an object with keys {', '.join(sorted(map(str, answer))[:8]) or '(none)'}"
    return {list: "a JSON list", str: "a JSON string", bool: "a JSON boolean"}.get(type(answer), "a JSON number")


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason or ""
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])[:300]
    return response.reason or ""


# ============================================================================================
# Normalized exports
# ============================================================================================

def credential_placeholder(name: str) -> str:
    """The id an export gives a credential: its name in lower case, words joined by '-'
    ("Rexera trigger token" -> "rexera-trigger-token"); replaced by the real id on push."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def export_filename(name: str) -> str:
    """The file a pulled workflow without an export gets: "Rexera - Title search" -> rexera_title_search.json"""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") + ".json"


def _ordered(mapping: dict, order: tuple[str, ...], allowed: bool = False) -> dict:
    """The keys of `order` first, in that order; then (unless allowed) the others sorted."""
    known = {key: mapping[key] for key in order if key in mapping}
    if allowed:
        return known
    return {**known, **{key: mapping[key] for key in sorted(mapping) if key not in known}}


def normalize(workflow: dict, workflow_names: dict[str, str] | None = None) -> dict:
    """A workflow (from the instance or an export) as an export: only what the public API
    writes, stable key order, credential ids as placeholders, the error workflow by name,
    n8n's own setting defaults left out. workflow_names: instance id -> name."""
    workflow_names = workflow_names or {}
    nodes = []
    for node in workflow.get("nodes") or []:
        node = _ordered(node, NODE_ORDER, allowed=True)
        if node.get("credentials"):
            node["credentials"] = {kind: {"id": credential_placeholder(ref.get("name") or ""), "name": ref.get("name")}
                                   for kind, ref in node["credentials"].items()}
        nodes.append(node)
    node_order = [node.get("name") for node in nodes]
    connections = workflow.get("connections") or {}
    sources = [name for name in node_order if name in connections]
    sources += sorted(name for name in connections if name not in sources)
    connections = {source: {kind: connections[source][kind] for kind in
                            sorted(connections[source], key=lambda kind: (kind != "main", kind))}
                   for source in sources}
    settings = dict(workflow.get("settings") or {})
    for key, default in SETTINGS_DEFAULTS.items():
        if key in settings and settings[key] == default:
            del settings[key]
    if settings.get("errorWorkflow") in workflow_names:
        settings["errorWorkflow"] = workflow_names[settings["errorWorkflow"]]
    return {"name": workflow.get("name"), "nodes": nodes, "connections": connections,
            "settings": _ordered(settings, SETTINGS_ORDER)}


def render(export: dict) -> str:
    """Two-space JSON with a trailing newline: the form of the committed exports."""
    return json.dumps(export, indent=2, ensure_ascii=False) + "\n"


def is_error_workflow(export: dict) -> bool:
    """An error workflow: its only enabled trigger is an Error Trigger."""
    kinds = {node.get("type") for node in export.get("nodes") or [] if not node.get("disabled")}
    return "n8n-nodes-base.errorTrigger" in kinds and not any(
        kind and kind not in PASSIVE_TRIGGERS and (kind.endswith("Trigger") or kind.endswith(".webhook"))
        for kind in kinds)


def should_be_active(export: dict, error_workflows: bool = True) -> bool:
    """Active when an enabled trigger can start it (a webhook, a schedule, a poller...); an
    error workflow too where the instance activates one (2.x runs it only while it is active;
    1.x refuses to activate it and runs it anyway)."""
    if is_error_workflow(export):
        return error_workflows
    for node in export.get("nodes") or []:
        kind = node.get("type") or ""
        if node.get("disabled") or kind in PASSIVE_TRIGGERS:
            continue
        if kind.endswith("Trigger") or kind.endswith(".webhook"):
            return True
    return False


def write_body(export: dict, workflow_ids: dict[str, str], credential_ids: dict[tuple[str, str], str]) -> dict:
    """What POST/PUT /workflows accept: the four fields, the node fields and settings the API
    knows, the error workflow by its id in the target, credential ids known in the target
    (otherwise the placeholder, which n8n resolves by name when it saves)."""
    export = normalize(export)
    nodes = []
    for node in export["nodes"]:
        node = dict(node)
        if node.get("credentials"):
            node["credentials"] = {kind: {"id": credential_ids.get((kind, ref["name"]), ref["id"]), "name": ref["name"]}
                                   for kind, ref in node["credentials"].items()}
        nodes.append(node)
    settings = _ordered(export["settings"], SETTINGS_ORDER, allowed=True)
    error_workflow = settings.get("errorWorkflow")
    if error_workflow:
        if error_workflow not in workflow_ids:
            raise PlanError(f"its error workflow {error_workflow!r} is not in the target (push it first)")
        settings["errorWorkflow"] = workflow_ids[error_workflow]
    return {"name": export["name"], "nodes": nodes, "connections": export["connections"], "settings": settings}


def unresolved_credentials(sent: dict, saved: dict) -> list[str]:
    """Credentials n8n could not resolve by name: the saved node still carries the placeholder."""
    saved_nodes = {node.get("name"): node for node in saved.get("nodes") or []}
    missing = set()
    for node in sent["nodes"]:
        for kind, ref in (node.get("credentials") or {}).items():
            stored = ((saved_nodes.get(node["name"]) or {}).get("credentials") or {}).get(kind) or {}
            if ref["id"] == credential_placeholder(ref["name"]) and stored.get("id") in (None, ref["id"]):
                missing.add(f"{ref['name']!r} ({kind})")
    return sorted(missing)


# ============================================================================================
# Comparing an export with the instance
# ============================================================================================

class PlanError(Exception):
    """This workflow cannot be pushed as it is (the message says why)."""


@dataclasses.dataclass
class Plan:
    """What push would do for one export."""

    name: str
    remote: dict | None  # the instance's workflow, None when it is to be created
    changes: list[str]  # content changes, one line each
    activation: bool | None  # True activate, False deactivate, None leave
    tag: bool  # the managed tag is to be added
    notes: list[str] = dataclasses.field(default_factory=list)  # what push cannot change

    @property
    def action(self) -> str:
        if self.remote is None:
            return "create"
        return "update" if self.changes else "unchanged"

    @property
    def in_step(self) -> bool:
        return self.action == "unchanged" and self.activation is None and not self.tag and not self.notes

    def describe(self) -> list[str]:
        lines = list(self.changes)
        if self.activation is not None:
            lines.append("activate" if self.activation else "deactivate")
        if self.tag:
            lines.append(f"tag {MANAGED_TAG!r}")
        return lines + [f"note: {note}" for note in self.notes]


def compare(export: dict, remote: dict | None, workflow_names: dict[str, str]) -> list[str]:
    """Node-level differences between an export and the instance's copy (empty: in step)."""
    wanted = normalize(export)
    if remote is None:
        return [f"create ({len(wanted['nodes'])} nodes)"]
    have = normalize(remote, workflow_names)
    changes = []
    wanted_nodes = {node.get("name"): node for node in wanted["nodes"]}
    have_nodes = {node.get("name"): node for node in have["nodes"]}
    for name in wanted_nodes:
        if name not in have_nodes:
            changes.append(f"node added: {name}")
        elif wanted_nodes[name] != have_nodes[name]:
            fields = sorted(key for key in set(wanted_nodes[name]) | set(have_nodes[name])
                            if wanted_nodes[name].get(key) != have_nodes[name].get(key))
            changes.append(f"node changed: {name} ({', '.join(fields)})")
    changes += [f"node removed: {name}" for name in have_nodes if name not in wanted_nodes]
    for node in remote.get("nodes") or []:  # saved before its credential existed in n8n
        for kind, ref in (node.get("credentials") or {}).items():
            if ref.get("id") in (None, credential_placeholder(ref.get("name") or "")):
                changes.append(f"credential not resolved in n8n: {ref.get('name')!r} ({kind}) in {node.get('name')}")
    if not changes and list(wanted_nodes) != list(have_nodes):
        changes.append("node order changed")
    sources = sorted(source for source in set(wanted["connections"]) | set(have["connections"])
                     if wanted["connections"].get(source) != have["connections"].get(source))
    if sources:
        changes.append(f"connections changed from: {', '.join(sources)}")
    for key in SETTINGS_ORDER:
        if key in wanted["settings"] and wanted["settings"][key] != have["settings"].get(key):
            changes.append(f"setting {key}: {json.dumps(have['settings'].get(key))} -> "
                           f"{json.dumps(wanted['settings'][key])}")
    return changes


def plan(export: dict, remote: dict | None, workflow_names: dict[str, str], error_workflows: bool = True) -> Plan:
    """What push would do for one export. error_workflows: the instance activates error
    workflows (2.x)."""
    changes = compare(export, remote, workflow_names)
    if remote is None:
        return Plan(export["name"], None, changes, True if should_be_active(export, error_workflows) else None, True)
    wanted, have = normalize(export), normalize(remote, workflow_names)
    notes = [f"setting {key} is set in n8n but not in the export; the public API cannot remove a setting"
             for key in have["settings"] if key not in wanted["settings"]]
    notes += [f"setting {key} is not accepted by the public API" for key in wanted["settings"]
              if key not in SETTINGS_ORDER]
    active = should_be_active(export, error_workflows)
    activation = None if bool(remote.get("active")) == active else active
    tag = MANAGED_TAG not in {tag.get("name") for tag in remote.get("tags") or []}
    return Plan(export["name"], remote, changes, activation, tag, notes)


def unified_diff(export: dict, remote: dict | None, workflow_names: dict[str, str], file: str) -> str:
    """The text difference between the export and what pull would write for the instance."""
    ours = render(normalize(export)).splitlines(keepends=True)
    theirs = render(normalize(remote, workflow_names)).splitlines(keepends=True) if remote else []
    return "".join(difflib.unified_diff(theirs, ours, f"n8n/{file}", f"repo/{file}"))


# ============================================================================================
# The repository and the instance, side by side
# ============================================================================================

def structure_problem(workflow: Any) -> str | None:
    """What in a workflow's structure the sync cannot work with (an export, or one n8n lists);
    None when nothing. nodes, connections and settings may be left out."""
    if not isinstance(workflow, dict):
        return "not a JSON object"
    if not isinstance(workflow.get("name"), str) or not workflow["name"].strip():
        return "no workflow name (a non-empty string)"
    nodes = _present(workflow, "nodes", [])
    if not isinstance(nodes, list):
        return "nodes is not a list"
    seen = set()
    for index, node in enumerate(nodes):
        if not isinstance(node, dict):
            return f"node {index} is not an object"
        for key in ("name", "type"):
            if not isinstance(node.get(key), str) or not node[key]:
                return f"node {index} has no {key} (a non-empty string)"
        if node["name"] in seen:
            return f"two nodes are named {node['name']!r}"
        seen.add(node["name"])
        credentials = _present(node, "credentials", {})
        if not isinstance(credentials, dict) or not all(isinstance(ref, dict) for ref in credentials.values()):
            return f"node {node['name']!r}: credentials is not an object of {{\"id\", \"name\"}} objects"
    connections = _present(workflow, "connections", {})
    if not isinstance(connections, dict) or not all(isinstance(outputs, dict) for outputs in connections.values()):
        return "connections is not an object of objects (source node -> output kind -> ...)"
    if not isinstance(_present(workflow, "settings", {}), dict):
        return "settings is not an object"
    return None


def _present(mapping: dict, key: str, default: Any) -> Any:
    """mapping[key], or the default when it is missing or null (an empty value of another type is a problem)."""
    value = mapping.get(key)
    return default if value is None else value


def exports_directory_problem(directory: Path) -> str | None:
    """Why a directory cannot be the exports to push or compare; None when it holds some."""
    if not directory.exists():
        return f"{directory} does not exist"
    if not directory.is_dir():
        return f"{directory} is not a directory"
    if not any(directory.glob("*.json")):
        return f"{directory} holds no export (*.json)"
    return None


def load_exports(directory: Path) -> dict[str, tuple[str, dict]]:
    """name -> (file name, export) of every *.json in the directory; PlanError when the directory
    holds none (push would take that as "delete everything") or an export is malformed."""
    problem = exports_directory_problem(directory)
    if problem:
        raise PlanError(f"{problem}: give the exports' directory with --dir (default n8n_workflows/)")
    found: dict[str, tuple[str, dict]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            export = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:  # UnicodeDecodeError included
            raise PlanError(f"{path.name} is not valid JSON: {error}") from None
        problem = structure_problem(export)
        if problem:
            raise PlanError(f"{path.name}: {problem}")
        name = export["name"]
        if name in found:
            raise PlanError(f"{path.name} and {found[name][0]} both define {name!r}")
        found[name] = (path.name, export)
    return found


def select(names: list[str], only: list[str] | None, files: dict[str, str]) -> list[str]:
    """Names limited by --only (a workflow name, or an export's file name with or without .json)."""
    if not only:
        return names
    by_file = {file: name for name, file in files.items()}
    chosen = []
    for wanted in only:
        name = wanted if wanted in names else by_file.get(wanted) or by_file.get(f"{wanted}.json")
        if name is None:
            raise PlanError(f"--only {wanted!r}: no such workflow")
        if name not in chosen:
            chosen.append(name)
    return chosen


class Instance:
    """The instance's workflows, read once: by name, plus the ids and credentials they reveal."""

    def __init__(self, client: N8nClient):
        # 2.x runs an error workflow only while it is active; 1.x refuses to activate one.
        # Unknown: try, and take a refusal as 1.x's.
        self.activates_error_workflows = client.server_line() != 1
        self.by_name: dict[str, dict] = {}
        self.duplicates: set[str] = set()
        for workflow in client.workflows():
            if workflow.get("isArchived"):
                continue
            problem = structure_problem(workflow) or (None if "id" in workflow else "no id")
            if problem:
                label = f"id {workflow['id']}" if "id" in workflow else repr(workflow.get("name"))
                raise N8nApiError(f"GET /workflows: n8n listed a workflow ({label}) the sync cannot read: {problem}")
            if workflow["name"] in self.by_name:
                self.duplicates.add(workflow["name"])
            self.by_name[workflow["name"]] = workflow

    @property
    def names_by_id(self) -> dict[str, str]:
        return {str(w["id"]): name for name, w in self.by_name.items()}

    @property
    def ids_by_name(self) -> dict[str, str]:
        return {name: str(w["id"]) for name, w in self.by_name.items()}

    def credential_ids(self) -> dict[tuple[str, str], str]:
        """(type, name) -> id, from the credentials the instance's workflows use; a name used
        with two different ids is left out (n8n then decides by name)."""
        seen: dict[tuple[str, str], set[str]] = {}
        for workflow in self.by_name.values():
            for node in workflow.get("nodes") or []:
                for kind, ref in (node.get("credentials") or {}).items():
                    if ref.get("id") and ref.get("name") and ref["id"] != credential_placeholder(ref["name"]):
                        seen.setdefault((kind, ref["name"]), set()).add(str(ref["id"]))
        return {key: ids.pop() for key, ids in seen.items() if len(ids) == 1}

    def managed(self) -> list[str]:
        return [name for name, w in self.by_name.items()
                if MANAGED_TAG in {tag.get("name") for tag in w.get("tags") or []}]


def push_order(exports: dict[str, tuple[str, dict]], names: list[str]) -> list[str]:
    """Error workflows first (the others name them), then by file name."""
    error_workflows = {(export.get("settings") or {}).get("errorWorkflow") for _, export in exports.values()}
    return sorted(names, key=lambda name: (name not in error_workflows, exports[name][0]))


@dataclasses.dataclass
class Report:
    """What a run did, workflow by workflow, for the summary and the exit code."""

    applied: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # not attempted, and why

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped

    def summary(self, verb: str = "applied") -> list[str]:
        lines = [f"{verb}: {len(self.applied)}, unchanged: {len(self.unchanged)}, failed: {len(self.failed)}, "
                 f"not attempted: {len(self.skipped)}"]
        lines += [f"  {verb}: {name} ({what})" for name, what in self.applied]
        lines += [f"  unchanged: {name}" for name in self.unchanged]
        lines += [f"  FAILED: {name}: {why}" for name, why in self.failed]
        lines += [f"  not attempted: {name}: {why}" for name, why in self.skipped]
        return lines


Say = Callable[[str], None]


class Sync:
    """push / pull / diff / status against one instance."""

    def __init__(self, client: N8nClient, directory: Path, say: Say = print):
        self.client, self.directory, self.say = client, directory, say

    # ---- push --------------------------------------------------------------------------------
    def push(self, only: list[str] | None = None, dry_run: bool = False, prune: bool = False,
             confirm: Callable[[str], bool] | None = None) -> Report:
        exports = load_exports(self.directory)
        names = push_order(exports, select(list(exports), only, {n: f for n, (f, _) in exports.items()}))
        instance = Instance(self.client)
        credential_ids = instance.credential_ids()
        report = Report()
        tag_id = None
        available = set(instance.by_name)  # what an error workflow setting can name (dry run)
        for index, name in enumerate(names, 1):
            file, export = exports[name]
            prefix = f"[{index}/{len(names)}] {name} ({file})"
            if name in instance.duplicates:
                report.failed.append((name, "several workflows in n8n have this name; rename or remove all but one"))
                self.say(f"{prefix}: FAILED: several workflows in n8n have this name")
                continue
            remote = instance.by_name.get(name)
            workflow_plan = plan(export, remote, instance.names_by_id, instance.activates_error_workflows)
            self.say(f"{prefix}: {self._headline(workflow_plan)}")
            for line in workflow_plan.describe():
                self.say(f"    {line}")
            if dry_run:
                error_workflow = (export.get("settings") or {}).get("errorWorkflow")
                if workflow_plan.changes and error_workflow and error_workflow not in available:
                    report.failed.append((name, f"its error workflow {error_workflow!r} is not in the target "
                                                "and not pushed before it"))
                    self.say(f"    would FAIL: its error workflow {error_workflow!r} is not in the target")
                elif workflow_plan.in_step:
                    report.unchanged.append(name)
                else:
                    report.applied.append((name, "would " + self._headline(workflow_plan)))
                available.add(name)
                continue
            done: list[str] = []
            try:
                body = None
                if workflow_plan.action != "unchanged":
                    body = write_body(export, instance.ids_by_name, credential_ids)
                    if remote is None:
                        remote = self.client.create_workflow(body)
                        done.append(f"created as {remote['id']}")
                    else:
                        remote = {**remote, **self.client.update_workflow(remote["id"], body)}
                        done.append("updated")
                    instance.by_name[name] = remote
                if workflow_plan.tag:
                    tag_id = tag_id or self._managed_tag_id()
                    current = [str(tag["id"]) for tag in remote.get("tags") or []]
                    self.client.set_workflow_tags(remote["id"], current + [tag_id])
                    done.append("tagged")
                missing = unresolved_credentials(body, remote) if body else []
                if missing:
                    raise PlanError(f"these credentials are not in n8n (or not unique by name): {', '.join(missing)}; "
                                    "create them and push again (not activated)")
                if workflow_plan.activation is True:
                    try:
                        self.client.activate(remote["id"])
                        done.append("activated")
                    except N8nApiError as error:
                        if not (error.status == 400 and is_error_workflow(export)):
                            raise
                        done.append("left inactive: this n8n (1.x) runs error workflows without activating them")
                elif workflow_plan.activation is False:
                    self.client.deactivate(remote["id"])
                    done.append("deactivated")
            except (N8nApiError, PlanError) as error:
                why = f"{error} (already applied: {', '.join(done)})" if done else str(error)
                report.failed.append((name, why))
                self.say(f"    FAILED: {why}")
                if isinstance(error, AuthError):
                    for rest in names[index:]:
                        report.skipped.append((rest, "stopped: n8n refused the API key"))
                    break
                continue
            if done:
                report.applied.append((name, ", ".join(done)))
            else:
                report.unchanged.append(name)
        if prune and not report.skipped:
            self._prune(exports, instance, dry_run, confirm, report)
        return report

    @staticmethod
    def _headline(workflow_plan: Plan) -> str:
        if workflow_plan.action == "create":
            return "create"
        if workflow_plan.in_step:
            return "in step"
        parts = []
        if workflow_plan.changes:
            parts.append(f"update ({len(workflow_plan.changes)} change(s))")
        if workflow_plan.activation is not None:
            parts.append("activate" if workflow_plan.activation else "deactivate")
        if workflow_plan.tag:
            parts.append("tag")
        return ", ".join(parts) or "differs in what push cannot change"

    def _managed_tag_id(self) -> str:
        for tag in self.client.tags():
            if tag.get("name") == MANAGED_TAG:
                return str(tag["id"])
        try:
            return str(self.client.create_tag(MANAGED_TAG)["id"])
        except N8nApiError as error:
            if error.status != 409:  # created meanwhile by someone else
                raise
        for tag in self.client.tags():
            if tag.get("name") == MANAGED_TAG:
                return str(tag["id"])
        raise N8nApiError(f"the tag {MANAGED_TAG!r} exists but could not be read")

    def _prune(self, exports, instance: Instance, dry_run: bool, confirm, report: Report) -> None:
        if not exports:  # every managed workflow would go
            report.failed.append(("prune", "refused: no export was loaded, so every managed workflow would go"))
            return
        stale = [name for name in instance.managed() if name not in exports]
        if not stale:
            self.say("prune: no workflow tagged as managed by this repository lacks an export")
            return
        self.say(f"prune: tagged {MANAGED_TAG!r} in n8n without an export: {', '.join(stale)}")
        if dry_run:
            report.applied += [(name, "would deactivate and delete") for name in stale]
            return
        if confirm is None or not confirm(f"Deactivate and delete {len(stale)} workflow(s) from n8n?"):
            report.skipped += [(name, "prune not confirmed (--yes confirms without asking)") for name in stale]
            return
        for name in stale:
            workflow = instance.by_name[name]
            try:
                if workflow.get("active"):
                    self.client.deactivate(workflow["id"])
                self._delete_once_unpublished(workflow["id"])
            except N8nApiError as error:
                report.failed.append((name, f"prune: {error}"))
                self.say(f"prune: {name}: FAILED: {error}")
                continue
            report.applied.append((name, "deactivated and deleted"))
            self.say(f"prune: {name}: deleted")

    def _delete_once_unpublished(self, workflow_id: str, attempts: int = 20) -> None:
        """Delete; n8n 2.x answers 409 "still being unpublished" for a moment after a deactivation."""
        for attempt in range(1, attempts + 1):
            try:
                self.client.delete_workflow(workflow_id)
                return
            except N8nApiError as error:
                if error.status != 409 or attempt == attempts:
                    raise
                time.sleep(0.25)

    # ---- pull --------------------------------------------------------------------------------
    def pull(self, only: list[str] | None = None) -> Report:
        if self.directory.exists() and not self.directory.is_dir():
            raise PlanError(f"{self.directory} is not a directory: give the exports' directory with --dir")
        exports = load_exports(self.directory) if any(self.directory.glob("*.json")) else {}
        instance = Instance(self.client)
        files = {name: file for name, (file, _) in exports.items()}
        if only:
            names = select(sorted(set(instance.by_name) | set(exports)), only, files)
        else:
            names = [name for name in sorted(instance.by_name) if name in exports or name in instance.managed()]
        report = Report()
        self.directory.mkdir(parents=True, exist_ok=True)
        for index, name in enumerate(names, 1):
            file = files.get(name) or export_filename(name)
            prefix = f"[{index}/{len(names)}] {name} ({file})"
            if name in instance.duplicates:
                report.failed.append((name, "several workflows in n8n have this name"))
                self.say(f"{prefix}: FAILED: several workflows in n8n have this name")
                continue
            remote = instance.by_name.get(name)
            if remote is None:
                report.skipped.append((name, "not in n8n; the export is left alone"))
                self.say(f"{prefix}: not in n8n, left alone")
                continue
            text = render(normalize(remote, instance.names_by_id))
            path = self.directory / file
            if path.exists() and path.read_text() == text:
                report.unchanged.append(name)
                self.say(f"{prefix}: unchanged")
                continue
            path.write_text(text)
            report.applied.append((name, f"wrote {file}"))
            self.say(f"{prefix}: wrote {file}")
        if not only:
            for name in sorted(set(exports) - set(instance.by_name)):
                self.say(f"{name} ({files[name]}): not in n8n, left alone")
        return report

    # ---- diff and status ---------------------------------------------------------------------
    def drift(self, only: list[str] | None = None) -> list[dict]:
        """One row per workflow of the repository and per managed workflow of the instance."""
        exports = load_exports(self.directory)
        instance = Instance(self.client)
        files = {name: file for name, (file, _) in exports.items()}
        names = select(sorted(set(exports) | set(instance.managed())), only, files)
        rows = []
        for name in names:
            remote = instance.by_name.get(name)
            row = {"name": name, "file": files.get(name), "remote": remote,
                   "active": None if remote is None else bool(remote.get("active")),
                   "updatedAt": (remote or {}).get("updatedAt")}
            if name in instance.duplicates:
                row["drift"] = ["several workflows in n8n have this name"]
            elif name not in exports:
                row["drift"] = ["only in n8n (tagged as managed by this repository)"]
            elif remote is None:
                row["drift"] = ["only in the repository"]
            else:
                row["plan"] = plan(exports[name][1], remote, instance.names_by_id,
                                   instance.activates_error_workflows)
                row["drift"] = row["plan"].describe()
                row["diff"] = unified_diff(exports[name][1], remote, instance.names_by_id, files[name])
            rows.append(row)
        return rows


def status_table(rows: list[dict]) -> list[str]:
    header = ("WORKFLOW", "FILE", "ACTIVE", "LAST UPDATE", "DRIFT")
    table = [header]
    for row in rows:
        active = "-" if row["active"] is None else ("yes" if row["active"] else "no")
        drift = row["drift"]
        table.append((row["name"], row["file"] or "-", active, row["updatedAt"] or "-",
                      "in step" if not drift else f"{len(drift)}: " + "; ".join(drift)[:120]))
    widths = [max(len(str(line[column])) for line in table) for column in range(len(header) - 1)]
    return ["  ".join(str(value).ljust(width) for value, width in zip(line, widths)) + "  " + line[-1]
            for line in table]
