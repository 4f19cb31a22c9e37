"""Users in the administration API (issue 12, part A item 3; decision 0028): the users of the
administrator's organizations — list, create (a temporary password in the answer, once), edit,
deactivate, password reset, second-factor reset, lock-out, sessions, API tokens (the secret in the
answer, once). The `settings` scope and the administrator role, as every /admin route; the same
services as the panel (models/services/users.py), so the same rules: another organization's user
is 404, an account-wide change of a user shared with an organization the administrator does not
manage is 403, and every change is in the audit log with `via` = api."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, request
from pydantic import BaseModel, Field

from models.auth import UserSession
from models.errors import ValidationFailed
from models.organization import ApiToken, Role, User
from models.rules.access import MAX_TOKEN_DAYS, Scope, parse_scopes, token_expires_at, token_state
from models.services import access as access_svc
from models.services import users as users_svc
from models.services.audit import Actor
from web.api.v1 import bp
from web.api.v1 import common as c
from web.api.v1.admin import ADMINS, _nulls
from web.api.v1.schemas import Body, Out
from web.auth import api_scope, require_user, session_limits
from web.dbsession import session as db_session
from web.inputs import Id, optional_int

NO_STORE = {"Cache-Control": "no-store"}

# --- schemas -----------------------------------------------------------------------------------------


class AdminUser(Out):
    id: int
    login: str
    full_name: str
    email: str | None
    phone: str | None = Field(description="E.164")
    role: Role
    organization_ids: list[int] = Field(description="Организации пользователя из тех, что ведёт администратор")
    shared: bool = Field(description="Работает и в других организациях: имя, роль, пароль, 2FA, отключение, сессии "
                                     "и токены меняет только администратор всех его организаций")
    active: bool
    must_change_password: bool = Field(description="Вошёл бы по временному паролю: при входе задаст свой")
    two_factor_enabled: bool
    locked_until: datetime | None = Field(description="Вход заблокирован после неудачных попыток до этого времени")
    last_login_at: datetime | None
    created_at: datetime
    valid_until: datetime | None = Field(description="Учётная запись действует до этого момента; null — бессрочно")


class AdminUserList(Out):
    items: list[AdminUser]


class AdminUserCreate(Body):
    login: str = Field(min_length=1, max_length=80, description="Латиница, цифры, . _ - @; 2–80 символов")
    full_name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(None, max_length=254)
    phone: str | None = Field(None, max_length=40, description="Любая запись номера; хранится в E.164")
    role: Role
    organization_ids: list[Id] = Field(min_length=1, max_length=100)
    valid_until: datetime | None = Field(None, description="Учётная запись действует до этого момента (например, проверяющий на время "
                                                   "проверки): потом вход, сессии и токены не действуют. Без "
                                                   "смещения — по часовому поясу первой организации администратора; "
                                                   "null — бессрочно")


class AdminUserUpdate(Body):
    """Only the fields present change. `organization_ids`: the administrator's organizations the user
    should have (the user's other organizations stay)."""

    full_name: str | None = Field(None, min_length=1, max_length=200)
    email: str | None = Field(None, max_length=254)
    phone: str | None = Field(None, max_length=40)
    role: Role | None = None
    organization_ids: list[Id] | None = Field(None, max_length=100)
    active: bool | None = Field(None, description="false — отключить (вход закрыт, сессии завершаются, токены не "
                                                  "действуют; пользователь не удаляется)")
    valid_until: datetime | None = Field(None, description="Учётная запись действует до этого момента (например, проверяющий на время "
                                                   "проверки): потом вход, сессии и токены не действуют. Без "
                                                   "смещения — по часовому поясу первой организации администратора; "
                                                   "null — бессрочно")


USER_NOT_NULLABLE = ("full_name", "role", "organization_ids", "active")


class AdminUserCreated(Out):
    user: AdminUser
    temporary_password: str = Field(description="Показывается один раз; при входе пользователь задаст свой пароль")


class TemporaryPassword(Out):
    temporary_password: str = Field(description="Показывается один раз; при входе пользователь задаст свой пароль")
    sessions_ended: int


class AdminSession(Out):
    id: int
    created_at: datetime
    last_seen_at: datetime
    ip: str
    user_agent: str
    device: bool = Field(description="Сессия приложения исполнителя на телефоне: без ограничения смены, "
                                     "заканчивается через 30 дней без запросов или при завершении")


class AdminSessionList(Out):
    items: list[AdminSession]


class SessionsEnded(Out):
    ended: int


class AdminToken(Out):
    id: int
    name: str
    scopes: list[Scope]
    state: str = Field(description="active, expired или revoked")
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


class AdminTokenList(Out):
    items: list[AdminToken]


class AdminTokenCreate(Body):
    name: str = Field("", max_length=100)
    scopes: list[Scope] = Field(min_length=1, max_length=4)
    days: int | None = Field(None, ge=0, le=MAX_TOKEN_DAYS,
                             description="Срок действия, дней; 0 — бессрочный; без поля — OPENADS_API_TOKEN_DAYS")


class AdminTokenIssued(Out):
    token: AdminToken
    secret: str = Field(description="Показывается один раз; хранится только его отпечаток")


REQUEST_MODELS: tuple[type[BaseModel], ...] = (AdminUserCreate, AdminUserUpdate, AdminTokenCreate)
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (AdminUser, AdminUserList, AdminUserCreated, TemporaryPassword,
                                                AdminSessionList, SessionsEnded, AdminToken, AdminTokenList,
                                                AdminTokenIssued)


# --- helpers ----------------------------------------------------------------------------------------------


def _admin() -> User:
    return require_user(ADMINS)


def _ctx() -> tuple[User, list[int], Actor]:
    admin = _admin()
    return admin, c.user_orgs(admin), Actor.of(admin, "api")


def _valid_until(moment: datetime | None, orgs: list[int]) -> datetime | None:
    """The body's `valid_until`; without an offset it is read in the zone of the administrator's first organization."""
    return c.aware(moment, ZoneInfo(c.organization(orgs[0]).timezone))


def _settings() -> Any:
    return current_app.config["OPENADS_SETTINGS"]


def user_json(user: User, admin_orgs: list[int], *, locked_until: datetime | None = None,
              last_login_at: datetime | None = None) -> dict[str, Any]:
    return {
        "id": user.id, "login": user.login, "full_name": user.full_name, "email": user.email, "phone": user.phone,
        "role": user.role.value, "organization_ids": [i for i in user.organization_ids if i in admin_orgs],
        "shared": users_svc.is_shared(user, admin_orgs), "active": user.is_active,
        "must_change_password": user.must_change_password, "two_factor_enabled": user.two_factor_enabled,
        "locked_until": c.utc_iso(locked_until), "last_login_at": c.utc_iso(last_login_at),
        "created_at": c.utc_iso(user.created_at), "valid_until": c.utc_iso(user.valid_until),
    }


def _one_json(user: User, admin_orgs: list[int]) -> dict[str, Any]:
    s, at = db_session(), c.now()
    return user_json(user, admin_orgs, locked_until=users_svc.login_locks(s, logins=[user.login], now=at).get(user.login),
                     last_login_at=users_svc.last_login(s, user_id=user.id))


def token_json(t: ApiToken) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "scopes": [s.value for s in parse_scopes(t.scopes)],
            "state": token_state(t.revoked, t.expires_at, c.now()).value, "created_at": c.utc_iso(t.created_at),
            "expires_at": c.utc_iso(t.expires_at), "last_used_at": c.utc_iso(t.last_used_at)}


def session_json(r: UserSession) -> dict[str, Any]:
    return {"id": r.id, "created_at": c.utc_iso(r.created_at), "last_seen_at": c.utc_iso(r.last_seen_at),
            "ip": r.ip, "user_agent": r.user_agent, "device": r.device}


def _user(user_id: int, admin_orgs: list[int]) -> User:
    return users_svc.get_user(db_session(), admin_orgs=admin_orgs, user_id=user_id)


# --- users ------------------------------------------------------------------------------------------------


@bp.get("/admin/users")
@api_scope(Scope.SETTINGS)
def admin_list_users() -> Any:
    _admin_user, orgs, _by = _ctx()
    oid = optional_int(request.args.get("organization_id"), "organization_id")
    if oid is not None and oid not in orgs:
        raise ValidationFailed("организация не найдена", field="organization_id", value=oid)
    raw_active = (request.args.get("active") or "").strip().lower()
    active = {"": None, "any": None, "1": True, "true": True, "0": False, "false": False}.get(raw_active, "bad")
    if active == "bad":
        raise ValidationFailed("active — 1, 0 или any", field="active")
    rows = users_svc.user_rows(db_session(), admin_orgs=orgs, now=c.now(), organization_id=oid,
                               q=request.args.get("q", ""), active=active)  # type: ignore[arg-type]
    return {"items": [user_json(r.user, orgs, locked_until=r.locked_until, last_login_at=r.last_login_at)
                      for r in rows]}


@bp.post("/admin/users")
@api_scope(Scope.SETTINGS)
def admin_create_user() -> Any:
    _admin_user, orgs, by = _ctx()
    body = c.parse_body(AdminUserCreate)
    draft = users_svc.UserDraft(login=body.login, full_name=body.full_name, email=body.email, phone=body.phone,
                                role=body.role, organization_ids=tuple(body.organization_ids),
                                valid_until=_valid_until(body.valid_until, orgs))
    created = users_svc.create_user(db_session(), draft=draft, admin_orgs=orgs, by=by, now=c.now(),
                                    min_length=_settings().auth.password_min_length)
    return {"user": _one_json(created.user, orgs), "temporary_password": created.temporary_password}, 201, NO_STORE


@bp.get("/admin/users/<int:user_id>")
@api_scope(Scope.SETTINGS)
def admin_get_user(user_id: int) -> Any:
    _admin_user, orgs, _by = _ctx()
    return _one_json(_user(user_id, orgs), orgs)


@bp.patch("/admin/users/<int:user_id>")
@api_scope(Scope.SETTINGS)
def admin_update_user(user_id: int) -> Any:
    _admin_user, orgs, by = _ctx()
    user = _user(user_id, orgs)
    body = c.parse_body(AdminUserUpdate)
    _nulls(body, USER_NOT_NULLABLE)
    given = body.model_fields_set
    s, at = db_session(), c.now()
    if given - {"active"}:
        draft = users_svc.UserDraft(
            full_name=body.full_name if "full_name" in given else user.full_name,
            email=body.email if "email" in given else user.email,
            phone=body.phone if "phone" in given else user.phone,
            role=body.role if body.role is not None else user.role,
            organization_ids=tuple(body.organization_ids if body.organization_ids is not None
                                   else [i for i in user.organization_ids if i in orgs]),
            valid_until=_valid_until(body.valid_until, orgs) if "valid_until" in given else user.valid_until,
        )
        users_svc.update_user(s, user=user, draft=draft, admin_orgs=orgs, by=by, now=at)
    if body.active is not None and body.active != user.is_active:
        users_svc.set_active(s, user=user, active=body.active, admin_orgs=orgs, by=by, now=at)
    if not set(user.organization_ids) & set(orgs):  # the administrator took the user out of all their organizations
        return user_json(user, orgs)
    return _one_json(user, orgs)


@bp.post("/admin/users/<int:user_id>/password-reset")
@api_scope(Scope.SETTINGS)
def admin_reset_user_password(user_id: int) -> Any:
    _admin_user, orgs, by = _ctx()
    user = _user(user_id, orgs)
    s, at = db_session(), c.now()
    live = len(access_svc.live_sessions(s, user_id=user.id, now=at, limits=session_limits()))
    temporary = users_svc.reset_password(s, user=user, admin_orgs=orgs, by=by, now=at,
                                         min_length=_settings().auth.password_min_length)
    return {"temporary_password": temporary, "sessions_ended": live}, 200, NO_STORE


@bp.post("/admin/users/<int:user_id>/two-factor-reset")
@api_scope(Scope.SETTINGS)
def admin_reset_user_two_factor(user_id: int) -> Any:
    _admin_user, orgs, by = _ctx()
    user = _user(user_id, orgs)
    users_svc.reset_two_factor(db_session(), user=user, admin_orgs=orgs, by=by, now=c.now())
    return _one_json(user, orgs)


@bp.post("/admin/users/<int:user_id>/unlock")
@api_scope(Scope.SETTINGS)
def admin_unlock_user(user_id: int) -> Any:
    _admin_user, orgs, by = _ctx()
    user = _user(user_id, orgs)
    users_svc.unlock_login(db_session(), user=user, by=by, now=c.now())
    return _one_json(user, orgs)


# --- sessions ---------------------------------------------------------------------------------------------


@bp.get("/admin/users/<int:user_id>/sessions")
@api_scope(Scope.SETTINGS)
def admin_list_user_sessions(user_id: int) -> Any:
    _admin_user, orgs, _by = _ctx()
    user = _user(user_id, orgs)
    users_svc.require_whole(user, orgs)
    rows = access_svc.live_sessions(db_session(), user_id=user.id, now=c.now(), limits=session_limits())
    return {"items": [session_json(r) for r in rows]}


@bp.post("/admin/users/<int:user_id>/sessions/end-all")
@api_scope(Scope.SETTINGS)
def admin_end_user_sessions(user_id: int) -> Any:
    _admin_user, orgs, by = _ctx()
    user = _user(user_id, orgs)
    return {"ended": users_svc.end_sessions(db_session(), user=user, admin_orgs=orgs, by=by, now=c.now())}


@bp.post("/admin/users/<int:user_id>/sessions/<int:session_id>/end")
@api_scope(Scope.SETTINGS)
def admin_end_user_session(user_id: int, session_id: int) -> Any:
    _admin_user, orgs, by = _ctx()
    user = _user(user_id, orgs)
    users_svc.end_one_session(db_session(), user=user, session_id=session_id, admin_orgs=orgs, by=by, now=c.now())
    return {"ended": 1}


# --- tokens -----------------------------------------------------------------------------------------------


@bp.get("/admin/users/<int:user_id>/tokens")
@api_scope(Scope.SETTINGS)
def admin_list_user_tokens(user_id: int) -> Any:
    _admin_user, orgs, _by = _ctx()
    user = _user(user_id, orgs)
    users_svc.require_whole(user, orgs)
    return {"items": [token_json(t) for t in access_svc.user_tokens(db_session(), user_id=user.id)]}


@bp.post("/admin/users/<int:user_id>/tokens")
@api_scope(Scope.SETTINGS)
def admin_issue_user_token(user_id: int) -> Any:
    _admin_user, orgs, by = _ctx()
    user = _user(user_id, orgs)
    body = c.parse_body(AdminTokenCreate)
    at = c.now()
    days = body.days if body.days is not None else _settings().auth.api_token_days
    issued = users_svc.issue_token(db_session(), user=user, scopes=parse_scopes([s.value for s in body.scopes]),
                                   expires_at=token_expires_at(at, days), name=body.name, admin_orgs=orgs, by=by,
                                   now=at)
    return {"token": token_json(issued.token), "secret": issued.secret}, 201, NO_STORE


@bp.post("/admin/users/<int:user_id>/tokens/<int:token_id>/revoke")
@api_scope(Scope.SETTINGS)
def admin_revoke_user_token(user_id: int, token_id: int) -> Any:
    _admin_user, orgs, by = _ctx()
    user = _user(user_id, orgs)
    return token_json(users_svc.revoke_token(db_session(), user=user, token_id=token_id, admin_orgs=orgs, by=by,
                                             now=c.now()))
