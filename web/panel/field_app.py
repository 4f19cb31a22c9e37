"""The executor app (issue 15 A; decision 0042): an installable web app at /app — the shell page,
its manifest and service worker, and the device login. Everything else it does goes through
/api/v1/executor/... with the session cookie and the CSRF token from /app/csrf.

A blueprint of its own (not the panel's): its pages are not the panel's pages (the layout walk
of tests/browser visits every panel page), and its responses allow what the panel forbids —
the camera, the microphone and the position (Permissions-Policy), photo previews from blob: URLs.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request, session
from flask_wtf.csrf import generate_csrf

from models.organization import Role
from web.auth import (
    check_login,
    current_user,
    expired_message,
    locked_minutes,
    login_user,
    logout_user,
    own_account,
    pending_setup,
)
from web.dbsession import commit_now
from web.errors import error_response
from web.security import CSP

bp = Blueprint("field_app", __name__, template_folder="../templates")

STATIC = Path(__file__).resolve().parent.parent / "static" / "app"
SHELL_FILES = ("field.js", "field.css", "icon-192.png", "icon-512.png", "icon-maskable-512.png",
               "apple-touch-icon.png")
APP_CSP = CSP.replace("img-src 'self'", "img-src 'self' blob: data:") + "; media-src 'self' blob:; worker-src 'self'"
APP_PERMISSIONS = "camera=(self), geolocation=(self), microphone=(self), payment=(), usb=()"


@cache
def shell_version() -> str:
    """A digest of the shell's files: the service worker's cache name changes with any of them."""
    digest = hashlib.sha256()
    for name in SHELL_FILES:
        digest.update((STATIC / name).read_bytes())
    digest.update((Path(__file__).resolve().parent.parent / "templates" / "app" / "index.html").read_bytes())
    return digest.hexdigest()[:12]


@bp.after_request
def _app_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = APP_CSP
    response.headers["Permissions-Policy"] = APP_PERMISSIONS
    return response


@bp.get("/app")
def shell() -> Any:
    """The app's one page; the same for everybody (the service worker keeps it for offline use):
    who is signed in, the script asks the API."""
    return render_template("app/index.html", version=shell_version())


@bp.get("/app/manifest.webmanifest")
def manifest() -> Any:
    body = {
        "name": "Открытая АДС — исполнитель",
        "short_name": "АДС исполнитель",
        "description": "Заявки исполнителя: адреса, сроки, статусы, фото — и без сети",
        "lang": "ru",
        "start_url": "/app",
        "scope": "/app",
        "display": "standalone",
        "orientation": "portrait",
        "background_color": "#111827",
        "theme_color": "#b45309",
        "icons": [
            {"src": "/static/app/icon-192.png", "sizes": "192x192", "type": "image/png", "purpose": "any"},
            {"src": "/static/app/icon-512.png", "sizes": "512x512", "type": "image/png", "purpose": "any"},
            {"src": "/static/app/icon-maskable-512.png", "sizes": "512x512", "type": "image/png",
             "purpose": "maskable"},
        ],
    }
    return Response(json.dumps(body, ensure_ascii=False), mimetype="application/manifest+json")


@bp.get("/app/sw.js")
def service_worker() -> Any:
    """Served from /app/ so that its scope is the app (a script under /static/ could not control /app)."""
    text = render_template("app/sw.js", version=shell_version(), files=SHELL_FILES)
    resp = Response(text, mimetype="text/javascript")
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["Service-Worker-Allowed"] = "/app"  # its scope is /app itself, not only /app/...
    return resp


@bp.get("/app/csrf")
def csrf_token() -> Any:
    """A fresh CSRF token for the app's writes (its page may have been cached for days)."""
    user = current_user()
    resp = {"csrf_token": generate_csrf(), "user": None}
    if user is not None:
        resp["user"] = {"id": user.id, "full_name": user.full_name, "role": user.role.value,
                        "organizations": [{"id": m.organization.id, "short_name": m.organization.short_name}
                                          for m in user.memberships]}
    out = current_app.json.response(resp)
    out.headers["Cache-Control"] = "no-store"
    return out


@bp.post("/app/login")
@own_account
def login() -> Any:
    """JSON {login, password} → a device session (the app stays signed in on this phone)."""
    data = request.get_json(silent=True) or {}
    outcome = check_login(str(data.get("login") or "")[:80], str(data.get("password") or "")[:200])
    user = outcome.user
    if user is not None:
        if user.role != Role.EXECUTOR:
            return error_response(403, "executors-only", "Приложение — для исполнителей: войдите в панель по адресу /")
        if user.two_factor_enabled or pending_setup(user) is not None:
            return error_response(403, "finish-in-panel",
                                  "Сначала войдите в панель (/login) и завершите настройку входа, затем — сюда")
        login_user(user, device=True)
        return {"csrf_token": generate_csrf(), "user": {"id": user.id, "full_name": user.full_name}}
    if outcome.expired is not None:
        return error_response(403, "account-expired", expired_message(outcome.expired))
    commit_now()  # the failure counts towards the lock-out although the answer is an error
    if outcome.locked_until is not None:
        return error_response(429, "login-locked", f"Слишком много неудачных попыток входа. Вход закрыт ещё на "
                              f"{locked_minutes(outcome.locked_until)} мин.")
    return error_response(401, "bad-credentials", "Неверный логин или пароль")


@bp.post("/app/logout")
@own_account
def logout() -> Any:
    logout_user()
    session.clear()
    return {"ok": True}
