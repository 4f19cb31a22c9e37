"""«Безопасность»: the signed-in user's own panel sessions and API tokens (issue 10, items 6 and 8),
their password and their TOTP second factor (issue 12, decision 0028).

Every role has it, executors included. A user ends their own sessions ("this one", "all but this
one", "sign out everywhere") and issues and revokes their own API tokens; another user's session or
token id is 404 (models/services/access.py scopes every action by the user). Administering other
users' sessions and tokens is the administration pages' job (issue 12).

A new token's secret is in the answer to the POST that issued it and nowhere else: only its digest
is stored, so it is never shown again; that answer is not cached. Recovery codes likewise.

The password page and the second-factor page are open to a user who must first set their own
password (a temporary one from an administrator) or enrol (an administrator or a manager while
OPENADS_REQUIRE_2FA is on): every other page sends them there (web/auth.py `pending_setup`).
"""

from __future__ import annotations

from typing import Any

import segno
from flask import flash, redirect, render_template, request, url_for
from markupsafe import Markup
from werkzeug.datastructures import MultiDict

from models.errors import DomainError, ValidationFailed
from models.organization import Role
from models.rules import two_factor
from models.rules.access import (
    DEFAULT_SCOPES,
    MAX_TOKEN_DAYS,
    SCOPE_TITLES_RU,
    TOKEN_STATE_TITLES_RU,
    Scope,
    parse_scopes,
    scopes_for,
    token_expires_at,
    token_state,
    two_factor_required,
)
from models.services import access as access_svc
from models.services import audit as audit_svc
from models.services import two_factor as tf_svc
from models.services import users as users_svc
from web.auth import (
    SETUP_ENDPOINTS,
    login_required,
    logout_user,
    own_account,
    pending_setup,
    session_key,
    session_limits,
)
from web.clock import now
from web.dbsession import session as db_session
from web.inputs import optional_int
from web.kept_form import form_page
from web.panel import bp
from web.panel.common import field_errors, my_orgs, settings, user

DEFAULT_ZONE = "Europe/Moscow"


def panel_zone() -> str:
    """Times in the zone of the user's (first) organization, as the rest of the panel shows them."""
    orgs = my_orgs()
    return orgs[0].timezone if orgs else DEFAULT_ZONE


def _security_page(*, form: MultiDict[str, str] | None = None, error: str | None = None,
                   error_field: str = "", status: int = 200, alert_form: MultiDict[str, str] | None = None,
                   alert_error: str | None = None) -> Any:
    me, at, key = user(), now(), session_key()
    extra: dict[str, Any] = alert_context(me, alert_form, alert_error) if me.role == Role.EXECUTOR else {}
    s = db_session()
    sessions = access_svc.live_sessions(s, user_id=me.id, now=at, limits=session_limits())
    tokens = access_svc.user_tokens(s, user_id=me.id)
    chosen = form.getlist("scopes") if form is not None else [sc.value for sc in DEFAULT_SCOPES]
    return render_template(
        "account/security.html", tz=panel_zone(), sessions=sessions,
        current_id=next((r.id for r in sessions if access_svc.is_session_of(r, key)), None),
        tokens=[(t, parse_scopes(t.scopes), token_state(t.revoked, t.expires_at, at)) for t in tokens],
        scope_titles=SCOPE_TITLES_RU, state_titles=TOKEN_STATE_TITLES_RU, allowed_scopes=scopes_for(me.role),
        chosen_scopes=chosen, max_days=MAX_TOKEN_DAYS,
        days=form.get("days", "") if form is not None else settings().auth.api_token_days,
        name=form.get("name", "") if form is not None else "", error=error, error_field=error_field,
        **two_factor_context(me), **extra,
    ), status


def alert_context(who: Any, form: MultiDict[str, str] | None, error: str | None) -> dict[str, Any]:
    """The notification settings form of an executor (decision 0043), as saved or as typed."""
    from models.rules.alerts import CHANNEL_TITLES_RU, CHANNELS
    from models.services import alerts

    if form is not None:
        values = {"channels": form.getlist("channels"), "quiet_start": form.get("quiet_start", ""),
                  "quiet_end": form.get("quiet_end", "")}
    else:
        prefs = alerts.preferences(db_session(), who.id)
        values = {"channels": list(prefs.channels),
                  "quiet_start": f"{prefs.quiet_start:%H:%M}" if prefs.quiet_start else "",
                  "quiet_end": f"{prefs.quiet_end:%H:%M}" if prefs.quiet_end else ""}
    return {"alert_values": values, "alert_error": error,
            "alert_channels": [(c, CHANNEL_TITLES_RU[c]) for c in CHANNELS]}


@bp.post("/account/alerts")
@form_page("panel.account_security")
@login_required((Role.EXECUTOR,))
def account_alerts() -> Any:
    """The executor's own notification channels and quiet hours."""
    from models.services import alerts

    form = request.form
    me = user()
    try:
        alerts.set_preferences(db_session(), user=me, by=me, channels=form.getlist("channels"),
                               quiet_start=form.get("quiet_start", ""), quiet_end=form.get("quiet_end", ""),
                               now=now())
    except ValidationFailed as exc:
        db_session().rollback()
        return _security_page(alert_form=form, alert_error=exc.message, status=400)
    flash("Настройки уведомлений сохранены", "ok")
    return redirect(url_for("panel.account_security") + "#alerts")


def form_scopes(form: MultiDict[str, str]) -> tuple[Scope, ...]:
    try:
        return parse_scopes(form.getlist("scopes"))
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="scopes") from None


def form_days(form: MultiDict[str, str]) -> int:
    days = optional_int(form.get("days"), "days")
    if days is None:
        raise ValidationFailed("укажите срок действия токена в днях (0 — бессрочный)", field="days")
    return days


@bp.get("/account/security")
@login_required()
def account_security() -> Any:
    return _security_page()


# --- the user's own password --------------------------------------------------------------------------------


def _password_page(*, errors: dict[str, str] | None = None, status: int = 200) -> Any:
    return render_template("account/password.html", errors=errors or {},
                           min_length=settings().auth.password_min_length), status


@bp.get("/account/password")
@login_required(setup=True)
def account_password() -> Any:
    return _password_page()


@bp.post("/account/password")
@own_account
@login_required(setup=True)
def account_password_save() -> Any:
    me, form = user(), request.form
    try:
        users_svc.change_own_password(
            db_session(), user=me, current=form.get("current_password", ""), new=form.get("new_password", ""),
            repeat=form.get("repeat_password", ""), keep_key=session_key(), now=now(),
            min_length=settings().auth.password_min_length, by=audit_svc.Actor.of(me, "panel"))
    except ValidationFailed as exc:
        db_session().rollback()
        return _password_page(errors=field_errors(exc), status=400)
    flash("Пароль изменён; на других устройствах потребуется снова войти", "ok")
    step = pending_setup(me)
    return redirect(url_for(SETUP_ENDPOINTS[step]) if step else url_for("panel.account_security"))


# --- the second factor ------------------------------------------------------------------------------------------


def qr_svg(data: str) -> Markup:
    """A QR code as inline SVG, drawn on the server (no script, no image request; CSP-safe)."""
    return Markup(segno.make(data, error="m").svg_inline(scale=5, dark="#000", light="#fff",
                                                          title="QR-код для приложения"))


def two_factor_context(me: Any, *, error: str | None = None) -> dict[str, Any]:
    pending = me.totp_secret if me.totp_secret and not me.two_factor_enabled else None
    return {
        "tf_enabled": me.two_factor_enabled, "tf_required": two_factor_required(
            me.role, required=settings().auth.require_2fa),
        "tf_pending": pending is not None, "tf_error": error,
        "tf_qr": qr_svg(two_factor.provisioning_uri(pending, me.login)) if pending else None,
        "tf_secret": two_factor.grouped_secret(pending) if pending else "",
        "tf_codes_left": tf_svc.unused_recovery_codes(db_session(), user_id=me.id) if me.two_factor_enabled else 0,
        "tf_enabled_at": me.totp_enabled_at,
    }


def _two_factor_page(*, error: str | None = None, status: int = 200) -> Any:
    return render_template("account/two_factor.html", tz=panel_zone(), **two_factor_context(user(), error=error)), status


def _back() -> Any:
    return redirect(url_for("panel.account_security") if request.form.get("back") == "security"
                    else url_for("panel.account_two_factor"))


def _recovery_codes_page(codes: list[str]) -> Any:
    return render_template("account/recovery_codes.html", codes=codes), 200, {"Cache-Control": "no-store"}


@bp.get("/account/two-factor")
@login_required(setup=True)
def account_two_factor() -> Any:
    return _two_factor_page()


@bp.post("/account/two-factor/start")
@own_account
@form_page("panel.account_two_factor")
@login_required(setup=True)
def account_two_factor_start() -> Any:
    try:
        tf_svc.start_enrolment(db_session(), user=user())
    except ValidationFailed as exc:
        db_session().rollback()
        return _two_factor_page(error=exc.message, status=400)
    return _back()


@bp.post("/account/two-factor/confirm")
@own_account
@form_page("panel.account_two_factor")
@login_required(setup=True)
def account_two_factor_confirm() -> Any:
    me = user()
    try:
        codes = tf_svc.confirm_enrolment(db_session(), user=me, code=request.form.get("otp", ""), now=now(),
                                         by=audit_svc.Actor.of(me, "panel"))
    except ValidationFailed as exc:
        db_session().rollback()
        return _two_factor_page(error=exc.message, status=400)
    flash("Двухфакторный вход включён: при входе после пароля будет нужен код из приложения", "ok")
    return _recovery_codes_page(codes)


@bp.post("/account/two-factor/recovery-codes")
@own_account
@form_page("panel.account_two_factor")
@login_required()
def account_two_factor_recovery_codes() -> Any:
    me = user()
    try:
        codes = tf_svc.renew_recovery_codes(db_session(), user=me, code=request.form.get("otp", ""), now=now(),
                                            by=audit_svc.Actor.of(me, "panel"))
    except ValidationFailed as exc:
        db_session().rollback()
        return _two_factor_page(error=exc.message, status=400)
    return _recovery_codes_page(codes)


@bp.post("/account/two-factor/disable")
@own_account
@form_page("panel.account_two_factor")
@login_required()
def account_two_factor_disable() -> Any:
    me = user()
    try:
        tf_svc.disable(db_session(), user=me, code=request.form.get("otp", ""), now=now(),
                       by=audit_svc.Actor.of(me, "panel"))
    except ValidationFailed as exc:
        db_session().rollback()
        return _two_factor_page(error=exc.message, status=400)
    flash("Двухфакторный вход выключен" + (": для вашей роли он обязателен — подключите приложение заново"
                                            if pending_setup(me) else ""), "ok")
    return redirect(url_for("panel.account_two_factor"))


@bp.post("/account/sessions/<int:session_id>/end")
@own_account
@form_page("panel.account_security")
@login_required()
def account_session_end(session_id: int) -> Any:
    row = access_svc.end_user_session(db_session(), user_id=user().id, session_id=session_id, now=now())
    if access_svc.is_session_of(row, session_key()):
        logout_user()
        return redirect(url_for("panel.login"))
    flash("Сессия завершена: на том устройстве потребуется снова войти", "ok")
    return redirect(url_for("panel.account_security"))


@bp.post("/account/sessions/end-others")
@own_account
@form_page("panel.account_security")
@login_required()
def account_sessions_end_others() -> Any:
    ended = access_svc.end_user_sessions(db_session(), user_id=user().id, now=now(), keep_key=session_key())
    flash(f"Завершено других сессий: {ended}", "ok")
    return redirect(url_for("panel.account_security"))


@bp.post("/account/sessions/end-all")
@own_account
@form_page("panel.account_security")
@login_required()
def account_sessions_end_all() -> Any:
    """"Sign out everywhere", this browser included."""
    access_svc.end_user_sessions(db_session(), user_id=user().id, now=now())
    logout_user()
    flash("Вы вышли на всех устройствах", "ok")
    return redirect(url_for("panel.login"))


@bp.post("/account/tokens")
@form_page("panel.account_security")
@login_required()
def account_token_issue() -> Any:
    form = request.form
    at = now()
    try:
        days = form_days(form)
        try:
            expires_at = token_expires_at(at, days)
        except ValueError as exc:
            raise ValidationFailed(str(exc), field="days") from None
        issued = access_svc.issue_api_token(db_session(), user=user(), scopes=form_scopes(form),
                                            expires_at=expires_at, name=form.get("name", ""), now=at)
    except DomainError as exc:
        if exc.http_status == 404:
            raise
        db_session().rollback()
        return _security_page(form=form, error=exc.message, error_field=str(exc.details.get("field") or ""),
                              status=exc.http_status)
    response = render_template("account/token_issued.html", token=issued.token, secret=issued.secret,
                               scopes=parse_scopes(issued.token.scopes), scope_titles=SCOPE_TITLES_RU, tz=panel_zone())
    return response, 200, {"Cache-Control": "no-store"}


@bp.post("/account/tokens/<int:token_id>/revoke")
@own_account
@form_page("panel.account_security")
@login_required()
def account_token_revoke(token_id: int) -> Any:
    token = access_svc.revoke_own_api_token(db_session(), user_id=user().id, token_id=token_id)
    flash(f"Токен {token.name or '№ ' + str(token.id)} отозван: запросы с ним больше не принимаются", "ok")
    return redirect(url_for("panel.account_security"))
