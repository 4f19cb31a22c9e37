"""«Отчёты → Аналитика» and «Отчёты → Сегодня» in a real browser (decision 0040): the charts drawn by
the locally served Chart.js over the tables; the tables alone with JavaScript off; the pages pass the
layout walk's checks (no sideways scrolling, no overlaps, no English words) at 1366×768 and 390 px;
the «Сегодня» figures change without a reload when a call is answered."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from models.base import utcnow
from models.organization import Role
from tests import analytics_script as sc
from tests import factories as f
from tests.browser.conftest import browser_login
from tests.browser.test_layout import EMOJI, JS_OVERLAPS, JS_PAGE_STATE, JS_TEXTS, english_words

pytestmark = pytest.mark.browser

PERIOD = f"?from={sc.DAY_FROM.isoformat()}&to={sc.DAY_TO.isoformat()}"
SCREENS = {"1366x768": (1366, 768), "390x844": (390, 844)}


def _problems(page: Any, where: str) -> list[str]:
    problems = []
    state = page.evaluate(JS_PAGE_STATE)
    if state["scrollWidth"] > state["innerWidth"]:
        problems.append(f"{where}: page is {state['scrollWidth']} px wide")
    overlaps = page.evaluate(JS_OVERLAPS)
    if overlaps:
        problems.append(f"{where}: elements overlap: {overlaps[:5]}")
    text = page.evaluate(JS_TEXTS)
    if english_words(text) or EMOJI.search(text):
        problems.append(f"{where}: English words or emoji: {sorted(english_words(text))[:8]}")
    return problems


def test_analytics_and_today_pages_for_manager_and_inspector(
    live_server: Any, chromium: Any, db: Any, world: Any, screenshots_dir: Path
) -> None:
    from playwright.sync_api import expect

    sc.build(db, world)
    with db.write() as s:
        f.make_user(s, [s.merge(world.org_a)], Role.INSPECTOR, login="insp_a", full_name="Проверкина Инна Ивановна")
    problems: list[str] = []
    for login in ("man_a", "insp_a"):
        ctx = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU")
        try:
            page = browser_login(ctx, live_server.url, login)
            external: list[str] = []
            page.on("request", lambda r, seen=external: seen.append(r.url)
                    if not r.url.startswith(live_server.url) and not r.url.startswith("data:") else None)
            for vp, (w, h) in SCREENS.items():
                page.set_viewport_size({"width": w, "height": h})
                page.goto(live_server.url + "/reports/analytics" + PERIOD)
                for block in ("executor", "category", "house", "answers", "weeks"):
                    box = page.locator(f'.chart-box[data-chart="{block}"]')
                    expect(box).to_be_visible()
                    assert box.locator("canvas").bounding_box()["height"] > 100
                assert page.evaluate("() => !!window.Chart && Object.keys(Chart.instances).length") == 5
                dark = page.evaluate("() => Chart.defaults.color")
                page.evaluate("() => { document.documentElement.dataset.theme = 'light'; }")
                page.wait_for_function("c => Chart.defaults.color !== c", arg=dark)
                assert page.evaluate("() => Object.keys(Chart.instances).length") == 5  # redrawn, not added
                page.evaluate("() => { document.documentElement.dataset.theme = 'dark'; }")
                expect(page.locator("#workload-executor tbody tr").first).to_contain_text("Сидоров Семён Сергеевич")
                page.screenshot(path=str(screenshots_dir / f"analytics-{login}-{vp}.png"), full_page=True)
                problems += _problems(page, f"{login} {vp} analytics")
                page.goto(live_server.url + "/reports/today")
                expect(page.locator(f"#today-{world.org_a.id} .tile")).to_have_count(4)
                page.screenshot(path=str(screenshots_dir / f"today-{login}-{vp}.png"), full_page=True)
                problems += _problems(page, f"{login} {vp} today")
            assert not external, f"requests to other hosts: {external[:5]}"
        finally:
            ctx.close()
    assert not problems, "\n".join(problems)


def test_without_javascript_the_tables_carry_the_numbers(
    live_server: Any, chromium: Any, db: Any, world: Any, screenshots_dir: Path
) -> None:
    from playwright.sync_api import expect

    sc.build(db, world)
    ctx = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU", java_script_enabled=False)
    try:
        page = browser_login(ctx, live_server.url, "man_a")
        page.goto(live_server.url + "/reports/analytics" + PERIOD)
        expect(page.locator("#workload-executor tbody tr")).to_have_count(3)
        expect(page.locator("#rating-weeks tbody tr").first).to_contain_text("3.33")
        expect(page.locator(".chart-box").first).to_be_hidden()
        page.screenshot(path=str(screenshots_dir / "analytics-no-js.png"), full_page=True)
    finally:
        ctx.close()


def test_today_updates_without_reload_when_a_call_is_answered(
    live_server: Any, chromium: Any, db: Any, world: Any, screenshots_dir: Path
) -> None:
    from playwright.sync_api import expect

    from models.services.calls import mark_call_answered

    ctx = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU")
    try:
        page = browser_login(ctx, live_server.url, "man_a")
        page.goto(live_server.url + "/reports/today")
        expect(page.locator("#live-state")).to_have_text("● онлайн", timeout=10_000)
        tile = page.locator(f"#tile-answers-{world.org_a.id}")
        expect(tile.locator('[data-f="calls"]')).to_have_text("0")
        expect(tile.locator('[data-f="answered_in_5_share"]')).to_have_text("—")
        page.evaluate("() => { window.loadedOnce = true; }")
        with db.write() as s:
            call = f.make_inbound_call(s, s.merge(world.org_a), "+79160000501", at=utcnow() - timedelta(seconds=40))
            mark_call_answered(s, org_id=world.org_a.id, call_id=call.id, by=None, at=utcnow())
        expect(tile.locator('[data-f="calls"]')).to_have_text("1", timeout=10_000)
        expect(tile.locator('[data-f="answered_in_5_share"]')).to_have_text("100 %")
        breaches = page.locator(f"#tile-breaches-{world.org_a.id}")
        with db.write() as s:
            f.make_missed_call(s, s.merge(world.org_a), "+79160000502", at=utcnow() - timedelta(minutes=15),
                               waited_seconds=30)
        expect(breaches.locator('[data-f="breaches"]')).to_have_text("1", timeout=10_000)
        expect(breaches).to_have_class(re.compile(r"\btile-bad\b"))
        assert page.evaluate("() => window.loadedOnce === true"), "the page was reloaded"
        page.screenshot(path=str(screenshots_dir / "today-live.png"), full_page=True)
    finally:
        ctx.close()
