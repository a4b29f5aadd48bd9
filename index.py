"""Vercel's entry point: Vercel's Python runtime looks for a top-level `app` in index.py (with no
other configuration); it is the same WSGI app gunicorn serves from wsgi.py. See docs/deploying.md."""
from wsgi import app  # noqa: F401
