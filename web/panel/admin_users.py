"""«Администрирование → Пользователи»: the users of the administrator's organizations (issue 12,
part A item 3; decision 0028): the list (role, organizations, active, last login, lock-out),
creating and editing a user, deactivating and activating (never deleting), a temporary password
shown once, resetting the second factor, the user's sessions ("sign out everywhere"), their API
tokens (issued here, the secret shown once) and lifting a lock-out.

Administrators only (others: 403); a user of no organization of the administrator is 404; an
account-wide change of a user who also works in another organization is 403
(models/services/users.py). A refused form comes back as typed with a Russian message per field.
Answers carrying a secret (a temporary password, a token) are not cached.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from models.errors import ValidationFailed
from models.organization import ROLE_TITLES_RU, Role, User
from models.rules.access import (
    MAX_TOKEN_DAYS,
    SCOPE_TITLES_RU,
    TOKEN_STATE_TITLES_RU,
    default_scopes_for,
    last_valid_day,
    parse_scopes,
    scopes_for,
    token_expires_at,
    token_state,
    valid_through_day,
)
from models.services import access as access_svc
from models.services import users as users_svc
from web.auth import login_required, org_ids, session_limits
from web.clock import now
from web.dbsession import session as db_session
from web.inputs import optional_int
from web.kept_form import form_page
from web.panel import bp
from web.panel.account import alert_context, form_days, form_scopes, panel_zone
from web.panel.admin import ADMINS, actor
from web.panel.common import field_errors, my_orgs, settings
from web.panel.common import user as panel_user

NO_STORE = {"Cache-Control": "no-store"}


def _user(user_id: int) -> User:
    return users_svc.get_user(db_session(), admin_orgs=org_ids(), user_id=user_id)


def _valid_until(form: MultiDict[str, str]) -> datetime | None:
    """The form's «Действует до» (a date, inclusive, in the panel's zone); empty: no limit."""
    raw = form.get("valid_until", "").strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed("Проверьте поля: Действует до: дата в формате ГГГГ-ММ-ДД", field="valid_until",
                               fields=[{"field": "valid_until", "message": "дата в формате ГГГГ-ММ-ДД"}]) from None
    return valid_through_day(day, panel_zone())


def _draft(form: MultiDict[str, str], *, login: bool) -> users_svc.UserDraft:
    return users_svc.UserDraft(
        login=form.get("login", "") if login else None, full_name=form.get("full_name", ""),
        email=form.get("email", ""), phone=form.get("phone", ""), role=form.get("role", ""),
        organization_ids=tuple(form.getlist("organization_ids")), valid_until=_valid_until(form),
    )


def _values(user: User | None) -> dict[str, Any]:
    if user is None:
        return {"login": "", "full_name": "", "email": "", "phone": "", "role": Role.DISPATCHER.value,
                "organization_ids": [str(o.id) for o in my_orgs()][:1], "valid_until": ""}
    return {"login": user.login, "full_name": user.full_name, "email": user.email or "", "phone": user.phone or "",
            "role": user.role.value, "organization_ids": [str(i) for i in user.organization_ids],
            "valid_until": last_valid_day(user.valid_until, panel_zone()).isoformat() if user.valid_until else ""}


def _form_values(form: MultiDict[str, str], user: User | None) -> dict[str, Any]:
    values = {k: form.get(k, "") for k in ("login", "full_name", "email", "phone", "role", "valid_until")}
    values["organization_ids"] = form.getlist("organization_ids")
    if user is not None:
        values["login"] = user.login
    return values


# --- the list -------------------------------------------------------------------------------------------------


@bp.get("/admin/users")
@login_required(ADMINS)
def admin_users() -> Any:
    orgs = my_orgs()
    args = request.args
    error = None
    active_arg = args.get("active", "1")
    active = {"1": True, "0": False}.get(active_arg)
    rows: list[users_svc.UserRow] = []
    try:
        oid = optional_int(args.get("organization_id"), "organization_id")
        if oid is not None and oid not in org_ids():
            raise ValidationFailed("организация не найдена", field="organization_id")
        rows = users_svc.user_rows(db_session(), admin_orgs=org_ids(), now=now(), organization_id=oid,
                                   q=args.get("q", ""), active=active)
    except ValidationFailed as exc:
        error = exc.message
    return render_template("admin/users.html", rows=rows, orgs=orgs, org_map={o.id: o for o in orgs}, args=args,
                           active_arg=active_arg, roles=ROLE_TITLES_RU, tz=panel_zone(), error=error), (400 if error else 200)


# --- create and edit ----------------------------------------------------------------------------------------------


def _user_page(user: User | None, *, values: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
               token_form: MultiDict[str, str] | None = None, token_error: str | None = None,
               alert_form: MultiDict[str, str] | None = None, alert_error: str | None = None,
               status: int = 200) -> Any:
    s, at = db_session(), now()
    ctx: dict[str, Any] = {}
    if user is not None:
        tokens = access_svc.user_tokens(s, user_id=user.id)
        ctx = {
            "shared": users_svc.is_shared(user, org_ids()),
            "sessions": access_svc.live_sessions(s, user_id=user.id, now=at, limits=session_limits()),
            "tokens": [(t, parse_scopes(t.scopes), token_state(t.revoked, t.expires_at, at)) for t in tokens],
            "locked_until": users_svc.login_locks(s, logins=[user.login], now=at).get(user.login),
            "last_login": users_svc.last_login(s, user_id=user.id),
            "allowed_scopes": scopes_for(user.role),
            "chosen_scopes": token_form.getlist("scopes") if token_form is not None
            else [sc.value for sc in default_scopes_for(user.role)],
            "days": token_form.get("days", "") if token_form is not None else settings().auth.api_token_days,
            "token_name": token_form.get("name", "") if token_form is not None else "",
            "other_orgs": [i for i in user.organization_ids if i not in org_ids()],
        }
        if user.role == Role.EXECUTOR:
            ctx.update(alert_context(user, alert_form, alert_error))
    return render_template(
        "admin/user.html", u=user, v=values or _values(user), errors=errors or {}, orgs=my_orgs(), roles=ROLE_TITLES_RU,
        tz=panel_zone(), scope_titles=SCOPE_TITLES_RU, state_titles=TOKEN_STATE_TITLES_RU, max_days=MAX_TOKEN_DAYS,
        token_error=token_error, **ctx,
    ), status


def _secret_page(user: User, *, title: str, secret: str, note: str) -> Any:
    return render_template("admin/user_secret.html", u=user, title=title, secret=secret, note=note), 200, NO_STORE


@bp.get("/admin/users/new")
@login_required(ADMINS)
def admin_user_new() -> Any:
    return _user_page(None)


@bp.post("/admin/users/new")
@login_required(ADMINS)
def admin_user_create() -> Any:
    try:
        created = users_svc.create_user(db_session(), draft=_draft(request.form, login=True), admin_orgs=org_ids(),
                                        by=actor(), now=now(), min_length=settings().auth.password_min_length)
    except ValidationFailed as exc:
        db_session().rollback()
        return _user_page(None, values=_form_values(request.form, None), errors=field_errors(exc), status=400)
    assert created.temporary_password is not None
    return _secret_page(created.user, title="Пользователь добавлен", secret=created.temporary_password,
                        note="Временный пароль для первого входа: при входе пользователь задаст свой.")


@bp.get("/admin/users/<int:user_id>")
@login_required(ADMINS)
def admin_user(user_id: int) -> Any:
    return _user_page(_user(user_id))


@bp.post("/admin/users/<int:user_id>")
@login_required(ADMINS)
def admin_user_save(user_id: int) -> Any:
    user = _user(user_id)
    try:
        users_svc.update_user(db_session(), user=user, draft=_draft(request.form, login=False), admin_orgs=org_ids(),
                              by=actor(), now=now())
    except ValidationFailed as exc:
        db_session().rollback()
        return _user_page(user, values=_form_values(request.form, user), errors=field_errors(exc), status=400)
    flash(f"Пользователь {user.full_name} сохранён", "ok")
    if not set(user.organization_ids) & set(org_ids()):
        return redirect(url_for("panel.admin_users"))  # no longer in the administrator's organizations
    return redirect(url_for("panel.admin_user", user_id=user.id))


@bp.post("/admin/users/<int:user_id>/<any(deactivate, activate):action>")
@form_page("panel.admin_user")
@login_required(ADMINS)
def admin_user_active(user_id: int, action: str) -> Any:
    user = _user(user_id)
    active = action == "activate"
    ended = users_svc.set_active(db_session(), user=user, active=active, admin_orgs=org_ids(), by=actor(), now=now())
    flash(f"Пользователь {user.full_name} " + ("снова может входить" if active else
                                               f"отключён: вход закрыт, токены не действуют, завершено сессий: {ended}"),
          "ok")
    return redirect(url_for("panel.admin_user", user_id=user.id))


@bp.post("/admin/users/<int:user_id>/password-reset")
@form_page("panel.admin_user")
@login_required(ADMINS)
def admin_user_password_reset(user_id: int) -> Any:
    user = _user(user_id)
    temporary = users_svc.reset_password(db_session(), user=user, admin_orgs=org_ids(), by=actor(), now=now(),
                                         min_length=settings().auth.password_min_length)
    return _secret_page(user, title="Пароль сброшен", secret=temporary,
                        note="Временный пароль: при входе пользователь задаст свой. Открытые сессии пользователя "
                             "завершены, блокировка входа снята.")


@bp.post("/admin/users/<int:user_id>/two-factor-reset")
@form_page("panel.admin_user")
@login_required(ADMINS)
def admin_user_two_factor_reset(user_id: int) -> Any:
    user = _user(user_id)
    had = users_svc.reset_two_factor(db_session(), user=user, admin_orgs=org_ids(), by=actor(), now=now())
    flash("Двухфакторный вход сброшен: при следующем входе пользователь подключит приложение заново" if had
          else "Двухфакторный вход у пользователя не был подключён", "ok")
    return redirect(url_for("panel.admin_user", user_id=user.id))


@bp.post("/admin/users/<int:user_id>/sessions/end-all")
@form_page("panel.admin_user")
@login_required(ADMINS)
def admin_user_sessions_end(user_id: int) -> Any:
    user = _user(user_id)
    ended = users_svc.end_sessions(db_session(), user=user, admin_orgs=org_ids(), by=actor(), now=now())
    flash(f"Завершено сессий: {ended}", "ok")
    return redirect(url_for("panel.admin_user", user_id=user.id))


@bp.post("/admin/users/<int:user_id>/sessions/<int:session_id>/end")
@form_page("panel.admin_user")
@login_required(ADMINS)
def admin_user_session_end(user_id: int, session_id: int) -> Any:
    user = _user(user_id)
    users_svc.end_one_session(db_session(), user=user, session_id=session_id, admin_orgs=org_ids(), by=actor(),
                              now=now())
    flash("Сессия завершена", "ok")
    return redirect(url_for("panel.admin_user", user_id=user.id))


@bp.post("/admin/users/<int:user_id>/alerts")
@form_page("panel.admin_user")
@login_required(ADMINS)
def admin_user_alerts(user_id: int) -> Any:
    """An executor's notification channels and quiet hours (decision 0043)."""
    from models.services import alerts

    user = _user(user_id)
    form = request.form
    try:
        alerts.set_preferences(db_session(), user=user, by=panel_user(), channels=form.getlist("channels"),
                               quiet_start=form.get("quiet_start", ""), quiet_end=form.get("quiet_end", ""),
                               now=now())
    except ValidationFailed as exc:
        db_session().rollback()
        return _user_page(user, alert_form=form, alert_error=exc.message, status=400)
    flash("Настройки уведомлений сохранены", "ok")
    return redirect(url_for("panel.admin_user", user_id=user.id))


@bp.post("/admin/users/<int:user_id>/unlock")
@form_page("panel.admin_user")
@login_required(ADMINS)
def admin_user_unlock(user_id: int) -> Any:
    user = _user(user_id)
    lifted = users_svc.unlock_login(db_session(), user=user, by=actor(), now=now())
    flash("Блокировка входа снята" if lifted else "Вход не был заблокирован", "ok")
    return redirect(url_for("panel.admin_user", user_id=user.id))


@bp.post("/admin/users/<int:user_id>/tokens")
@form_page("panel.admin_user")
@login_required(ADMINS)
def admin_user_token_issue(user_id: int) -> Any:
    user = _user(user_id)
    form, at = request.form, now()
    try:
        days = form_days(form)
        try:
            expires_at = token_expires_at(at, days)
        except ValueError as exc:
            raise ValidationFailed(str(exc), field="days") from None
        issued = users_svc.issue_token(db_session(), user=user, scopes=form_scopes(form), expires_at=expires_at,
                                       name=form.get("name", ""), admin_orgs=org_ids(), by=actor(), now=at)
    except ValidationFailed as exc:
        db_session().rollback()
        return _user_page(user, token_form=form, token_error=exc.message, status=400)
    return _secret_page(user, title="API-токен выпущен", secret=issued.secret,
                        note=f"Токен № {issued.token.id}: передайте его пользователю или в настройки интеграции.")


@bp.post("/admin/users/<int:user_id>/tokens/<int:token_id>/revoke")
@form_page("panel.admin_user")
@login_required(ADMINS)
def admin_user_token_revoke(user_id: int, token_id: int) -> Any:
    user = _user(user_id)
    users_svc.revoke_token(db_session(), user=user, token_id=token_id, admin_orgs=org_ids(), by=actor(), now=now())
    flash(f"Токен № {token_id} отозван", "ok")
    return redirect(url_for("panel.admin_user", user_id=user.id))

