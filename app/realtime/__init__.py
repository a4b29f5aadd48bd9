"""Realtime: the event stream's LISTEN connection, the fan-out hub and the /ws endpoint."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register WS /ws. The listener starts with the first socket, so processes (and tests)
    that never serve one hold no extra connection."""
    from app.realtime import endpoint

    endpoint.init_app(app)
