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
    """gevent, with gunicorn's refusals in the error shape and a cap on the connections one
    address holds open in this worker (app.connections)."""

    def patch(self):
        super().patch()
        from app.config import Settings  # imported patched
        from app.connections import AddressCap
        from app.server import write_error

        util.write_error = write_error
        self.address_cap = AddressCap.from_settings(Settings.from_env())

    def handle(self, listener, client, addr):
        from app.connections import peer_address, refuse_connection

        address = peer_address(addr)
        if not self.address_cap.admit(address):
            import gevent

            refuse_connection(self.address_cap, address, client, gevent.sleep)
            return
        try:
            super().handle(listener, client, addr)
        finally:
            self.address_cap.release(address)
