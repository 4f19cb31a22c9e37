"""Issue 13's remaining acceptance items in a browser: the layout walk's own checks can fail (an
overlap, an English word), the sound hint's icon is drawn without an emoji font, and the journal's
filters in force are shown once, with a one-click reset, on the console and on the journal page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests import factories as f
from tests.browser.conftest import browser_login
from tests.browser.test_layout import JS_OVERLAPS, JS_TEXTS, english_words

pytestmark = pytest.mark.browser

PAGE = """<!doctype html><html lang="ru"><head><title>Проверка</title></head><body>
<h1>Заголовок</h1>
<p>Первая строка <a href="#">ссылка</a> <button type="button">Кнопка</button></p>
<div class="narrow"><a href="#" id="cutlink">очень длинная ссылка</a></div>
<details><summary>Ещё</summary><a href="#" id="inside">Спрятанная ссылка</a></details>
<label>Поле <input placeholder="введите submit"></label>
<select><option>первый</option><option translate="no">Иванов (ivanov)</option><option>second</option></select>
<p><code>openads org add</code>, <kbd>Enter</kbd>, <span translate="no">HeadlessChrome</span></p>
</body></html>"""


def test_overlap_and_word_checks_find_what_they_are_for(chromium: Any) -> None:
    page = chromium.new_page(viewport={"width": 800, "height": 600})
    try:
        page.set_content(PAGE)
        assert page.evaluate(JS_OVERLAPS) == []  # a label around its input, a link in its paragraph: not overlaps
        # a button moved onto the heading overlaps it (the CSP of the panel is not on this page)
        page.add_style_tag(content="button { position: absolute; left: 8px; top: 20px; }"
                                   ".narrow { width: 40px; overflow: auto; white-space: nowrap; }")
        found = page.evaluate(JS_OVERLAPS)
        assert any("h1" in pair and "button" in pair for pair in found), found
        assert "a#cutlink «очень длинная ссылка» is cut" in found
        assert not any("inside" in pair for pair in found)  # a closed <details> shows nothing
        # words: the placeholder and the opened panel are read; code, key caps and quoted data are not
        text = page.evaluate(JS_TEXTS)
        assert "Спрятанная ссылка" in text
        assert english_words(text) == {"submit", "second"}
        assert page.evaluate("document.querySelector('details').open") is False  # left as it was
    finally:
        page.close()


def test_sound_hint_icon_is_drawn_not_an_emoji(live_server: Any, chromium: Any, world: Any) -> None:
    ctx = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU")
    try:
        page = browser_login(ctx, live_server.url, world.dispatcher_a.login)
        page.evaluate("document.getElementById('sound-hint').hidden = false")  # as when the browser blocks sound
        hint = page.locator("#sound-hint")
        assert "Звук оповещений выключен" in hint.inner_text()
        assert not re.search("[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F]", hint.inner_text())
        icon = page.locator("#sound-hint-icon")
        box = icon.bounding_box()
        assert box and box["width"] >= 12 and box["height"] >= 12
        # drawn: the button looks different with the icon hidden
        shot = page.screenshot(clip=box)
        icon.evaluate("svg => { svg.style.visibility = 'hidden'; }")
        assert page.screenshot(clip=box) != shot
    finally:
        ctx.close()


@pytest.mark.parametrize("role", ["dispatcher", "executor"])  # the console and the journal page
def test_filters_in_force_are_shown_once_and_reset_in_one_click(
    live_server: Any, chromium: Any, db: Any, world: Any, role: str, screenshots_dir: Path
) -> None:
    from playwright.sync_api import expect

    with db.write() as s:
        org = s.merge(world.org_a)
        f.make_ticket(s, org, s.merge(world.cats_a["roof_leak"]), description="Течь из-под ванны", is_emergency=True,
                      executor_id=world.executor_a.id)
        f.make_ticket(s, org, s.merge(world.cats_a["sewer_blockage"]), description="Не горит свет в подъезде",
                      executor_id=world.executor_a.id)
    user = world.dispatcher_a if role == "dispatcher" else world.executor_a
    ctx = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU")
    try:
        page = browser_login(ctx, live_server.url, user.login)
        _settled(page)
        page.goto(live_server.url + "/?f=1&emergency=1&q=течь")
        _settled(page)
        page.goto(live_server.url + "/")  # a later visit: the journal remembers the filter
        chips = page.locator("#active-filters .chip")
        expect(chips).to_have_text(["поиск: «течь»", "только аварийные"])
        expect(page.locator("#active-filters")).to_be_visible()
        assert page.locator("#active-filters").count() == 1 and page.locator(".active-filters, .filter-chips").count() == 1
        expect(page.locator("#filter-panel .filter-count")).to_have_text("2")
        expect(page.locator("#journal-rows tr.row")).to_have_count(1)
        for width, height in ((1366, 768), (390, 844)):  # the chips fit the filter line without overlapping
            page.set_viewport_size({"width": width, "height": height})
            page.screenshot(path=str(screenshots_dir / f"{role}-{width}x{height}-filters-in-force.png"))
            assert page.evaluate(JS_OVERLAPS) == []
            assert page.evaluate("document.scrollingElement.scrollWidth") <= width
        page.set_viewport_size({"width": 1366, "height": 768})

        page.click("#filters-reset")  # one click
        page.wait_for_url(re.compile(r".*/\?f=1$"))
        expect(page.locator("#active-filters")).to_have_count(0)
        expect(page.locator("#filter-panel .filter-count")).to_have_count(0)
        expect(page.locator("#journal-rows tr.row")).to_have_count(2)
        expect(page.locator("#q")).to_have_value("")
        page.goto(live_server.url + "/")  # and it stays reset
        expect(page.locator("#active-filters")).to_have_count(0)
    finally:
        ctx.close()


def _settled(page: Any) -> None:
    """The console's left zone has loaded: its response (which refreshes the session cookie) is not
    still on its way when the test navigates on."""
    page.wait_for_function("() => !document.getElementById('zone-loading')")
