"""Budgets: every request is metered by who its credentials prove it is, before any work is
done for it (its body included): a person or an agent, a client company's work for people, a
workflow's callbacks and deliveries, n8n's error workflow, and, for a request that proves
nobody, its client address. The budgets are one table (app/budgets.py); the rule and its
reasons are docs/security.md ("Every request is metered").

An address that has spent its refusals is answered 429 for what it cannot prove, not for what
it can: a valid signature or token from the same address (n8n Cloud's egress, a load balancer,
an office) is served and spends only its own budget. Budgets live where every worker and
instance of one deployment shares them: Redis when REDIS_URL is set, else PostgreSQL
(app/ratelimit_storage.py), keyed by the deployment's database. The client address is the
peer's, or, for a peer in TRUSTED_PROXIES, the last X-Forwarded-For address that is not a
trusted proxy. Turns (requests at once per caller) are per process.
"""
from __future__ import annotations

import threading
import time

from flask import Flask, current_app, g, request
from flask_limiter import Limiter, RequestLimit
from limits import parse_many

from app import ratelimit_storage  # noqa: F401 (registers the rexera+postgresql storage)
from app.budgets import BUDGETS
from app.connections import green, is_trusted, spread
from app.errors import ApiError, error_response

# What each budget counts, in the words of its 429.
WHAT = {"client_work": "orders, messages and other work for people from this client",
        "callbacks": "callbacks for this workflow", "inbound": "deliveries for this workflow",
        "error_reports": "error reports", "replays": "replays of the event stream",
        "refusals": "refused requests from this address (missing or invalid credentials)",
        "public": "requests from this address"}
PUBLIC_PREFIXES = ("/api/health", "/api/openapi.json", "/api/docs", "/metrics")
# Writes a client person makes that create work for people (and cost agents' time): POSTs of
# these endpoints, and every action on workflows and tasks.
CLIENT_WORK_ENDPOINTS = {"workflows.Workflows", "workflows.WorkflowActions", "tasks.Tasks", "tasks.TaskActions",
                         "communications.Communications", "documents.Documents", "counterparties.Counterparties",
                         "counterparties.WorkflowCounterparties", "inbound_webhooks.client_message"}


def category(endpoint: str | None = None) -> str:
    endpoint = endpoint or request.endpoint or ""
    if endpoint.startswith("console."):
        return "console sign-in"  # its own limit (app/console), not one of the budgets
    if endpoint.startswith("views."):
        return "views"
    if endpoint.endswith("Actions"):
        return "actions"
    return "standard"


def limit_text(name: str) -> str:
    """The budget `name` ("standard", "refusals", ...): LIMITS, as RATE_LIMITS or
    app.config["RATE_LIMITS"] replace them."""
    return {**BUDGETS, **current_app.config["SETTINGS"].rate_limit_overrides,
            **current_app.config.get("RATE_LIMITS", {})}[name]


def limit_for_request() -> str:
    return limit_text(category())


def principal_key() -> str:
    principal = g.get("principal")
    return principal.actor_id if principal is not None else remote_address()


def remote_address() -> str:
    return f"ip:{client_address()}"


def client_address() -> str:
    """The caller's address: the peer's, or behind a trusted proxy the last forwarded address
    that is not one of the proxies (the proxy appends the address it saw; a client can forge the
    entries before it, never that one)."""
    peer = request.remote_addr or ""
    trusted = current_app.config["SETTINGS"].trusted_proxies
    if not is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, trusted):
            return hop[:64]
    return peer


def retry_in(limit: RequestLimit | None = None, reset_at: float | None = None) -> int:
    reset_at = limit.reset_at if limit is not None else reset_at
    return max(1, int((reset_at or time.time()) - time.time()))


def too_many(what: str, limit_text_: str, reset_in: int):
    return ApiError(429, f"too many {what}: the limit is {limit_text_}; retry in {reset_in} s", "rate_limited",
                    {"limit": limit_text_, "retryAfterSeconds": reset_in}, {"Retry-After": str(reset_in)})


def on_breach(limit: RequestLimit):
    error = too_many(f"{category()} requests", str(limit.limit), retry_in(limit))
    return error_response(error.status, error.code, error.message, error.details, error.headers)


def _limiter() -> Limiter | None:
    limiter = current_app.extensions.get("limiter")
    return limiter if limiter is not None and limiter.enabled else None


class SpentBudgets:
    """Budgets this process found spent, until when: a caller that goes on past its budget (a
    flood) is answered 429 from here, without a round trip to the budgets' storage, for at most
    REMEMBER_SECONDS (a sliding window frees room gradually; the storage is asked again after)."""

    REMEMBER_SECONDS = 10.0
    MAX_ENTRIES = 10_000

    def __init__(self):
        self._until: dict[tuple, tuple[float, float, str]] = {}  # key -> (monotonic until, wall reset_at, limit)
        self._lock = threading.Lock()

    def known(self, key: tuple) -> tuple[float, str] | None:
        """(the wall-clock reset, the limit spent) of a budget known to be spent, or None."""
        entry = self._until.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            self._until.pop(key, None)
            return None
        return entry[1], entry[2]

    def remember(self, key: tuple, reset_at: float, limit: str) -> None:
        with self._lock:
            if len(self._until) >= self.MAX_ENTRIES:
                now = time.monotonic()
                self._until = {k: v for k, v in self._until.items() if v[0] > now}
                if len(self._until) >= self.MAX_ENTRIES:
                    return
            self._until[key] = (time.monotonic() + min(self.REMEMBER_SECONDS, max(1.0, reset_at - time.time())),
                                reset_at, limit)


REFUSAL_HOLD_SECONDS = 1.0


def hold_refusal() -> None:
    """Before a 429 of a spent budget, on the gevent worker (where waiting costs a greenlet, not
    a thread): a caller that sends its next request as soon as the last is answered is slowed to
    one a second per connection, instead of keeping a worker busy refusing it."""
    if green():
        time.sleep(spread(REFUSAL_HOLD_SECONDS))


def spend(budget: str, key: str) -> None:
    """Spend one request of `key`'s `budget`, or raise 429 in the one shape when it is spent."""
    limiter = _limiter()
    if limiter is None:
        return
    text = limit_text(budget)
    spent: SpentBudgets = current_app.extensions["spent_budgets"]
    known = spent.known((budget, key, text))
    if known is not None:
        hold_refusal()
        raise too_many(WHAT.get(budget, f"{budget} requests"), known[1], retry_in(reset_at=known[0]))
    for item in parse_many(text):  # every window of the budget must hold ("60/minute;1000/hour")
        try:
            if limiter.limiter.hit(item, limiter._key_prefix, budget, key):
                continue
            reset_at = limiter.limiter.get_window_stats(item, limiter._key_prefix, budget, key).reset_time
        except Exception:  # noqa: BLE001 - a storage outage must not take the service down; budgets pause
            current_app.logger.warning("rate-limit storage unavailable; %s not metered", budget)
            return
        spent.remember((budget, key, text), reset_at, str(item))
        hold_refusal()
        raise too_many(WHAT.get(budget, f"{budget} requests"), str(item), retry_in(reset_at=reset_at))


def refuse_unproven(error: ApiError) -> ApiError:
    """The error to raise for a request that proved nobody: `error` itself while the address
    has refusals left (one is spent), else 429. A request that proves someone never comes here."""
    try:
        spend("refusals", remote_address())
    except ApiError as exhausted:
        return exhausted
    return error


def check_unauthenticated() -> None:
    """After the budgets of people and agents: the API's refusals (no or a bad token or key)
    spend the address's refusal budget; public reads spend the address's public budget."""
    refusal = g.pop("auth_refusal", None)
    if refusal is not None:
        raise refuse_unproven(refusal)
    if request.path.startswith(PUBLIC_PREFIXES) and not request.path.startswith("/api/health/"):
        address = client_address()
        if not is_trusted(address, current_app.config["SETTINGS"].trusted_proxies):  # a proxy's own checks
            spend("public", f"ip:{address}")


def check_client_work() -> None:
    """Writes by client people that create work for people spend their company's budget."""
    principal = g.get("principal")
    if (principal is None or not principal.is_client or request.method != "POST"
            or request.endpoint not in CLIENT_WORK_ENDPOINTS):
        return
    spend("client_work", f"client:{principal.client_id}")


class Turns:
    """Requests in flight per caller in this process, at most `limit` at once: a caller's next
    request waits its turn (up to `wait_seconds`, then 429), so that one caller holding many
    connections (slow bodies, a burst) occupies at most `limit` of a worker's database
    connections and attention, and everyone else's requests go ahead of the queue it makes."""

    def __init__(self, limit: int, wait_seconds: float):
        self.limit = limit
        self.wait_seconds = wait_seconds
        self._lock = threading.Lock()
        self._turns: dict[str, list] = {}  # key -> [semaphore, requests holding or waiting]

    def take(self, key: str) -> bool:
        with self._lock:
            entry = self._turns.setdefault(key, [threading.BoundedSemaphore(self.limit), 0])
            entry[1] += 1
        if entry[0].acquire(timeout=self.wait_seconds):
            return True
        self._forget(key, entry)
        return False

    def give_back(self, key: str) -> None:
        entry = self._turns[key]
        entry[0].release()
        self._forget(key, entry)

    def _forget(self, key: str, entry: list) -> None:
        with self._lock:
            entry[1] -= 1
            if entry[1] == 0:
                del self._turns[key]


def take_turn() -> None:
    """Before anything else is done for an API or console request: its caller's turn."""
    turns: Turns = current_app.extensions["turns"]
    if request.path.startswith("/webhooks/") or request.path == "/ws" or request.endpoint is None:
        return  # machine traffic is metered by what it proves; a socket has caps of its own
    key = principal_key()
    if not turns.take(key):
        raise ApiError(429, f"too many of your requests at once: at most {turns.limit} run at a time and the next "
                            f"waited {turns.wait_seconds:g} s; send fewer at once", "rate_limited",
                       {"limit": f"{turns.limit} at once"}, {"Retry-After": "1"})
    g.turn = key


def give_turn(_error=None) -> None:
    key = g.pop("turn", None)
    if key is not None:
        current_app.extensions["turns"].give_back(key)


def init_app(app: Flask) -> None:
    """After the request is identified and before its body is read: see create_app."""
    settings = app.config["SETTINGS"]
    app.extensions["turns"] = Turns(settings.requests_in_flight_per_caller, settings.request_read_seconds)
    app.extensions["spent_budgets"] = SpentBudgets()
    app.before_request(take_turn)
    app.teardown_request(give_turn)
    limiter = Limiter(
        key_func=principal_key,
        app=app,
        storage_uri=settings.redis_url or "rexera+postgresql://",
        storage_options={} if settings.redis_url else {"database": app.extensions["database"]},
        strategy="sliding-window-counter",
        headers_enabled=True,
        enabled=settings.rate_limits_enabled,
        on_breach=on_breach,
        key_prefix=key_prefix(settings.database_url),
        swallow_errors=True,  # a storage outage must not take the API down; limits pause meanwhile
    )
    # People and agents on the API; a request that proved nobody is metered by its address instead.
    limiter.request_filter(lambda: g.get("principal") is None and not (request.endpoint or "").startswith("console."))
    shared = limiter.shared_limit(limit_for_request, scope=lambda endpoint: category(endpoint))
    for blueprint in app.blueprints.values():
        if blueprint.name in ("api-docs", "health", "internal") or (blueprint.url_prefix or "").startswith("/webhooks/"):
            continue  # public (metered by address below) or metered by what their credentials prove
        shared(blueprint)
    app.extensions["limiter"] = limiter
    app.before_request(check_unauthenticated)
    app.before_request(check_client_work)


def key_prefix(database_url: str) -> str:
    """The budgets' keys, by the database the deployment runs on: deployments sharing a Redis
    (staging and production, several local systems) never spend each other's budgets."""
    from psycopg import conninfo

    try:
        name = conninfo.conninfo_to_dict(database_url).get("dbname") or "postgres"
    except Exception:  # noqa: BLE001 - the settings validated the URL; any name will do
        name = "postgres"
    return f"rexera:{name}"
