"""Login, logout and the panel's home (the live journal)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import select

from models.organization import User
from web.auth import current_user, login_required, login_user, logout_user, verify_password
from web.dbsession import session as db_session
from web.panel import bp


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("panel.index")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "POST":
        login_name = (request.form.get("login") or "").strip()
        user = db_session().scalar(select(User).where(User.login == login_name, User.is_active.is_(True)))
        if user is not None and verify_password(user, request.form.get("password") or ""):
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        flash("Неверный логин или пароль", "error")
        return render_template("login.html"), 401
    if current_user() is not None:
        return redirect(url_for("panel.index"))
    return render_template("login.html")


@bp.post("/logout")
def logout() -> Any:
    logout_user()
    return redirect(url_for("panel.login"))


@bp.get("/")
@login_required()
def index() -> Any:
    return render_template("base.html")
