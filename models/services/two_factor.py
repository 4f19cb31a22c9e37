"""A user's own TOTP second factor: enrolment (a secret, confirmed by a code from the app), the
recovery codes, turning it off, and checking a code at login (decision 0028).

The login's check is throttled like the password (models/services/access.py
`authenticate_second_factor`); the checks here are for a signed-in user on their own page. Writes
`users.totp_*`, `recovery_codes` and `audit_log` rows (object "user"); emits no domain event.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from models.auth import RecoveryCode
from models.errors import ValidationFailed
from models.organization import User
from models.rules import two_factor as rules
from models.services.audit import Actor
from models.services.users import log_change


def start_enrolment(session: Session, *, user: User) -> str:
    """A new secret for the user's app, not yet in force (the login asks for no code until it is
    confirmed). Starting again replaces an unconfirmed one. Returns the secret."""
    if user.two_factor_enabled:
        raise ValidationFailed("двухфакторный вход уже включён", field="code")
    user.totp_secret = rules.new_secret()
    user.totp_last_step = None
    return user.totp_secret


def _new_recovery_codes(session: Session, *, user: User, now: datetime) -> list[str]:
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = rules.new_recovery_codes()
    for code in codes:
        session.add(RecoveryCode(user_id=user.id, code_sha256=rules.recovery_digest(code), created_at=now))
    return codes


def confirm_enrolment(session: Session, *, user: User, code: str, now: datetime, by: Actor) -> list[str]:
    """Turn the second factor on once the app shows the right code. Returns the recovery codes
    (shown once; only their digests are kept)."""
    if user.two_factor_enabled:
        raise ValidationFailed("двухфакторный вход уже включён", field="code")
    if user.totp_secret is None:
        raise ValidationFailed("сначала начните подключение: отсканируйте QR-код", field="code")
    step = rules.matching_step(user.totp_secret, rules.clean_code(code), now, None)
    if step is None:
        raise ValidationFailed("код не подходит: проверьте время на телефоне и введите код, который приложение "
                               "показывает сейчас", field="code")
    user.totp_last_step = step
    user.totp_enabled_at = now
    codes = _new_recovery_codes(session, user=user, now=now)
    log_change(session, by=by, user=user, before={"two_factor": "выключен"}, after={"two_factor": "включён"}, now=now)
    return codes


def check_code(session: Session, *, user: User, code: str, now: datetime) -> bool:
    """Whether `code` (from the app, or an unused recovery code) proves the second factor; an app
    code is then used up (its step is kept), and so is a recovery code. Not throttled: the login
    calls it through access.authenticate_second_factor."""
    if not user.two_factor_enabled or user.totp_secret is None:
        return False
    cleaned = rules.clean_code(code)
    if rules.is_totp_code(cleaned):
        step = rules.matching_step(user.totp_secret, cleaned, now, user.totp_last_step)
        if step is None:
            return False
        user.totp_last_step = step
        return True
    if not cleaned:
        return False
    used = session.execute(
        update(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None),
                                   RecoveryCode.code_sha256 == rules.recovery_digest(cleaned)).values(used_at=now))
    if used.rowcount:  # type: ignore[attr-defined]
        log_change(session, by=Actor.of(user, "panel"), user=user, before={}, after={"recovery_codes": "использован один"},
             now=now)
        return True
    return False


def _require_code(session: Session, *, user: User, code: str, now: datetime) -> None:
    if not check_code(session, user=user, code=code, now=now):
        raise ValidationFailed("код не подходит", field="code")


def disable(session: Session, *, user: User, code: str, now: datetime, by: Actor) -> None:
    """Turn the user's own second factor off (a current code proves it is them)."""
    _require_code(session, user=user, code=code, now=now)
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    log_change(session, by=by, user=user, before={"two_factor": "включён"}, after={"two_factor": "выключен"}, now=now)


def renew_recovery_codes(session: Session, *, user: User, code: str, now: datetime, by: Actor) -> list[str]:
    """Ten new recovery codes (the old ones stop working); a current code proves it is them."""
    _require_code(session, user=user, code=code, now=now)
    codes = _new_recovery_codes(session, user=user, now=now)
    log_change(session, by=by, user=user, before={}, after={"recovery_codes": "выпущены новые"}, now=now)
    return codes


def unused_recovery_codes(session: Session, *, user_id: int) -> int:
    return session.scalar(select(func.count()).select_from(RecoveryCode)
                          .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))) or 0
