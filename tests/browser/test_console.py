"""An open console shows a ringing caller's card and a missed call's countdown without a reload."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from models.base import utcnow
from tests import factories as f
from tests.browser.conftest import browser_login as _login

pytestmark = pytest.mark.browser


def test_ringing_call_shows_caller_card_and_missed_call_counts_down(
    live_server: Any, chromium: Any, db: Any, world: Any, screenshots_dir: Path
) -> None:
    from playwright.sync_api import expect

    with db.write() as s:
        f.make_incident(s, s.merge(world.house_a), title="Авария ХВС", announcement="Подъезд 2, устранение до 18:00")
    ctx = chromium.new_context(viewport={"width": 1600, "height": 1000}, locale="ru-RU")
    try:
        page = _login(ctx, live_server.url, world.dispatcher_a.login)
        expect(page.locator("#console")).to_be_visible()
        expect(page.locator("#live-state")).to_have_text("● онлайн", timeout=10_000)
        expect(page.locator("#strip-empty")).to_be_visible()
        expect(page).to_have_title(re.compile(r"^Пульт диспетчера"))

        with db.write() as s:  # the ARI app's StasisStart, through the domain service
            call = f.make_inbound_call(s, s.merge(world.org_a), "+79161234567")
        item = page.locator(f"#call-{call.id}")
        expect(item).to_be_visible(timeout=10_000)
        expect(item).to_contain_text("ЗВОНИТ")
        expect(item).to_contain_text("+7 916 123-45-67")
        expect(item).to_contain_text("Леонидов Леонид Леонидович")
        expect(item).to_contain_text("ключи у старшей по дому")
        expect(item.locator(".incident-banner")).to_contain_text("Подъезд 2, устранение до 18:00")
        expect(item.locator(".org-badge")).to_have_text("Альфа")
        expect(page.locator("#strip-empty")).to_be_hidden()

        with db.write() as s:  # nobody answered: the caller hung up 9 minutes ago
            missed = f.make_missed_call(s, s.merge(world.org_a), "+79165550000",
                                        at=utcnow() - timedelta(minutes=9), waited_seconds=20)
        queued = page.locator(f"#missed-{missed.id}")
        expect(queued).to_be_visible(timeout=10_000)
        countdown = queued.locator(".cd-time")
        expect(countdown).to_have_text(re.compile(r"^\d:\d\d$"))
        expect(queued.locator(".cd-label")).to_have_text("меньше 2 минут")
        expect(queued).to_have_class(re.compile(r"\bcd-soon\b"))
        first = countdown.inner_text()
        expect(countdown).not_to_have_text(first, timeout=5_000)  # it ticks
        expect(page.locator("#console-alert")).to_contain_text("Пропущенный звонок: +7 916 555-00-00")
        expect(page).to_have_title(re.compile(r"^\(1 пропущ\.\) Пульт диспетчера"))

        queued.locator(".meta").click()  # the card of the selected item opens on the right
        expect(page.locator("#console-detail")).to_contain_text("Причина закрытия")

        with db.write() as s:  # the call ends: it leaves the strip
            from models.services.calls import end_call
            end_call(s, org_id=world.org_a.id, call_id=call.id)
        expect(item).to_have_count(0, timeout=10_000)
        page.screenshot(path=str(screenshots_dir / "console.png"), full_page=False)
    finally:
        ctx.close()
