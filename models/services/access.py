"""Signing in and what an administrator does about it: logins with throttling, panel sessions,
passwords, deactivation, API tokens (issue 10, items 5, 6 and 8; the administration pages of
issue 12 call these same functions, as `openads user ...` does now).

Side effects are rows only (users, user_sessions, login_failures, login_locks, api_tokens); no
domain events are emitted: nothing in the panel's live journal depends on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from models.auth import LockKind, LoginFailure, LoginLock, UserSession
from models.errors import NotFound, ValidationFailed
from models.organization import ApiToken, User
from models.rules import credentials
from models.rules.access import (
    SCOPE_TITLES_RU,
    LoginLimits,
    Scope,
    SessionLimits,
    account_valid,
    format_scopes,
    scopes_for,
    session_alive,
)

LOGIN_MAX = 80  # users.login
IP_MAX = 45  # an IPv6 address in text


@dataclass(frozen=True)
class LoginOutcome:
    """`user` when the password was right; `locked_until` when the login or the address is locked out
    (the password was then not even compared: a guess made during a lock-out tells nothing);
    `expired` the user whose password was right but whose time-limited account has ended."""

    user: User | None
    locked_until: datetime | None = None
    expired: User | None = None


def user_by_login(session: Session, login: str) -> User:
    user = session.scalar(select(User).where(User.login == login))
    if user is None:
        raise NotFound(f"нет пользователя с логином {login!r}", login=login)
    return user


# --- logins and lock-outs ------------------------------------------------------------------------


def locked_until(session: Session, *, login: str, ip: str, now: datetime) -> datetime | None:
    keys = [and_(LoginLock.kind == LockKind.LOGIN, LoginLock.value == login)]
    if ip:
        keys.append(and_(LoginLock.kind == LockKind.IP, LoginLock.value == ip))
    return session.scalar(select(func.max(LoginLock.locked_until)).where(or_(*keys), LoginLock.locked_until > now))


def record_failure(session: Session, *, login: str, ip: str, now: datetime, limits: LoginLimits) -> datetime | None:
    """Writes the failure, prunes the ones out of every window, and locks the login (and the
    address) that reached its limit. Returns the new lock's end, if any."""
    since = now - limits.window
    session.execute(delete(LoginFailure).where(LoginFailure.at <= since))
    session.execute(delete(LoginLock).where(LoginLock.locked_until <= now))
    session.add(LoginFailure(login=login, ip=ip, at=now))
    session.flush()
    until = now + limits.lockout
    locked = None
    checks = [(LockKind.LOGIN, login, LoginFailure.login, limits.max_failures)]
    if ip:
        checks.append((LockKind.IP, ip, LoginFailure.ip, limits.ip_max_failures))
    for kind, value, column, limit in checks:
        failures = session.scalar(select(func.count()).where(column == value, LoginFailure.at > since))
        if failures and failures >= limit:
            session.add(LoginLock(kind=kind, value=value, locked_until=until, created_at=now))
            locked = until
    return locked


@dataclass(frozen=True)
class PasswordCheck:
    """What the read phase of a login found (`check_credentials`): the login and address as counted,
    a lock-out in force (the password was then not compared), or the user whose password was right."""

    login: str
    ip: str
    user_id: int | None = None
    locked_until: datetime | None = None


def check_credentials(session: Session, *, login: str, password: str, ip: str | None, now: datetime) -> PasswordCheck:
    """The read phase of a login: the lock-outs in force, the user, and the password hash compared
    (the slow part, on purpose). Writes nothing, so it runs in a read session: on SQLite a login never
    holds the one write lock while it hashes (issue 12 item B3). A missing or deactivated login costs
    the same hashing as a real one (no timing oracle)."""
    login = login.strip()[:LOGIN_MAX]
    ip = (ip or "")[:IP_MAX]
    locked = locked_until(session, login=login, ip=ip, now=now)
    if locked is not None:
        return PasswordCheck(login, ip, locked_until=locked)
    user = session.scalar(select(User).where(User.login == login, User.is_active.is_(True))) if login else None
    if user is None:
        credentials.check_no_password(password)
    elif credentials.check_password(user.password_hash, password):
        return PasswordCheck(login, ip, user_id=user.id)
    return PasswordCheck(login, ip)


def record_login(session: Session, checked: PasswordCheck, *, now: datetime, limits: LoginLimits) -> LoginOutcome:
    """The write phase of a login, a few short statements after `check_credentials`: a failure is
    counted (and locks the login or the address that reached its limit), a success clears the
    login's failures. A lock-out another attempt set since the read phase wins over a right
    password, as it would have had the attempts come one after the other."""
    if checked.locked_until is not None:
        return LoginOutcome(None, checked.locked_until)
    locked = locked_until(session, login=checked.login, ip=checked.ip, now=now)
    if locked is not None:
        return LoginOutcome(None, locked)
    user = session.get(User, checked.user_id) if checked.user_id is not None else None
    if user is not None and user.is_active:
        if not account_valid(user.valid_until, now):  # the right password of an account past its end
            return LoginOutcome(None, expired=user)
        # With a second factor the login is not over: its failures stay counted until the code is
        # right, or the password (known to whoever guesses codes) would reset the code's limit.
        if not user.two_factor_enabled:
            session.execute(delete(LoginFailure).where(LoginFailure.login == checked.login))
        return LoginOutcome(user)
    return LoginOutcome(None, record_failure(session, login=checked.login, ip=checked.ip, now=now, limits=limits))


def authenticate(
    session: Session, *, login: str, password: str, ip: str | None, now: datetime, limits: LoginLimits,
) -> LoginOutcome:
    """Check a login and password, counting failures per login name and per client address:
    `check_credentials` then `record_login` in one session (the web runs the first in a read
    session of its own, web/auth.py `check_login`).

    A missing or deactivated login is counted and locked out the same way as a real one (no
    lock-out oracle). Writes a `login_failures` row per failure and a `login_locks` row when a limit
    is reached; a success clears the failures of that login. The caller commits whatever the outcome.
    """
    checked = check_credentials(session, login=login, password=password, ip=ip, now=now)
    return record_login(session, checked, now=now, limits=limits)


def authenticate_second_factor(
    session: Session, *, user: User, check: Callable[[], bool], ip: str | None, now: datetime, limits: LoginLimits,
) -> LoginOutcome:
    """The second step of a login with TOTP: `check()` tells whether the code is right. Throttled
    as the password is (a wrong code is a failure of the login and of the address; during a
    lock-out the code is not even checked). A success clears the login's failures."""
    ip = (ip or "")[:IP_MAX]
    locked = locked_until(session, login=user.login, ip=ip, now=now)
    if locked is not None:
        return LoginOutcome(None, locked)
    if user.is_active and check():
        session.execute(delete(LoginFailure).where(LoginFailure.login == user.login))
        return LoginOutcome(user)
    return LoginOutcome(None, record_failure(session, login=user.login, ip=ip, now=now, limits=limits))


def active_locks(session: Session, *, now: datetime) -> list[LoginLock]:
    return list(session.scalars(
        select(LoginLock).where(LoginLock.locked_until > now).order_by(LoginLock.kind, LoginLock.value)))


def unlock(session: Session, *, login: str | None = None, ip: str | None = None) -> int:
    """Lift the lock-out of a login name and/or a client address and forget their failures.
    Returns how many locks were lifted."""
    if not login and not ip:
        raise ValidationFailed("укажите логин или адрес")
    lifted = 0
    for kind, value, column in ((LockKind.LOGIN, login, LoginFailure.login), (LockKind.IP, ip, LoginFailure.ip)):
        if value:
            result = session.execute(delete(LoginLock).where(LoginLock.kind == kind, LoginLock.value == value))
            lifted += result.rowcount  # type: ignore[attr-defined]
            session.execute(delete(LoginFailure).where(column == value))
    return lifted


# --- panel sessions --------------------------------------------------------------------------------


def start_session(session: Session, *, user: User, ip: str | None, user_agent: str, now: datetime,
                  device: bool = False) -> str:
    """A new panel session of `user` (`device`: the executor app's long-lived one on a phone).
    Returns its key (for the cookie); only the key's digest is stored."""
    key = credentials.new_session_key()
    session.add(UserSession(user_id=user.id, key_sha256=credentials.digest(key), created_at=now, last_seen_at=now,
                            ip=(ip or "")[:IP_MAX], user_agent=(user_agent or "")[:200], device=device))
    return key


def end_session(session: Session, *, key: str, now: datetime) -> None:
    session.execute(update(UserSession).where(UserSession.key_sha256 == credentials.digest(key),
                                              UserSession.ended_at.is_(None)).values(ended_at=now))


def end_user_sessions(session: Session, *, user_id: int, now: datetime, keep_key: str | None = None) -> int:
    """"Sign out everywhere": every open session of the user ends — but the one of `keep_key`, when
    given ("end all but this one"). Returns how many ended."""
    stmt = update(UserSession).where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
    if keep_key is not None:
        stmt = stmt.where(UserSession.key_sha256 != credentials.digest(keep_key))
    result = session.execute(stmt.values(ended_at=now))
    return int(result.rowcount)  # type: ignore[attr-defined]


def end_user_session(session: Session, *, user_id: int, session_id: int, now: datetime) -> UserSession:
    """End one open session of the user (from the user's own list). Another user's session, an
    ended or a missing one is NotFound, and nothing changes."""
    row = session.scalar(select(UserSession).where(UserSession.id == session_id, UserSession.user_id == user_id,
                                                   UserSession.ended_at.is_(None)))
    if row is None:
        raise NotFound("сессия не найдена", session_id=session_id)
    row.ended_at = now
    return row


def is_session_of(row: UserSession, key: str | None) -> bool:
    """Whether `row` is the session the cookie's `key` opens (to mark "this device")."""
    return key is not None and row.key_sha256 == credentials.digest(key)


def live_sessions(session: Session, *, user_id: int, now: datetime, limits: SessionLimits) -> list[UserSession]:
    """The user's sessions that still open the panel, the most recent first."""
    rows = session.scalars(select(UserSession).where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
                           .order_by(UserSession.last_seen_at.desc()))
    return [r for r in rows if session_alive(r.created_at, r.last_seen_at, now, limits, r.device)]


# --- users -------------------------------------------------------------------------------------------


def check_password_policy(password: str, *, login: str, min_length: int) -> None:
    problems = credentials.password_problems(password, login=login, min_length=min_length)
    if problems:
        raise ValidationFailed("; ".join(problems), field="password", problems=problems)


def set_password(session: Session, *, user: User, password: str, min_length: int, now: datetime) -> int:
    """A new password (by the policy) for `user`; their open sessions end, since whoever knew the
    old password may hold one. Returns how many sessions ended."""
    check_password_policy(password, login=user.login, min_length=min_length)
    user.password_hash = credentials.hash_password(password)
    return end_user_sessions(session, user_id=user.id, now=now)


def deactivate_user(session: Session, *, user: User, now: datetime) -> int:
    """The user can no longer log in; their sessions end at once and their API tokens stop working
    (tokens of inactive users are refused). The row stays: the journal keeps their name.
    Returns how many sessions ended."""
    user.is_active = False
    return end_user_sessions(session, user_id=user.id, now=now)


def activate_user(session: Session, *, user: User) -> None:
    user.is_active = True


# --- API tokens --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once; only its digest is stored


def issue_api_token(
    session: Session, *, user: User, scopes: tuple[Scope, ...], expires_at: datetime | None, name: str = "",
    now: datetime,
) -> IssuedToken:
    if not scopes:
        raise ValidationFailed("укажите хотя бы одну область действия токена", field="scopes")
    refused = [s for s in scopes if s not in scopes_for(user.role)]
    if refused:
        raise ValidationFailed(f"роли пользователя не положен токен с областью «{SCOPE_TITLES_RU[refused[0]]}»",
                               field="scopes", scopes=[s.value for s in refused])
    if expires_at is not None and expires_at <= now:
        raise ValidationFailed("срок действия токена уже истёк", field="expires_at")
    secret = credentials.new_api_token()
    token = ApiToken(user_id=user.id, token_sha256=credentials.digest(secret), name=name.strip()[:100],
                     created_at=now, scopes=format_scopes(scopes), expires_at=expires_at, revoked=False)
    session.add(token)
    session.flush()
    return IssuedToken(token, secret)


def user_tokens(session: Session, *, user_id: int) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)))


def revoke_api_token(session: Session, *, token_id: int) -> ApiToken:
    """Any user's token, by id (the administrator's CLI); a user's own: `revoke_own_api_token`."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound("токен не найден", token_id=token_id)
    token.revoked = True
    return token


def revoke_own_api_token(session: Session, *, user_id: int, token_id: int) -> ApiToken:
    """Revoke one of the user's tokens. Another user's token or a missing one is NotFound, and
    nothing changes; revoking a revoked token again changes nothing either."""
    token = session.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id))
    if token is None:
        raise NotFound("токен не найден", token_id=token_id)
    token.revoked = True
    return token


def revoke_user_tokens(session: Session, *, user_id: int) -> int:
    result = session.execute(update(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked.is_(False))
                             .values(revoked=True))
    return int(result.rowcount)  # type: ignore[attr-defined]
