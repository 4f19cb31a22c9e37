"""Issue 13 item 5: «Заявку изменил другой пользователь» only for another person's change to a field
being edited — never for the system's own changes (notifications), nor for the user's own changes."""

from __future__ import annotations

import time
from typing import Any

import pytest

from models import events
from models.organization import Role
from models.services.tickets import transition_ticket, update_ticket
from models.ticket import TicketStatus
from tests import factories as f
from tests.browser.conftest import browser_login as _login
from tests.conftest import until

pytestmark = pytest.mark.browser


def test_banner_only_for_another_persons_change_to_a_field_being_edited(
    live_server: Any, chromium: Any, db: Any, world: Any
) -> None:
    from playwright.sync_api import expect

    with db.write() as s:
        other = f.make_user(s, [world.org_a], Role.DISPATCHER, login="disp_a2", full_name="Ветрова Вера Викторовна")
        other_id = other.id
        t = f.make_ticket(s, world.org_a, world.cats_a["lighting"], by=world.dispatcher_a, description="Нет света",
                          house_id=world.house_a.id)
        tid, number = t.id, t.number
    ctx = chromium.new_context(viewport={"width": 1600, "height": 1000}, locale="ru-RU")
    try:
        page = _login(ctx, live_server.url, "disp_a")
        page.goto(f"{live_server.url}/tickets/{tid}")
        card = page.locator("#card")
        heard = {"n": 0}

        def system_event() -> None:  # what the outbox worker emits after sending a notification
            with db.write() as s:
                events.emit(s, world.org_a.id, events.TICKET_CHANGED, {
                    "ticket_id": tid, "number": number, "status": "new", "action": "notification_sent",
                    "executor_ids": [], "by": None, "fields": ["description"]})

        def heard_all(n: int) -> None:
            until(lambda: card.get_attribute("data-heard") == str(n), timeout=15)

        # the stream may open after the first event: emit until one is heard
        def first_heard() -> bool:
            system_event()
            heard["n"] += 1
            return (card.get_attribute("data-heard") or "0") != "0"

        until(first_heard, timeout=15, interval=0.5)
        # events emitted before the stream opened are not heard (it starts at the newest): the
        # count to expect is what the card heard once it stops changing
        last = {"v": card.get_attribute("data-heard"), "t": time.monotonic()}

        def settled() -> str | None:
            value = card.get_attribute("data-heard")
            if value != last["v"]:
                last.update(v=value, t=time.monotonic())
                return None
            return value if time.monotonic() - float(last["t"]) >= 1.0 else None  # type: ignore[arg-type]

        n = int(until(settled, timeout=15, interval=0.1))

        page.click("#edit-form >> xpath=ancestor::details/summary")
        page.fill('#edit-form textarea[name="description"]', "Нет света в подъезде 2")
        with db.write() as s:  # the user's own change to the same field (another tab): no banner
            update_ticket(s, org=s.merge(world.org_a), ticket_id=tid, changes={"description": "Нет света, п. 2"},
                          by=s.merge(world.dispatcher_a))
        system_event()  # the system's change: no banner
        with db.write() as s:  # another person's change to a field not being edited: no banner
            transition_ticket(s, org=s.merge(world.org_a), ticket_id=tid, to=TicketStatus.CANCELLED,
                              by=s.get(type(world.dispatcher_a), other_id), reason="дубль")
        heard_all(n + 3)
        expect(page.locator("#changed-banner")).to_be_hidden()

        with db.write() as s:  # another person's change to the field being edited: the banner
            t = s.get(type(t), tid)
            t.status = TicketStatus.NEW  # back to an editable status without an event
        with db.write() as s:
            update_ticket(s, org=s.merge(world.org_a), ticket_id=tid, changes={"description": "Свет есть"},
                          by=s.get(type(world.dispatcher_a), other_id))
        heard_all(n + 4)
        expect(page.locator("#changed-banner")).to_be_visible()
    finally:
        ctx.close()
