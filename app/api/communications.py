"""Communications."""
from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("communications", __name__, url_prefix="/api/communications")
