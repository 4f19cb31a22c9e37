"""Headers and cookies (issue 10, item 7): a strict Content-Security-Policy and its companions on
pages and the API, the Secure session cookie, and whose address the recordings' access log keeps
behind a reverse proxy. The panel must pass its own CSP: no template or rendered page carries an
inline script, an on...= handler, a style="" attribute or a javascript: URL (the browser check is
tests/browser/test_csp.py)."""

from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from models.organization import Role
from models.recording import RecordingAccess
from tests import factories as f
from tests.conftest import login
from tests.web.test_panel_calls import make_recording

TEMPLATES = Path(__file__).resolve().parents[2] / "web" / "templates"


def _app(settings: Any, db: Any, **web: Any) -> Any:
    from web import create_app

    return create_app(replace(settings, web=replace(settings.web, **web)), db, TESTING=True, WTF_CSRF_ENABLED=False)


def _assert_security_headers(resp: Any) -> None:
    csp = resp.headers["Content-Security-Policy"]
    directives = dict((d.strip().split(" ", 1) + [""])[:2] for d in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert "unsafe" not in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Referrer-Policy"] == "same-origin"


def test_pages_api_and_static_files_carry_the_security_headers(app: Any, client: Any, world: Any) -> None:
    for url in ("/login", "/api/v1/tickets", "/static/app.js", "/no-such-page"):
        with client.get(url) as resp:
            _assert_security_headers(resp)
    assert client.get("/api/v1/tickets").status_code == 401
    login(client, world.dispatcher_a)
    _assert_security_headers(client.get("/", follow_redirects=True))
    assert "Strict-Transport-Security" not in client.get("/login").headers  # plain HTTP: no HSTS


def test_session_cookie_is_secure_when_configured_or_the_panel_is_on_https(settings: Any, db: Any, world: Any) -> None:
    from openads.config import web_settings

    assert web_settings({}, base_url="https://ads.example.ru").cookie_secure is True
    assert web_settings({}, base_url="http://127.0.0.1:8080").cookie_secure is False
    assert web_settings({"OPENADS_SESSION_COOKIE_SECURE": "0"}, base_url="https://ads.example.ru").cookie_secure is False
    for secure in (True, False):
        resp = login(_app(settings, db, cookie_secure=secure).test_client(), world.dispatcher_a)
        cookie = resp.headers["Set-Cookie"]
        assert cookie.startswith("session=") and "HttpOnly" in cookie
        assert ("; Secure" in cookie) is secure


def _recording_access_ip(settings: Any, db: Any, world: Any, **web: Any) -> str | None:
    with db.write() as s:
        _, rec = make_recording(s, s.merge(world.org_a), settings.recordings_dir)
    client = _app(settings, db, **web).test_client()
    login(client, world.dispatcher_a)
    resp = client.get(f"/recordings/{rec.id}", buffered=True,
                      headers={"X-Forwarded-For": "198.51.100.23, 203.0.113.7", "X-Forwarded-Proto": "https"},
                      environ_base={"REMOTE_ADDR": "10.0.0.5"})  # the proxy's own address
    assert resp.status_code == 200
    _assert_security_headers(resp)
    with db.read() as s:
        return s.scalar(select(RecordingAccess.ip).where(RecordingAccess.recording_id == rec.id))


def test_behind_one_trusted_proxy_the_recordings_log_keeps_the_client_address(settings: Any, db: Any, world: Any) -> None:
    assert _recording_access_ip(settings, db, world, proxy_hops=1) == "203.0.113.7"


def test_without_a_trusted_proxy_forwarded_headers_are_ignored(settings: Any, db: Any, world: Any) -> None:
    assert _recording_access_ip(settings, db, world) == "10.0.0.5"


def test_https_through_the_trusted_proxy_gets_hsts(settings: Any, db: Any) -> None:
    client = _app(settings, db, proxy_hops=1).test_client()
    assert "max-age=" in client.get("/login", headers={"X-Forwarded-Proto": "https"}).headers[
        "Strict-Transport-Security"]


class _InlineFinder(HTMLParser):
    """What a strict CSP blocks: inline <script>/<style>, on...= handlers, style="", javascript: URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=>")
            if name == "style":
                self.found.append(f"<{tag} style=>")
            if name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                    "javascript:"):
                self.found.append(f"<{tag} {name}=javascript:>")


def inline_code(html: str) -> list[str]:
    finder = _InlineFinder()
    finder.feed(html)
    return finder.found


def test_no_template_holds_inline_script_handlers_or_styles() -> None:
    pattern = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\son[a-z]+\s*=|\sstyle\s*=|javascript:", re.I)
    offenders = {
        str(path.relative_to(TEMPLATES)): pattern.findall(path.read_text())
        for path in sorted(TEMPLATES.rglob("*.html"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    assert inline_code('<a onclick="x()" style="color: red">') == ["<a onclick=>", "<a style=>"]


@pytest.fixture
def busy_world(db: Any, world: Any, settings: Any) -> dict[str, Any]:
    """Something on every page: tickets, calls, a missed call, an incident, a recording."""
    with db.write() as s:
        org_a = s.merge(world.org_a)
        ticket = f.make_ticket(s, org_a, s.merge(world.cats_a["roof_leak"]), executor_id=world.executor_a.id)
        call, _ = make_recording(s, org_a, settings.recordings_dir)
        missed = f.make_missed_call(s, org_a, "+79165550000")
        ringing = f.make_inbound_call(s, org_a, "+79161112233")
        f.make_incident(s, s.merge(world.house_a), title="Авария ХВС", announcement="Подъезд 2")
        admin = f.make_user(s, [org_a, s.merge(world.org_b)], Role.ADMIN, login="admin_ab")
        from models.job import JobKind, JobStatus
        from models.services.jobs import enqueue_job

        check = enqueue_job(s, org_id=org_a.id, kind=JobKind.HOUSING_CHECK, by=s.merge(world.manager_a),
                            params={"file": "imports/x.csv", "filename": "fond.csv"})
        check.status, check.result = JobStatus.DONE, {
            "rows_total": 2, "rows_ok": 1, "rows_failed": 1, "houses_created": 1, "errors": [[3, "не указан адрес"]],
            "sample": [{"row": "2", "address": "г. Тула, ул. Мира, д. 1"}], "columns": ["address"]}
        running = enqueue_job(s, org_id=org_a.id, kind=JobKind.HOUSING_IMPORT, by=s.merge(world.manager_a),
                              params={"file": "imports/y.csv", "filename": "fond.csv"}, total=100)
    return {"ticket": ticket.id, "call": call.id, "ringing": ringing.id, "missed": missed.id, "admin": admin,
            "jobs": [check.id, running.id]}


def test_every_rendered_page_passes_the_csp(app: Any, client: Any, world: Any, busy_world: dict[str, Any]) -> None:
    t, c, m = busy_world["ticket"], busy_world["call"], busy_world["missed"]
    pages = {
        world.dispatcher_a: ["/", "/?f=1", "/console/zone", f"/tickets/{t}", f"/tickets/{t}/row", "/tickets/new",
                             "/calls", f"/calls/{c}", f"/calls/{c}?partial=1", f"/calls/{busy_world['ringing']}/strip", "/missed-calls",
                             f"/missed-calls/{m}", f"/missed-calls/{m}/item", f"/calls/{c}/resident", "/incidents",
                             "/account/security", "/no-such-page"],
        world.manager_a: ["/calls/compliance", "/ratings", "/settings/robot", "/housing/import", "/jobs",
                          *(f"/jobs/{j}" for j in busy_world["jobs"])],
        busy_world["admin"]: ["/", "/settings/robot", "/ratings"],  # two organizations: badges and org pickers
        world.executor_a: ["/", f"/tickets/{t}", "/account/security"],
    }
    client.post("/logout")
    assert inline_code(client.get("/login").get_data(as_text=True)) == []
    checked = 0
    for user, urls in pages.items():
        client.post("/logout")
        login(client, user)
        for url in urls:
            resp = client.get(url)
            assert resp.status_code in (200, 404), (url, resp.status_code)
            html = resp.get_data(as_text=True)
            assert inline_code(html) == [], url
            checked += "org-badge" in html
    assert checked  # the organization badges (once style="--hue") were among the pages
