"""The call-handling evidence pages (issue 14 item 3) in a browser, on the scripted day of
tests/call_scene.py: the compliance report, the closed missed-call list with breach marks, the
queue with a voice message to mark reviewed, an item's card and a callback call's card — at a
desktop and a phone width, for a dispatcher, a manager and an inspector: no overlaps, no English
words, no sideways scrolling of the page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from models.organization import Role
from models.services import calls as calls_svc
from tests import factories as f
from tests.browser.conftest import browser_login
from tests.browser.test_layout import EMOJI, JS_OVERLAPS, JS_PAGE_STATE, JS_TEXTS, english_words
from tests.call_scene import DAY, build_call_day

pytestmark = pytest.mark.browser

VIEWPORTS = {"1366x768": (1366, 768), "390x844": (390, 844)}


@pytest.mark.timeout(600)
def test_call_evidence_pages_fit_and_speak_russian(live_server: Any, chromium: Any, db: Any, world: Any,
                                                   screenshots_dir: Path) -> None:
    with db.write() as s:
        scene = build_call_day(s, world)
        org = s.merge(world.org_a)
        call = f.make_inbound_call(s, org, "+79160000051")  # today: an open item with a voice message
        calls_svc.attach_voice_message(s, org_id=org.id, call_id=call.id, path=f"{org.id}/vm/{call.id}.wav")
        inspector = f.make_user(s, [org], Role.INSPECTOR, login="insp_pages", full_name="Проверкина Инна Ивановна")
    urls = [f"/calls/compliance?from={DAY}&to={DAY}", f"/missed-calls?status=closed&from={DAY}&to={DAY}",
            f"/missed-calls?status=all&breach=1&from={DAY}&to={DAY}", "/missed-calls",
            f"/missed-calls/{scene.m_cb14}", f"/missed-calls/{scene.v_25}", f"/calls/{scene.cb14_call}",
            f"/calls?from={DAY}&to={DAY}"]
    problems: list[str] = []
    for role, user in {"dispatcher": world.dispatcher_a, "manager": world.manager_a, "inspector": inspector}.items():
        ctx = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU")
        try:
            page = browser_login(ctx, live_server.url, user.login)
            for url in urls:
                for vp_name, (w, h) in VIEWPORTS.items():
                    page.set_viewport_size({"width": w, "height": h})
                    resp = page.goto(live_server.url + url, wait_until="domcontentloaded")
                    assert resp is not None
                    if resp.status == 403:
                        break  # not this role's page (the compliance report for a dispatcher)
                    where = f"{role} {vp_name} {url}"
                    name = f"evidence-{role}-{vp_name}-{url.strip('/').replace('/', '_').replace('?', '_')}.png"
                    page.screenshot(path=str(screenshots_dir / name[:200]))
                    if resp.status != 200:
                        problems.append(f"{where}: HTTP {resp.status}")
                    state = page.evaluate(JS_PAGE_STATE)
                    if state["scrollWidth"] > state["innerWidth"]:
                        problems.append(f"{where}: page is {state['scrollWidth']} px wide")
                    overlaps = page.evaluate(JS_OVERLAPS)
                    if overlaps:
                        problems.append(f"{where}: elements overlap: {overlaps[:5]}")
                    text = page.evaluate(JS_TEXTS)
                    if EMOJI.search(text):
                        problems.append(f"{where}: emoji")
                    if english_words(text):
                        problems.append(f"{where}: English words: {sorted(english_words(text))[:8]}")
        finally:
            ctx.close()
    assert not problems, "\n".join(problems)
