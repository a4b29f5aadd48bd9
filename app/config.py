"""Settings read from the environment once, at start, with every problem named at once."""
from __future__ import annotations

import base64
import binascii
import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from urllib.parse import urlparse


PLATFORMS = ("server", "vercel", "lambda")
SUPABASE_TRANSACTION_POOLER_PORT = 6543


class ConfigError(Exception):
    """The environment is missing or malforms settings; the message lists each one."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclasses.dataclass(frozen=True)
class Settings:
    database_url: str
    supabase_url: str | None = None
    supabase_jwt_secret: str | None = None
    jwt_issuer: str | None = None
    n8n_base_url: str | None = None
    n8n_api_key: str | None = None
    n8n_callback_secret: bytes | None = None
    n8n_webhook_token: str | None = None
    n8n_error_webhook_token: str | None = None
    public_base_url: str = "http://127.0.0.1:8000"
    agent_base_url: str | None = None
    agent_api_keys: dict[str, str] = dataclasses.field(default_factory=dict)
    redis_url: str | None = None
    db_pool_min: int = 2
    db_pool_max: int = 10
    rate_limits_enabled: bool = True
    # Budgets replaced from RATE_LIMITS=name=limits,... (app/budgets.py names them).
    rate_limit_overrides: dict = dataclasses.field(default_factory=dict)
    dispatcher_enabled: bool = False
    # Seconds between SLA sweeps run by a background thread of the service; 0 (the default
    # here, so tests and scripts start no thread) disables it. From the environment: 60.
    sla_sweep_interval_seconds: int = 0
    # Seconds between rounds of the execution watch (app/n8n/watch.py: workflows whose n8n
    # execution was lost go on in a new one), run by a background thread when N8N_API_KEY is
    # set; 0 (the default here) disables it. From the environment: 30. A workflow is asked about
    # once it has been quiet (no callback) for n8n_watch_quiet_seconds.
    n8n_watch_interval_seconds: int = 0
    n8n_watch_quiet_seconds: int = 120
    # None: no server-side prepared statements (required behind Supabase's transaction pooler,
    # port 6543); a number enables them after that many uses (direct or session connections).
    db_prepare_threshold: int | None = None
    max_body_bytes: int = 1_000_000
    # Realtime (/ws). LISTEN needs a session: a direct or session-pooler URL, never the
    # transaction pooler; DATABASE_URL when unset.
    realtime_database_url: str | None = None
    realtime_queue_size: int = 1000  # events waiting per socket before it is dropped as too slow
    realtime_heartbeat_seconds: int = 25  # ping and heartbeat interval; no pong by the next one drops the socket
    realtime_auth_timeout_seconds: int = 10  # time to send {"type": "auth"} when no token came with the URL
    realtime_send_timeout_seconds: int = 10  # a send blocked this long drops the socket
    realtime_replay_limit: int = 5000  # most events replayed for one subscribe with since
    realtime_retention_hours: int = 72  # events older than this are pruned
    realtime_prune_interval_seconds: int = 3600  # how often each process prunes; 0: never (pg_cron does it)
    # How often each process checks again that the people on its sockets still count (active,
    # same role and client), in case the database's announcement of a change was missed.
    realtime_person_recheck_seconds: int = 30
    # Holding against hostile callers (docs/security.md): a request's body must have arrived
    # within request_read_seconds of its start (its head: within gunicorn's keepalive, 5 s); a
    # peer address holds at most connections_per_address open connections per worker process
    # (0: no cap; a trusted proxy is never capped here, it caps its own clients); a person or
    # agent holds at most realtime_sockets_per_person open /ws sockets per worker process.
    request_read_seconds: int = 10
    # A caller's (person's, agent's, or address's when nobody is proven) API requests in flight
    # in one worker process: the next waits its turn, at most request_read_seconds, then 429.
    requests_in_flight_per_caller: int = 16
    connections_per_address: int = 256
    realtime_sockets_per_person: int = 16
    # Peers whose X-Forwarded-For names the client (HAProxy, a load balancer): addresses or
    # networks. Budgets of the unauthenticated are kept per client address, not per proxy.
    trusted_proxies: tuple = ()
    # Where the service runs: "server" (a long-running process: gunicorn, a container) or a
    # serverless platform ("vercel", "lambda"), which freezes the process between requests and
    # serves no WebSocket. From VERCEL / AWS_LAMBDA_FUNCTION_NAME, or SERVICE_PLATFORM.
    platform: str = "server"
    # Background threads (outbox dispatcher, SLA sweeper, realtime listener): off where the
    # platform freezes processes between requests. BACKGROUND_DUTIES=auto|on|off.
    background_duties: bool = True
    # A request that queued outbox rows delivers them right after its commit, waiting at most
    # this long; anything not delivered is retried by the dispatcher or the tick. False here
    # (tests deliver nothing unless they ask); from the environment: on.
    deliver_inline: bool = False
    inline_delivery_timeout_seconds: float = 3.0
    # Bearer token of POST /api/internal/tick (Vercel Cron sends it as CRON_SECRET); unset:
    # the tick answers 403.
    cron_secret: str | None = None
    # The console's sign-in: Supabase Auth's public (anon or publishable) key, sent as `apikey`
    # when the service proxies e-mail and password sign-in; and the local one-time-code sign-in
    # (scripts/local.py), off unless CONSOLE_LOCAL_SIGN_IN=on and HS256 tokens are minted here.
    supabase_anon_key: str | None = None
    console_local_sign_in: bool = False
    console_local_token_seconds: int = 3600
    # Bearer token of GET /metrics (Prometheus: authorization / bearer_token in the scrape
    # config); unset: /metrics answers 404, as if there were none. Compared in constant time.
    metrics_token: str | None = None
    # Seconds the service waits on Supabase Auth (connect, and each read) for the console's
    # sign-in, refresh and sign-out before answering 503 auth_unavailable.
    supabase_auth_timeout_seconds: float = 5.0

    @property
    def serverless(self) -> bool:
        return self.platform != "server"

    @property
    def jwks_url(self) -> str | None:
        return f"{self.supabase_url}/auth/v1/.well-known/jwks.json" if self.supabase_url else None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        problems: list[str] = []

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def url(name: str, schemes: tuple[str, ...]) -> str | None:
            value = get(name)
            if value is None:
                return None
            parsed = urlparse(value)
            if parsed.scheme not in schemes or not parsed.netloc:
                problems.append(f"{name} must be a {' or '.join(schemes)} URL, got {parsed.scheme or 'no'} scheme")
                return None
            return value.rstrip("/")

        def integer(name: str, default: int, low: int, high: int) -> int:
            value = get(name)
            if value is None:
                return default
            try:
                number = int(value)
            except ValueError:
                problems.append(f"{name} must be an integer")
                return default
            if not low <= number <= high:
                problems.append(f"{name} must be between {low} and {high}")
            return number

        def budget_overrides() -> dict:
            from limits import parse_many

            from app.budgets import BUDGETS

            raw = get("RATE_LIMITS") or "on"
            if raw.lower() in ("on", "off", "1", "0", "true", "false"):
                return {}
            found = {}
            for entry in filter(None, (e.strip() for e in raw.split(","))):
                name, sep, limits = (part.strip() for part in entry.partition("="))
                try:
                    if not sep or name not in BUDGETS:
                        raise ValueError(name)
                    parse_many(limits)
                except ValueError:
                    problems.append(f"RATE_LIMITS must be on, off or a comma list of budget=limits (budgets: "
                                    f"{', '.join(BUDGETS)}; limits like 60/minute;1000/hour), not {entry[:60]!r}")
                    return {}
                found[name] = limits
            return found

        def networks(name: str) -> tuple:
            found = []
            for entry in filter(None, (e.strip() for e in (get(name) or "").split(","))):
                try:
                    found.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    problems.append(f"{name} must be a comma list of addresses or networks (10.0.0.0/8), not {entry[:60]!r}")
            return tuple(found)

        database_url = url("DATABASE_URL", ("postgres", "postgresql"))
        if database_url is None and get("DATABASE_URL") is None:
            problems.append("DATABASE_URL is required (postgresql://user:password@host:port/database)")

        supabase_url = url("SUPABASE_URL", ("http", "https"))
        jwt_secret = get("SUPABASE_JWT_SECRET")
        if jwt_secret is not None and len(jwt_secret) < 32:
            problems.append("SUPABASE_JWT_SECRET must be at least 32 characters")
        if supabase_url is None and jwt_secret is None and not any(p.startswith("SUPABASE_URL") for p in problems):
            problems.append("set SUPABASE_URL (tokens verified with the project's JWKS) or SUPABASE_JWT_SECRET (HS256)")

        callback_secret = None
        raw_secret = get("N8N_CALLBACK_SECRET")
        if raw_secret is not None:
            if not raw_secret.startswith("whsec_"):
                problems.append("N8N_CALLBACK_SECRET must look like whsec_<base64>")
            else:
                try:
                    callback_secret = base64.b64decode(raw_secret.removeprefix("whsec_"), validate=True)
                except binascii.Error:
                    problems.append("N8N_CALLBACK_SECRET is not valid base64 after whsec_")
                if callback_secret is not None and len(callback_secret) < 24:
                    problems.append("N8N_CALLBACK_SECRET must decode to at least 24 bytes")

        agent_keys: dict[str, str] = {}
        for entry in filter(None, (e.strip() for e in (get("AGENT_API_KEYS") or "").split(","))):
            name, sep, key = entry.partition("=")
            if not sep or not name.strip() or len(key.strip()) < 16:
                problems.append("AGENT_API_KEYS must be a comma list of agent=key (key at least 16 characters; agent * for any)")
                break
            agent_keys[name.strip().lower()] = key.strip()

        public_base_url = url("PUBLIC_BASE_URL", ("http", "https")) or "http://127.0.0.1:8000"

        platform = (get("SERVICE_PLATFORM") or ("vercel" if get("VERCEL") else
                                                 "lambda" if get("AWS_LAMBDA_FUNCTION_NAME") else "server")).lower()
        if platform not in PLATFORMS:
            problems.append(f"SERVICE_PLATFORM must be one of {', '.join(PLATFORMS)}")
            platform = "server"
        duties = (get("BACKGROUND_DUTIES") or "auto").lower()
        if duties not in ("auto", "on", "off"):
            problems.append("BACKGROUND_DUTIES must be auto, on or off")
            duties = "auto"
        background = platform == "server" if duties == "auto" else duties == "on"
        dispatcher_enabled = (get("DISPATCHER_ENABLED") or "off").lower() in ("on", "1", "true")
        sweep_interval = integer("SLA_SWEEP_INTERVAL_SECONDS", 60 if background else 0, 0, 86_400)
        if not background:
            where = f"on {platform}" if platform != "server" else "with BACKGROUND_DUTIES=off"
            if dispatcher_enabled:
                problems.append(f"DISPATCHER_ENABLED=on needs a background thread, which cannot run {where}:"
                                " requests deliver what they queue and the tick (/api/internal/tick) retries the rest")
            if sweep_interval:
                problems.append(f"SLA_SWEEP_INTERVAL_SECONDS needs a background thread, which cannot run {where}:"
                                " the tick or pg_cron sweeps instead (set it to 0 or leave it unset)")
        watch_interval = integer("N8N_WATCH_INTERVAL_SECONDS", 30 if background and get("N8N_API_KEY") else 0, 0, 86_400)
        if watch_interval and not background:
            where = f"on {platform}" if platform != "server" else "with BACKGROUND_DUTIES=off"
            problems.append(f"N8N_WATCH_INTERVAL_SECONDS needs a background thread, which cannot run {where}:"
                            " the tick watches executions instead (set it to 0 or leave it unset)")
        if watch_interval and not get("N8N_API_KEY"):
            problems.append("N8N_WATCH_INTERVAL_SECONDS asks n8n about executions: set N8N_API_KEY")
        realtime_url = url("REALTIME_DATABASE_URL", ("postgres", "postgresql"))
        listen_url = realtime_url or database_url
        if background and listen_url and urlparse(listen_url).port == SUPABASE_TRANSACTION_POOLER_PORT:
            problems.append("LISTEN (/ws, the dispatcher) needs a session: set REALTIME_DATABASE_URL to the direct or"
                            f" session-pooler URL; the transaction pooler (port {SUPABASE_TRANSACTION_POOLER_PORT})"
                            " never delivers a notification")
        cron_secret = get("CRON_SECRET")
        if cron_secret is not None and len(cron_secret) < 16:
            problems.append("CRON_SECRET must be at least 16 characters")
        inline = (get("INLINE_DELIVERY") or "on").lower()
        if inline not in ("on", "off", "1", "0", "true", "false"):
            problems.append("INLINE_DELIVERY must be on or off")
        local_sign_in = (get("CONSOLE_LOCAL_SIGN_IN") or "off").lower()
        if local_sign_in not in ("on", "off", "1", "0", "true", "false"):
            problems.append("CONSOLE_LOCAL_SIGN_IN must be on or off")
        local_sign_in = local_sign_in in ("on", "1", "true")
        if local_sign_in and jwt_secret is None:
            problems.append("CONSOLE_LOCAL_SIGN_IN=on mints HS256 tokens: set SUPABASE_JWT_SECRET")
        metrics_token = get("METRICS_TOKEN")
        if metrics_token is not None and (len(metrics_token) < 16 or not metrics_token.isascii()
                                          or not metrics_token.isprintable() or " " in metrics_token):
            problems.append("METRICS_TOKEN must be at least 16 printable ASCII characters without spaces")
        settings = cls(
            database_url=database_url or "",
            supabase_url=supabase_url,
            supabase_jwt_secret=jwt_secret,
            jwt_issuer=get("SUPABASE_JWT_ISSUER") or (f"{supabase_url}/auth/v1" if supabase_url else None),
            n8n_base_url=url("N8N_BASE_URL", ("http", "https")),
            n8n_api_key=get("N8N_API_KEY"),
            n8n_callback_secret=callback_secret,
            n8n_webhook_token=get("N8N_WEBHOOK_TOKEN"),
            n8n_error_webhook_token=get("N8N_ERROR_WEBHOOK_TOKEN"),
            public_base_url=public_base_url,
            agent_base_url=url("AGENT_BASE_URL", ("http", "https")),
            agent_api_keys=agent_keys,
            redis_url=url("REDIS_URL", ("redis", "rediss")),
            db_pool_min=integer("DB_POOL_MIN", 2, 0, 100),
            db_pool_max=integer("DB_POOL_MAX", 10, 1, 200),
            rate_limits_enabled=(get("RATE_LIMITS") or "on").lower() not in ("off", "0", "false"),
            rate_limit_overrides=budget_overrides(),
            dispatcher_enabled=dispatcher_enabled,
            sla_sweep_interval_seconds=sweep_interval,
            n8n_watch_interval_seconds=watch_interval,
            n8n_watch_quiet_seconds=integer("N8N_WATCH_QUIET_SECONDS", 120, 1, 86_400),
            db_prepare_threshold=None if (get("DB_PREPARE_THRESHOLD") or "none").lower() == "none"
            else integer("DB_PREPARE_THRESHOLD", 5, 0, 1000),
            realtime_database_url=realtime_url,
            realtime_queue_size=integer("REALTIME_QUEUE_SIZE", 1000, 1, 100_000),
            realtime_heartbeat_seconds=integer("REALTIME_HEARTBEAT_SECONDS", 25, 1, 300),
            realtime_auth_timeout_seconds=integer("REALTIME_AUTH_TIMEOUT_SECONDS", 10, 1, 120),
            realtime_send_timeout_seconds=integer("REALTIME_SEND_TIMEOUT_SECONDS", 10, 1, 300),
            realtime_replay_limit=integer("REALTIME_REPLAY_LIMIT", 5000, 1, 100_000),
            realtime_retention_hours=integer("REALTIME_RETENTION_HOURS", 72, 1, 8760),
            realtime_prune_interval_seconds=integer("REALTIME_PRUNE_INTERVAL_SECONDS", 3600, 0, 86_400),
            realtime_person_recheck_seconds=integer("REALTIME_PERSON_RECHECK_SECONDS", 30, 1, 3600),
            request_read_seconds=integer("REQUEST_READ_SECONDS", 10, 1, 300),
            connections_per_address=integer("CONNECTIONS_PER_ADDRESS", 256, 0, 100_000),
            requests_in_flight_per_caller=integer("REQUESTS_IN_FLIGHT_PER_CALLER", 16, 1, 10_000),
            realtime_sockets_per_person=integer("REALTIME_SOCKETS_PER_PERSON", 16, 1, 100_000),
            trusted_proxies=networks("TRUSTED_PROXIES"),
            platform=platform,
            background_duties=background,
            deliver_inline=inline in ("on", "1", "true"),
            inline_delivery_timeout_seconds=float(integer("INLINE_DELIVERY_TIMEOUT_SECONDS", 3, 1, 30)),
            cron_secret=cron_secret,
            supabase_anon_key=get("SUPABASE_ANON_KEY"),
            console_local_sign_in=local_sign_in,
            console_local_token_seconds=integer("CONSOLE_LOCAL_TOKEN_SECONDS", 3600, 60, 86_400),
            metrics_token=metrics_token,
            supabase_auth_timeout_seconds=float(integer("SUPABASE_AUTH_TIMEOUT_SECONDS", 5, 1, 30)),
        )
        if problems:
            raise ConfigError(problems)
        return settings
