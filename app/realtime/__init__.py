"""Realtime: the event stream's LISTEN connection, the fan-out hub and the /ws endpoint."""
from __future__ import annotations

from flask import Flask


UNAVAILABLE_MESSAGE = ("this deployment serves no WebSocket (a serverless host freezes the process between "
                       "requests): read GET /api/views/dashboard or /api/workflows again every "
                       "{poll} s instead, or subscribe through Supabase Realtime")
POLL_SECONDS = 15


def init_app(app: Flask) -> None:
    """Register WS /ws. The listener starts with the first socket, so processes (and tests)
    that never serve one hold no extra connection. Where background threads cannot live (a
    serverless host), /ws answers 501 realtime_unavailable at once, with what to do instead."""
    if not app.config["SETTINGS"].background_duties:
        from app.errors import error_response

        def realtime_unavailable():
            return error_response(501, "realtime_unavailable", UNAVAILABLE_MESSAGE.format(poll=POLL_SECONDS),
                                  {"pollSeconds": POLL_SECONDS, "alternatives": ["poll", "supabaseRealtime"]})

        # A WebSocket handshake matches only a rule marked websocket (werkzeug); a plain GET the other.
        app.add_url_rule("/ws", "realtime_unavailable", realtime_unavailable)
        app.add_url_rule("/ws", "realtime_unavailable_handshake", realtime_unavailable, websocket=True)
        return
    from app.realtime import endpoint

    endpoint.init_app(app)
