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
    # 4 is gunicorn's "app failed to load": its master stops instead of forking worker after
    # worker (gunicorn.conf.py checks the configuration in the master first anyway).
    raise SystemExit(4) from None
