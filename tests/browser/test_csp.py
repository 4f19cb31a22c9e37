"""The panel under its own Content-Security-Policy in Chromium: no page reports a violation, the
live parts still work; and a page over the stream quota (429) says so and keeps retrying."""

from __future__ import annotations

from typing import Any

import pytest

from models.organization import Role
from tests import factories as f
from tests.browser.conftest import browser_login as _login

pytestmark = pytest.mark.browser

# Recorded before any page script runs (an init script is not subject to the page's CSP).
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "") + " " + (e.sample || ""));
});
"""


def _violations(page: Any, console: list[str]) -> list[str]:
    return list(page.evaluate("window.__csp")) + [m for m in console if "Content Security Policy" in m]


def test_main_pages_report_no_csp_violation(live_server: Any, chromium: Any, db: Any, world: Any) -> None:
    from playwright.sync_api import expect

    with db.write() as s:
        org_a = s.merge(world.org_a)
        ticket = f.make_ticket(s, org_a, s.merge(world.cats_a["roof_leak"]), house_id=world.house_a.id)
        f.make_inbound_call(s, org_a, "+79161234567")
        f.make_missed_call(s, org_a, "+79165550000")
        f.make_incident(s, s.merge(world.house_a), title="Авария ХВС", announcement="Подъезд 2")
        f.make_user(s, [org_a, s.merge(world.org_b)], Role.ADMIN, login="admin_ab")
    pages = {
        world.dispatcher_a.login: ["/", f"/tickets/{ticket.id}", "/tickets/new", "/calls", "/missed-calls",
                                   "/incidents", "/account/security"],
        "admin_ab": ["/", "/calls/compliance", "/ratings", "/reports/analytics", "/reports/today", "/settings/robot",
                     "/housing/import",
                     f"/admin/organizations/{world.org_a.id}/telephony",
                     f"/admin/organizations/{world.org_a.id}/telephony/status"],
    }
    for login, urls in pages.items():
        ctx = chromium.new_context(viewport={"width": 1600, "height": 1000}, locale="ru-RU")
        ctx.add_init_script(WATCH_CSP)
        try:
            page = _login(ctx, live_server.url, login)
            console: list[str] = []
            page.on("console", lambda msg, sink=console: sink.append(msg.text))
            for url in urls:
                page.goto(live_server.url + url)
                page.wait_for_load_state("load")
                assert page.evaluate("document.querySelector('script[src$=\"app.js\"]') !== null"), url
                if url == "/":  # the live stream connects (app.js ran)
                    expect(page.locator("#live-state")).to_have_text("● онлайн", timeout=10_000)
                if url == "/tickets/new":  # JS-built organization badges in the lookup
                    page.fill("#lookup", "8 916 123")
                    expect(page.locator("#lookup-results .org-badge").first).to_be_visible(timeout=10_000)
                if url == "/settings/robot":  # the organization picker submits itself (was onchange=)
                    picker = page.locator("select[name=organization_id]")
                    with page.expect_navigation():
                        picker.select_option(str(world.org_b.id))
                    assert f"organization_id={world.org_b.id}" in page.url
                if url == "/account/security":  # a new token's page: its copy button is app.js's
                    with page.expect_navigation():
                        page.click("#token-form button[type=submit]")
                    expect(page.locator("#token-secret")).to_contain_text("oads_")
                    expect(page.locator("button[data-copy]")).to_be_visible(timeout=10_000)
                assert _violations(page, console) == [], url
        finally:
            ctx.close()


def test_a_page_over_the_stream_quota_says_so_and_retries(live_server: Any, chromium: Any, world: Any) -> None:
    from playwright.sync_api import expect

    from web.sse import StreamLimits

    live_server.app.extensions["openads.sse_limits"] = StreamLimits(per_user=1, per_ip=100)
    ctx = chromium.new_context(viewport={"width": 1600, "height": 1000}, locale="ru-RU")
    try:
        first = _login(ctx, live_server.url, world.dispatcher_a.login)
        expect(first.locator("#live-state")).to_have_text("● онлайн", timeout=10_000)
        second = ctx.new_page()
        second.goto(live_server.url + "/")
        expect(second.locator("#live-state")).to_contain_text("слишком много открытых вкладок", timeout=10_000)
        first.close()  # its stream ends: the second page's retry (after Retry-After) gets the place
        second.close()
    finally:
        ctx.close()
