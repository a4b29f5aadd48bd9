"""gunicorn's gevent worker (GUNICORN_WORKER=gevent), answering the requests gunicorn refuses
itself in the API's one error shape, like app.server.ApiThreadWorker.

gunicorn imports this module in its master, before any worker patches the standard library:
it imports nothing of the app's at the top. The app (and psycopg, which chooses at import
whether to wait cooperatively) is imported in the worker after gevent has patched it.
"""
from __future__ import annotations

from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker


class ApiGeventWorker(GeventWorker):
    def patch(self):
        super().patch()
        from app.server import write_error  # imported patched

        util.write_error = write_error
