"""Build the n8n workflow exports in n8n_workflows/ from a compact description of each workflow.

    python scripts/build_workflows.py            # (re)write the exports
    python scripts/build_workflows.py --check    # exit 1 if a committed export differs

Every business step is made of the same few shapes, so all agent steps look alike:

  agent step  "Start <key>" (Code: agent request + signed task.started) -> "Report ..." (HTTP)
              -> "<Agent>: <key>" (HTTP agent call, retry, error output)
              -> "<key> succeeded?" (IF on $json.success)
                 true  -> "Complete <key>" (signed task.completed) -> "Report ..." -> next step
                 false / error output -> "Fail <key>" (signed task.failed) -> "Report ..."
                        -> "Escalate <key>" (signed escalation) -> "Report ..." (the flow ends;
                           the service blocks the workflow), or a fallback step.
  wait step   "Wait for <key>" (signed task.waiting with $execution.resumeUrl) -> "Report ..."
              -> Wait node (resume by webhook POST, time limit) -> "<key> delivered?" (IF)
                 true -> "Complete <key>" -> "Report ..." -> next step
                 false (time limit) -> escalation -> back to the Wait node.

Callbacks are signed in Code nodes, with HMAC-SHA256 written in plain JavaScript (n8n 2.x, as on
n8n Cloud, allows no module in a Code node), with the workflow's signing key from the trigger
body, following app/webhooks/signing.py; the HTTP node sends the computed body byte for
byte. Node ids are uuid5 of the workflow and node names, positions come from the graph, so the
output is deterministic.
"""
from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections import deque
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "n8n_workflows"
NAMESPACE = uuid.UUID("7d0c5b8e-4f7a-4e7e-9a52-2f1f0b6c9a11")

TRIGGER = "Rexera trigger"
ERROR_HANDLER_NAME = "Rexera - Error handler"

# Credential placeholders (see n8n_workflows/README.md): replaced by real ids when imported.
CREDENTIALS = {
    "trigger": {"httpHeaderAuth": {"id": "rexera-trigger-token", "name": "Rexera trigger token"}},
    "error": {"httpHeaderAuth": {"id": "rexera-error-token", "name": "Rexera error token"}},
    "api": {"n8nApi": {"id": "rexera-n8n-api", "name": "Rexera n8n API"}},
}

AGENT_TIMEOUT_MS = 30000
AGENT_BUDGET_MS = 25000  # what the agent is told (timeout_ms), under the HTTP timeout

# SHA-256 and HMAC-SHA256 for the signing Code nodes (compacted into each of them).
HASHING = r"""// SHA-256 and HMAC-SHA256 in plain JavaScript: n8n 2.x (n8n Cloud) allows no module in a
// Code node, crypto included. Constants: the first 32 bits of the fractional parts of the
// square roots (H) and cube roots (K) of the first 8 and 64 primes (FIPS 180-4).
function sha256(bytes) {
  const H = [], K = [];
  for (let n = 2, found = 0; found < 64; n++) {
    let prime = true;
    for (let d = 2; d * d <= n; d++) if (n % d === 0) { prime = false; break; }
    if (!prime) continue;
    if (found < 8) H[found] = (Math.pow(n, 1 / 2) % 1) * 4294967296 | 0;
    K[found++] = (Math.pow(n, 1 / 3) % 1) * 4294967296 | 0;
  }
  const total = ((bytes.length + 72) >> 6) << 6;
  const data = new Uint8Array(total);
  data.set(bytes);
  data[bytes.length] = 0x80;
  const view = new DataView(data.buffer);
  view.setUint32(total - 8, Math.floor(bytes.length / 536870912));
  view.setUint32(total - 4, (bytes.length * 8) >>> 0);
  const w = new Int32Array(64);
  for (let offset = 0; offset < total; offset += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getInt32(offset + i * 4);
    for (let i = 16; i < 64; i++) {
      const x = w[i - 15], y = w[i - 2];
      w[i] = w[i - 16] + ((x >>> 7 | x << 25) ^ (x >>> 18 | x << 14) ^ (x >>> 3)) + w[i - 7]
        + ((y >>> 17 | y << 15) ^ (y >>> 19 | y << 13) ^ (y >>> 10)) | 0;
    }
    let [a, b, c, d, e, f, g, h] = H;
    for (let i = 0; i < 64; i++) {
      const t1 = h + ((e >>> 6 | e << 26) ^ (e >>> 11 | e << 21) ^ (e >>> 25 | e << 7)) + (e & f ^ ~e & g) + K[i] + w[i] | 0;
      const t2 = ((a >>> 2 | a << 30) ^ (a >>> 13 | a << 19) ^ (a >>> 22 | a << 10)) + (a & b ^ a & c ^ b & c) | 0;
      h = g; g = f; f = e; e = d + t1 | 0; d = c; c = b; b = a; a = t1 + t2 | 0;
    }
    [a, b, c, d, e, f, g, h].forEach((value, i) => { H[i] = H[i] + value | 0; });
  }
  const digest = new DataView(new ArrayBuffer(32));
  H.forEach((value, i) => digest.setInt32(i * 4, value));
  return new Uint8Array(digest.buffer);
}
function hmacSha256(key, bytes) {
  const block = new Uint8Array(64);
  block.set(key.length > 64 ? sha256(key) : key);
  const inner = new Uint8Array(64 + bytes.length), outer = new Uint8Array(96);
  for (let i = 0; i < 64; i++) { inner[i] = block[i] ^ 0x36; outer[i] = block[i] ^ 0x5c; }
  inner.set(bytes, 64);
  outer.set(sha256(inner), 64);
  return sha256(outer);
}
"""


def compact(source: str) -> str:
    """JavaScript with comments and indentation left out (it is repeated in every signing Code node)."""
    return "\n".join(line.strip() for line in source.splitlines() if line.strip() and not line.strip().startswith("//"))


# The shared JavaScript of every signing Code node.
PRELUDE = compact(HASHING) + "\n" + r"""const trigger = $('Rexera trigger').first().json.body;
function ran(name) {
  try {
    const node = $(name);
    return node.isExecuted ? node.first().json : undefined;
  } catch (error) {
    return undefined;
  }
}
function signed(type, data) {
  const full = Object.assign({ workflowId: trigger.workflowId, executionId: String($execution.id), attempt: 1 }, data);
  const body = JSON.stringify({ type, timestamp: new Date().toISOString(), data: full });
  let id = [trigger.workflowId, $execution.id, full.taskKey || 'workflow', type, full.attempt, $runIndex].join(':');
  if (id.length > 200) id = trigger.workflowId + ':' + Buffer.from(sha256(Buffer.from(id, 'utf8'))).toString('hex');
  const timestamp = Math.floor(Date.now() / 1000);
  const signature = Buffer.from(hmacSha256(Buffer.from(trigger.signingKey, 'base64'),
    Buffer.from(id + '.' + timestamp + '.' + body, 'utf8'))).toString('base64');
  return {
    url: trigger.callbackUrl,
    body,
    headers: { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': 'v1,' + signature },
  };
}
function failure(item) {
  let details = item.error_details || {};
  const error = item.error;
  const http = error && typeof error === 'object' && /^(\d{3}) - ([\s\S]*)$/.exec(String(error.message || ''));
  if (http) {
    try {
      let answer = JSON.parse(http[2]);
      if (typeof answer === 'string') answer = JSON.parse(answer);
      if (answer && answer.error_details) details = answer.error_details;
    } catch (ignored) {}
    if (details.error_message) details = Object.assign({}, details, { error_message: 'HTTP ' + http[1] + ': ' + details.error_message });
  }
  const message = details.error_message
    || (error && typeof error === 'object' ? (error.description || error.message) : error)
    || 'the agent failed without a message';
  return { message: String(message).slice(0, 1000), code: details.error_code || (error && error.httpCode) || null };
}
"""


def node_id(workflow: str, name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{workflow}/{name}"))


def js(value) -> str:
    return json.dumps(value)


class Flow:
    """One workflow under construction: nodes by name, connections, and the step shapes."""

    def __init__(self, name: str, slug: str):
        self.name = name
        self.slug = slug
        self.nodes: dict[str, dict] = {}
        self.connections: dict[str, dict[int, list[tuple[str, int]]]] = {}
        self.sources: dict[str, list[tuple[str, str]]] = {}  # taskKey -> [(node, field)] of its output

    # ---- primitives ------------------------------------------------------------------------
    def add(self, name: str, type_: str, version, parameters: dict, **extra) -> str:
        if name in self.nodes:
            raise ValueError(f"duplicate node name {name!r} in {self.name}")
        node = {"parameters": parameters, "id": node_id(self.name, name), "name": name, "type": type_,
                "typeVersion": version, "position": [0, 0]}
        node.update(extra)
        self.nodes[name] = node
        return name

    def link(self, source: str, target: str, output: int = 0, input_: int = 0) -> None:
        for name in (source, target):
            if name not in self.nodes:
                raise ValueError(f"no node {name!r} in {self.name}")
        self.connections.setdefault(source, {}).setdefault(output, []).append((target, input_))

    def chain(self, *names: str) -> str:
        for source, target in zip(names, names[1:]):
            self.link(source, target)
        return names[-1]

    def code(self, name: str, body: str, each: bool = True) -> str:
        parameters = {"mode": "runOnceForEachItem", "jsCode": PRELUDE + body} if each else {"jsCode": PRELUDE + body}
        return self.add(name, "n8n-nodes-base.code", 2, parameters)

    def report(self, name: str) -> str:
        """POST the signed event computed by the previous Code node ({url, headers, body})."""
        return self.add(name, "n8n-nodes-base.httpRequest", 4.2, {
            "method": "POST",
            "url": "={{ $json.url }}",
            "sendHeaders": True,
            "headerParameters": {"parameters": [
                {"name": header, "value": f"={{{{ $json.headers['{header}'] }}}}"}
                for header in ("webhook-id", "webhook-timestamp", "webhook-signature")]},
            "sendBody": True,
            "contentType": "raw",
            "rawContentType": "application/json",
            "body": "={{ $json.body }}",
            "options": {"timeout": 10000},
        }, retryOnFail=True, maxTries=3, waitBetweenTries=1000)

    def event(self, label: str, body: str, each: bool = True) -> tuple[str, str]:
        """A signing Code node and its report node, chained; returns (first, last)."""
        first = self.code(label, body, each)
        last = self.report(f"Report: {label}")
        self.link(first, last)
        return first, last

    def if_node(self, name: str, expression: str) -> str:
        return self.add(name, "n8n-nodes-base.if", 2.2, {
            "conditions": {
                "options": {"caseSensitive": True, "leftValue": "", "typeValidation": "loose", "version": 2},
                "conditions": [{"id": node_id(self.name, name + "/condition"), "leftValue": expression,
                                "rightValue": "", "operator": {"type": "boolean", "operation": "true",
                                                               "singleValue": True}}],
                "combinator": "and"},
            "looseTypeValidation": True,
            "options": {}})

    def results_js(self) -> str:
        """JavaScript collecting the outputs of the steps done so far ({taskKey: output})."""
        return ("const results = {};\n"
                f"for (const [key, sources] of Object.entries({js(self.sources)})) {{\n"
                "  for (const [node, field] of sources) {\n"
                "    const found = ran(node);\n"
                "    if (found && found[field] !== undefined) { results[key] = found[field]; break; }\n"
                "  }\n"
                "}\n")

    # ---- the trigger -------------------------------------------------------------------------
    def trigger(self, path: str) -> str:
        self.add(TRIGGER, "n8n-nodes-base.webhook", 2.1, {
            "httpMethod": "POST", "path": path, "authentication": "headerAuth",
            "responseMode": "responseNode", "options": {}},
            webhookId=node_id(self.name, "webhook:" + path), credentials=CREDENTIALS["trigger"])
        respond = self.add("Answer with the execution id", "n8n-nodes-base.respondToWebhook", 1.1, {
            "respondWith": "json", "responseBody": '={\n  "executionId": "{{ $execution.id }}"\n}', "options": {}})
        return self.chain(TRIGGER, respond)

    # ---- step shapes -------------------------------------------------------------------------
    def skipped(self, key: str, label: str = "") -> tuple[str, str]:
        return self.event(f"Skip {key}{label}", f"return {{ json: signed('task.skipped', {{ taskKey: {js(key)} }}) }};\n")

    def agent_step(self, key: str, agent: str, *, label: str = "", payload_js: str = "{}",
                   on_fail: str | None = None, per_item: str | None = None) -> tuple[str, str, str]:
        """The agent step shape; returns (entry node, success exit node, failure exit node or '')."""
        suffix = f" ({label})" if label else ""
        start_name = f"Start {key}{suffix}"
        task_key = per_item or js(key)
        start_body = (self.results_js()
                      + f"const taskKey = {task_key};\n"
                      + "const planned = (trigger.tasks || []).find((task) => task.taskKey === taskKey) || {};\n"
                      + "const agent = {\n"
                      + f"  task_id: {'(($json.result || {}).taskId)' if per_item else 'null'} || planned.taskId || taskKey,\n"
                      + "  workflow_id: trigger.workflowId,\n"
                      + f"  agent_name: {js(agent)},\n"
                      + f"  task_type: {js(key.split(':')[0])},\n"
                      + f"  payload: Object.assign({{}}, trigger.payload, {{ taskKey, results }}, {payload_js}),\n"
                      + f"  timeout_ms: {AGENT_BUDGET_MS},\n"
                      + "  retry_count: 0,\n"
                      + "};\n"
                      + "return { json: Object.assign(signed('task.started', "
                      + f"{{ taskKey, agentName: {js(agent)}, input: agent.payload }}), {{ taskKey, agent }}) }};\n")
        start, reported = self.event(start_name, start_body)
        call = self.add(f"{agent.capitalize()}: {key}{suffix}", "n8n-nodes-base.httpRequest", 4.2, {
            "method": "POST",
            "url": f"={{{{ $('{TRIGGER}').first().json.body.agentBaseUrl }}}}/agents/{agent}",
            "sendBody": True,
            "specifyBody": "json",
            "jsonBody": f"={{{{ JSON.stringify($('{start_name}').item.json.agent) }}}}",
            "options": {"timeout": AGENT_TIMEOUT_MS},
        }, retryOnFail=True, maxTries=3, waitBetweenTries=1000, onError="continueErrorOutput")
        self.link(reported, call)
        ok = self.if_node(f"{key}{suffix} succeeded?", "={{ $json.success === true }}")
        self.link(call, ok)
        self.sources.setdefault(key.split(":")[0] if per_item else key, []).append((call, "result"))
        key_expr = f"$('{start_name}').item.json.taskKey" if per_item else js(key)
        done, done_reported = self.event(f"Complete {key}{suffix}", (
            f"return {{ json: signed('task.completed', {{ taskKey: {key_expr}, agentName: {js(agent)},\n"
            "  output: $json.result === undefined ? null : $json.result,\n"
            "  metrics: { confidence: $json.confidence_score, processingTimeMs: $json.processing_time_ms,\n"
            "             tokensUsed: $json.tokens_used, costUsd: $json.cost_usd } }) };\n"))
        self.link(ok, done, 0)
        failed, failed_reported = self.event(f"Fail {key}{suffix}", (
            "const problem = failure($json);\n"
            f"return {{ json: signed('task.failed', {{ taskKey: {key_expr}, agentName: {js(agent)},\n"
            f"  error: problem.message, errorCode: problem.code, retryable: {js(on_fail is not None)} }}) }};\n"))
        self.link(ok, failed, 1)
        self.link(call, failed, 1)
        if on_fail is None and not per_item:
            escalate, escalated = self.event(f"Escalate {key}{suffix}", (
                f"const problem = failure($('{call}').item.json);\n"
                f"return {{ json: signed('escalation', {{ taskKey: {js(key)},\n"
                f"  reason: {js(agent.capitalize() + ' failed on ' + key + ' after retries: ')} + problem.message }}) }};\n"))
            self.link(failed_reported, escalate)
            return start, done_reported, ""
        if on_fail:
            self.link(failed_reported, on_fail)
        return start, done_reported, failed_reported

    def wait_step(self, key: str, amount: int, unit: str) -> tuple[str, str]:
        start, reported = self.event(f"Wait for {key}", (
            f"return {{ json: signed('task.waiting', {{ taskKey: {js(key)}, resumeUrl: $execution.resumeUrl }}) }};\n"))
        wait = self.add(f"Waiting: {key}", "n8n-nodes-base.wait", 1.1, {
            "resume": "webhook", "httpMethod": "POST", "limitWaitTime": True, "limitType": "afterTimeInterval",
            "resumeAmount": amount, "resumeUnit": unit, "options": {}},
            webhookId=node_id(self.name, "wait:" + key))
        self.link(reported, wait)
        delivered = self.if_node(f"{key} delivered?", "={{ $json.headers !== undefined && $json.body !== undefined }}")
        self.link(wait, delivered)
        self.sources.setdefault(key, []).append((wait, "body"))
        done, done_reported = self.event(f"Complete {key}", (
            f"return {{ json: signed('task.completed', {{ taskKey: {js(key)}, output: $json.body }}) }};\n"))
        self.link(delivered, done, 0)
        late, late_reported = self.event(f"Escalate late {key}", (
            f"return {{ json: signed('escalation', {{ taskKey: {js(key)},\n"
            f"  reason: {js(f'Nothing arrived for {key} within {amount} {unit}; waiting again (resume the task to continue)')} }}) }};\n"))
        self.link(delivered, late, 1)
        self.link(late_reported, wait)
        return start, done_reported

    def finish(self, after: str) -> None:
        first, _ = self.event("Complete workflow", "return { json: signed('workflow.completed', {}) };\n")
        self.link(after, first)

    def sequence(self, after: str, steps: list[tuple[str, str]]) -> str:
        for key, agent in steps:
            entry, done, _ = self.agent_step(key, agent)
            self.link(after, entry)
            after = done
        return after

    # ---- export ----------------------------------------------------------------------------
    def export(self, error_workflow: str | None = ERROR_HANDLER_NAME) -> dict:
        self.layout()
        connections = {}
        for source in self.nodes:  # node order, for a stable file
            outputs = self.connections.get(source)
            if not outputs:
                continue
            width = max(outputs) + 1
            connections[source] = {"main": [
                [{"node": target, "type": "main", "index": input_} for target, input_ in outputs.get(index, [])]
                for index in range(width)]}
        settings = {"executionOrder": "v1"}
        if error_workflow:
            settings["errorWorkflow"] = error_workflow
        return {"name": self.name, "nodes": list(self.nodes.values()), "connections": connections,
                "settings": settings}

    def layout(self) -> None:
        """Columns by distance from the first node, rows in creation order within a column."""
        first = next(iter(self.nodes))
        depth = {first: 0}
        queue = deque([first])
        while queue:
            name = queue.popleft()
            for targets in self.connections.get(name, {}).values():
                for target, _input in targets:
                    if target not in depth:
                        depth[target] = depth[name] + 1
                        queue.append(target)
        rows: dict[int, int] = {}
        for name, node in self.nodes.items():
            column = depth.get(name, 0)
            row = rows.get(column, 0)
            rows[column] = row + 1
            node["position"] = [column * 240, row * 180]


# ============================================================================================
# The workflows
# ============================================================================================

def payoff_request() -> dict:
    flow = Flow("Rexera - Payoff request", "payoff_request")
    after = flow.trigger("rexera/payoff-request")
    entry, after, _ = flow.agent_step("identify_lender_contact", "nina")
    flow.link("Answer with the execution id", entry)
    route = flow.add("Route payoff request", "n8n-nodes-base.switch", 3.2, {
        "mode": "expression", "numberOutputs": 3,
        "output": "={{ (() => { const lender = $('Nina: identify_lender_contact').first().json.result || {};"
                  " return lender.hasIvr ? 0 : lender.requiresPhone ? 1 : 2; })() }}",
        "options": {}})
    flow.link(after, route)
    wait_entry, wait_done = flow.wait_step("await_statement", 2, "days")
    for index, (agent, label) in enumerate((("max", "IVR"), ("florian", "phone"), ("mia", "email"))):
        entry, done, _ = flow.agent_step("send_payoff_request", agent, label=label)
        flow.link(route, entry, index)
        flow.link(done, wait_entry)
    after = flow.sequence(wait_done, [("extract_payoff_data", "iris"), ("generate_invoice", "kosha"),
                                      ("update_crm_record", "ria"), ("notify_client", "mia")])
    flow.finish(after)
    return flow.export()


def hoa_acquisition() -> dict:
    flow = Flow("Rexera - HOA acquisition", "hoa_acquisition")
    flow.trigger("rexera/hoa-acquisition")
    entry, after, _ = flow.agent_step("research_hoa_contact", "nina")
    flow.link("Answer with the execution id", entry)
    route = flow.add("Route by communication preference", "n8n-nodes-base.switch", 3.2, {
        "mode": "expression", "numberOutputs": 4,
        "output": "={{ Math.max(0, ['email', 'phone', 'email_then_phone', 'both']"
                  f".indexOf($('{TRIGGER}').first().json.body.payload.communicationPreference)) }}}}",
        "options": {}})
    flow.link(after, route)
    wait_entry, wait_done = flow.wait_step("await_documents", 7, "days")
    # 0 email only: the call is skipped.
    skip_first, skip_last = flow.skipped("make_phone_call", " (email only)")
    email, email_done, _ = flow.agent_step("send_email_request", "mia", label="email only")
    flow.link(route, skip_first, 0)
    flow.chain(skip_last, email)
    flow.link(email_done, wait_entry)
    # 1 phone only: the email is skipped.
    skip_first, skip_last = flow.skipped("send_email_request", " (phone only)")
    phone, phone_done, _ = flow.agent_step("make_phone_call", "florian", label="phone only")
    flow.link(route, skip_first, 1)
    flow.chain(skip_last, phone)
    flow.link(phone_done, wait_entry)
    # 2 email, then phone when the email failed (reported failed first).
    # A failed task left FAILED would keep workflow.completed from being accepted: once the call
    # worked, the failed e-mail is closed as skipped (its failure stays in its history).
    phone, phone_done, _ = flow.agent_step("make_phone_call", "florian", label="fallback")
    skip_first, skip_last = flow.skipped("send_email_request", " (call worked)")
    flow.link(phone_done, skip_first)
    flow.link(skip_last, wait_entry)
    email, email_done, _ = flow.agent_step("send_email_request", "mia", label="email first", on_fail=phone)
    flow.link(route, email, 2)
    skip_first, skip_last = flow.skipped("make_phone_call", " (email worked)")
    flow.link(email_done, skip_first)
    flow.link(skip_last, wait_entry)
    # 3 both: email, then the call (each escalates when it fails).
    email, email_done, _ = flow.agent_step("send_email_request", "mia", label="both")
    phone, phone_done, _ = flow.agent_step("make_phone_call", "florian", label="both")
    flow.link(route, email, 3)
    flow.link(email_done, phone)
    flow.link(phone_done, wait_entry)
    after = flow.sequence(wait_done, [("analyze_hoa_docs", "corey"), ("quality_validation", "cassy"),
                                      ("generate_invoice", "kosha"), ("update_crm", "ria"), ("notify_client", "mia")])
    flow.finish(after)
    return flow.export()


PORTAL_FAN_OUT = r"""const found = ($('Nina: research_municipality').first().json.result || {}).portals || [];
const seen = new Set();
const items = [];
for (const portal of found) {
  const name = String((portal && portal.name) || (portal && portal.url) || 'portal');
  let key = 'portal_access:' + name.replace(/[^A-Za-z0-9_.-]+/g, '_').slice(0, 80);
  while (seen.has(key)) key += '_';
  seen.add(key);
  const task = { taskKey: key, taskType: 'portal_access', title: 'Search ' + name, agentName: 'rex',
                 parentTaskKey: 'portal_access' };
  items.push({ json: Object.assign(signed('task.injected', { taskKey: key, task }), { taskKey: key, portal }),
               pairedItem: { item: 0 } });
}
return items;
"""

PORTAL_FAN_IN = r"""const all = $input.all();
const portals = all.map((item) => item.json);
const failed = portals.filter((portal) => !portal.ok).length;
const output = { portals: portals.map((portal) => portal.result).filter((result) => result), failed, total: portals.length };
const failedKeys = portals.filter((portal) => !portal.ok).map((portal) => portal.taskKey);
if (portals.length === 0 || failed * 2 > portals.length) {
  return [{ json: Object.assign(signed('escalation', { taskKey: 'portal_access',
    reason: failed + ' of ' + portals.length + ' portal searches failed' }), { ok: false, output }) }];
}
return [{ json: Object.assign(signed('task.completed', { taskKey: 'portal_access', agentName: 'rex', output }), { ok: true, output, failedKeys }) }];
"""


def muni_lien_search() -> dict:
    flow = Flow("Rexera - Municipal lien search", "muni_lien_search")
    flow.trigger("rexera/muni-lien-search")
    entry, after, _ = flow.agent_step("research_municipality", "nina")
    flow.link("Answer with the execution id", entry)
    start, started = flow.event("Start portal_access", (
        "return { json: signed('task.started', { taskKey: 'portal_access', agentName: 'rex' }) };\n"))
    flow.link(after, start)
    fan_out = flow.code("Inject a task per portal", PORTAL_FAN_OUT, each=False)
    flow.link(started, fan_out)
    injected = flow.report("Report: Inject a task per portal")
    flow.link(fan_out, injected)
    entry, done, failed = flow.agent_step("portal_access:<portal>", "rex",
                                          per_item="$('Inject a task per portal').item.json.taskKey",
                                          payload_js="{ portal: $('Inject a task per portal').item.json.portal }")
    flow.link(injected, entry)
    flow.sources["portal_access"] = [("Fan in portals", "output")]
    outcome_ok = flow.code("Portal searched", (
        "return { json: { ok: true, taskKey: $('Start portal_access:<portal>').item.json.taskKey,\n"
        "  result: $('Rex: portal_access:<portal>').item.json.result } };\n"))
    outcome_failed = flow.code("Portal failed", (
        "return { json: { ok: false, taskKey: $('Start portal_access:<portal>').item.json.taskKey } };\n"))
    flow.link(done, outcome_ok)
    flow.link(failed, outcome_failed)
    merge = flow.add("Portal outcomes", "n8n-nodes-base.merge", 3, {"numberInputs": 2})
    flow.link(outcome_ok, merge)
    flow.link(outcome_failed, merge, 0, 1)
    fan_in = flow.code("Fan in portals", PORTAL_FAN_IN, each=False)
    flow.link(merge, fan_in)
    report = flow.report("Report: Fan in portals")
    flow.link(fan_in, report)
    enough = flow.if_node("Enough portals searched?", "={{ $('Fan in portals').first().json.ok === true }}")
    flow.link(report, enough)
    # Failed portal tasks left FAILED would keep workflow.completed from being accepted: when
    # enough portals worked, the failed ones are closed as skipped (their failure stays recorded).
    close = flow.code("Close failed portals", (
        "return ($('Fan in portals').first().json.failedKeys || []).map((taskKey) => ({\n"
        "  json: signed('task.skipped', { taskKey, reason: 'enough portals were searched without it' }),\n"
        "  pairedItem: { item: 0 } }));\n"), each=False)
    flow.nodes[close]["alwaysOutputData"] = True
    flow.link(enough, close, 0)
    any_failed = flow.if_node("Failed portals to close?", "={{ $json.url !== undefined }}")
    flow.link(close, any_failed)
    closed_report = flow.report("Report: Close failed portals")
    flow.link(any_failed, closed_report, 0)
    closed = flow.code("Portals closed", "return [{ json: {}, pairedItem: { item: 0 } }];\n", each=False)
    flow.link(closed_report, closed)
    first, after, _ = flow.agent_step("process_documents", "iris")
    flow.link(closed, first)
    flow.link(any_failed, first, 1)
    # (false: the escalation was the report; the service blocks the workflow.)
    after = flow.sequence(after, [("quality_validation", "cassy"), ("generate_invoice", "kosha"),
                           ("update_crm", "ria"), ("notify_client", "mia")])
    flow.finish(after)
    return flow.export()


ERROR_EXTRACT = r"""const failed = $('Error Trigger').first().json;
const execution = $json.data ? $json : {};
const runData = (((execution.data || {}).resultData || {}).runData) || {};
const trigger = ((((runData['Rexera trigger'] || [])[0] || {}).data || {}).main || [[]])[0];
const body = (trigger && trigger[0] && trigger[0].json && trigger[0].json.body) || {};
const error = (failed.execution && failed.execution.error) || {};
return [{ json: {
  callbackBaseUrl: body.callbackBaseUrl || null,
  report: {
    executionId: String((failed.execution && failed.execution.id) || execution.id || ''),
    error: { message: String(error.message || 'unhandled error in n8n').slice(0, 2000),
             node: (error.node && error.node.name) || (failed.execution && failed.execution.lastNodeExecuted) || null },
  },
} }];
"""


def error_handler() -> dict:
    flow = Flow(ERROR_HANDLER_NAME, "error_handler")
    flow.add("Error Trigger", "n8n-nodes-base.errorTrigger", 1, {})
    fetch = flow.add("Fetch the failed execution", "n8n-nodes-base.n8n", 1, {
        "resource": "execution", "operation": "get", "executionId": "={{ $json.execution.id }}",
        "options": {"activeWorkflows": True}}, credentials=CREDENTIALS["api"], retryOnFail=True, maxTries=3,
        waitBetweenTries=1000, onError="continueRegularOutput")
    extract = flow.add("Extract the callback address", "n8n-nodes-base.code", 2, {"jsCode": ERROR_EXTRACT})
    known = flow.if_node("Callback address known?", "={{ !!$json.callbackBaseUrl && !!$json.report.executionId }}")
    post = flow.add("Report the failure", "n8n-nodes-base.httpRequest", 4.2, {
        "method": "POST", "url": "={{ $json.callbackBaseUrl }}/webhooks/n8n/errors",
        "authentication": "genericCredentialType", "genericAuthType": "httpHeaderAuth",
        "sendBody": True, "specifyBody": "json", "jsonBody": "={{ JSON.stringify($json.report) }}",
        "options": {"timeout": 10000}}, credentials=CREDENTIALS["error"], retryOnFail=True, maxTries=3,
        waitBetweenTries=1000)
    flow.chain("Error Trigger", fetch, extract, known)
    flow.link(known, post, 0)
    return flow.export(error_workflow=None)


WORKFLOWS = {
    "payoff_request.json": payoff_request,
    "hoa_acquisition.json": hoa_acquisition,
    "muni_lien_search.json": muni_lien_search,
    "error_handler.json": error_handler,
}


def prepare_for_import(workflow: dict, credential_ids: dict[str, str], error_workflow_id: str | None = None) -> dict:
    """A copy of an export ready for POST /api/v1/workflows: each credential placeholder id
    replaced by the id of the credential of that name (credential_ids: {name: id}), and
    settings.errorWorkflow by error_workflow_id when given."""
    workflow = json.loads(json.dumps(workflow))
    for node in workflow["nodes"]:
        for reference in (node.get("credentials") or {}).values():
            reference["id"] = credential_ids[reference["name"]]
    if error_workflow_id is not None and "errorWorkflow" in workflow["settings"]:
        workflow["settings"]["errorWorkflow"] = error_workflow_id
    return workflow


def render(workflow: dict) -> str:
    return json.dumps(workflow, indent=2, ensure_ascii=False) + "\n"


def build() -> dict[str, str]:
    return {name: render(factory()) for name, factory in WORKFLOWS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if a file differs from what would be written")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    stale = []
    for name, text in build().items():
        path = args.out_dir / name
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date (run scripts/build_workflows.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
