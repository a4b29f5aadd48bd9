"""WSGI entry point: `gunicorn -c gunicorn.conf.py wsgi:app` (and Vercel's Python runtime)."""
import sys

from app import create_app
from app.config import ConfigError
from app.observability import configure_logging

configure_logging()
try:
    app = create_app()
except ConfigError as error:
    print(error, file=sys.stderr)
    raise SystemExit(2) from None
