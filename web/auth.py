"""Authentication. `current_user()` and `org_ids()` are what every view scopes by.

Panel: a login starts a session row (models/auth.py `UserSession`) and the signed cookie carries
only its random key. Every request checks the row, so logout, "sign out everywhere", a password
change and deactivation end the session at once, even for a copy of the cookie; it also ends after
the absolute lifetime (OPENADS_SESSION_MINUTES, one shift) and the idle timeout
(OPENADS_SESSION_IDLE_MINUTES). Logins are throttled per login and per address
(models/services/access.py `authenticate`).

API (/api/v1): a request is authenticated by a bearer token alone, or by the panel's cookie with
the CSRF token on every write; never by a mix. A request with an `Authorization` header that is
not a valid bearer token is refused (401) and its cookie is not looked at. A token must also hold
the route's scope (models/rules/access.py `Scope`). Tokens never open the panel.

Read-only roles (the inspector, decision 0034): every write of the panel and of the API — any
method but GET, HEAD, OPTIONS — is refused to them here, in one place (`refuse_read_only`), before
the view runs, whatever the view's own roles say; only the views marked `own_account` (login,
logout, their own password, second factor and sessions) are let through. A view opens its pages to
them by naming the role (models/rules/access.py `READERS`). Time-limited accounts (`valid_until`):
past it the login, the session and every token of the user are refused with the date.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from flask import Flask, abort, current_app, flash, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from sqlalchemy import Executable, bindparam, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import contains_eager, joinedload

from models.auth import UserSession
from models.base import utcnow
from models.errors import DomainError, PermissionDenied
from models.organization import ApiToken, Membership, Role, User
from models.rules import credentials
from models.rules.access import (
    DEVICE_IDLE,
    SAFE_METHODS,
    LoginLimits,
    Scope,
    SessionLimits,
    account_valid,
    is_read_only,
    needs_touch,
    parse_scopes,
    required_scope,
    session_alive,
    token_alive,
    two_factor_required,
)
from models.services import access as access_svc
from openads.config import AuthSettings
from web.clock import now
from web.dbsession import database
from web.dbsession import session as db_session
from web.kept_form import is_drawing

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)

SESSION_KEY = "sid"  # the cookie's entry holding the session key

# Kept for the callers that set up users and tokens directly (tests, bench, demo).
hash_password = credentials.hash_password
hash_token = credentials.digest
new_token = credentials.new_api_token


def verify_password(user: User, password: str) -> bool:
    return credentials.check_password(user.password_hash, password)


class Unauthorized(DomainError):
    error_id = "unauthorized"
    http_status = 401


class InsufficientScope(DomainError):
    error_id = "insufficient-scope"
    http_status = 403


class AccountExpired(Unauthorized):
    error_id = "account-expired"


class ReadOnlyRole(DomainError):
    """A write asked by a user of a read-only role (the inspector)."""

    error_id = "read-only-role"
    http_status = 403


READ_ONLY_MESSAGE = "Роль «Проверяющий» только просматривает данные: изменять их нельзя"


def expired_message(user: User) -> str:
    """The refusal of a time-limited account past its `valid_until`, in the zone of the user's
    (first) organization."""
    zone = user.memberships[0].organization.timezone if user.memberships else "Europe/Moscow"
    until = user.valid_until.astimezone(ZoneInfo(zone)) if user.valid_until else None
    when = f" {until:%d.%m.%Y %H:%M}" if until else ""
    return f"Срок действия учётной записи истёк{when}: вход и API-токены закрыты. Обратитесь к администратору."


class SetupRequired(DomainError):
    """A panel session whose user must first set their own password or enrol in the second factor."""

    error_id = "setup-required"
    http_status = 403


# --- limits from the settings ------------------------------------------------------------------------


def auth_settings() -> AuthSettings:
    return current_app.config["OPENADS_SETTINGS"].auth  # type: ignore[no-any-return]


def login_limits() -> LoginLimits:
    return auth_settings().login


def session_limits() -> SessionLimits:
    return auth_settings().sessions


# --- lookups of every request ------------------------------------------------------------------------

# Built once: every request runs one of these, and a statement object reused keeps its cache key.
_SESSION_BY_KEY = (
    select(UserSession).join(UserSession.user)
    .where(UserSession.key_sha256 == bindparam("digest"), UserSession.ended_at.is_(None), User.is_active.is_(True))
    .options(contains_eager(UserSession.user).joinedload(User.memberships).joinedload(Membership.organization))
)
# The token's own columns as plain values (only its user becomes an ORM object: building a second
# entity per API request costs more than the query's round trip).
_TOKEN_BY_DIGEST = (
    select(ApiToken.id, ApiToken.scopes, ApiToken.expires_at, ApiToken.last_used_at, User)
    .join(ApiToken.user)
    .where(ApiToken.token_sha256 == bindparam("digest"), ApiToken.revoked.is_(False), User.is_active.is_(True))
    .options(joinedload(User.memberships).joinedload(Membership.organization))
)


def _touch(stmt: Executable) -> None:
    """A last-seen / last-used stamp. On a write request it joins the request's unit of work; a read
    request has a read-only transaction, so it gets a short one of its own, and losing that stamp to
    a busy database is not worth failing the page for, nor worth a second wait in the page drawn
    again for a form a busy database failed to store (web/kept_form.py)."""
    if is_drawing():
        return
    if request.method not in SAFE_METHODS:
        db_session().execute(stmt)
        return
    try:
        with database().write() as s:
            s.execute(stmt)
    except OperationalError:
        log.warning("could not stamp the session or token use", exc_info=True)


def session_key() -> str | None:
    """The panel session's key the request's cookie carries (None without one)."""
    key = session.get(SESSION_KEY)
    return key if isinstance(key, str) else None


def _session_user() -> User | None:
    key = session_key()
    if key is None:
        return None
    row = db_session().execute(_SESSION_BY_KEY, {"digest": credentials.digest(key)}).unique().scalar_one_or_none()
    at = now()
    if row is None or not session_alive(row.created_at, row.last_seen_at, at, session_limits(), row.device):
        session.clear()  # the browser drops the dead cookie
        return None
    if not account_valid(row.user.valid_until, at):
        session.clear()
        flash(expired_message(row.user), "error")
        return None
    if needs_touch(row.last_seen_at, at):
        _touch(update(UserSession).where(UserSession.id == row.id).values(last_seen_at=at))
    return row.user


def session_check() -> Callable[[], bool]:
    """For a long response (the event stream) that outlives its request: a check, callable from any
    thread, that the panel session of this request is still alive (not logged out, signed out
    everywhere, expired or its user deactivated). Always false without a session."""
    key = session_key()
    if key is None:
        return lambda: False
    db, digest, limits = database(), credentials.digest(key), session_limits()
    clock = current_app.config.get("OPENADS_CLOCK") or utcnow

    def alive() -> bool:
        with db.read() as s:
            row = s.execute(_SESSION_BY_KEY, {"digest": digest}).unique().scalar_one_or_none()
            at = clock()
            return row is not None and session_alive(row.created_at, row.last_seen_at, at, limits, row.device) \
                and account_valid(row.user.valid_until, at)

    return alive


def current_user() -> User | None:
    """The panel's user (cookie session); in /api/v1 whoever `authenticate_api` admitted."""
    if "user" not in g:
        g.user = _session_user()
    return g.user  # type: ignore[no-any-return]


def org_ids() -> list[int]:
    user = current_user()
    return user.organization_ids if user else []


# --- what a signed-in user must do first ----------------------------------------------------------------

SETUP_PASSWORD = "password"
SETUP_TWO_FACTOR = "two_factor"
SETUP_ENDPOINTS = {SETUP_PASSWORD: "panel.account_password", SETUP_TWO_FACTOR: "panel.account_two_factor"}


def pending_setup(user: User) -> str | None:
    """What the user must do before the panel opens: set their own password (they signed in with a
    temporary one) or enrol in the second factor (an administrator or a manager, while
    OPENADS_REQUIRE_2FA is on). None: nothing."""
    if user.must_change_password:
        return SETUP_PASSWORD
    if two_factor_required(user.role, required=auth_settings().require_2fa) and not user.two_factor_enabled:
        return SETUP_TWO_FACTOR
    return None


# --- panel login ---------------------------------------------------------------------------------------

# The login's second step: who typed the right password, when, and a fingerprint of the password
# hash (a password changed meanwhile voids it). In the signed cookie: it cannot be forged, and a
# copy of it only allows guessing codes, which the lock-out limits as it limits passwords.
PENDING_KEY = "pending_2fa"
PENDING_SECONDS = 300


def begin_second_factor(user: User) -> None:
    session.clear()
    session[PENDING_KEY] = {"uid": user.id, "at": now().timestamp(), "pw": credentials.digest(user.password_hash)[:16]}


def pending_second_factor() -> User | None:
    """The user between the password and the code (None when there is none, it expired, the user
    was deactivated or their password changed)."""
    data = session.get(PENDING_KEY)
    if not isinstance(data, dict):
        return None
    try:
        uid, at, pw = int(data["uid"]), float(data["at"]), str(data["pw"])
    except (KeyError, TypeError, ValueError):
        return None
    if not 0 <= now().timestamp() - at <= PENDING_SECONDS:
        return None
    user = db_session().get(User, uid)
    if user is None or not user.is_active or not user.two_factor_enabled \
            or credentials.digest(user.password_hash)[:16] != pw:
        return None
    return user


def clear_second_factor() -> None:
    session.pop(PENDING_KEY, None)



def check_login(login: str, password: str) -> access_svc.LoginOutcome:
    """The login form's check (throttled). The password is hashed in a read session of its own, and
    only then does the request's unit of work write the outcome: a login never holds SQLite's write
    lock (or a PostgreSQL transaction) for the ~100 ms of hashing. Failures are written in the
    request's unit of work, which the caller commits even though it answers with an error."""
    at = now()
    with database().read() as s:
        checked = access_svc.check_credentials(s, login=login, password=password, ip=request.remote_addr, now=at)
    return access_svc.record_login(db_session(), checked, now=at, limits=login_limits())


DEVICE_KEY = "device"  # the cookie's entry marking the executor app's device session


def login_user(user: User, *, device: bool = False) -> None:
    """`device`: the executor app's long-lived session on this phone (decision 0042)."""
    key = access_svc.start_session(db_session(), user=user, ip=request.remote_addr,
                                   user_agent=request.user_agent.string, now=now(), device=device)
    session.clear()  # nothing from before the login survives it (session fixation)
    session.permanent = True
    session[SESSION_KEY] = key
    if device:
        session[DEVICE_KEY] = True
    g.user = user


def logout_user() -> None:
    key = session_key()
    if key is not None:
        access_svc.end_session(db_session(), key=key, now=now())
    session.clear()
    g.user = None


def locked_minutes(until: datetime) -> int:
    """Whole minutes left of a lock-out (at least 1), for the message."""
    return max(1, -int(-(until - now()).total_seconds() // 60))


# --- API ---------------------------------------------------------------------------------------------


def api_scope(scope: Scope) -> Callable[[F], F]:
    """Declare the scope an API route needs when the method alone does not say it (telephony)."""

    def deco(view: F) -> F:
        view.api_scope = scope  # type: ignore[attr-defined]
        return view

    return deco


def public(view: F) -> F:
    """An API route open to anyone (the OpenAPI document)."""
    view.api_public = True  # type: ignore[attr-defined]
    return view


def route_scope(view: Callable[..., Any], method: str) -> Scope | None:
    """The scope a token needs for `method` on `view`; None for a public route."""
    if getattr(view, "api_public", False):
        return None
    return required_scope(method, getattr(view, "api_scope", None))


def _bearer_user(header: str, needed: Scope) -> User:
    scheme, _, secret = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("нужен заголовок Authorization: Bearer <токен>")
    row = db_session().execute(_TOKEN_BY_DIGEST, {"digest": credentials.digest(secret.strip())}) \
        .unique().one_or_none()
    at = now()
    if row is None or not token_alive(row.expires_at, at):
        raise Unauthorized("токен недействителен, отозван или истёк")
    if not account_valid(row.User.valid_until, at):
        raise AccountExpired(expired_message(row.User))
    if needed not in parse_scopes(row.scopes):
        raise InsufficientScope(f"токену не выдана область действия «{needed.value}»", required_scope=needed.value)
    if needs_touch(row.last_used_at, at):
        _touch(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=at))
    g.api_token = row
    return row.User  # type: ignore[no-any-return]


def authenticate_api(view: Callable[..., Any]) -> None:
    """Admit an /api/v1 request: by its bearer token (with the route's scope) when it has an
    `Authorization` header — and then by nothing else — otherwise by the panel's cookie. Raises
    Unauthorized (bad header) or InsufficientScope; leaves anonymity to the views (401)."""
    g.api_token = None
    needed = route_scope(view, request.method)
    header = request.headers.get("Authorization")
    if needed is None:
        g.user = None
    elif header is not None:
        g.user = None  # the cookie is not looked at, whatever the header's fate
        g.user = _bearer_user(header, needed)
        refuse_read_only(g.user, view)
    else:
        g.user = _session_user()
        step = pending_setup(g.user) if g.user is not None else None
        if step is not None:
            raise SetupRequired("сначала " + ("смените временный пароль" if step == SETUP_PASSWORD else
                                              "подключите двухфакторный вход") + " в панели", step=step)
        refuse_read_only(g.user, view)


# --- read-only roles ------------------------------------------------------------------------------------


def own_account(view: F) -> F:
    """A write a read-only user may still make: it changes only their own sign-in (login, logout,
    password, second factor, sessions), not the organization's data."""
    view.own_account = True  # type: ignore[attr-defined]
    return view


def read_only_request(view: F) -> F:
    """A POST a read-only user may still make because it changes no data of the organization: it
    asks for a read (the inspection pack, decision 0038: a background job that only reads). Kept
    to a listed few: tests/web/test_inspector.py asserts the set of views so marked."""
    view.read_only_request = True  # type: ignore[attr-defined]
    return view


def refuse_read_only(user: User | None, view: Callable[..., Any] | None) -> None:
    """ReadOnlyRole (403) for a write of a read-only user, unless the view is `own_account` or
    `read_only_request`."""
    if user is None or request.method in SAFE_METHODS or not is_read_only(user.role):
        return
    if view is not None and (getattr(view, "own_account", False) or getattr(view, "read_only_request", False)):
        return
    raise ReadOnlyRole(READ_ONLY_MESSAGE, role=user.role.value)


def _refuse_read_only_panel() -> None:
    """Every blueprint but the API's (which checks once it knows who the token is)."""
    if request.method in SAFE_METHODS or request.endpoint is None or request.blueprint == "api_v1":
        return
    refuse_read_only(current_user(), current_app.view_functions.get(request.endpoint))


def by_cookie() -> bool:
    """The request was admitted by the panel's cookie (so its writes need the CSRF token)."""
    return g.get("api_token") is None and current_user() is not None


# --- guards --------------------------------------------------------------------------------------------


def require_user(roles: tuple[Role, ...] | None = None) -> User:
    user = current_user()
    if user is None:
        raise Unauthorized("требуется вход в систему")
    if roles is not None and user.role not in roles:
        raise PermissionDenied("недостаточно прав")
    return user


def login_required(roles: tuple[Role, ...] | None = None, *, setup: bool = False) -> Callable[[F], F]:
    """Panel views: redirect to the login page when anonymous; 403 when the role does not fit; to
    the page of what the user must do first (`pending_setup`) unless the view is one of those
    (`setup=True`)."""

    def deco(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                return redirect(url_for("panel.login", next=request.full_path))
            if not setup:
                step = pending_setup(user)
                if step is not None:
                    return redirect(url_for(SETUP_ENDPOINTS[step]))
            if roles is not None and user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return deco


def api_auth(roles: tuple[Role, ...] | None = None) -> Callable[[F], F]:
    """API views: 401 JSON when no valid token (or panel session), 403 when the role does not fit."""

    def deco(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            require_user(roles)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return deco


class _SessionCookies(SecureCookieSessionInterface):
    """The panel's cookie lasts the shift (PERMANENT_SESSION_LIFETIME); a device session's as long
    as the session may stay unused (`DEVICE_IDLE`), renewed with every request.

    A panel cookie goes out only when the request changed the session. Sent again unchanged, the
    cookie of a request the browser made before a change (a row refresh of the journal while the
    dispatcher chose a filter) could answer last and put the older session back. Its expiry needs
    no renewing: the server ends a panel session a shift after sign-in whatever its use
    (`session_ends_at`)."""

    @staticmethod
    def _device(session: SessionMixin) -> bool:
        return bool(session.permanent and session.get(DEVICE_KEY))

    def get_expiration_time(self, app: Flask, session: SessionMixin) -> datetime | None:
        if self._device(session):
            return utcnow() + DEVICE_IDLE
        return super().get_expiration_time(app, session)

    def should_set_cookie(self, app: Flask, session: SessionMixin) -> bool:
        """Flask's rule (changed, or refreshed on every request) with the refresh kept to devices."""
        return session.modified or (self._device(session) and super().should_set_cookie(app, session))


def init_app(app: Flask) -> None:
    app.session_interface = _SessionCookies()
    app.before_request(_refuse_read_only_panel)

    @app.context_processor
    def _inject() -> dict[str, Any]:
        user = current_user()
        return {"current_user": user, "read_only": user is not None and is_read_only(user.role)}
