"""Domain errors → HTTP: JSON `{"error_id", "message", "details"}` under /api, pages elsewhere.

A database that is down, restarting or locked past its busy timeout (models.db.is_unavailable) is
not a bug: 503 with `Retry-After` and a Russian message, and a panel form sent meanwhile comes
back on the error page with what the user typed, ready to send again (decision 0022).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, g, jsonify, make_response, render_template, request
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, InternalServerError

from models.db import is_unavailable
from models.errors import DomainError

HTTP_MESSAGES_RU = {
    400: "Некорректный запрос",
    401: "Требуется вход в систему",
    403: "Недостаточно прав",
    404: "Не найдено",
    405: "Метод не поддерживается",
    409: "Конфликт",
    413: "Файл слишком большой",
    415: "Неподдерживаемый тип данных",
    422: "Некорректные данные",
    500: "Внутренняя ошибка сервера",
}
DB_UNAVAILABLE = "database-unavailable"
# Form fields shown on the outage page for editing, with their labels; the others go back hidden,
# and fields whose name has one of SECRET_PARTS (passwords, tokens) are never echoed.
KEPT_FIELD_LABELS_RU = {
    "description": "Описание", "text": "Текст", "reason": "Причина", "comment": "Комментарий",
    "reporter_name": "Заявитель", "reporter_phone": "Телефон заявителя", "title": "Заголовок",
    "announcement": "Объявление", "address": "Адрес", "full_name": "ФИО", "note": "Заметка",
}
SECRET_PARTS = ("password", "secret", "token")


def is_api() -> bool:
    return request.path.startswith("/api/")


def error_response(status: int, error_id: str, message: str, details: dict[str, Any] | None = None) -> Any:
    if is_api():
        return jsonify({"error_id": error_id, "message": message, "details": details or {}}), status
    return render_template("error.html", status=status, message=message, details=details or {}), status


def db_unavailable_message(seconds: int) -> str:
    return f"База данных временно недоступна, повторите через {seconds} с"


def _kept_input() -> list[tuple[str, str, str | None]]:
    """A panel form's fields (name, value, label; None: hidden) to send again; files cannot be kept."""
    if request.method != "POST" or is_api():
        return []
    try:
        items = list(request.form.items(multi=True))
    except Exception:  # an unreadable body (too large, broken): nothing to keep
        return []
    kept = []
    for name, value in items:
        if name == "csrf_token" or any(part in name.lower() for part in SECRET_PARTS):
            continue
        kept.append((name, value, KEPT_FIELD_LABELS_RU.get(name)))
    return kept


def db_unavailable_response(exc: BaseException) -> Response:
    """503 with Retry-After: JSON under /api, the error page (with the form's input) elsewhere."""
    seconds: int = current_app.config["OPENADS_SETTINGS"].web.db_retry_after
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    current_app.logger.warning("database unavailable on %s %s: %s", request.method, request.path, first_line)
    message = db_unavailable_message(seconds)
    if is_api():
        response = make_response(jsonify({"error_id": DB_UNAVAILABLE, "message": message,
                                          "details": {"retry_after": seconds}}), 503)
    else:
        g.user = None  # the page is drawn without the user's menu: reading the user needs the database
        response = make_response(render_template(
            "error.html", status=503, message=message, details={}, kept=_kept_input(),
            resend_to=request.full_path.rstrip("?")), 503)
    response.headers["Retry-After"] = str(seconds)
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(exc: DomainError) -> Any:
        return error_response(exc.http_status, exc.error_id, exc.message, exc.details)

    @app.errorhandler(DBAPIError)
    @app.errorhandler(DisconnectionError)
    @app.errorhandler(PoolTimeout)
    def _database(exc: Exception) -> Any:
        if is_unavailable(exc):
            return db_unavailable_response(exc)
        return _unexpected(exc)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        if isinstance(exc, InternalServerError) and exc.original_exception is not None \
                and is_unavailable(exc.original_exception):  # raised outside the view (after_request)
            return db_unavailable_response(exc.original_exception)
        status = exc.code or 500
        error_id = (exc.name or "error").lower().replace(" ", "-")
        message = HTTP_MESSAGES_RU.get(status, exc.name or "Ошибка")
        if status == 400 and exc.description and "CSRF" in exc.description:
            error_id, message = "csrf-failed", "Сессия формы устарела: обновите страницу"
        response = make_response(error_response(status, error_id, message))
        # The exception's own headers: 405's `Allow` (RFC 9110 requires it), 401's `WWW-Authenticate`.
        response.headers.extend((k, v) for k, v in exc.get_headers() if k.lower() != "content-type")
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal-error", HTTP_MESSAGES_RU[500])
