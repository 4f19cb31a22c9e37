"""«Телефония» in Chromium: Enter in a field saves the settings (the «Прослушать» buttons of the form
do not take it), and «Прослушать» opens the synthesised prompt as audio in a new tab."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from models.call import TelephonySettings
from models.organization import Role
from tests import factories as f
from tests.browser.conftest import browser_login as _login

pytestmark = pytest.mark.browser


@pytest.fixture
def settings(settings: Any, tmp_path: Any) -> Any:
    return replace(settings, speech=replace(settings.speech, provider="fake", prompts_dir=tmp_path / "prompts"))


def test_enter_saves_and_listen_opens_the_prompt(live_server: Any, chromium: Any, db: Any, world: Any) -> None:
    from playwright.sync_api import expect

    with db.write() as s:
        f.make_user(s, [s.merge(world.org_a)], Role.ADMIN, login="admin_tel")
    ctx = chromium.new_context(locale="ru-RU")
    try:
        page = _login(ctx, live_server.url, "admin_tel")
        page.goto(f"{live_server.url}/admin/organizations/{world.org_a.id}/telephony")
        page.fill('textarea[name="greeting_text"]', "Слушаем вас.")
        with ctx.expect_page() as tab:
            page.click("#listen-greeting")
        audio = tab.value
        audio.wait_for_load_state()
        assert audio.url.endswith("/telephony/listen")
        audio.close()
        page.fill('input[name="wait_limit_seconds"]', "90")
        page.press('input[name="wait_limit_seconds"]', "Enter")
        expect(page.locator(".flash-ok")).to_contain_text("Настройки телефонии сохранены")
    finally:
        ctx.close()
    with db.read() as s:
        row = s.get(TelephonySettings, world.org_a.id)
        assert (row.wait_limit_seconds, row.greeting_text) == (90, "Слушаем вас.")
