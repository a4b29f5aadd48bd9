"""The service plus one no-op endpoint, the baseline the API benchmark compares reads with."""
from wsgi import app


@app.get("/bench/noop")
def noop():
    return {"ok": True}
