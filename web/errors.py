"""Domain errors → HTTP: JSON `{"error_id", "message", "details"}` under /api, pages elsewhere.

A database that is down, restarting, or busy past the request's timeout (models.db.failure_kind)
is not a bug: 503 with `Retry-After` and a Russian message (decision 0022); a panel form sent
meanwhile comes back as it was typed, on its own page (web/kept_form.py, decision 0024).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, g, jsonify, make_response, render_template, request
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, InternalServerError

from models.db import Failure, failure_kind, is_unavailable
from models.errors import DomainError
from models.rules.access import SAFE_METHODS
from web import dbsession, kept_form

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
DB_ERROR_IDS = {Failure.UNAVAILABLE: "database-unavailable", Failure.BUSY: "database-busy"}
DB_UNAVAILABLE = DB_ERROR_IDS[Failure.UNAVAILABLE]


def is_api() -> bool:
    """JSON errors: the API, and the executor app's own endpoints (/app/login, /app/csrf, ...)."""
    return request.path.startswith(("/api/", "/app/"))


def error_response(status: int, error_id: str, message: str, details: dict[str, Any] | None = None) -> Any:
    if is_api():
        return jsonify({"error_id": error_id, "message": message, "details": details or {}}), status
    return render_template("error.html", status=status, message=message, details=details or {}), status


def db_unavailable_message(seconds: int, kind: Failure = Failure.UNAVAILABLE, *, write: bool = False,
                           unsure: bool = False) -> str:
    """The 503's text. `write`: the request meant to change something, which did not happen;
    `unsure`: the connection failed during the commit, so the change may have been stored after all
    (a busy database refuses a commit whole: nothing was stored then)."""
    what = "База данных занята" if kind is Failure.BUSY else "База данных временно недоступна"
    if not write:
        return f"{what}, повторите через {seconds} с"
    if unsure and kind is Failure.UNAVAILABLE:
        return (f"{what} — сохранение не подтверждено: проверьте журнал, прежде чем отправлять снова, "
                f"повторите через {seconds} с")
    return f"{what} — ничего не сохранено, повторите через {seconds} с"


def db_unavailable_response(exc: BaseException) -> Response:
    """503 with Retry-After: JSON under /api; a panel form comes back as typed; the error page elsewhere."""
    if kept_form.is_drawing():  # the inner request drawing a kept form: its caller passes the page over
        return make_response("", 503)
    kind = failure_kind(exc) or Failure.UNAVAILABLE
    seconds: int = current_app.config["OPENADS_SETTINGS"].web.db_retry_after
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    current_app.logger.warning("database %s on %s %s: %s", kind.value, request.method, request.path, first_line)
    dbsession.discard()  # its locks go now, not after the page is drawn
    write = request.method not in SAFE_METHODS
    message = db_unavailable_message(seconds, kind, write=write, unsure=bool(g.get(dbsession.COMMIT_FAILED)))
    if is_api():
        response = make_response(jsonify({"error_id": DB_ERROR_IDS[kind], "message": message,
                                          "details": {"retry_after": seconds}}), 503)
    elif write:
        response = kept_form.response(message, db_down=kind is Failure.UNAVAILABLE)
    else:
        g.user = None  # the page is drawn without the user's menu: reading the user needs the database
        response = make_response(render_template("error.html", status=503, message=message, details={}), 503)
    response.headers["Retry-After"] = str(seconds)
    response.headers["Cache-Control"] = "no-store"  # it may carry what was typed
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
