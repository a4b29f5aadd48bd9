"""The live demo: as a client of Acme Title would, create one workflow of each type through the
REST API, start them, and watch them move on the /ws event stream: a progress bar per workflow,
a line per task event, then a summary table. The demo also plays the outside parties the
workflows wait for (the lender's payoff statement, the HOA's documents), delivering them through
the inbound webhook as they would.

Run by `python3 scripts/local.py demo` (or `up --demo`). Exit 0 when all three workflows
complete; 1, saying why, when one does not (failed, stuck, or out of time).
"""
from __future__ import annotations

import heapq
import json
import queue
import sys
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import requests
import websocket

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.webhooks.signing import inbound_token  # noqa: E402

FINAL = {"COMPLETED", "FAILED", "CANCELLED"}
BAR = 24
# Events of the three workflows come on three channels, each in order; held this long, they are
# printed in the stream's order (their ids) however the channels interleave.
REORDER_SECONDS = 0.3
FINAL_EVENT_GRACE_SECONDS = 3.0  # how long the demo waits for the stream's last events once the API shows the end
KEY_WIDTH = 40  # task keys longer than this are cut in the summary (portal_access:<portal> can be long)


def payloads() -> dict[str, dict]:
    today = date.today()
    return {
        "PAYOFF_REQUEST": {"address": "412 Elm Street, Austin, TX 78701", "borrowerName": "Dana Whitfield",
                           "lenderName": "First Harbor Bank", "loanNumber": "LN-20481",
                           "payoffDate": (today + timedelta(days=20)).isoformat(), "estimatedBalance": 250000.0},
        "HOA_ACQUISITION": {"address": "77 Lakeview Drive, Plano, TX 75024", "hoaName": "Lakeview Commons HOA",
                            "documentsRequested": ["bylaws", "financials"], "buyer": "Sam Ortega",
                            "closingDate": (today + timedelta(days=30)).isoformat(),
                            "communicationPreference": "email"},
        "MUNI_LIEN_SEARCH": {"address": "900 Congress Avenue, Austin, TX 78701", "county": "Travis",
                             "parcelNumber": "P-0112-4410", "buyer": "Robin Castillo",
                             "closingDate": (today + timedelta(days=14)).isoformat(),
                             "searchTypes": ["tax_liens", "utility_liens", "municipal_liens"]},
    }


# What each waiting task waits for, and how the outside party delivers it.
REPLIES = {
    "await_statement": ("payoff-statement", lambda workflow_id: {
        "workflowId": workflow_id, "from": "payoffs@firstharbor.example",
        "statement": {"payoffAmount": 251234.56, "perDiem": 34.25,
                      "goodThrough": (date.today() + timedelta(days=20)).isoformat()},
        "documents": [{"filename": "payoff-statement.pdf", "contentType": "application/pdf", "sizeBytes": 48213}]}),
    "await_documents": ("hoa-documents", lambda workflow_id: {
        "workflowId": workflow_id, "from": "manager@lakeview-hoa.example", "note": "Requested documents attached",
        "documents": [{"filename": "bylaws.pdf", "contentType": "application/pdf", "sizeBytes": 120400},
                      {"filename": "financials-2025.pdf", "contentType": "application/pdf", "sizeBytes": 88211}]}),
}


class InOrder:
    """Holds stream events for REORDER_SECONDS and lets them out in id order; anything without an
    id (errors, a closed stream) goes out at once."""

    def __init__(self, hold: float = REORDER_SECONDS):
        self.hold = hold
        self.held: list[tuple] = []  # (id, arrival, event)
        self.now: list[dict] = []

    def push(self, event: dict, arrived: float) -> None:
        if isinstance(event.get("id"), int):
            heapq.heappush(self.held, (event["id"], arrived, event))
        else:
            self.now.append(event)

    def due(self, now: float) -> list[dict]:
        out, self.now = self.now, []
        # The oldest held event decides: once it has waited long enough, everything before it in
        # id order goes too (a later id that came earlier cannot be passed by an earlier one).
        while self.held and now - min(item[1] for item in self.held) >= self.hold:
            out.append(heapq.heappop(self.held)[2])
        return out


class Watched:
    def __init__(self, workflow_type: str, workflow_id: str):
        self.type, self.id = workflow_type, workflow_id
        self.status = "PENDING"
        self.total = self.completed = 0
        self.sla = "ON_TIME"
        self.started = time.monotonic()
        self.finished: float | None = None
        self.final_event = False  # the stream's event for the final status came
        self.replied: set[str] = set()
        self.tasks: dict[str, dict] = {}

    def count(self) -> None:
        """Done = completed or skipped; the plan = every task but the cancelled ones. A skipped
        task is done (the plan does not shrink); tasks added while it runs (portal searches the
        research found) grow the plan, and the demo says so when it happens."""
        planned = [t for t in self.tasks.values() if t["status"] != "CANCELLED"]
        self.total = len(planned)
        self.completed = sum(t["status"] in ("COMPLETED", "SKIPPED") for t in planned)

    def bar(self, status: str | None = None) -> str:
        """The progress bar; `status` is the one a stream event announces (the bar prints the
        status that event moved to, even when the API has moved on since)."""
        status = status or self.status
        if not self.total:
            return f"{self.type:<17} [{'.' * BAR}]  the plan is not written yet  {status}"
        done = int(BAR * self.completed / self.total)
        percent = round(100 * self.completed / self.total)
        return f"{self.type:<17} [{'#' * done}{'.' * (BAR - done)}] {percent:3d}% {self.completed}/{self.total} {status}"


class Demo:
    def __init__(self, base_url: str, token: str, callback_secret: bytes, out=sys.stdout):
        self.base = base_url.rstrip("/")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.token = token
        self.secret = callback_secret
        self.out = out
        self.events: queue.Queue = queue.Queue()
        self.watched: dict[str, Watched] = {}
        self.socket: websocket.WebSocket | None = None

    def print(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    # -- REST, as a client --
    def create_and_start(self) -> None:
        for workflow_type, payload in payloads().items():
            created = self.http.post(f"{self.base}/api/workflows", json={"type": workflow_type, "payload": payload},
                                     timeout=30)
            if created.status_code != 201:
                raise DemoFailure(f"creating a {workflow_type} answered {created.status_code}: {created.text[:300]}")
            workflow_id = created.json()["id"]
            self.watched[workflow_id] = Watched(workflow_type, workflow_id)
            self.subscribe(f"workflow:{workflow_id}")
            started = self.http.post(f"{self.base}/api/workflows/{workflow_id}/actions",
                                     json={"action": "start", "data": {}}, timeout=30)
            if started.status_code != 200:
                raise DemoFailure(f"starting {workflow_type} answered {started.status_code}: {started.text[:300]}")
            self.print(f"created and started {workflow_type} {workflow_id}")

    def refresh(self, watched: Watched) -> None:
        """The workflow and its tasks as the API shows them (the truth the events announce)."""
        answer = self.http.get(f"{self.base}/api/workflows/{watched.id}", params={"include": "tasks"}, timeout=30)
        answer.raise_for_status()
        workflow = answer.json()
        watched.status = workflow["status"]
        watched.sla = workflow.get("slaStatus", watched.sla)
        tasks = {task["taskKey"]: task for task in workflow.get("tasks") or []}
        added = [key for key in tasks if key not in watched.tasks]
        if watched.tasks and added:
            self.print(f"  + {watched.type}: {len(added)} task(s) added to the plan while it runs ({', '.join(added)});"
                       " the progress counts them from now on")
        watched.tasks = tasks
        watched.count()
        if watched.status in FINAL and watched.finished is None:
            watched.finished = time.monotonic()

    def reply_when_waiting(self, watched: Watched) -> None:
        for key, (kind, body) in REPLIES.items():
            task = watched.tasks.get(key)
            if task and task["status"] == "WAITING" and key not in watched.replied:
                answer = requests.post(f"{self.base}/webhooks/inbound/{kind}", json=body(watched.id), timeout=30,
                                       headers={"Authorization": f"Bearer {inbound_token(self.secret, watched.id)}"})
                if answer.status_code != 202:
                    raise DemoFailure(f"delivering the {kind} answered {answer.status_code}: {answer.text[:300]}")
                watched.replied.add(key)
                party = "lender" if kind == "payoff-statement" else "HOA"
                self.print(f"  ← the {party} replies to {watched.type} ({kind}, through the inbound webhook)")

    # -- the event stream --
    def connect(self) -> None:
        url = self.base.replace("http", "ws", 1) + "/ws"
        self.socket = websocket.create_connection(f"{url}?token={self.token}", timeout=10)
        hello = json.loads(self.socket.recv())
        if hello.get("type") != "authenticated":
            raise DemoFailure(f"/ws refused the client token: {hello}")
        self.socket.settimeout(None)
        threading.Thread(target=self._read, name="demo-ws", daemon=True).start()

    def subscribe(self, channel: str) -> None:
        self.socket.send(json.dumps({"type": "subscribe", "channel": channel}))

    def _read(self) -> None:
        try:
            while True:
                message = json.loads(self.socket.recv())
                self.events.put(message)
        except Exception as error:  # noqa: BLE001 (the main loop reports it)
            self.events.put({"type": "closed", "reason": str(error)})

    def on_event(self, event: dict) -> None:
        kind = event.get("type")
        watched = self.watched.get(str(event.get("workflowId")))
        if kind == "task_execution_updated" and watched:
            previous = event.get("previousStatus")
            move = f"{previous} → {event['status']}" if previous else event["status"]
            self.print(f"  #{event.get('id')} {watched.type:<17} task {event.get('taskKey')}: {move}")
        elif kind == "workflow_status_changed" and watched:
            # The counts as the API shows them now; the status stays the API's too. An event can
            # come after a poll saw a later status (the stream runs through another instance, or
            # the reorder hold), and must not take the workflow back to it.
            self.refresh(watched)
            self.print(f"  #{event.get('id')} {watched.bar(event['status'])}")
            if event["status"] in FINAL:
                watched.final_event = True
        elif kind == "error":
            self.print(f"  /ws error: {event.get('message')}")
        elif kind == "closed":
            raise DemoFailure(f"the event stream closed: {event.get('reason')}")

    # -- the run --
    def run(self, timeout: float) -> int:
        self.connect()
        self.create_and_start()
        deadline = time.monotonic() + timeout
        next_poll = 0.0
        in_order = InOrder()
        while time.monotonic() < deadline:
            self.pump(in_order)
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + 1.0
                for watched in self.watched.values():
                    self.refresh(watched)
                    self.reply_when_waiting(watched)
                if all(w.status in FINAL for w in self.watched.values()):
                    break
        self.drain(in_order, until=min(deadline, time.monotonic() + FINAL_EVENT_GRACE_SECONDS))
        for event in in_order.due(float("inf")):
            self.on_event(event)
        self.summary()
        not_done = {w.type: w.status for w in self.watched.values() if w.status != "COMPLETED"}
        if not not_done:
            self.print("all three workflows COMPLETED")
            return 0
        for w in self.watched.values():
            if w.status != "COMPLETED":
                stuck = [f"{key} {task['status']}" + (f" ({task.get('errorMessage')})" if task.get("errorMessage") else "")
                         for key, task in w.tasks.items() if task["status"] not in ("COMPLETED", "SKIPPED")]
                why = "out of time" if w.status not in FINAL else f"ended {w.status}"
                self.print(f"{w.type} did not complete ({why}); open tasks: {', '.join(stuck) or 'none'}")
        return 1

    def drain(self, in_order: "InOrder", until: float) -> None:
        """The polls saw every workflow final; the stream's events for it may still be on their
        way. Print them as they come, for a short while at most."""
        while time.monotonic() < until and not all(w.final_event for w in self.watched.values()):
            self.pump(in_order)

    def pump(self, in_order: "InOrder") -> None:
        """Take what the stream brought within 0.1 s and act on the events now due, in order."""
        try:
            in_order.push(self.events.get(timeout=0.1), time.monotonic())
        except queue.Empty:
            pass
        for event in in_order.due(time.monotonic()):
            self.on_event(event)

    def summary(self) -> None:
        rows = [("workflow", "status", "tasks", "duration s", "SLA")]  # tasks: done (completed or skipped)/planned
        for w in self.watched.values():
            duration = (w.finished or time.monotonic()) - w.started
            rows.append((w.type, w.status, f"{w.completed}/{w.total}", f"{duration:.1f}", w.sla))
        widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
        self.print("")
        for index, row in enumerate(rows):
            self.print("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)))
            if index == 0:
                self.print("  ".join("-" * width for width in widths))
        width = min(KEY_WIDTH, max((len(k) for w in self.watched.values() for k in w.tasks), default=10))
        for w in self.watched.values():
            self.print(f"\n{w.type} tasks:")
            for key, task in sorted(w.tasks.items(), key=lambda item: (item[1].get("sequence") or 0, item[0])):
                shown = key if len(key) <= width else key[:width - 1] + "…"
                self.print(f"  {shown:<{width}} {task['status']:<10} {task.get('executorType', ''):<4} "
                           f"{task.get('agentName') or '':<8} SLA {task.get('slaStatus')}")
        self.print("")


class DemoFailure(Exception):
    pass


def run(base_url: str, database_url: str, keys: dict, timeout: float = 600) -> int:
    """The demo against a running system (local.py passes what it started)."""
    from local import CLIENT_EMAIL, tokens

    token = tokens(database_url, keys["jwtSecret"]).get(CLIENT_EMAIL)
    if token is None:
        print(f"[demo] no demo client user ({CLIENT_EMAIL}): load the demo tenants", file=sys.stderr)
        return 1
    demo = Demo(base_url, token, bytes.fromhex(keys["callbackSecret"]))
    started = datetime.now(timezone.utc)
    try:
        code = demo.run(timeout)
    except DemoFailure as failure:
        print(f"[demo] {failure}", file=sys.stderr, flush=True)
        return 1
    finally:
        if demo.socket is not None:
            demo.socket.close()
    print(f"[demo] finished in {(datetime.now(timezone.utc) - started).total_seconds():.1f} s", flush=True)
    return code
