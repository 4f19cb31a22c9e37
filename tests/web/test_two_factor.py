"""TOTP two-factor authentication (issue 12, part A item 3; decision 0028): enrolment on the user's
own page (QR code drawn on the server, the secret, confirmed by a code), the login's second step
(a code from the app or a recovery code, each used once, throttled and locked out like passwords),
administrators and managers sent to enrol while OPENADS_REQUIRE_2FA is on, an administrator's
reset, API tokens unaffected."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from models.audit import AuditEntry
from models.auth import RecoveryCode
from models.base import utcnow
from models.organization import User
from models.rules import two_factor as rules
from models.rules.access import LoginLimits
from openads.config import auth_settings
from tests import factories as f
from tests.web.helpers import API
from web import create_app


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> Any:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def strict(settings, db) -> Any:
    """The app as production runs it: administrators and managers must enrol; a settable clock."""
    app = create_app(replace(settings, auth=replace(settings.auth, require_2fa=True)), db, TESTING=True,
                     WTF_CSRF_ENABLED=False)
    app.config["OPENADS_CLOCK"] = Clock()
    return app


def _password(client: Any, login: str, password: str = f.PASSWORD) -> Any:
    return client.post("/login", data={"login": login, "password": password})


def _enrol(app: Any, client: Any) -> tuple[str, list[str]]:
    """Enrol the signed-in user through the pages; their secret and recovery codes."""
    assert client.post("/account/two-factor/start").status_code == 302
    page = client.get("/account/two-factor").get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([^<]+)<', page).group(1).replace(" ", "")
    resp = client.post("/account/two-factor/confirm", data={"otp": rules.code_at(secret, app.config["OPENADS_CLOCK"]())})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.headers["Cache-Control"] == "no-store"
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", resp.get_data(as_text=True))
    return secret, codes


def _code(app: Any, secret: str) -> str:
    return rules.code_at(secret, app.config["OPENADS_CLOCK"]())


def test_a_manager_is_sent_to_enrol_until_they_do_then_logs_in_with_a_code(strict, db, world) -> None:
    client = strict.test_client()
    assert _password(client, "man_a").status_code == 302
    for page in ("/", "/tickets/new", "/ratings", "/account/security"):
        resp = client.get(page)
        assert resp.status_code == 302 and resp.headers["Location"].endswith("/account/two-factor"), page
    assert client.get(f"{API}/tickets").status_code == 403  # the panel's scripts too
    assert client.get("/events/stream").status_code == 401
    page = client.get("/account/two-factor").get_data(as_text=True)
    assert 'id="two-factor-required"' in page and "Подключить" in page
    secret, codes = _enrol(strict, client)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert client.get("/").status_code == 200
    with db.read() as s:
        user = s.get(User, world.manager_a.id)
        assert user.totp_secret == secret and user.totp_enabled_at is not None
        stored = set(s.scalars(select(RecoveryCode.code_sha256).where(RecoveryCode.user_id == user.id)))
        assert stored == {rules.recovery_digest(c) for c in codes} and not set(codes) & stored
        assert [(e.field, e.new_value) for e in s.scalars(select(AuditEntry))] == [("two_factor", "включён")]
    # the next login asks for the code after the password; the password alone opens nothing
    fresh = strict.test_client()
    resp = _password(fresh, "man_a")
    assert resp.status_code == 302 and "/login/code" in resp.headers["Location"]
    assert fresh.get("/").headers["Location"].startswith("/login")
    assert "Код входа" in fresh.get("/login/code").get_data(as_text=True)
    strict.config["OPENADS_CLOCK"].advance(seconds=60)
    resp = fresh.post("/login/code", data={"otp": _code(strict, secret)})
    assert resp.status_code == 302 and fresh.get("/").status_code == 200


def test_the_qr_code_is_inline_svg_drawn_on_the_server(strict, world) -> None:
    client = strict.test_client()
    _password(client, "man_a")
    client.post("/account/two-factor/start")
    page = client.get("/account/two-factor").get_data(as_text=True)
    qr = page.split('id="totp-qr">')[1].split("</div>")[0]
    assert qr.strip().startswith("<svg") and "<path" in qr and "<script" not in qr and "style=" not in qr
    assert "http" not in qr.replace("http://www.w3.org", "")  # nothing fetched from elsewhere


def test_a_wrong_enrolment_code_keeps_it_off(strict, db, world) -> None:
    client = strict.test_client()
    _password(client, "man_a")
    client.post("/account/two-factor/start")
    resp = client.post("/account/two-factor/confirm", data={"otp": "000000"})
    assert resp.status_code == 400 and "код не подходит" in resp.get_data(as_text=True)
    with db.read() as s:
        assert s.get(User, world.manager_a.id).totp_enabled_at is None
    assert client.get("/").status_code == 302


def test_a_code_works_once_and_wrong_codes_lock_the_login_like_passwords(settings, db, world) -> None:
    app = create_app(replace(settings, auth=replace(settings.auth, require_2fa=True,
                                                    login=LoginLimits(max_failures=3))), db, TESTING=True,
                     WTF_CSRF_ENABLED=False)
    app.config["OPENADS_CLOCK"] = Clock()
    client = app.test_client()
    _password(client, "man_a")
    secret, _ = _enrol(app, client)
    used = _code(app, secret)  # the code that confirmed the enrolment
    fresh = app.test_client()
    _password(fresh, "man_a")
    assert fresh.post("/login/code", data={"otp": used}).status_code == 401  # replayed
    # the right password again does not reset the count of wrong codes
    _password(fresh, "man_a")
    assert fresh.post("/login/code", data={"otp": "123456"}).status_code == 401
    _password(fresh, "man_a")
    resp = fresh.post("/login/code", data={"otp": "654321"})
    assert resp.status_code == 429 and "Слишком много неудачных попыток" in resp.get_data(as_text=True)
    app.config["OPENADS_CLOCK"].advance(seconds=30)
    assert _password(fresh, "man_a").status_code == 429  # the login is locked, the password not even checked
    assert fresh.post("/login/code", data={"otp": _code(app, secret)}).status_code == 302  # back to the login
    assert fresh.get("/").status_code == 302


def test_a_recovery_code_opens_one_login(strict, db, world) -> None:
    client = strict.test_client()
    _password(client, "man_a")
    _secret, codes = _enrol(strict, client)
    first = strict.test_client()
    _password(first, "man_a")
    assert first.post("/login/code", data={"otp": codes[3].upper().replace("-", " ")}).status_code == 302
    assert first.get("/").status_code == 200
    second = strict.test_client()
    _password(second, "man_a")
    assert second.post("/login/code", data={"otp": codes[3]}).status_code == 401
    page = first.get("/account/security").get_data(as_text=True)
    assert 'id="codes-left">9<' in page


def test_the_pending_code_step_expires_and_cannot_be_skipped(strict, world) -> None:
    client = strict.test_client()
    _password(client, "man_a")
    secret, _ = _enrol(strict, client)
    fresh = strict.test_client()
    _password(fresh, "man_a")
    strict.config["OPENADS_CLOCK"].advance(minutes=6)
    resp = fresh.post("/login/code", data={"otp": _code(strict, secret)})
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")
    assert fresh.get("/").status_code == 302
    assert strict.test_client().get("/login/code").status_code == 302  # no password typed at all


def test_renew_recovery_codes_and_disable_need_a_current_code(strict, db, world) -> None:
    client = strict.test_client()
    _password(client, "man_a")
    secret, old = _enrol(strict, client)
    strict.config["OPENADS_CLOCK"].advance(seconds=30)
    assert client.post("/account/two-factor/recovery-codes", data={"otp": "000000"}).status_code == 400
    resp = client.post("/account/two-factor/recovery-codes", data={"otp": _code(strict, secret)})
    new = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", resp.get_data(as_text=True))
    assert len(new) == 10 and not set(new) & set(old)
    strict.config["OPENADS_CLOCK"].advance(seconds=30)
    assert client.post("/account/two-factor/disable", data={"otp": "000000"}).status_code == 400
    assert client.post("/account/two-factor/disable", data={"otp": _code(strict, secret)}).status_code == 302
    with db.read() as s:
        user = s.get(User, world.manager_a.id)
        assert user.totp_secret is None and not s.scalars(select(RecoveryCode)).all()
    # a manager must have it: sent to enrol again
    assert client.get("/").headers["Location"].endswith("/account/two-factor")


def test_an_administrator_resets_a_users_second_factor(strict, db, world, admin_a) -> None:
    manager = strict.test_client()
    _password(manager, "man_a")
    _enrol(strict, manager)
    with db.write() as s:  # the administrator has enrolled too
        u = s.get(User, admin_a.id)
        u.totp_secret, u.totp_enabled_at = rules.new_secret(), utcnow()
        secret = u.totp_secret
    admin = strict.test_client()
    _password(admin, "adm_a")
    assert admin.post("/login/code", data={"otp": _code(strict, secret)}).status_code == 302
    page = admin.get(f"/admin/users/{world.manager_a.id}").get_data(as_text=True)
    assert 'id="user-2fa-reset"' in page
    assert admin.post(f"/admin/users/{world.manager_a.id}/two-factor-reset").status_code == 302
    with db.read() as s:
        assert s.get(User, world.manager_a.id).totp_enabled_at is None
        assert not s.scalars(select(RecoveryCode)).all()
        entry = s.scalars(select(AuditEntry).where(AuditEntry.new_value == "сброшен")).one()
        assert (entry.actor_id, entry.object_id, entry.organization_id) == (admin_a.id, world.manager_a.id,
                                                                            world.org_a.id)
    fresh = strict.test_client()
    assert _password(fresh, "man_a").headers["Location"] == "/"  # no code asked
    assert fresh.get("/").headers["Location"].endswith("/account/two-factor")  # and enrols again


def test_dispatchers_need_no_second_factor_but_may_enrol(strict, world) -> None:
    client = strict.test_client()
    _password(client, "disp_a")
    assert client.get("/").status_code == 200
    page = client.get("/account/security").get_data(as_text=True)
    assert 'id="two-factor-start"' in page and "обязателен для вашей роли" not in page
    secret, _ = _enrol(strict, client)
    fresh = strict.test_client()
    assert "/login/code" in _password(fresh, "disp_a").headers["Location"]


def test_api_tokens_are_not_affected(strict, world, token_for) -> None:
    headers = token_for(world.manager_a, scopes="read")
    assert strict.test_client().get(f"{API}/tickets", headers=headers).status_code == 200


def test_require_2fa_is_on_by_default_and_off_by_default_in_the_demo() -> None:
    assert auth_settings({}).require_2fa is True
    assert auth_settings({"OPENADS_DEMO": "1"}).require_2fa is False
    assert auth_settings({"OPENADS_DEMO": "1", "OPENADS_REQUIRE_2FA": "1"}).require_2fa is True
    assert auth_settings({"OPENADS_REQUIRE_2FA": "0"}).require_2fa is False
    from openads.config import ConfigError

    with pytest.raises(ConfigError):
        auth_settings({"OPENADS_REQUIRE_2FA": "может быть"})


def test_codes_outside_the_window_or_reused_are_refused() -> None:
    secret, now = rules.new_secret(), utcnow()
    code = rules.code_at(secret, now)
    step = rules.matching_step(secret, code, now, None)
    assert step is not None
    assert rules.matching_step(secret, code, now + timedelta(seconds=30), None) == step  # one step late is fine
    assert rules.matching_step(secret, code, now + timedelta(minutes=2), None) is None
    assert rules.matching_step(secret, code, now, step) is None  # used
    assert rules.matching_step(secret, "12345", now, None) is None
    assert rules.matching_step(secret, "１２３４５６", now, None) is None  # full-width digits are not digits here
