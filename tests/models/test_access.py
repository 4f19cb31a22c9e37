"""Signing in (issue 10, items 5, 6, 8): the password policy, throttled logins with lock-outs, the
constant-work failure path, sessions, deactivation and API tokens, at the service level."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from models.auth import LoginFailure, UserSession
from models.errors import NotFound, ValidationFailed
from models.organization import Role
from models.rules import credentials
from models.rules.access import (
    MAX_TOKEN_DAYS,
    LoginLimits,
    Scope,
    SessionLimits,
    TokenState,
    format_scopes,
    parse_scopes,
    required_scope,
    scopes_for,
    session_alive,
    token_expires_at,
    token_state,
)
from models.services import access
from tests import factories as f

T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
LIMITS = LoginLimits(max_failures=5, ip_max_failures=30, window=timedelta(minutes=15), lockout=timedelta(minutes=15))


def login(session, name, password, *, at=T0, ip="10.0.0.1", limits=LIMITS):
    return access.authenticate(session, login=name, password=password, ip=ip, now=at, limits=limits)


# --- password policy ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("password", "problem"), [
    ("short-1", "короче 10 символов"),
    ("qwertyuiop", "слишком простой"),
    ("Password123", "слишком простой"),
    ("aaaaaaaaaaaa", "слишком простой"),
    ("ivanov-2026-x", "не должен содержать логин"),
])
def test_password_policy_refuses_short_common_and_login_passwords(password, problem) -> None:
    problems = credentials.password_problems(password, login="Ivanov", min_length=10)
    assert any(problem in p for p in problems), problems


def test_password_policy_accepts_a_long_uncommon_password() -> None:
    assert credentials.password_problems("вишня-трамвай-42", login="ivanov", min_length=10) == []


def test_set_password_applies_the_policy_and_ends_the_users_sessions(session) -> None:
    org = f.make_org(session)
    user = f.make_user(session, [org], Role.DISPATCHER, login="ivanov")
    access.start_session(session, user=user, ip="10.0.0.1", user_agent="test", now=T0)
    with pytest.raises(ValidationFailed) as exc:
        access.set_password(session, user=user, password="12345", min_length=10, now=T0)
    assert exc.value.details["field"] == "password"
    assert access.set_password(session, user=user, password="вишня-трамвай-42", min_length=10, now=T0) == 1
    assert credentials.check_password(user.password_hash, "вишня-трамвай-42")
    assert access.live_sessions(session, user_id=user.id, now=T0, limits=SessionLimits()) == []


# --- throttling ---------------------------------------------------------------------------------------


def test_when_a_login_fails_max_times_then_even_the_right_password_is_refused_until_unlocked(session) -> None:
    org = f.make_org(session)
    user = f.make_user(session, [org], Role.ADMIN, login="admin")
    for i in range(4):
        assert login(session, "admin", f"guess-{i}", at=T0 + timedelta(seconds=i)) == access.LoginOutcome(None)
    fifth = login(session, "admin", "guess-4", at=T0 + timedelta(seconds=4))
    assert fifth.user is None and fifth.locked_until == T0 + timedelta(seconds=4) + LIMITS.lockout
    refused = login(session, "admin", f.PASSWORD, at=T0 + timedelta(minutes=5))
    assert refused == access.LoginOutcome(None, fifth.locked_until)
    assert [(lock.kind.value, lock.value) for lock in access.active_locks(session, now=T0)] == [("login", "admin")]

    assert access.unlock(session, login="admin") == 1
    assert login(session, "admin", f.PASSWORD, at=T0 + timedelta(minutes=5)).user is user
    assert access.active_locks(session, now=T0) == []


def test_a_lock_out_ends_by_itself_after_the_lockout_period(session) -> None:
    org = f.make_org(session)
    user = f.make_user(session, [org], Role.ADMIN, login="admin")
    for i in range(5):
        login(session, "admin", f"guess-{i}")
    assert login(session, "admin", f.PASSWORD, at=T0 + LIMITS.lockout - timedelta(seconds=1)).user is None
    assert login(session, "admin", f.PASSWORD, at=T0 + LIMITS.lockout + timedelta(seconds=1)).user is user


def test_a_success_clears_the_failures_of_that_login(session) -> None:
    org = f.make_org(session)
    user = f.make_user(session, [org], Role.ADMIN, login="admin")
    for i in range(4):
        login(session, "admin", f"guess-{i}")
    assert login(session, "admin", f.PASSWORD).user is user
    for i in range(4):
        assert login(session, "admin", f"again-{i}").locked_until is None


def test_a_missing_login_is_counted_and_locked_out_like_a_real_one(session) -> None:
    outcomes = [login(session, "nobody", f"guess-{i}") for i in range(6)]
    assert [o.locked_until is not None for o in outcomes] == [False] * 4 + [True, True]


def test_one_address_trying_many_logins_is_locked_out(session) -> None:
    org = f.make_org(session)
    user = f.make_user(session, [org], Role.DISPATCHER, login="disp")
    limits = LoginLimits(max_failures=5, ip_max_failures=3)
    for name in ("anna", "boris", "vera"):
        login(session, name, "guess-1", ip="203.0.113.9", limits=limits)
    assert login(session, "disp", f.PASSWORD, ip="203.0.113.9", limits=limits).locked_until is not None
    assert login(session, "disp", f.PASSWORD, ip="198.51.100.1", limits=limits).user is user
    assert access.unlock(session, ip="203.0.113.9") == 1
    assert login(session, "disp", f.PASSWORD, ip="203.0.113.9", limits=limits).user is user


def test_old_failures_fall_out_of_the_window_and_are_pruned(session) -> None:
    for i in range(4):
        login(session, "admin", f"guess-{i}", at=T0)
    later = T0 + LIMITS.window + timedelta(seconds=1)
    assert login(session, "admin", "guess-late", at=later).locked_until is None
    assert session.scalar(select(func.count()).select_from(LoginFailure)) == 1


def test_a_missing_or_deactivated_login_still_costs_a_password_hash(session, monkeypatch, production_password_hashing) -> None:
    org = f.make_org(session)
    gone = f.make_user(session, [org], Role.DISPATCHER, login="gone")
    gone.is_active = False
    calls: list[str] = []
    real = credentials.check_password

    def spy(password_hash: str, password: str) -> bool:
        calls.append(password_hash)
        return real(password_hash, password)

    monkeypatch.setattr(credentials, "check_password", spy)
    assert login(session, "no-such-user", "whatever-1").user is None
    assert login(session, "gone", f.PASSWORD).user is None
    assert len(calls) == 2 and all(h.startswith("scrypt:") for h in calls)
    assert gone.password_hash not in calls  # a deactivated user's own hash is never compared


# --- sessions -----------------------------------------------------------------------------------------


def test_session_rule_absolute_lifetime_and_idle_timeout() -> None:
    limits = SessionLimits(lifetime=timedelta(hours=12), idle=timedelta(hours=2))
    assert session_alive(T0, T0 + timedelta(hours=11), T0 + timedelta(hours=12, seconds=-1), limits)
    assert not session_alive(T0, T0 + timedelta(hours=11, minutes=59), T0 + timedelta(hours=12), limits)
    assert not session_alive(T0, T0, T0 + timedelta(hours=2), limits)


def test_deactivation_and_sign_out_everywhere_end_every_session(session) -> None:
    org = f.make_org(session)
    user = f.make_user(session, [org], Role.DISPATCHER)
    other = f.make_user(session, [org], Role.DISPATCHER)
    for _ in range(2):
        access.start_session(session, user=user, ip="10.0.0.1", user_agent="test", now=T0)
    access.start_session(session, user=other, ip="10.0.0.2", user_agent="test", now=T0)
    assert access.end_user_sessions(session, user_id=user.id, now=T0) == 2
    key = access.start_session(session, user=user, ip="10.0.0.1", user_agent="test", now=T0)
    assert access.deactivate_user(session, user=user, now=T0) == 1
    assert not user.is_active
    row = session.scalar(select(UserSession).where(UserSession.key_sha256 == credentials.digest(key)))
    assert row.ended_at == T0
    assert len(access.live_sessions(session, user_id=other.id, now=T0, limits=SessionLimits())) == 1


# --- tokens -------------------------------------------------------------------------------------------


def test_route_scopes_by_method_unless_declared() -> None:
    assert required_scope("GET") == Scope.READ
    assert required_scope("POST") == Scope.WRITE and required_scope("PATCH") == Scope.WRITE
    assert required_scope("GET", Scope.TELEPHONY) == Scope.TELEPHONY
    assert format_scopes(["telephony", "read"]) == "read telephony"
    assert parse_scopes("write,read") == (Scope.READ, Scope.WRITE)
    with pytest.raises(ValueError, match="admin"):
        parse_scopes("read admin")


def test_issue_api_token_stores_only_the_digest_with_scopes_and_expiry(session) -> None:
    org = f.make_org(session)
    user = f.make_user(session, [org], Role.DISPATCHER)
    issued = access.issue_api_token(session, user=user, scopes=(Scope.READ,), expires_at=T0 + timedelta(days=30),
                                    name="CRM", now=T0)
    assert issued.secret.startswith("oads_") and issued.token.token_sha256 == credentials.digest(issued.secret)
    assert (issued.token.scopes, issued.token.expires_at) == ("read", T0 + timedelta(days=30))
    with pytest.raises(ValidationFailed):
        access.issue_api_token(session, user=user, scopes=(), expires_at=None, now=T0)
    with pytest.raises(ValidationFailed):
        access.issue_api_token(session, user=user, scopes=(Scope.READ,), expires_at=T0, now=T0)
    assert access.revoke_user_tokens(session, user_id=user.id) == 1
    assert access.user_tokens(session, user_id=user.id)[0].revoked


def test_one_users_own_session_ends_alone_and_another_users_is_not_found(session) -> None:
    org = f.make_org(session)
    user, other = f.make_user(session, [org]), f.make_user(session, [org])
    office = access.start_session(session, user=user, ip=None, user_agent="", now=T0)
    access.start_session(session, user=user, ip=None, user_agent="", now=T0)
    access.start_session(session, user=other, ip=None, user_agent="", now=T0)
    session.flush()
    [mine_new, mine_old] = access.live_sessions(session, user_id=user.id, now=T0, limits=SessionLimits())
    [theirs] = access.live_sessions(session, user_id=other.id, now=T0, limits=SessionLimits())
    assert access.is_session_of(mine_old, office) != access.is_session_of(mine_new, office)
    with pytest.raises(NotFound):
        access.end_user_session(session, user_id=user.id, session_id=theirs.id, now=T0)
    assert theirs.ended_at is None
    home = mine_new if access.is_session_of(mine_old, office) else mine_old
    assert access.end_user_session(session, user_id=user.id, session_id=home.id, now=T0).ended_at == T0
    with pytest.raises(NotFound):  # ended already
        access.end_user_session(session, user_id=user.id, session_id=home.id, now=T0)


def test_end_all_but_this_one_keeps_the_given_session(session) -> None:
    org = f.make_org(session)
    user, other = f.make_user(session, [org]), f.make_user(session, [org])
    keep = access.start_session(session, user=user, ip=None, user_agent="", now=T0)
    for _ in range(2):
        access.start_session(session, user=user, ip=None, user_agent="", now=T0)
    access.start_session(session, user=other, ip=None, user_agent="", now=T0)
    session.flush()
    assert access.end_user_sessions(session, user_id=user.id, now=T0, keep_key=keep) == 2
    [left] = access.live_sessions(session, user_id=user.id, now=T0, limits=SessionLimits())
    assert access.is_session_of(left, keep)
    assert len(access.live_sessions(session, user_id=other.id, now=T0, limits=SessionLimits())) == 1


def test_a_user_revokes_only_their_own_token(session) -> None:
    org = f.make_org(session)
    user, other = f.make_user(session, [org]), f.make_user(session, [org])
    mine = access.issue_api_token(session, user=user, scopes=(Scope.READ,), expires_at=None, now=T0).token
    theirs = access.issue_api_token(session, user=other, scopes=(Scope.READ,), expires_at=None, now=T0).token
    with pytest.raises(NotFound):
        access.revoke_own_api_token(session, user_id=user.id, token_id=theirs.id)
    assert not theirs.revoked
    assert access.revoke_own_api_token(session, user_id=user.id, token_id=mine.id).revoked


def test_telephony_tokens_only_for_the_roles_that_read_call_records_settings_only_for_admins(session) -> None:
    assert scopes_for(Role.DISPATCHER) == (Scope.READ, Scope.WRITE, Scope.TELEPHONY) == scopes_for(Role.MANAGER)
    assert scopes_for(Role.ADMIN) == (Scope.READ, Scope.WRITE, Scope.TELEPHONY, Scope.SETTINGS)
    assert scopes_for(Role.EXECUTOR) == (Scope.READ, Scope.WRITE)
    org = f.make_org(session)
    executor = f.make_user(session, [org], Role.EXECUTOR)
    with pytest.raises(ValidationFailed, match="телефония"):
        access.issue_api_token(session, user=executor, scopes=(Scope.READ, Scope.TELEPHONY), expires_at=None, now=T0)
    manager = f.make_user(session, [org], Role.MANAGER)
    with pytest.raises(ValidationFailed, match="настройки"):
        access.issue_api_token(session, user=manager, scopes=(Scope.SETTINGS,), expires_at=None, now=T0)
    assert access.user_tokens(session, user_id=executor.id) == []
    assert access.issue_api_token(session, user=executor, scopes=(Scope.READ,), expires_at=None, now=T0).secret


def test_token_state_and_expiry_rules() -> None:
    assert token_state(False, None, T0) is TokenState.ACTIVE
    assert token_state(False, T0, T0) is TokenState.EXPIRED
    assert token_state(True, T0 + timedelta(days=1), T0) is TokenState.REVOKED
    assert token_expires_at(T0, 30) == T0 + timedelta(days=30)
    assert token_expires_at(T0, 0) is None and token_expires_at(T0, None) is None
    assert token_expires_at(T0, MAX_TOKEN_DAYS) == T0 + timedelta(days=MAX_TOKEN_DAYS)
    for bad in (-1, MAX_TOKEN_DAYS + 1):
        with pytest.raises(ValueError, match="от 0 до"):
            token_expires_at(T0, bad)
