"""Server-rendered dispatcher panel (Russian UI)."""

from flask import Blueprint

bp = Blueprint("panel", __name__, template_folder="../templates")

from web.panel import views  # noqa: E402,F401
