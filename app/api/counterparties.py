"""Counterparties."""
from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("counterparties", __name__, url_prefix="/api/counterparties")
