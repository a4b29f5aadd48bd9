"""The three n8n credentials the workflow exports reference by name, created in a local n8n
where they are missing (the exports never carry secrets; see n8n_workflows/README.md).

    ensure(instance, trigger_token=..., error_token=...) -> {name: id}

`instance` is an n8n_local.N8nInstance. n8n's public API cannot list credentials (GET
/api/v1/credentials answers 405 in n8n 1.x), so the ids created here are recorded in the
instance's data directory (credentials.json) and a second run creates nothing; where the API
does list them, the list is used instead. Nodes find their credentials by name on import (an
unknown id in a node is looked up by name and type). Their values must match the service's N8N_WEBHOOK_TOKEN and N8N_ERROR_WEBHOOK_TOKEN,
which is why the local system keeps its tokens in its state directory.
"""
from __future__ import annotations

import json
from typing import Any

TRIGGER_CREDENTIAL = "Rexera trigger token"
ERROR_CREDENTIAL = "Rexera error token"
API_CREDENTIAL = "Rexera n8n API"


class CredentialError(RuntimeError):
    pass


def _call(instance, method: str, path: str, body: Any = None, expect=(200,)):
    status, answer = instance.request(method, path, body)
    if status not in expect:
        raise CredentialError(f"n8n {method} {path} answered {status}: {json.dumps(answer)[:500]}")
    return answer


def record_path(instance):
    return instance.data_dir / "credentials.json"


def existing(instance) -> dict[str, str]:
    """name -> id of the credentials known to be in n8n: listed by the API where it can, else
    those this module recorded when it created them."""
    found: dict[str, str] = {}
    cursor = None
    while True:
        status, answer = instance.request("GET", "/api/v1/credentials?limit=100" + (f"&cursor={cursor}" if cursor else ""))
        if status == 405:  # not listable: what we created
            path = record_path(instance)
            return json.loads(path.read_text()) if path.exists() else {}
        if status != 200:
            raise CredentialError(f"n8n GET /api/v1/credentials answered {status}: {json.dumps(answer)[:500]}")
        for credential in answer.get("data") or []:
            found.setdefault(credential["name"], str(credential["id"]))
        cursor = answer.get("nextCursor")
        if not cursor:
            return found


def wanted(instance, trigger_token: str, error_token: str) -> dict[str, tuple[str, dict]]:
    return {
        TRIGGER_CREDENTIAL: ("httpHeaderAuth", {"name": "X-Rexera-Token", "value": trigger_token}),
        ERROR_CREDENTIAL: ("httpHeaderAuth", {"name": "X-N8N-Error-Token", "value": error_token}),
        API_CREDENTIAL: ("n8nApi", {"apiKey": instance.api_key, "baseUrl": f"{instance.base_url}/api/v1"}),
    }


def create(instance, name: str, kind: str, data: dict) -> str:
    """One credential; fields the type requires that were not given take their schema default."""
    schema = _call(instance, "GET", f"/api/v1/credentials/schema/{kind}")
    data = dict(data)
    for field in schema.get("required", []):
        if field not in data:
            default = (schema.get("properties", {}).get(field) or {}).get("default")
            if default is not None:
                data[field] = default
    return str(_call(instance, "POST", "/api/v1/credentials", {"name": name, "type": kind, "data": data})["id"])


def ensure(instance, *, trigger_token: str, error_token: str) -> dict[str, str]:
    have = existing(instance)
    ids = {}
    for name, (kind, data) in wanted(instance, trigger_token, error_token).items():
        ids[name] = have[name] if name in have else create(instance, name, kind, data)
    record_path(instance).write_text(json.dumps(ids, indent=2) + "\n")
    return ids
