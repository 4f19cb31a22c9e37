"""JSON API /api/v1 with per-user bearer tokens; the OpenAPI document is served at /api/v1/openapi.json."""

from flask import Blueprint

bp = Blueprint("api_v1", __name__)

from web.api.v1 import tickets  # noqa: E402,F401
