"""The pages of communications evidence (decision 0039) in a real browser, every text opened: the
ticket card with its «Сообщения» (texts expanded), the recording on hold and the manual delete,
the incidents page with its notices, the new-ticket form asking why an emergency category is not
an emergency. No English words, no overlaps, no sideways scrolling, at 1366×768 and 390 px."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from models.services import calls as calls_svc
from models.services import incidents as inc_svc
from models.services.notifications import on_ticket_event
from models.services.outbox import record_attempt
from tests import factories as f
from tests.browser.conftest import browser_login
from tests.browser.test_layout import JS_OVERLAPS, JS_PAGE_STATE, JS_TEXTS, english_words
from tests.web.test_panel_calls import make_recording

pytestmark = pytest.mark.browser

VIEWPORTS = {"1366x768": (1366, 768), "390x844": (390, 844)}


def _seed(db: Any, world: Any, settings: Any) -> list[str]:
    from sqlalchemy import select

    from models.outbox import OutboxMessage

    with db.write() as s:
        org = s.merge(world.org_a)
        incident = inc_svc.create_incident(s, org=org, house_id=world.house_a.id, title="Прорыв трубы ХВС в подвале",
                                           utility="cold_water", announcement="Подъезд 2 без воды", by=None)
        inc_svc.localize_incident(s, org=org, incident_id=incident.id)
        t = f.make_ticket(s, org, s.merge(world.cats_a["emergency_cold_water"]), house_id=world.house_a.id,
                          resident_id=world.resident_a.id, incident_id=incident.id, executor_id=world.executor_a.id,
                          description="Прорыв трубы в подвале, заливает кладовые")
        for m in s.scalars(select(OutboxMessage).where(OutboxMessage.ticket_id == t.id)):
            record_attempt(s, m, ok=True, detail="250 OK", at=m.created_at, provider_id=f"<openads.{m.id}.ab@alfa.example>")
        on_ticket_event(s, ticket=t, action="created", now=t.registered_at)
        sms = s.scalars(select(OutboxMessage).where(OutboxMessage.purpose == "resident_registered")).first()
        if sms is not None:
            sms.delivery_status = "delivered"
        call, _rec = make_recording(s, org, settings.recordings_dir)
        calls_svc.link_call_to_ticket(s, org_id=org.id, call_id=call.id, ticket_id=t.id, by=None)
        held = f.make_ticket(s, org, s.merge(world.cats_a["other"]), house_id=world.house_a.id)
        held_call, _ = make_recording(s, org, settings.recordings_dir, caller="+79161234500")
        calls_svc.link_call_to_ticket(s, org_id=org.id, call_id=held_call.id, ticket_id=held.id, by=None)
        calls_svc.set_legal_hold(s, org_id=org.id, ticket_id=held.id, reason="иск жителя", by=None)
        done = f.make_done_ticket(s, org, s.merge(world.cats_a["other"]), executor=s.merge(world.executor_a),
                                  reporter_name="Прохожий")
        on_ticket_event(s, ticket=done, action="status", now=done.resolved_at)
        return [f"/tickets/{t.id}", f"/tickets/{held.id}", f"/tickets/{done.id}", "/incidents", "/tickets/new"]


def test_communications_pages_read_russian_and_fit(live_server: Any, chromium: Any, db: Any, world: Any,
                                                   settings: Any, screenshots_dir: Path) -> None:
    urls = _seed(db, world, settings)
    problems: list[str] = []
    for user in (world.manager_a, world.dispatcher_a):
        ctx = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU")
        try:
            page = browser_login(ctx, live_server.url, user.login)
            for url in urls:
                for vp_name, (w, h) in VIEWPORTS.items():
                    page.set_viewport_size({"width": w, "height": h})
                    resp = page.goto(live_server.url + url, wait_until="domcontentloaded")
                    assert resp is not None and resp.status == 200, (url, resp and resp.status)
                    if url == "/tickets/new":  # an emergency category chosen, then the box unchecked
                        page.select_option("#category", str(world.cats_a["emergency_cold_water"].id))
                        page.uncheck("#is_emergency")
                        assert page.locator("#not-emergency-reason").is_visible()
                        page.check("#is_emergency")
                        assert not page.locator("#not-emergency-reason").is_visible()
                        page.uncheck("#is_emergency")
                    page.evaluate("""() => { document.querySelectorAll('main details').forEach(d => d.open = true);
                                             window.scrollTo(0, 0); }""")
                    where = f"{user.login} {vp_name} {url}"
                    name = f"comms-{user.login}-{vp_name}-{url.strip('/').replace('/', '_')}.png"
                    page.screenshot(path=str(screenshots_dir / name), full_page=True)
                    state = page.evaluate(JS_PAGE_STATE)
                    if state["scrollWidth"] > state["innerWidth"]:
                        problems.append(f"{where}: page is {state['scrollWidth']} px wide")
                    overlaps = page.evaluate(JS_OVERLAPS)
                    if overlaps:
                        problems.append(f"{where}: elements overlap: {overlaps[:5]}")
                    english = english_words(page.evaluate(JS_TEXTS))
                    if english:
                        problems.append(f"{where}: English words: {sorted(english)[:8]}")
        finally:
            ctx.close()
    assert not problems, "\n".join(problems)
