"""Domain errors → HTTP: JSON `{"error_id", "message", "details"}` under /api, pages elsewhere."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, make_response, render_template, request
from werkzeug.exceptions import HTTPException

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


def is_api() -> bool:
    return request.path.startswith("/api/")


def error_response(status: int, error_id: str, message: str, details: dict[str, Any] | None = None) -> Any:
    if is_api():
        return jsonify({"error_id": error_id, "message": message, "details": details or {}}), status
    return render_template("error.html", status=status, message=message, details=details or {}), status


def init_app(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(exc: DomainError) -> Any:
        return error_response(exc.http_status, exc.error_id, exc.message, exc.details)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
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
