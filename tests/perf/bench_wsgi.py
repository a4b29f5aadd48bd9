"""The service plus two baselines the API benchmark compares with: a no-op endpoint, and the
least a request that reads the database can do (authenticate, one round trip, `select 1`)."""
from app.auth import current_principal
from app.db import get_db
from wsgi import app


@app.get("/bench/noop")
def noop():
    return {"ok": True}


@app.get("/api/bench/floor")
def floor():
    return {"ok": get_db().single(current_principal(), "select 1 as one")["one"]}
