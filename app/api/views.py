"""Views."""
from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("views", __name__, url_prefix="/api/views")
