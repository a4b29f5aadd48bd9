"""Static checks of the n8n workflow exports (n8n_workflows/*.json by default).

    python scripts/validate_workflows.py [files...]

Prints one finding per line, `file: node: problem` (node `-` for the workflow as a whole), and
exits 1 if there is any, 0 otherwise (2 on bad usage: an unknown option, a directory or
a file that does not exist). File-based only: the task plans come
from supabase/seed.sql, the shared code from the shared/ folder next to the files (or
n8n_workflows/shared/ when there is none), nothing is queried.

Checks
  * JSON object with exactly the keys the public API accepts (name, nodes, connections,
    settings); nodes with unique names, a type, a version, a position and parameters;
  * node types and versions from the allowed list (ALLOWED_NODES: versions that n8n 1.123, the
    oldest supported, knows), and none that n8n 2.x disables by default (Execute Command, Local
    File Trigger);
  * what n8n Cloud cannot run: a Code node that loads a module (require, import: 2.x allows none,
    crypto included) and any $env (no environment of ours there);
  * connections name existing nodes and outputs; every node is reachable from the trigger;
  * every agent call (HTTP Request to .../agents/<name>) has a timeout, retryOnFail,
    maxTries >= 2 and a connected error output (onError continueErrorOutput);
  * every other HTTP Request node has a timeout;
  * settings.executionOrder is v1 and settings.errorWorkflow is set (except the error handler);
  * every task key of the workflow type's seeded plan has a task.started / task.completed (or
    task.skipped / task.waiting) callback, built in a Set node (signed by the Crypto node after it)
    or in a Code node (signed there);
  * credentials are referenced by a placeholder id and a name;
  * no literal secrets (whsec_, Bearer, long base64 or hex strings) and no literal hosts
    (http:// or https:// URLs, IP addresses, localhost) anywhere in the export;
  * the shared code (scripts/workflow_shared.py): every marked block of a Code node equals its
    file in shared/ (an edit made inside one in the editor is named, with where to make it
    instead), markers are closed, and a node calling a shared function carries its block.
"""
from __future__ import annotations

import json
import re
import sys
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workflow_shared  # noqa: E402  (scripts/ is not a package)

REPO_ROOT = Path(__file__).resolve().parent.parent
SEED = REPO_ROOT / "supabase" / "seed.sql"
DEFAULT_DIR = REPO_ROOT / "n8n_workflows"

ALLOWED_KEYS = {"name", "nodes", "connections", "settings"}
ALLOWED_NODES = {
    "n8n-nodes-base.webhook": {2.1},
    "n8n-nodes-base.respondToWebhook": {1.1},
    "n8n-nodes-base.code": {2},
    "n8n-nodes-base.set": {3.4},
    "n8n-nodes-base.crypto": {1},
    "n8n-nodes-base.httpRequest": {4.2},
    "n8n-nodes-base.if": {2.2},
    "n8n-nodes-base.switch": {3.2},
    "n8n-nodes-base.wait": {1.1},
    "n8n-nodes-base.merge": {3},
    "n8n-nodes-base.splitOut": {1},
    "n8n-nodes-base.aggregate": {1},
    "n8n-nodes-base.stopAndError": {1},
    "n8n-nodes-base.errorTrigger": {1},
    "n8n-nodes-base.n8n": {1},
}
# Nodes n8n 2.x ships disabled (NODES_EXCLUDE), so n8n Cloud cannot run them.
DISABLED_BY_DEFAULT = {"n8n-nodes-base.executeCommand", "n8n-nodes-base.localFileTrigger"}
# require('x'), require ("x"), import x from 'y', import('y'): a Code node loading a module.
MODULE_USE = re.compile(r"\brequire\s*\(|^\s*import\b|\bimport\s*\(", re.M)
TRIGGER_TYPES = {"n8n-nodes-base.webhook", "n8n-nodes-base.errorTrigger"}
# The trigger webhook path of each workflow type (app/n8n/dispatcher.py TRIGGER_PATHS).
TRIGGER_PATHS = {
    "rexera/muni-lien-search": "MUNI_LIEN_SEARCH",
    "rexera/hoa-acquisition": "HOA_ACQUISITION",
    "rexera/payoff-request": "PAYOFF_REQUEST",
}
START_EVENTS = ("task.started", "task.waiting", "task.skipped")
END_EVENTS = ("task.completed", "task.skipped")

SECRET_PATTERNS = [
    (re.compile(r"whsec_", re.I), "a literal whsec_ secret"),
    (re.compile(r"Bearer\s+[A-Za-z0-9._~+/=-]+"), "a literal Bearer token"),
    (re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{40,}={0,2}(?![A-Za-z0-9+/=])"), "a long base64 string (secret?)"),
    (re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{32,}(?![0-9A-Fa-f])"), "a long hex string (secret?)"),
]
HOST_PATTERNS = [
    (re.compile(r"https?://", re.I), "a literal http(s) URL"),
    (re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])"), "a literal IP address"),
    (re.compile(r"localhost", re.I), "a literal localhost"),
]


def seeded_plans(seed: Path = SEED) -> dict[str, list[str]]:
    """{workflow type: [task keys]} from the `plan` values of supabase/seed.sql."""
    plans: dict[str, list[str]] = {}
    for match in re.finditer(r"\(\s*'([A-Z_]+)',\s*\d+,\s*'([a-z_]+)'", seed.read_text()):
        plans.setdefault(match.group(1), []).append(match.group(2))
    return plans


def _strings(value, path=""):
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from _strings(key, path)
            yield from _strings(child, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _strings(child, f"{path}[{index}]")


def _is_agent_call(node: dict) -> bool:
    url = str(node.get("parameters", {}).get("url", ""))
    return node.get("type") == "n8n-nodes-base.httpRequest" and "/agents/" in url


def validate(workflow, plans: dict[str, list[str]] | None = None) -> list[tuple[str, str]]:
    """[(node or '-', problem)] for one parsed export."""
    problems: list[tuple[str, str]] = []
    if not isinstance(workflow, dict):
        return [("-", "the export is not a JSON object")]
    extra = sorted(set(workflow) - ALLOWED_KEYS)
    missing = sorted(ALLOWED_KEYS - set(workflow))
    if extra:
        problems.append(("-", f"top-level keys the public API refuses: {', '.join(extra)}"))
    if missing:
        problems.append(("-", f"missing top-level keys: {', '.join(missing)}"))
    if not isinstance(workflow.get("name"), str) or not workflow.get("name"):
        problems.append(("-", "name must be a non-empty string"))
    nodes = workflow.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        return problems + [("-", "nodes must be a non-empty list")]
    by_name: dict[str, dict] = {}
    for index, node in enumerate(nodes):
        label = node.get("name") if isinstance(node, dict) and isinstance(node.get("name"), str) else f"#{index}"
        if not isinstance(node, dict):
            problems.append((label, "node is not an object"))
            continue
        for key, kind in (("name", str), ("type", str), ("parameters", dict), ("position", list)):
            if not isinstance(node.get(key), kind):
                problems.append((label, f"node has no valid {key}"))
        if not isinstance(node.get("typeVersion"), (int, float)):
            problems.append((label, "node has no typeVersion"))
        if label in by_name:
            problems.append((label, "duplicate node name"))
        by_name[label] = node
        allowed = ALLOWED_NODES.get(node.get("type"))
        if node.get("type") in DISABLED_BY_DEFAULT:
            problems.append((label, f"node type {node.get('type')} is disabled by default in n8n 2.x (n8n Cloud)"))
        elif allowed is None:
            problems.append((label, f"node type {node.get('type')} is not allowed"))
        elif node.get("typeVersion") not in allowed:
            problems.append((label, f"{node.get('type')} version {node.get('typeVersion')} is not allowed "
                                    f"({', '.join(str(v) for v in sorted(allowed))})"))
        code = (node.get("parameters") or {}).get("jsCode") if isinstance(node.get("parameters"), dict) else None
        if isinstance(code, str) and MODULE_USE.search(code):
            problems.append((label, "the Code node loads a module (require or import): n8n 2.x, as on n8n Cloud, "
                                    "allows none"))
        if "$env" in json.dumps(node):
            problems.append((label, "reads $env: n8n Cloud has no environment of ours (use credentials)"))
        for credential_type, reference in (node.get("credentials") or {}).items():
            if not isinstance(reference, dict) or not reference.get("id") or not reference.get("name"):
                problems.append((label, f"credential {credential_type} needs a placeholder id and a name"))

    # Connections.
    graph: dict[str, list[str]] = {name: [] for name in by_name}
    connected_outputs: dict[str, set[int]] = {name: set() for name in by_name}
    connections = workflow.get("connections")
    if not isinstance(connections, dict):
        problems.append(("-", "connections must be an object"))
        connections = {}
    for source, kinds in connections.items():
        if source not in by_name:
            problems.append((source, "connections name a source node that does not exist"))
            continue
        for outputs in (kinds or {}).values() if isinstance(kinds, dict) else []:
            for output_index, targets in enumerate(outputs or []):
                for target in targets or []:
                    name = target.get("node") if isinstance(target, dict) else None
                    if name not in by_name:
                        problems.append((source, f"connects to a node that does not exist: {name}"))
                        continue
                    graph[source].append(name)
                    connected_outputs[source].add(output_index)

    triggers = [name for name, node in by_name.items() if node.get("type") in TRIGGER_TYPES]
    if len(triggers) != 1:
        problems.append(("-", f"expected exactly one trigger node, found {len(triggers)}"))
    if triggers:
        seen = {triggers[0]}
        queue = deque(triggers[:1])
        while queue:
            for target in graph.get(queue.popleft(), []):
                if target not in seen:
                    seen.add(target)
                    queue.append(target)
        for name in by_name:
            if name not in seen:
                problems.append((name, "not reachable from the trigger"))

    # HTTP nodes.
    for name, node in by_name.items():
        if node.get("type") != "n8n-nodes-base.httpRequest":
            continue
        options = node.get("parameters", {}).get("options") or {}
        if not options.get("timeout"):
            problems.append((name, "HTTP request without options.timeout"))
        if not _is_agent_call(node):
            continue
        if node.get("retryOnFail") is not True:
            problems.append((name, "agent call without retryOnFail"))
        if not isinstance(node.get("maxTries"), int) or node["maxTries"] < 2:
            problems.append((name, "agent call with maxTries below 2"))
        if node.get("onError") != "continueErrorOutput":
            problems.append((name, "agent call without an error output (onError continueErrorOutput)"))
        elif 1 not in connected_outputs.get(name, set()):
            problems.append((name, "agent call whose error output is not connected"))

    # Settings.
    settings = workflow.get("settings")
    is_error_handler = any(node.get("type") == "n8n-nodes-base.errorTrigger" for node in by_name.values())
    if not isinstance(settings, dict):
        problems.append(("-", "settings must be an object"))
    else:
        if settings.get("executionOrder") != "v1":
            problems.append(("-", "settings.executionOrder must be v1"))
        if not is_error_handler and not settings.get("errorWorkflow"):
            problems.append(("-", "settings.errorWorkflow is not set"))

    # The seeded task plan: every key reported.
    paths = [node.get("parameters", {}).get("path") for node in by_name.values()
             if node.get("type") == "n8n-nodes-base.webhook"]
    workflow_type = next((TRIGGER_PATHS[path] for path in paths if path in TRIGGER_PATHS), None)
    if not is_error_handler and workflow_type is None:
        problems.append(("-", f"the trigger path is none of {', '.join(sorted(TRIGGER_PATHS))}"))
    if workflow_type:
        plans = seeded_plans() if plans is None else plans
        codes = [callback_text(node) for node in by_name.values()]
        for key in plans.get(workflow_type, []):
            literal = re.compile(r"""(['"])%s\1""" % re.escape(key))
            mentioning = [code for code in codes if literal.search(code)]
            if not any(f"'{event}'" in code for code in mentioning for event in START_EVENTS):
                problems.append(("-", f"task {key} of the {workflow_type} plan has no task.started/waiting/skipped callback"))
            if not any(f"'{event}'" in code for code in mentioning for event in END_EVENTS):
                problems.append(("-", f"task {key} of the {workflow_type} plan has no task.completed/skipped callback"))

    # Literal secrets and hosts.
    for name, node in by_name.items():
        for where, text in _strings(node):
            for pattern, what in SECRET_PATTERNS + HOST_PATTERNS:
                if pattern.search(text):
                    problems.append((name, f"{what} in {where or 'a key'}"))
    for where, text in _strings({key: value for key, value in workflow.items() if key != "nodes"}):
        for pattern, what in SECRET_PATTERNS + HOST_PATTERNS:
            if pattern.search(text):
                problems.append(("-", f"{what} in {where or 'a key'}"))
    return problems


def callback_text(node: dict) -> str:
    """What builds a node's callbacks: a Code node's JavaScript, a Set node's expressions."""
    parameters = node.get("parameters") or {}
    if node.get("type") == "n8n-nodes-base.code":
        return str(parameters.get("jsCode", ""))
    if node.get("type") == "n8n-nodes-base.set":
        assignments = (parameters.get("assignments") or {}).get("assignments") or []
        return "\n".join([str(parameters.get("jsonOutput", ""))]
                         + [str(a.get("value", "")) for a in assignments if isinstance(a, dict)])
    return ""


def shared_dir(path: Path) -> Path:
    """The shared code of an export: shared/ next to it, else the repository's."""
    beside = path.parent / "shared"
    return beside if beside.is_dir() else DEFAULT_DIR / "shared"


def validate_file(path: Path, plans: dict[str, list[str]] | None = None) -> list[tuple[str, str]]:
    try:
        workflow = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        return [("-", f"cannot read JSON: {error}")]
    try:
        shared = workflow_shared.load_shared(shared_dir(path))
    except (OSError, ValueError) as error:
        return validate(workflow, plans) + [("-", f"cannot read the shared code: {error}")]
    return validate(workflow, plans) + workflow_shared.check_workflow(workflow, shared,
                                                                      shared_dir(path).parent.resolve().name)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in args):
        print(__doc__)
        return 0
    for arg in args:
        problem = (f"unknown option {arg}" if arg.startswith("-") else
                   f"{arg} is a directory: name its exports ({arg.rstrip('/')}/*.json)" if Path(arg).is_dir() else
                   f"{arg} does not exist" if not Path(arg).exists() else None)
        if problem:
            print(f"validate_workflows.py: {problem} (see --help)", file=sys.stderr)
            return 2
    files = [Path(arg) for arg in args] or sorted(DEFAULT_DIR.glob("*.json"))
    if not files:
        print("validate_workflows.py: no exports found", file=sys.stderr)
        return 2
    plans = seeded_plans()
    findings = 0
    for path in files:
        for node, problem in validate_file(path, plans):
            print(f"{path}: {node}: {problem}")
            findings += 1
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
