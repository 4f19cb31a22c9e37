"""Dispatcher A registers a ticket through the form; dispatcher B's open journal shows it without reload."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from models.organization import Role
from tests import factories as f
from tests.browser.conftest import browser_login as _login

pytestmark = pytest.mark.browser


def test_new_ticket_appears_in_other_dispatchers_journal(
    live_server: Any, chromium: Any, db: Any, world: Any, screenshots_dir: Path
) -> None:
    from playwright.sync_api import expect

    with db.write() as s:
        f.make_user(s, [world.org_a], Role.DISPATCHER, login="disp_a2", full_name="Ветрова Вера Викторовна")
        f.make_ticket(s, world.org_a, world.cats_a["lighting"], description="Нет света на 3 этаже",
                      house_id=world.house_a.id, reporter_name="Петров П. П.", reporter_phone="+79160001122")
    base = live_server.url
    ctx_a = chromium.new_context(viewport={"width": 1600, "height": 1000}, locale="ru-RU")
    ctx_b = chromium.new_context(viewport={"width": 1600, "height": 1000}, locale="ru-RU")
    try:
        page_b = _login(ctx_b, base, "disp_a2")
        expect(page_b.locator("#journal")).to_be_visible()
        expect(page_b.locator("#live-state")).to_have_text("● онлайн", timeout=10_000)
        expect(page_b.locator("#journal-rows")).to_contain_text("Нет света на 3 этаже")

        page_a = _login(ctx_a, base, "disp_a")
        page_a.keyboard.press("n")  # the shortcut for a new ticket
        page_a.wait_for_url(re.compile(r".*/tickets/new$"))
        page_a.fill("#lookup", "8 916 123")
        page_a.locator("#lookup-results li", has_text="Леонидов").click()
        expect(page_a.locator("#house_address")).to_have_value(world.house_a.address)
        expect(page_a.locator("#resident-note")).to_contain_text("ключи у старшей по дому")
        page_a.fill("#category-search", "засор канал")
        page_a.keyboard.press("Enter")
        expect(page_a.locator("#deadline-hint")).to_contain_text("устранить до")
        page_a.fill("#description", "Засор канализации на кухне, вода не уходит")
        page_a.screenshot(path=str(screenshots_dir / "new_ticket.png"), full_page=True)
        page_a.click("#register")
        readback = page_a.locator(".flash-readback")
        expect(readback).to_contain_text("зарегистрирована")
        expect(readback).to_contain_text("диспетчер Смирнова Анна Петровна")
        number = page_a.locator(".card-head .num").inner_text().strip()
        assert re.fullmatch(r"\d{4}-\d{6}", number)

        # B never reloads: the row arrives over SSE
        row = page_b.locator("#journal-rows tr", has_text=number)
        expect(row).to_be_visible(timeout=10_000)
        expect(row).to_contain_text("Засор канализации на кухне")
        expect(row).to_contain_text("Альфа")
        expect(page_b).to_have_title(re.compile(r"^\(1 нов\.\) "))
        assert page_b.locator("#journal-rows tr").first.get_attribute("id") == row.get_attribute("id")

        # a change made by A replaces B's row in place
        page_a.select_option("#executor", str(world.executor_a.id))
        page_a.click("#assign-form button[type=submit]")
        expect(page_a.locator(".card-head .status")).to_have_text("Назначена")
        expect(row.locator(".status")).to_have_text("Назначена", timeout=10_000)
        expect(row).to_contain_text(world.executor_a.full_name)

        page_b.screenshot(path=str(screenshots_dir / "journal.png"), full_page=False)
        page_a.screenshot(path=str(screenshots_dir / "card.png"), full_page=True)
    finally:
        ctx_a.close()
        ctx_b.close()
