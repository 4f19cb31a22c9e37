"""The journal's house filter: search by address, pick a suggestion, typed-but-unpicked text blocks submit."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from models.base import utcnow
from tests import factories as f
from tests.browser.conftest import browser_login as _login

pytestmark = pytest.mark.browser

BLOCKED = "Выберите дом из списка или очистите поле"
SUBMIT = '#filters button[type="submit"]'


def _open_filters(page: Any) -> None:
    """The filters other than the search sit behind «Фильтры» (one line above the journal, decision 0032)."""
    if not page.locator("#filter-panel").evaluate("d => d.open"):
        page.click("#filter-panel > summary")


def test_house_filter_picks_blocks_and_clears(live_server: Any, chromium: Any, db: Any, world: Any) -> None:
    from playwright.sync_api import expect

    # house_b (org_b) is "г. Екатеринбург, ул. Мира, д. 5": the same street name as org_a's second house
    moscow_mira = "г. Москва, ул. Мира, д. 7"
    now = utcnow()
    with db.write() as s:
        house_a2 = f.make_house(s, world.org_a, address=moscow_mira)
        leak = f.make_house(s, world.org_b, address="г. Екатеринбург, ул. Москвина, д. 1")
        roof, roof_b = world.cats_a["roof_leak"], world.cats_b["roof_leak"]

        def ticket(house: Any, minutes_ago: int, org: Any = world.org_a, cat: Any = roof) -> str:
            return f.make_ticket(s, org, cat, house_id=house.id, now=now - timedelta(minutes=minutes_ago)).number

        a_old = ticket(world.house_a, 50)
        a2_old = ticket(house_a2, 40)
        a2_new = ticket(house_a2, 30)
        a_new = ticket(world.house_a, 20)
        ticket(world.house_b, 10, world.org_b, roof_b)  # numbers are per organization: b's equal a's
        ticket(leak, 5, world.org_b, roof_b)
        house_a2_id, house_a_id = house_a2.id, world.house_a.id

    ctx = chromium.new_context(viewport={"width": 1600, "height": 1000}, locale="ru-RU")
    try:
        page = _login(ctx, live_server.url, world.dispatcher_a.login)
        documents: list[str] = []  # every page load the browser asks for (a blocked submit adds none)
        page.on("request", lambda r: documents.append(r.url) if r.resource_type == "document" else None)
        numbers = page.locator("#journal-rows a.num")
        search = page.locator("#house-search")
        options = page.locator("#house-results li")
        expect(numbers).to_have_text([a_new, a2_new, a2_old, a_old])

        # another organization's houses never come up, even when the words match them
        _open_filters(page)
        search.fill("Мира")
        expect(options).to_have_text([moscow_mira])
        _open_filters(page)
        search.fill("Екатеринбург")
        expect(options).to_have_text(["Дом не найден"])
        _open_filters(page)
        search.fill("Москв")  # org_b's "ул. Москвина" matches the word too
        expect(options).to_have_text([world.house_a.address, moscow_mira])

        # part of the second house's address, picked with the mouse
        _open_filters(page)
        search.fill("ул. Мир")
        expect(options).to_have_text([moscow_mira])
        options.filter(has_text=moscow_mira).click()
        expect(search).to_have_value(moscow_mira)
        expect(page.locator("#house-id")).to_have_value(str(house_a2_id))
        expect(page.locator("#house-results")).to_be_hidden()
        page.click(SUBMIT)
        page.wait_for_url(re.compile(rf"[?&]house_id={house_a2_id}(&|$)"))
        expect(numbers).to_have_text([a2_new, a2_old])
        expect(search).to_have_value(moscow_mira)  # the server shows the chosen house back by its address

        # the keyboard: the first house is second in the list, ArrowUp/ArrowDown move, Enter picks
        _open_filters(page)
        search.fill("Москва")
        expect(options).to_have_text([world.house_a.address, moscow_mira])
        expect(options.nth(0)).to_have_class("active")
        search.press("ArrowDown")
        expect(options.nth(1)).to_have_class("active")
        search.press("ArrowUp")
        expect(options.nth(0)).to_have_class("active")
        search.press("Enter")  # picks; does not submit the form
        expect(search).to_have_value(world.house_a.address)
        expect(page.locator("#house-id")).to_have_value(str(house_a_id))
        page.click(SUBMIT)
        page.wait_for_url(re.compile(rf"[?&]house_id={house_a_id}(&|$)"))
        expect(numbers).to_have_text([a_new, a_old])

        # typed but not picked: submit is blocked with the message, the journal stays as it was
        loads = len(documents)
        page.evaluate("window.__stayed = true")
        _open_filters(page)
        search.fill("Садовая")
        expect(options).to_have_text(["Дом не найден"])
        expect(page.locator("#house-id")).to_have_value("")
        page.click(SUBMIT)
        page.wait_for_function(
            "msg => document.getElementById('house-search').validationMessage === msg", arg=BLOCKED, timeout=5_000
        )
        search.press("Enter")  # the implicit submit from the field is blocked the same way
        assert search.evaluate("el => el.matches(':invalid')")
        assert page.evaluate("window.__stayed === true")
        expect(numbers).to_have_text([a_new, a_old])
        # typing again clears the message
        _open_filters(page)
        search.fill("Садова")
        page.wait_for_function("() => document.getElementById('house-search').validationMessage === ''",
                               timeout=5_000)

        # cleared: all houses
        _open_filters(page)
        search.fill("")
        expect(page.locator("#house-id")).to_have_value("")
        page.click(SUBMIT)
        page.wait_for_url(re.compile(r"[?&]house_id=(&|$)"))
        expect(numbers).to_have_text([a_new, a2_new, a2_old, a_old])
        expect(search).to_have_value("")
        # exactly one page load since the blocked attempts: the one for the cleared filter
        assert len(documents) == loads + 1, documents[loads:]
        assert not page.evaluate("window.__stayed === true")
        expect(page.locator("#journal-rows")).not_to_contain_text("Екатеринбург")
    finally:
        ctx.close()
