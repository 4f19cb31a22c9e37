"""Authentication: cookie sessions for the panel (hashed passwords, CSRF, expiry) and per-user
bearer tokens for the API. `current_user()` and `org_ids()` are what every view scopes by."""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, abort, g, redirect, request, session, url_for
from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import joinedload
from werkzeug.security import check_password_hash, generate_password_hash

from models.base import utcnow
from models.errors import DomainError, PermissionDenied
from models.organization import ApiToken, Membership, Role, User
from web.dbsession import session as db_session

F = TypeVar("F", bound=Callable[..., Any])

# Sessions also expire after this much inactivity (PERMANENT_SESSION_LIFETIME caps the total).
IDLE_SECONDS = 2 * 60 * 60


class Unauthorized(DomainError):
    error_id = "unauthorized"
    http_status = 401


def hash_password(password: str) -> str:
    return generate_password_hash(password)


def verify_password(user: User, password: str) -> bool:
    return check_password_hash(user.password_hash, password)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "oads_" + secrets.token_urlsafe(32)


def _active_user() -> Select[tuple[User]]:
    """Active users with their memberships and organizations, in one query (every request needs them)."""
    return select(User).where(User.is_active.is_(True)).options(
        joinedload(User.memberships).joinedload(Membership.organization)
    )


# Built once: every request runs one of these, and a statement object reused keeps its cache key.
_USER_BY_ID = _active_user().where(User.id == bindparam("user_id"))
_USER_BY_TOKEN = _active_user().join(ApiToken, ApiToken.user_id == User.id).where(
    ApiToken.token_sha256 == bindparam("token_sha256"), ApiToken.revoked.is_(False)
)


def _load_user(user_id: int) -> User | None:
    return db_session().execute(_USER_BY_ID, {"user_id": user_id}).unique().scalar_one_or_none()


def login_user(user: User) -> None:
    session.clear()
    session.permanent = True
    session["uid"] = user.id
    session["seen"] = int(time.time())


def logout_user() -> None:
    session.clear()


def current_user() -> User | None:
    if "user" in g:
        return g.user  # type: ignore[no-any-return]
    user = None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        user = db_session().execute(
            _USER_BY_TOKEN, {"token_sha256": hash_token(header[7:].strip())}
        ).unique().scalar_one_or_none()
    elif "uid" in session:
        now = int(time.time())
        if now - int(session.get("seen", 0)) > IDLE_SECONDS:
            session.clear()
        else:
            user = _load_user(int(session["uid"]))
            if now - int(session.get("seen", 0)) > 60:
                session["seen"] = now
    g.user = user
    return user


def org_ids() -> list[int]:
    user = current_user()
    return user.organization_ids if user else []


def require_user(roles: tuple[Role, ...] | None = None) -> User:
    user = current_user()
    if user is None:
        raise Unauthorized("требуется вход в систему")
    if roles is not None and user.role not in roles:
        raise PermissionDenied("недостаточно прав")
    return user


def login_required(roles: tuple[Role, ...] | None = None) -> Callable[[F], F]:
    """Panel views: redirect to the login page when anonymous; 403 when the role does not fit."""

    def deco(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                return redirect(url_for("panel.login", next=request.full_path))
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


def issue_token(user: User, name: str = "") -> str:
    """Create a token for `user`; returns the plain token (shown once, only its hash is stored)."""
    token = new_token()
    db_session().add(ApiToken(user_id=user.id, token_sha256=hash_token(token), name=name, created_at=utcnow()))
    return token


def init_app(app: Flask) -> None:
    @app.context_processor
    def _inject() -> dict[str, Any]:
        return {"current_user": current_user()}
