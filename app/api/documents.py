"""Documents."""
from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("documents", __name__, url_prefix="/api/documents")
