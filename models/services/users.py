"""Users as an administrator manages them (issue 12, part A item 3; decision 0028): the list of the
users of the administrator's organizations, creating and editing them, deactivating (never
deleting: the journal keeps names), temporary passwords, resetting the second factor, their panel
sessions, API tokens and login lock-outs. The panel's «Пользователи», `/api/v1/admin/users` and
`openads user ...` call these functions.

Who may do what (`admin_orgs`, the organizations the acting administrator belongs to; None: the
command line, every organization):

- a user is visible when one of their organizations is the administrator's; anyone else is
  NotFound (404), as another organization's rows are;
- a user who also works in an organization the administrator does not manage (a dispatch
  centre's dispatcher) is *shared*: the administrator may give or take away access to their own
  organizations and lift a lock-out, but account-wide changes (name, role, password, second
  factor, deactivation, sessions, tokens) would reach the other organization too, so they are
  PermissionDenied (403) — an administrator of all the user's organizations, or the command line,
  makes them;
- an administrator does not lock themselves out: they cannot deactivate themselves, drop their own
  administrator role or leave their own organizations here.

Every change is one audit row per field in the log of each organization the user belongs to
(`object_type` "user"); a change of access to an organization goes only to that organization's
log, so no organization's log names another. Passwords, codes and token secrets are never logged,
only that they changed. Writes `users`, `memberships`, `user_sessions`, `api_tokens`,
`recovery_codes`, `login_locks`, `login_failures` and `audit_log` rows; emits no domain event.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.orm import Session, selectinload

from models.auth import LockKind, LoginLock, RecoveryCode, UserSession
from models.errors import NotFound, PermissionDenied, ValidationFailed
from models.organization import ROLE_TITLES_RU, ApiToken, Membership, Organization, Role, User
from models.rules import credentials
from models.rules.access import SCOPE_TITLES_RU, Scope, parse_scopes
from models.rules.audit import field_title
from models.rules.org_settings import EMAIL_RE
from models.rules.phones import InvalidPhone, to_e164
from models.services import access
from models.services.audit import Actor, record_changes

AUDIT_OBJECT = "user"
LOGIN_RE = re.compile(r"^[A-Za-z0-9._@-]{2,80}$")
NAME_MAX = 200
EMAIL_MAX = 254
MAX_SEARCH = 100


# --- reading -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserRow:
    """A line of the administrator's list."""

    user: User
    last_login_at: datetime | None
    locked_until: datetime | None
    shared: bool  # also in an organization the administrator does not manage


def _visible(stmt: Select[Any], admin_orgs: list[int] | None) -> Select[Any]:
    if admin_orgs is None:
        return stmt
    mine = select(Membership.user_id).where(Membership.organization_id.in_(admin_orgs))
    return stmt.where(User.id.in_(mine))


def user_rows(session: Session, *, admin_orgs: list[int] | None, now: datetime, organization_id: int | None = None,
              q: str = "", active: bool | None = None) -> list[UserRow]:
    """The users of the administrator's organizations (of one of them, with `organization_id`), by
    name: role, organizations, active, last login, lock-out."""
    stmt = _visible(select(User), admin_orgs).options(selectinload(User.memberships))
    if organization_id is not None:
        stmt = stmt.where(User.id.in_(select(Membership.user_id).where(Membership.organization_id == organization_id)))
    q = " ".join(q.split())[:MAX_SEARCH]
    if q:
        like = f"%{q.lower()}%"
        stmt = stmt.where(or_(func.lower(User.login).like(like), func.lower(User.full_name).like(like),
                              func.lower(User.email).like(like)))
    if active is not None:
        stmt = stmt.where(User.is_active.is_(active))
    users = list(session.scalars(stmt.order_by(User.full_name, User.id)))
    ids = [u.id for u in users]
    last: dict[int, datetime] = {}
    if ids:
        rows = session.execute(select(UserSession.user_id, func.max(UserSession.created_at))
                               .where(UserSession.user_id.in_(ids)).group_by(UserSession.user_id)).all()
        last = {uid: at for uid, at in rows}
    locks = login_locks(session, logins=[u.login for u in users], now=now)
    return [UserRow(u, last.get(u.id), locks.get(u.login), _shared(u, admin_orgs)) for u in users]


def login_locks(session: Session, *, logins: list[str], now: datetime) -> dict[str, datetime]:
    """The lock-outs in force of these login names (login → until)."""
    if not logins:
        return {}
    rows = session.execute(select(LoginLock.value, func.max(LoginLock.locked_until))
                           .where(LoginLock.kind == LockKind.LOGIN, LoginLock.value.in_(logins),
                                  LoginLock.locked_until > now).group_by(LoginLock.value)).all()
    return {value: until for value, until in rows}


def last_login(session: Session, *, user_id: int) -> datetime | None:
    return session.scalar(select(func.max(UserSession.created_at)).where(UserSession.user_id == user_id))


def get_user(session: Session, *, admin_orgs: list[int] | None, user_id: int) -> User:
    """A user of the administrator's organizations; anyone else (or no one) is NotFound."""
    user: User | None = session.scalar(_visible(select(User).where(User.id == user_id), admin_orgs)
                                       .options(selectinload(User.memberships)))
    if user is None:
        raise NotFound("пользователь не найден", user_id=user_id)
    return user


def user_by_login(session: Session, *, admin_orgs: list[int] | None, login: str) -> User:
    user: User | None = session.scalar(_visible(select(User).where(User.login == login), admin_orgs))
    if user is None:
        raise NotFound(f"нет пользователя с логином {login!r}", login=login)
    return user


def _shared(user: User, admin_orgs: list[int] | None) -> bool:
    return admin_orgs is not None and not set(user.organization_ids) <= set(admin_orgs)


def is_shared(user: User, admin_orgs: list[int] | None) -> bool:
    """The user also works in an organization the administrator does not manage."""
    return _shared(user, admin_orgs)


def require_whole(user: User, admin_orgs: list[int] | None) -> None:
    if _shared(user, admin_orgs):
        raise PermissionDenied("пользователь работает и в других организациях: это может сделать администратор "
                               "всех его организаций или командная строка (openads user)", user_id=user.id)


def _not_self(user: User, by: Actor, message: str) -> None:
    if by.user is not None and by.user.id == user.id:
        raise PermissionDenied(message, user_id=user.id)


# --- the audit log -----------------------------------------------------------------------------------------


def log_change(session: Session, *, by: Actor, user: User, before: Mapping[str, Any], after: Mapping[str, Any],
         now: datetime | None, org_ids: Iterable[int] | None = None) -> None:
    """The change in the log of each of the user's organizations (none: the command line's log)."""
    ids: list[int | None] = list(org_ids) if org_ids is not None else list(user.organization_ids)
    for oid in ids or [None]:
        record_changes(session, by=by, organization_id=oid, object_type=AUDIT_OBJECT, object_id=user.id,
                       object_label=f"{user.full_name} ({user.login})", before=before, after=after, now=now)


def _profile(user: User) -> dict[str, Any]:
    return {"login": user.login, "full_name": user.full_name, "email": user.email, "phone": user.phone,
            "role": ROLE_TITLES_RU[user.role], "is_active": user.is_active, "valid_until": user.valid_until}


# --- creating and editing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserDraft:
    """A user as the administrator types them; every problem is reported per field. `login` is
    read only on creation (a login is not renamed: lock-outs and the journal refer to it)."""

    full_name: str
    role: Role | str
    organization_ids: tuple[int | str, ...]
    email: str | None = None
    phone: str | None = None
    login: str | None = None
    # A time-limited account (an inspector's visit, decision 0034): it stops working at this moment
    # (UTC). None: no limit. On an update pass the current value to keep it.
    valid_until: datetime | None = None


def _fields_error(errors: dict[str, str]) -> ValidationFailed:
    fields = [{"field": k, "message": v} for k, v in errors.items()]
    return ValidationFailed("Проверьте поля: " + "; ".join(f"{field_title(AUDIT_OBJECT, k)}: {v}"
                                                          for k, v in errors.items()),
                            field=fields[0]["field"], fields=fields)


def _check(session: Session, draft: UserDraft, *, admin_orgs: list[int] | None, current: User | None,
           now: datetime) -> dict[str, Any]:
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    if current is None:
        login = (draft.login or "").strip()
        if not LOGIN_RE.match(login):
            errors["login"] = "логин — от 2 до 80 символов: латинские буквы, цифры, точка, _, -, @"
        elif session.scalar(select(User.id).where(func.lower(User.login) == login.lower())):
            errors["login"] = "такой логин уже есть"
        clean["login"] = login
    name = " ".join((draft.full_name or "").split())
    if not name:
        errors["full_name"] = "укажите ФИО"
    elif len(name) > NAME_MAX:
        errors["full_name"] = f"не длиннее {NAME_MAX} символов"
    clean["full_name"] = name
    email = (draft.email or "").strip()
    if email and (len(email) > EMAIL_MAX or not EMAIL_RE.match(email)):
        errors["email"] = "некорректный адрес эл. почты"
    clean["email"] = email or None
    phone = (draft.phone or "").strip()
    clean["phone"] = None
    if phone:
        try:
            clean["phone"] = to_e164(phone[:40])
        except InvalidPhone:
            errors["phone"] = "некорректный номер телефона"
    try:
        clean["role"] = Role(draft.role)
    except ValueError:
        errors["role"] = "выберите роль"
    wanted: list[int] = []
    for raw in draft.organization_ids:
        try:
            oid = int(raw)
        except (TypeError, ValueError):
            errors["organization_ids"] = "неизвестная организация"
            break
        if oid not in wanted:
            wanted.append(oid)
    if "organization_ids" not in errors:
        known = set(session.scalars(select(Organization.id).where(Organization.id.in_(wanted)))) if wanted else set()
        foreign = [o for o in wanted if o not in known or (admin_orgs is not None and o not in admin_orgs)]
        if foreign:
            errors["organization_ids"] = "организация не найдена"
    kept = [o for o in (current.organization_ids if current else []) if admin_orgs is not None and o not in admin_orgs]
    if "organization_ids" not in errors and not wanted and not kept:
        errors["organization_ids"] = "выберите хотя бы одну организацию"
    clean["organization_ids"] = wanted
    clean["valid_until"] = draft.valid_until
    changed_term = draft.valid_until != (current.valid_until if current is not None else None)
    if draft.valid_until is not None and changed_term and draft.valid_until <= now:
        errors["valid_until"] = "срок действия учётной записи должен быть в будущем"
    if errors:
        raise _fields_error({k: errors[k] for k in ("login", "full_name", "email", "phone", "role", "organization_ids",
                                                    "valid_until") if k in errors})
    return clean


@dataclass(frozen=True)
class CreatedUser:
    user: User
    temporary_password: str | None  # shown once; None when the command line set a password


def create_user(session: Session, *, draft: UserDraft, admin_orgs: list[int] | None, by: Actor, now: datetime,
                min_length: int, password: str | None = None) -> CreatedUser:
    """A new active user with a role in some of the administrator's organizations. Without
    `password` the user gets a temporary one (returned, to be shown once) that must be changed at
    the first login."""
    clean = _check(session, draft, admin_orgs=admin_orgs, current=None, now=now)
    temporary = None
    if password is None:
        temporary = password = credentials.new_temporary_password(login=clean["login"], min_length=min_length)
    else:
        access.check_password_policy(password, login=clean["login"], min_length=min_length)
    user = User(login=clean["login"], full_name=clean["full_name"], email=clean["email"], phone=clean["phone"],
                role=clean["role"], valid_until=clean["valid_until"], is_active=True,
                password_hash=credentials.hash_password(password), must_change_password=temporary is not None,
                created_at=now)
    session.add(user)
    session.flush()
    for oid in clean["organization_ids"]:
        session.add(Membership(user_id=user.id, organization_id=oid))
    session.flush()
    session.refresh(user)
    after = {**_profile(user), "password": "временный, сменить при входе" if temporary else "задан"}
    log_change(session, by=by, user=user, before={}, after=after, now=now)
    return CreatedUser(user, temporary)


def update_user(session: Session, *, user: User, draft: UserDraft, admin_orgs: list[int] | None, by: Actor,
                now: datetime) -> User:
    """Change the name, contacts, role and organizations (only the administrator's own: the
    user's other organizations stay). Account-wide fields of a shared user are PermissionDenied."""
    clean = _check(session, draft, admin_orgs=admin_orgs, current=user, now=now)
    before = _profile(user)
    profile_changed = (clean["full_name"], clean["email"], clean["phone"], clean["role"], clean["valid_until"]) != (
        user.full_name, user.email, user.phone, user.role, user.valid_until)
    if profile_changed:
        require_whole(user, admin_orgs)
    if (clean["role"], clean["valid_until"]) != (user.role, user.valid_until) and by.user is not None \
            and by.user.id == user.id:
        raise PermissionDenied("свою роль и срок действия администратор не меняет: это сделает другой администратор")
    scope = set(admin_orgs) if admin_orgs is not None else None
    had = set(user.organization_ids)
    wanted = set(clean["organization_ids"])
    editable = had if scope is None else had & scope
    removed = editable - wanted
    added = wanted - had
    if removed and by.user is not None and by.user.id == user.id:
        raise PermissionDenied("себя из организации администратор не убирает: это сделает другой администратор")
    user.full_name, user.email, user.phone, user.role = (clean["full_name"], clean["email"], clean["phone"],
                                                        clean["role"])
    user.valid_until = clean["valid_until"]
    for m in list(user.memberships):
        if m.organization_id in removed:
            user.memberships.remove(m)
    for oid in sorted(added):
        user.memberships.append(Membership(user_id=user.id, organization_id=oid))
    session.flush()
    log_change(session, by=by, user=user, before=before, after=_profile(user), now=now, org_ids=sorted(had - removed))
    for oid in sorted(added | removed):
        log_change(session, by=by, user=user, before={"membership": oid in had}, after={"membership": oid in wanted},
             now=now, org_ids=[oid])
    return user


def set_active(session: Session, *, user: User, active: bool, admin_orgs: list[int] | None, by: Actor,
               now: datetime) -> int:
    """Deactivate (the user can no longer log in, their sessions end, their tokens stop working; the
    row stays) or activate again. Returns how many sessions ended."""
    require_whole(user, admin_orgs)
    if not active:
        _not_self(user, by, "себя администратор не отключает")
    before = {"is_active": user.is_active}
    ended = access.deactivate_user(session, user=user, now=now) if not active else 0
    if active:
        access.activate_user(session, user=user)
    log_change(session, by=by, user=user, before=before, after={"is_active": user.is_active}, now=now)
    return ended


# --- passwords ---------------------------------------------------------------------------------------------


def reset_password(session: Session, *, user: User, admin_orgs: list[int] | None, by: Actor, now: datetime,
                   min_length: int) -> str:
    """A temporary password (returned, to be shown once; only its hash is kept) that must be changed
    at the next login; the user's sessions end. Their lock-out is lifted: the administrator has
    just given them the way in."""
    require_whole(user, admin_orgs)
    temporary = credentials.new_temporary_password(login=user.login, min_length=min_length)
    user.password_hash = credentials.hash_password(temporary)
    user.must_change_password = True
    access.end_user_sessions(session, user_id=user.id, now=now)
    access.unlock(session, login=user.login)
    log_change(session, by=by, user=user, before={}, after={"password": "выдан временный, сменить при входе"}, now=now)
    return temporary


def set_password(session: Session, *, user: User, password: str, by: Actor, now: datetime, min_length: int,
                 keep_key: str | None = None, temporary: bool = False) -> int:
    """A password set by the command line (or by the user: `change_own_password`); every session
    but `keep_key`'s ends. Returns how many ended."""
    access.check_password_policy(password, login=user.login, min_length=min_length)
    user.password_hash = credentials.hash_password(password)
    user.must_change_password = temporary
    ended = access.end_user_sessions(session, user_id=user.id, now=now, keep_key=keep_key)
    log_change(session, by=by, user=user, before={}, after={"password": "изменён"}, now=now)
    return ended


def change_own_password(session: Session, *, user: User, current: str, new: str, repeat: str, keep_key: str | None,
                        now: datetime, min_length: int, by: Actor) -> int:
    """The user's own new password (the current one typed again); their other sessions end."""
    errors: dict[str, str] = {}
    if not credentials.check_password(user.password_hash, current):
        errors["current_password"] = "неверный текущий пароль"
    problems = credentials.password_problems(new, login=user.login, min_length=min_length)
    if problems:
        errors["new_password"] = "; ".join(problems)
    elif new == current:
        errors["new_password"] = "новый пароль совпадает с текущим"
    if not errors.get("new_password") and new != repeat:
        errors["repeat_password"] = "пароли не совпадают"
    if errors:
        fields = [{"field": k, "message": v} for k, v in errors.items()]
        raise ValidationFailed("; ".join(errors.values()), field=fields[0]["field"], fields=fields)
    return set_password(session, user=user, password=new, by=by, now=now, min_length=min_length, keep_key=keep_key)


# --- second factor, sessions, tokens, lock-outs -----------------------------------------------------------------


def reset_two_factor(session: Session, *, user: User, admin_orgs: list[int] | None, by: Actor, now: datetime) -> bool:
    """Forget the user's authenticator and recovery codes (a lost phone): the next login asks only
    for the password, and a user who must use a second factor enrols again. Returns whether there
    was one."""
    require_whole(user, admin_orgs)
    had = user.two_factor_enabled
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    if had:
        log_change(session, by=by, user=user, before={"two_factor": "включён"}, after={"two_factor": "сброшен"}, now=now)
    return had


def end_sessions(session: Session, *, user: User, admin_orgs: list[int] | None, by: Actor, now: datetime) -> int:
    """"Sign out everywhere" for the user. Returns how many sessions ended."""
    require_whole(user, admin_orgs)
    ended = access.end_user_sessions(session, user_id=user.id, now=now)
    if ended:
        log_change(session, by=by, user=user, before={}, after={"sessions": f"завершены все ({ended})"}, now=now)
    return ended


def end_one_session(session: Session, *, user: User, session_id: int, admin_orgs: list[int] | None, by: Actor,
                    now: datetime) -> UserSession:
    require_whole(user, admin_orgs)
    row = access.end_user_session(session, user_id=user.id, session_id=session_id, now=now)
    log_change(session, by=by, user=user, before={}, after={"sessions": f"завершена сессия № {row.id}"}, now=now)
    return row


def _token_text(token: ApiToken) -> str:
    scopes = ", ".join(SCOPE_TITLES_RU[s] for s in parse_scopes(token.scopes))
    until = f"до {token.expires_at:%Y-%m-%d}" if token.expires_at else "бессрочный"
    return f"№ {token.id} «{token.name or '—'}»: {scopes}; {until}"


def issue_token(session: Session, *, user: User, scopes: tuple[Scope, ...], expires_at: datetime | None, name: str,
                admin_orgs: list[int] | None, by: Actor, now: datetime) -> access.IssuedToken:
    """A token for the user (the secret is returned once; only its digest is kept)."""
    require_whole(user, admin_orgs)
    if not user.is_active:
        raise ValidationFailed("пользователь отключён: его токены не действуют", field="user")
    issued = access.issue_api_token(session, user=user, scopes=scopes, expires_at=expires_at, name=name, now=now)
    log_change(session, by=by, user=user, before={}, after={"api_token": "выпущен " + _token_text(issued.token)}, now=now)
    return issued


def revoke_token(session: Session, *, user: User, token_id: int, admin_orgs: list[int] | None, by: Actor,
                 now: datetime) -> ApiToken:
    """Revoke one of the user's tokens; another user's token id is NotFound."""
    require_whole(user, admin_orgs)
    token = session.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id))
    if token is None:
        raise NotFound("токен не найден", token_id=token_id)
    if not token.revoked:
        token.revoked = True
        log_change(session, by=by, user=user, before={}, after={"api_token": "отозван " + _token_text(token)}, now=now)
    return token


def unlock_login(session: Session, *, user: User, by: Actor, now: datetime) -> int:
    """Lift the lock-out of the user's login (a shared user's too: it only lets them try again).
    Returns how many locks were lifted."""
    lifted = access.unlock(session, login=user.login)
    if lifted:
        log_change(session, by=by, user=user, before={"login_lock": "действует"}, after={"login_lock": "снята"}, now=now)
    return lifted
