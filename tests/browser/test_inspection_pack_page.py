"""«Пакет для проверки ГЖИ» in a browser (issue 14 item 2, decision 0038): an inspector opens the
page from the menu, asks for the pack, lands on the job's page, and once the job runner has built
it, downloads the ZIP; both pages fit 1366×768 and 390 px with no overlap and no English word."""

from __future__ import annotations

import re
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest

from models.organization import Role
from openads.jobs import runner
from tests import factories as f
from tests.browser.conftest import browser_login
from tests.browser.test_layout import JS_OVERLAPS, JS_PAGE_STATE, JS_TEXTS, english_words

pytestmark = pytest.mark.browser

SCREENS = {"1366x768": (1366, 768), "390x844": (390, 844)}


def _check(page: Any, where: str, screenshots_dir: Path) -> list[str]:
    problems: list[str] = []
    for name, (w, h) in SCREENS.items():
        page.set_viewport_size({"width": w, "height": h})
        page.reload(wait_until="domcontentloaded")
        page.screenshot(path=str(screenshots_dir / f"{where.strip('/').replace('/', '_')}-{name}.png"))
        state = page.evaluate(JS_PAGE_STATE)
        if state["scrollWidth"] > state["innerWidth"]:
            problems.append(f"{where} {name}: page is {state['scrollWidth']} px wide")
        overlaps = page.evaluate(JS_OVERLAPS)
        if overlaps:
            problems.append(f"{where} {name}: elements overlap: {overlaps[:5]}")
        english = english_words(page.evaluate(JS_TEXTS))
        if english:
            problems.append(f"{where} {name}: English words: {sorted(english)[:8]}")
    return problems


def test_the_inspector_asks_for_the_pack_and_downloads_it(live_server: Any, chromium: Any, db: Any, world: Any,
                                                          settings: Any, screenshots_dir: Path) -> None:
    from playwright.sync_api import expect

    with db.write() as s:
        org = s.merge(world.org_a)
        inspector = f.make_user(s, [org], Role.INSPECTOR, login="inspector_pack",
                                full_name="Инспекторова Инна Ивановна")
        f.make_ticket(s, org, world.cats_a["emergency_cold_water"], house_id=world.house_a.id,
                      description="Прорыв трубы ХВС в подвале")
    ctx = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU", accept_downloads=True)
    try:
        page = browser_login(ctx, live_server.url, inspector.login)
        page.goto(live_server.url + "/reports/inspection")
        problems = _check(page, "/reports/inspection", screenshots_dir)
        page.set_viewport_size({"width": 1366, "height": 768})
        page.reload()
        page.click("#inspection-submit")
        page.wait_for_url(re.compile(r"/jobs/\d+$"))
        assert runner.run_pending(db, var_dir=Path(settings.var_dir), recordings_dir=Path(settings.recordings_dir),
                                  stop=threading.Event()) == 1
        # The page reloads itself when the job's end reaches it (stream or poll); a goto of our own
        # would race that reload, so wait for the finished page instead.
        expect(page.locator("#job")).to_have_attribute("data-finished", "1", timeout=15000)
        problems += _check(page, "/jobs/pack", screenshots_dir)
        page.set_viewport_size({"width": 1366, "height": 768})
        page.reload()
        with page.expect_download() as info:
            page.click("#job-download")
        path = info.value.path()
        with zipfile.ZipFile(path) as zf:
            assert "01-журнал-заявок.pdf" in zf.namelist() and "manifest.txt" in zf.namelist()
    finally:
        ctx.close()
    assert not problems, "\n".join(problems)
