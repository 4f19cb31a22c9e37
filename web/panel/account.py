"""«Безопасность»: the signed-in user's own panel sessions and API tokens (issue 10, items 6 and 8).

Every role has it, executors included. A user ends their own sessions ("this one", "all but this
one", "sign out everywhere") and issues and revokes their own API tokens; another user's session or
token id is 404 (models/services/access.py scopes every action by the user). Administering other
users' sessions and tokens is the administration pages' job (issue 12).

A new token's secret is in the answer to the POST that issued it and nowhere else: only its digest
is stored, so it is never shown again; that answer is not cached.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from models.errors import DomainError, ValidationFailed
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
)
from models.services import access as access_svc
from web.auth import login_required, logout_user, session_key, session_limits
from web.clock import now
from web.dbsession import session as db_session
from web.inputs import optional_int
from web.kept_form import form_page
from web.panel import bp
from web.panel.common import my_orgs, settings, user

DEFAULT_ZONE = "Europe/Moscow"


def _zone() -> str:
    """Times in the zone of the user's (first) organization, as the rest of the panel shows them."""
    orgs = my_orgs()
    return orgs[0].timezone if orgs else DEFAULT_ZONE


def _security_page(*, form: MultiDict[str, str] | None = None, error: str | None = None,
                   error_field: str = "", status: int = 200) -> Any:
    me, at, key = user(), now(), session_key()
    s = db_session()
    sessions = access_svc.live_sessions(s, user_id=me.id, now=at, limits=session_limits())
    tokens = access_svc.user_tokens(s, user_id=me.id)
    chosen = form.getlist("scopes") if form is not None else [sc.value for sc in DEFAULT_SCOPES]
    return render_template(
        "account/security.html", tz=_zone(), sessions=sessions,
        current_id=next((r.id for r in sessions if access_svc.is_session_of(r, key)), None),
        tokens=[(t, parse_scopes(t.scopes), token_state(t.revoked, t.expires_at, at)) for t in tokens],
        scope_titles=SCOPE_TITLES_RU, state_titles=TOKEN_STATE_TITLES_RU, allowed_scopes=scopes_for(me.role),
        chosen_scopes=chosen, max_days=MAX_TOKEN_DAYS,
        days=form.get("days", "") if form is not None else settings().auth.api_token_days,
        name=form.get("name", "") if form is not None else "", error=error, error_field=error_field,
    ), status


def _form_scopes(form: MultiDict[str, str]) -> tuple[Scope, ...]:
    try:
        return parse_scopes(form.getlist("scopes"))
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="scopes") from None


def _form_days(form: MultiDict[str, str]) -> int:
    days = optional_int(form.get("days"), "days")
    if days is None:
        raise ValidationFailed("укажите срок действия токена в днях (0 — бессрочный)", field="days")
    return days


@bp.get("/account/security")
@login_required()
def account_security() -> Any:
    return _security_page()


@bp.post("/account/sessions/<int:session_id>/end")
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
@form_page("panel.account_security")
@login_required()
def account_sessions_end_others() -> Any:
    ended = access_svc.end_user_sessions(db_session(), user_id=user().id, now=now(), keep_key=session_key())
    flash(f"Завершено других сессий: {ended}", "ok")
    return redirect(url_for("panel.account_security"))


@bp.post("/account/sessions/end-all")
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
        days = _form_days(form)
        try:
            expires_at = token_expires_at(at, days)
        except ValueError as exc:
            raise ValidationFailed(str(exc), field="days") from None
        issued = access_svc.issue_api_token(db_session(), user=user(), scopes=_form_scopes(form),
                                            expires_at=expires_at, name=form.get("name", ""), now=at)
    except DomainError as exc:
        if exc.http_status == 404:
            raise
        db_session().rollback()
        return _security_page(form=form, error=exc.message, error_field=str(exc.details.get("field") or ""),
                              status=exc.http_status)
    response = render_template("account/token_issued.html", token=issued.token, secret=issued.secret,
                               scopes=parse_scopes(issued.token.scopes), scope_titles=SCOPE_TITLES_RU, tz=_zone())
    return response, 200, {"Cache-Control": "no-store"}


@bp.post("/account/tokens/<int:token_id>/revoke")
@form_page("panel.account_security")
@login_required()
def account_token_revoke(token_id: int) -> Any:
    token = access_svc.revoke_own_api_token(db_session(), user_id=user().id, token_id=token_id)
    flash(f"Токен {token.name or '№ ' + str(token.id)} отозван: запросы с ним больше не принимаются", "ok")
    return redirect(url_for("panel.account_security"))
