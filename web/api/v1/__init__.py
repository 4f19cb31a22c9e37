"""JSON API /api/v1 with per-user bearer tokens; the OpenAPI document is served at /api/v1/openapi.json.

Authentication: `Authorization: Bearer <token>` (with the route's scope), or — for the panel's own
scripts — the cookie session, and then every write must carry the CSRF token in `X-CSRFToken` (the
blueprint is exempt from form CSRF because token clients cannot have one). Never both: a request
with an `Authorization` header is judged by that header alone (web/auth.py).
"""

from typing import Any

from flask import Blueprint, current_app, request
from flask_wtf.csrf import validate_csrf
from pydantic import ValidationError as PydanticValidationError
from werkzeug.exceptions import RequestEntityTooLarge
from wtforms.validators import ValidationError as CsrfError

from models.rules.access import SAFE_METHODS
from web import auth
from web.errors import error_response

bp = Blueprint("api_v1", __name__)

# The largest request body the API reads (the app's MAX_CONTENT_LENGTH is sized for the panel's
# uploads). The largest real one, a ticket with a 10 000-character description, is under 64 KiB
# even with every character \u-escaped; nesting is bounded by the JSON parser (web.inputs).
MAX_BODY_BYTES = 256 * 1024


@bp.before_request
def _bounded_body() -> None:
    request.max_content_length = MAX_BODY_BYTES


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(exc: RequestEntityTooLarge) -> Any:
    from web.errors import error_response

    return error_response(413, "body-too-large", f"тело запроса больше {MAX_BODY_BYTES // 1024} КБ",
                          {"max_bytes": MAX_BODY_BYTES})


@bp.before_request
def _authenticate() -> Any:
    """Bearer token alone, or the cookie with CSRF on writes (web/auth.py); the route's scope for a token."""
    auth.authenticate_api(current_app.view_functions[request.endpoint or ""])
    if request.method in SAFE_METHODS or not auth.by_cookie():
        return None  # a token client, or anonymous: the view answers 401
    if not current_app.config.get("WTF_CSRF_ENABLED", True):
        return None
    try:
        validate_csrf(request.headers.get("X-CSRFToken", ""))
    except CsrfError:
        return error_response(400, "csrf-failed", "Сессия формы устарела: обновите страницу")
    return None


@bp.errorhandler(PydanticValidationError)
def _pydantic(exc: PydanticValidationError) -> Any:
    from web.api.v1.common import invalid_body

    err = invalid_body(exc)
    return error_response(err.http_status, err.error_id, err.message, err.details)


from web.api.v1 import (  # noqa: E402,F401
    admin,
    admin_robot,
    admin_telephony,
    admin_users,
    analytics,
    audit_chain,
    calls,
    dispatch,
    executor,
    houses,
    incidents,
    inspection,
    openapi,
    organizations,
    ratings,
    recordings,
    residents,
    tickets,
)
