"""The service plus the baselines the API benchmark compares with: a no-op endpoint; the least
any endpoint that reads PostgreSQL does (a pooled connection, `select 1`: no caller, no
transaction, no RLS); and the least a request of this API that reads the database can do
(authenticate, one round trip in the caller's transaction, `select 1`)."""
from app.auth import current_principal
from app.db import get_db
from wsgi import app


@app.get("/bench/noop")
def noop():
    return {"ok": True}


@app.get("/api/bench/floor")
def floor():
    return {"ok": get_db().single(current_principal(), "select 1 as one")["one"]}


@app.get("/bench/bare")
def bare():
    with get_db().pool.connection() as conn:
        return {"ok": conn.execute("select 1 as one").fetchone()["one"]}
