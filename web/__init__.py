"""Flask panel and JSON API. Views authenticate, resolve the organizations, parse input, call
one service or query, render. They never hold a rule; the request's unit of work commits once."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from models.db import Database
from openads import bus as bus_mod
from openads.config import Settings, load_settings
from web import inputs

csrf = CSRFProtect()


def create_app(settings: Settings | None = None, db: Database | None = None, **overrides: Any) -> Flask:
    settings = settings or load_settings()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        PERMANENT_SESSION_LIFETIME=settings.auth.sessions.lifetime,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=settings.max_upload_mb * 1024 * 1024,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        OPENADS_SETTINGS=settings,
        JSON_AS_ASCII=False,
    )
    app.config.update(overrides)
    inputs.init_app(app)  # before any rule is added: the bounded `int` converter, the bounded JSON parser
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    # A request waits a bounded time for a busy database, then answers 503 with the form kept.
    database = db or Database(settings.database_url, lock_timeout=settings.web.db_busy_timeout)
    app.extensions["openads.db"] = database
    bus = bus_mod.Bus(settings.redis_url)
    bus_mod.install(bus)
    app.extensions["openads.bus"] = bus

    csrf.init_app(app)

    from web import auth, dbsession, errors, filters, security

    security.init_app(app, settings.web)
    dbsession.init_app(app)
    auth.init_app(app)
    errors.init_app(app)
    filters.init_app(app)

    from web.api.v1 import bp as api_bp
    from web.panel import bp as panel_bp

    csrf.exempt(api_bp)  # the API authenticates by token, not cookie
    app.register_blueprint(panel_bp)
    from web.panel.field_app import bp as field_app_bp

    app.register_blueprint(field_app_bp)
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    # Browsers ask for /favicon.ico on their own, before any page's <link rel="icon">
    app.add_url_rule("/favicon.ico", "favicon", lambda: app.send_static_file("favicon.ico"))
    if settings.demo:  # `openads demo`: the call simulator driving the ARI emulator; never otherwise
        from web.panel.simulator import bp as simulator_bp

        app.register_blueprint(simulator_bp)

    @app.get("/status")
    def status() -> dict[str, Any]:
        return {"status": "ok"}

    return app
