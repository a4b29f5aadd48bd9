"""gunicorn settings: `gunicorn -c gunicorn.conf.py wsgi:app`.

Threaded workers: each request holds a thread, and (later) each open WebSocket holds one
too, so threads is the ceiling on concurrent requests plus sockets per worker. psycopg's pool
is thread-safe; every worker process has its own pool (DB_POOL_MAX connections).
"""
import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
timeout = 60
graceful_timeout = 20
keepalive = 5
accesslog = None  # the app logs one JSON line per request
errorlog = "-"
