"""Health checks of each dependency, each with a short timeout: ok, degraded or down."""
from __future__ import annotations

import time

import psycopg
import requests
from flask import Flask

from app.auth import Principal

TIMEOUT_SECONDS = 2.0


def timed(check):
    started = time.perf_counter()
    result = check()
    result["latencyMs"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def check_database(app: Flask) -> dict:
    database = app.extensions["database"]
    for attempt in (1, 2):
        try:
            with database.transaction(Principal.service("health"), timeout=TIMEOUT_SECONDS) as conn:
                conn.execute("set local statement_timeout = 2000")
                row = conn.execute("select public.schema_version() as schema_version,"
                                   " pg_is_in_recovery() as read_only").fetchone()
            break
        except psycopg.OperationalError as error:
            # A pooled connection left over from before a database restart is not the database
            # being down: test the pool's connections and ask once more.
            if attempt == 2 or getattr(database, "pool", None) is None:
                return {"status": "down", "message": type(error).__name__}
            database.check_pool()
        except Exception as error:  # any other failure to reach the database is the answer
            return {"status": "down", "message": type(error).__name__}
    result = {"status": "ok", "schemaVersion": row["schema_version"]}
    pool = getattr(database, "pool", None)
    if pool is not None:
        stats = pool.get_stats()
        result["pool"] = {"size": stats.get("pool_size"), "available": stats.get("pool_available"),
                          "waiting": stats.get("requests_waiting", 0)}
    if row["read_only"]:
        result.update(status="degraded", message="the database is read-only")
    return result


def check_n8n(app: Flask) -> dict:
    base = app.config["SETTINGS"].n8n_base_url
    if not base:
        return {"status": "degraded", "message": "N8N_BASE_URL is not set: started workflows wait in the outbox until it is"}
    try:
        response = requests.get(f"{base}/healthz", timeout=TIMEOUT_SECONDS)
    except requests.RequestException as error:
        return {"status": "down", "message": f"n8n unreachable ({type(error).__name__})"}
    if response.status_code != 200:
        return {"status": "down", "message": f"n8n answered {response.status_code}"}
    return {"status": "ok"}


def check_agents(app: Flask) -> dict:
    """From what agents reported in the last hour: an agent below 80 % success degrades."""
    try:
        with app.extensions["database"].transaction(Principal.service("health"), timeout=TIMEOUT_SECONDS) as conn:
            rows = conn.execute(
                """select a.name, count(r.id) as calls, avg(case when r.success then 1.0 else 0.0 end) as success_rate
                     from public.agents a
                     left join public.agent_results r on r.agent_name = a.name and r.created_at > now() - interval '1 hour'
                    where a.is_active group by a.name order by a.name""").fetchall()
    except Exception as error:
        return {"status": "down", "message": type(error).__name__}
    struggling = [r["name"] for r in rows if r["calls"] >= 5 and r["success_rate"] < 0.8]
    return {"status": "degraded" if struggling else "ok", "activeAgents": len(rows), "struggling": struggling}


def check_realtime(app: Flask) -> dict:
    hub = app.extensions.get("realtime")
    if not app.config["SETTINGS"].background_duties:
        return {"status": "ok", "websocket": False,
                "message": f"no WebSocket on this platform ({app.config['SETTINGS'].platform}): clients poll"}
    if hub is None:
        return {"status": "degraded", "message": "the realtime listener is not running in this process"}
    return hub.health()


def check_auth(app: Flask) -> dict:
    verifier = app.extensions["token_verifier"]
    if verifier.jwks is None:
        return {"status": "ok", "mode": "HS256"} if verifier.secret else {"status": "down", "message": "no key"}
    try:
        verifier.jwks.get_signing_keys()
    except Exception as error:
        if verifier.secret:
            return {"status": "degraded", "mode": "HS256", "message": f"JWKS unreachable ({type(error).__name__})"}
        return {"status": "down", "message": f"JWKS unreachable ({type(error).__name__})"}
    return {"status": "ok", "mode": "JWKS" + ("+HS256" if verifier.secret else "")}


CHECKS = {"database": check_database, "workflows": check_n8n, "agents": check_agents,
          "realtime": check_realtime, "auth": check_auth}


def overall(app: Flask) -> dict:
    checks = {name: timed(lambda check=check: check(app)) for name, check in CHECKS.items()}
    statuses = {c["status"] for c in checks.values()}
    if checks["database"]["status"] == "down":
        status = "down"
    elif statuses != {"ok"}:
        status = "degraded"
    else:
        status = "ok"
    return {"status": status, "checks": {name: c["status"] for name, c in checks.items()}, "details": checks}
