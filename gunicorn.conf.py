"""gunicorn settings: `gunicorn -c gunicorn.conf.py wsgi:app`.

GUNICORN_WORKER=gevent (the default): every request and every WebSocket is a greenlet (the
standard library patched by gevent; psycopg cooperates with it), so a connection that waits
(an idle one, a slow client, an open WebSocket) costs a few kilobytes, not a thread:
worker_connections is the ceiling on connections per worker. This is the worker that holds
against hostile callers (docs/security.md, "Holding against hostile callers"): a request's
head must arrive within keepalive seconds and its body within REQUEST_READ_SECONDS, one address
holds at most CONNECTIONS_PER_ADDRESS connections per worker, and one person at most
REALTIME_SOCKETS_PER_PERSON sockets per worker.

GUNICORN_WORKER=thread: threaded workers; each request holds a thread while it is read and
answered, and each open WebSocket holds one for its whole life, so threads is the ceiling on
concurrent requests plus sockets per worker, and a few dozen slow clients can take them all.
Run it only behind a proxy that buffers whole requests and caps connections per client (the
HAProxy settings in docs/security.md), or where CPU-heavy requests must run in parallel
threads. psycopg's pool is thread-safe; every worker process has its own pool (DB_POOL_MAX
connections) and, once it serves a WebSocket, one LISTEN connection.

Socket-heavy deployments can add REALTIME_SOCKETS_PER_WORKER=N: N more threads (or
connections) per worker, on top of the request threads. See docs/realtime.md for measured
limits.
"""
import os
import signal
import sys
import threading

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
WORKER_CLASSES = {"thread": "app.server.ApiThreadWorker",  # gthread, with gunicorn's own 4xx answers in the API's error shape
                  "gevent": "app.server_gevent.ApiGeventWorker"}  # the same on gevent
worker_kind = os.environ.get("GUNICORN_WORKER", "gevent").strip().lower() or "gevent"
if worker_kind not in WORKER_CLASSES:
    print(f"GUNICORN_WORKER must be one of {', '.join(WORKER_CLASSES)}, not {worker_kind!r}", file=sys.stderr)
    raise SystemExit(2)
worker_class = WORKER_CLASSES[worker_kind]
realtime_sockets = int(os.environ.get("REALTIME_SOCKETS_PER_WORKER", "0"))
threads = int(os.environ.get("GUNICORN_THREADS", "32")) + realtime_sockets
worker_connections = 2000 + realtime_sockets  # twice gunicorn's default, plus the sockets
timeout = 60
graceful_timeout = 20
keepalive = 5  # also, on gevent, the deadline of a request's line and headers
accesslog = None  # the app logs one JSON line per request
errorlog = "-"
# gunicorn's control interface (gunicornc) listens on GUNICORN_CONTROL_SOCKET when it is set. Off
# otherwise: its default path (~/.gunicorn/gunicorn.ctl) is one for every instance on a machine,
# so a second service, a benchmark or a test server would take it over from the first.
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET", "").strip()
if not control_socket_disable:
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"].strip()


def on_starting(server):
    """The configuration is checked once, in the master, before the port is bound or a worker
    forked: a bad one stops gunicorn at once (exit 2) with the message naming every problem,
    instead of workers failing to boot one after another."""
    from app.config import ConfigError, Settings

    try:
        Settings.from_env()
    except ConfigError as error:
        print(error, file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def post_worker_init(worker):
    """On SIGTERM (a deploy, a restart) the worker's open WebSockets are closed with 1001 at
    once, so it stops as soon as its requests are done instead of waiting graceful_timeout for
    sockets that never end; clients reconnect and resume with since."""
    stop = worker.handle_exit

    def handle_exit(sig, frame):
        hub = getattr(worker.wsgi, "extensions", {}).get("realtime")
        if hub is not None:  # not from the signal handler itself: the hub takes a lock
            if worker_kind == "gevent":  # the handler runs in gevent's loop, which must not wait for a thread start
                import gevent

                gevent.spawn(hub.going_away)
            else:
                threading.Thread(target=hub.going_away, name="realtime-going-away", daemon=True).start()
        stop(sig, frame)

    worker.handle_exit = handle_exit
    signal.signal(signal.SIGTERM, handle_exit)
