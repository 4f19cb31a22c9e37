"""The pages of decision 0043 in a real browser: the executor's notification settings on the user's
page, the category's acknowledgement time, the ticket card's acknowledgement log with the red
«не подтверждено»: no English words, no overlapping elements, no sideways scrolling, at 1366×768
and 390 px."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from models.base import utcnow
from models.organization import Role, User
from models.services import alerts
from models.services.tickets import assign_ticket
from openads.consumers import consume_ticket_events
from tests import factories as f
from tests.browser.conftest import browser_login
from tests.browser.test_layout import JS_OVERLAPS, JS_PAGE_STATE, JS_TEXTS, english_words

VIEWPORTS = {"1366x768": (1366, 768), "390x844": (390, 844)}


def test_the_alert_pages_fit_and_speak_russian(live_server: Any, chromium: Any, db: Any, world: Any,
                                               screenshots_dir: Path) -> None:
    now = utcnow() - timedelta(minutes=30)
    with db.write() as s:
        org = s.merge(world.org_a)
        admin = f.make_user(s, [org], Role.ADMIN, login="admin_a", full_name="Адамов Адам Адамович")
        s.get(User, world.executor_a.id).phone = "+79161112233"
        t = f.make_ticket(s, org, world.cats_a["emergency_cold_water"], now=now, house_id=world.house_a.id)
        assign_ticket(s, org=t.organization, ticket_id=t.id, executor_id=world.executor_a.id, by=None, now=now)
        ticket_id = t.id
    while consume_ticket_events(db, now=now).more:
        pass
    for k in (1, 2, 3):
        with db.write() as s:
            alerts.escalate_due(s, now=now + timedelta(minutes=5 * k))
    urls = [f"/admin/users/{world.executor_a.id}", f"/admin/categories/{world.cats_a['emergency_cold_water'].id}",
            f"/tickets/{ticket_id}", "/"]
    problems: list[str] = []
    for who, pages in ((world.executor_a.login, ["/account/security"]), (admin.login, urls)):
        problems += _check_pages(chromium, live_server.url, who, pages, screenshots_dir)
    ctx = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU")
    try:
        page = browser_login(ctx, live_server.url, admin.login)
        page.goto(live_server.url + "/")
        assert page.locator(f"#ticket-{ticket_id} .unack").count() == 1
    finally:
        ctx.close()
    assert not problems, "\n".join(problems)


def _check_pages(chromium: Any, base: str, login: str, urls: list[str], screenshots_dir: Path) -> list[str]:
    problems: list[str] = []
    ctx = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU")
    try:
        page = browser_login(ctx, base, login)
        live_server_url = base
        for url in urls:
            for vp_name, (w, h) in VIEWPORTS.items():
                page.set_viewport_size({"width": w, "height": h})
                resp = page.goto(live_server_url + url, wait_until="domcontentloaded")
                where = f"{login} {vp_name} {url}"
                assert resp is not None and resp.status == 200, where
                page.screenshot(path=str(screenshots_dir / f"alerts-{login}-{vp_name}-{url.strip('/').replace('/', '_')}.png"))
                state = page.evaluate(JS_PAGE_STATE)
                if state["scrollWidth"] > state["innerWidth"]:
                    problems.append(f"{where}: page is {state['scrollWidth']} px wide")
                overlaps = page.evaluate(JS_OVERLAPS)
                if overlaps:
                    problems.append(f"{where}: elements overlap: {overlaps[:5]}")
                text = page.evaluate(JS_TEXTS)
                english = english_words(text)
                if english:
                    seen = [re.search(rf".{{0,30}}\b{w}\b.{{0,30}}", text) for w in sorted(english)[:8]]
                    problems.append(f"{where}: English words: {[m.group(0) if m else '' for m in seen]}")
    finally:
        ctx.close()
    return problems


def test_the_console_turns_the_row_red_live_and_sounds(live_server: Any, chromium: Any, db: Any, world: Any,
                                                       screenshots_dir: Path) -> None:
    from playwright.sync_api import expect

    now = utcnow() - timedelta(minutes=12)
    with db.write() as s:
        s.get(User, world.executor_a.id).phone = "+79161112233"
        t = f.make_ticket(s, world.org_a, world.cats_a["emergency_cold_water"], now=now, house_id=world.house_a.id)
        assign_ticket(s, org=t.organization, ticket_id=t.id, executor_id=world.executor_a.id, by=None, now=now)
        ticket_id, number = t.id, t.number
    while consume_ticket_events(db, now=now).more:
        pass
    for k in (1, 2):
        with db.write() as s:
            alerts.escalate_due(s, now=now + timedelta(minutes=5 * k))
    ctx = chromium.new_context(viewport={"width": 1600, "height": 1000}, locale="ru-RU")
    try:
        page = browser_login(ctx, live_server.url, world.dispatcher_a.login)
        expect(page.locator("#live-state")).to_have_text("● онлайн", timeout=10_000)
        row = page.locator(f"#ticket-{ticket_id}")
        expect(row).to_be_visible()
        assert row.locator(".unack").count() == 0
        with db.write() as s:  # the worker's round at 3N, while the dispatcher watches
            assert alerts.escalate_due(s, now=now + timedelta(minutes=15)) == 1
        expect(page.locator(f"#ticket-{ticket_id} .unack")).to_have_text("не подтверждено", timeout=10_000)
        expect(page.locator("#console-alert")).to_contain_text(f"№ {number}")
        page.screenshot(path=str(screenshots_dir / "alerts-console-unacknowledged.png"))
    finally:
        ctx.close()
