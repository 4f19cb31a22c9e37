"""The executor app in a Pixel-size phone (360×640, touch; issue 15 A, decision 0042): installable
(manifest, service worker), login, «Мои заявки» emergencies first, accept, «выехал» with the ETA
picker, on duty with the position sent; then offline: «на месте» and a photo queued, the app
reloaded without network still shows the ticket; back online the queue is sent once — and sent
again (as after a lost answer) it changes nothing; a conflict is shown; a voice note is recorded.
Screenshots of the main screens at 360 px."""

from __future__ import annotations

import io
import struct
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from models.base import utcnow
from models.field import ExecutorAction, ExecutorPosition
from models.ticket import Attachment, Ticket, TicketHistory
from tests import factories as f
from tests.browser.test_layout import JS_OVERLAPS, JS_TEXTS, english_words
from tests.conftest import until

pytestmark = pytest.mark.browser

PIXEL_UA = ("Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Mobile Safari/537.36")


def _exif_gps(lat: tuple[int, int, float], lon: tuple[int, int, float], when: str) -> bytes:
    """An EXIF block (little-endian TIFF) with DateTimeOriginal and a GPS position, as a phone writes it."""
    def rationals(v: tuple[int, int, float]) -> bytes:
        return b"".join(struct.pack("<II", round(x * 100), 100) for x in v)

    def entry(tag: int, kind: int, count: int, value: bytes) -> bytes:
        return struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00")

    ifd0, exif_ifd, dt, gps_ifd = 8, 38, 56, 76
    lat_at, lon_at = 130, 154
    out = b"II" + struct.pack("<HI", 42, ifd0)
    out += struct.pack("<H", 2) + entry(0x8769, 4, 1, struct.pack("<I", exif_ifd)) \
        + entry(0x8825, 4, 1, struct.pack("<I", gps_ifd)) + struct.pack("<I", 0)
    out += struct.pack("<H", 1) + entry(0x9003, 2, 20, struct.pack("<I", dt)) + struct.pack("<I", 0)
    out += when.encode() + b"\x00"
    out += struct.pack("<H", 4) + entry(1, 2, 2, b"N\x00") + entry(2, 5, 3, struct.pack("<I", lat_at)) \
        + entry(3, 2, 2, b"E\x00") + entry(4, 5, 3, struct.pack("<I", lon_at)) + struct.pack("<I", 0)
    assert len(out) == lat_at
    return b"Exif\x00\x00" + out + rationals(lat) + rationals(lon)


def _photo() -> bytes:
    from PIL import Image

    img = Image.new("RGB", (2400, 1800), (90, 120, 160))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85, exif=_exif_gps((55, 45, 3.6), (37, 37, 6.24), "2026:12:06 10:15:00"))
    return buf.getvalue()


def _checks(page: Any, where: str) -> list[str]:
    problems = []
    state = page.evaluate("() => [document.scrollingElement.scrollWidth, innerWidth]")
    if state[0] > state[1]:
        problems.append(f"{where}: page is {state[0]} px wide")
    # From the top: the sticky header rightly covers what is scrolled under it (a reload restores the
    # scroll position, sooner or later depending on the machine's load).
    page.evaluate("window.scrollTo(0, 0)")
    overlaps = page.evaluate(JS_OVERLAPS)
    if overlaps:
        problems.append(f"{where}: elements overlap: {overlaps[:5]}")
    english = english_words(page.evaluate(JS_TEXTS))
    if english:
        problems.append(f"{where}: English words: {sorted(english)}")
    return problems


def _count(db: Any, model: Any, *where: Any) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


def _ticket(db: Any, ticket_id: int) -> Ticket:
    with db.read() as s:
        t = s.get(Ticket, ticket_id)
        s.expunge(t)
        return t


def _history(db: Any, ticket_id: int, action: str) -> int:
    return _count(db, TicketHistory, TicketHistory.ticket_id == ticket_id, TicketHistory.action == action)


@pytest.mark.timeout(300)
def test_executor_works_offline_and_the_queue_syncs_exactly_once(
    live_server: Any, chromium: Any, db: Any, world: Any, screenshots_dir: Path
) -> None:
    with db.write() as s:
        org = s.merge(world.org_a)
        premise = f.make_premise(s, s.merge(world.house_a), "31", entrance="2", floor="5")
        plain = f.make_ticket(s, org, world.cats_a["sewer_blockage"], executor_id=world.executor_a.id,
                              house_id=world.house_a.id, description="Засор стояка, вода в ванне")
        urgent = f.make_ticket(s, org, world.cats_a["emergency_heating"], executor_id=world.executor_a.id,
                               premise_id=premise.id, reporter_name="Леонидова Лидия", reporter_phone="+79161234567",
                               description="Течь батареи в подъезде")
    base = live_server.url
    ctx = chromium.new_context(
        viewport={"width": 360, "height": 640}, device_scale_factor=3, is_mobile=True, has_touch=True,
        user_agent=PIXEL_UA, locale="ru-RU", timezone_id="Europe/Moscow",
        geolocation={"latitude": 55.7512, "longitude": 37.6184, "accuracy": 20}, permissions=["geolocation"])
    problems: list[str] = []
    try:
        page = ctx.new_page()
        page.goto(base + "/app")
        page.wait_for_selector("body[data-ready='1']")
        # installable: the manifest and a service worker controlling the page
        manifest = page.evaluate("fetch(document.querySelector('link[rel=manifest]').href).then(r => r.json())")
        assert manifest["display"] == "standalone" and any(i["purpose"] == "maskable" for i in manifest["icons"])
        scope = page.evaluate("navigator.serviceWorker.ready.then(r => r.scope)")
        assert scope == base + "/app"
        assert page.locator("#login-view").is_visible()
        page.screenshot(path=str(screenshots_dir / "app-360-login.png"))
        problems += _checks(page, "login")

        page.fill("input[name=login]", world.executor_a.login)
        page.fill("input[name=password]", f.PASSWORD)
        page.locator("#login-form button[type=submit]").tap()
        page.wait_for_selector("#tickets li.ticket")
        assert page.locator("#tickets li.ticket").evaluate_all("els => els.map(e => +e.dataset.id)") == [
            urgent.id, plain.id]
        assert "осталось" in page.locator("#tickets li.ticket .countdown").first.inner_text()
        page.screenshot(path=str(screenshots_dir / "app-360-list.png"))
        problems += _checks(page, "list")

        # on duty: the notice says the position is shared, and it reaches the server
        page.locator("label.switch").tap()
        page.wait_for_selector("#geo-notice:not([hidden])")
        assert "Местоположение передаётся" in page.locator("#geo-notice").inner_text()
        until(lambda: _count(db, ExecutorPosition) >= 1, timeout=15)

        page.locator(f"#tickets li[data-id='{urgent.id}'] a").tap()
        page.wait_for_selector("#act-accept")
        assert page.locator("#call-link").get_attribute("href") == "tel:+79161234567"
        assert page.locator("#map-link").get_attribute("href").startswith("geo:")
        assert "подъезд 2, этаж 5" in page.locator("#t-where").inner_text()
        page.screenshot(path=str(screenshots_dir / "app-360-ticket.png"), full_page=True)
        problems += _checks(page, "ticket")

        page.locator("#act-accept").tap()
        until(lambda: _ticket(db, urgent.id).accepted_at is not None, timeout=15)
        page.wait_for_selector("#act-en_route")
        page.locator("#act-en_route").tap()
        page.wait_for_selector("#t-eta:not([hidden])")
        page.screenshot(path=str(screenshots_dir / "app-360-eta.png"))
        page.locator("#eta-quick button", has_text="+30 мин").tap()
        until(lambda: _ticket(db, urgent.id).eta_at is not None, timeout=15)
        eta = _ticket(db, urgent.id).eta_at
        assert timedelta(minutes=25) < eta - utcnow() <= timedelta(minutes=31)

        # offline: «на месте» and a photo wait in the queue
        until(lambda: page.evaluate("navigator.serviceWorker.controller !== null"), timeout=15)
        page.wait_for_selector("#act-on_site")
        ctx.set_offline(True)
        page.wait_for_selector("#net.off")
        page.locator("#act-on_site").tap()
        page.wait_for_selector("#sync-notice:has-text('Ждут отправки: 1')")
        page.set_input_files("#photo-before", files=[{"name": "IMG_0001.jpg", "mimeType": "image/jpeg",
                                                      "buffer": _photo()}])
        page.wait_for_selector("#sync-notice:has-text('Ждут отправки: 2')")
        assert _ticket(db, urgent.id).on_site_at is None and _count(db, Attachment) == 0
        # the app opened again without network: the ticket is still there, and so is the queue
        page.reload()
        page.wait_for_selector("body[data-ready='1']")
        assert f"№ {urgent.number}" in page.locator("#t-head").inner_text()
        assert "Ждут отправки: 2" in page.locator("#sync-notice").inner_text()
        page.screenshot(path=str(screenshots_dir / "app-360-offline.png"), full_page=True)
        problems += _checks(page, "offline")
        page.evaluate("fieldApp.queueAll().then(items => { window.copies = items; })")
        page.locator("#back").tap()
        page.wait_for_selector(f"#tickets li[data-id='{urgent.id}']")
        assert "Ждёт отправки: 2" in page.locator(f"#tickets li[data-id='{urgent.id}']").inner_text()

        # back online: sent in order, once
        ctx.set_offline(False)
        until(lambda: _count(db, Attachment) == 1 and _ticket(db, urgent.id).on_site_at is not None, timeout=20)
        page.wait_for_selector("#sync-notice", state="hidden")
        with db.read() as s:
            att = s.scalar(select(Attachment))
            assert att.kind == "photo_before" and att.visibility.value == "resident"
            assert att.meta["lat"] == pytest.approx(55.751) and att.meta["lon"] == pytest.approx(37.6184)
            assert att.meta["taken_at_local"] == "2026-12-06T10:15:00" and att.meta["width"] == 1600
        # the same queue sent again, as after an answer lost on the way: nothing changes
        page.evaluate("""async () => {
            for (const item of window.copies) { const copy = Object.assign({}, item); delete copy.seq;
                                               await fieldApp.queueAdd(copy); }
            await fieldApp.sync();
        }""")
        until(lambda: page.evaluate("fieldApp.queueAll().then(q => q.length)") == 0, timeout=15)
        assert page.locator("#conflicts .conflict").count() == 0
        assert _history(db, urgent.id, "on_site") == 1 and _history(db, urgent.id, "attached") == 1
        assert _history(db, urgent.id, "accepted") == 1 and _history(db, urgent.id, "en_route") == 1
        assert _count(db, Attachment) == 1 and _count(db, ExecutorAction) == 4
        page.screenshot(path=str(screenshots_dir / "app-360-synced.png"))
    finally:
        ctx.close()
    assert not problems, "\n".join(problems)


@pytest.mark.timeout(120)
def test_a_ticket_reassigned_while_offline_is_shown_as_a_conflict(
    live_server: Any, chromium: Any, db: Any, world: Any, screenshots_dir: Path
) -> None:
    from models.services.tickets import assign_ticket

    with db.write() as s:
        org = s.merge(world.org_a)
        other = f.make_user(s, [org], f.Role.EXECUTOR, login="exec_other", full_name="Петров Пётр Петрович")
        t = f.make_ticket(s, org, world.cats_a["sewer_blockage"], executor_id=world.executor_a.id,
                          house_id=world.house_a.id)
    ctx = chromium.new_context(viewport={"width": 360, "height": 640}, is_mobile=True, has_touch=True,
                               locale="ru-RU", user_agent=PIXEL_UA)
    try:
        page = ctx.new_page()
        page.goto(live_server.url + "/app")
        page.wait_for_selector("#login-view:not([hidden])")
        page.fill("input[name=login]", world.executor_a.login)
        page.fill("input[name=password]", f.PASSWORD)
        page.locator("#login-form button[type=submit]").tap()
        page.locator(f"#tickets li[data-id='{t.id}'] a").tap()
        page.locator("#act-accept").tap()
        until(lambda: _ticket(db, t.id).accepted_at is not None, timeout=15)
        page.wait_for_selector("#act-on_site")
        ctx.set_offline(True)
        page.wait_for_selector("#net.off")
        page.locator("#act-on_site").tap()
        page.wait_for_selector("#sync-notice:has-text('Ждут отправки: 1')")
        with db.write() as s:
            assign_ticket(s, org=s.merge(world.org_a), ticket_id=t.id, executor_id=other.id, by=None)
        ctx.set_offline(False)
        page.wait_for_selector("#conflicts .conflict")
        assert "передана другому исполнителю" in page.locator("#conflicts .conflict").inner_text()
        page.screenshot(path=str(screenshots_dir / "app-360-conflict.png"))
        assert _ticket(db, t.id).on_site_at is None
    finally:
        ctx.close()


@pytest.mark.timeout(120)
def test_a_voice_note_is_recorded_and_attached(live_server: Any, db: Any, world: Any) -> None:
    """MediaRecorder with Chromium's fake microphone: the note reaches the ticket with its length."""
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        pytest.skip("Debian Chromium is not installed (/usr/bin/chromium)")
    with db.write() as s:
        t = f.make_ticket(s, s.merge(world.org_a), world.cats_a["sewer_blockage"], executor_id=world.executor_a.id,
                          house_id=world.house_a.id)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=[
            *CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
        try:
            ctx = browser.new_context(viewport={"width": 360, "height": 640}, is_mobile=True, has_touch=True,
                                      locale="ru-RU", user_agent=PIXEL_UA, permissions=["microphone"])
            page = ctx.new_page()
            page.goto(live_server.url + "/app")
            page.wait_for_selector("#login-view:not([hidden])")
            page.fill("input[name=login]", world.executor_a.login)
            page.fill("input[name=password]", f.PASSWORD)
            page.locator("#login-form button[type=submit]").tap()
            page.locator(f"#tickets li[data-id='{t.id}'] a").tap()
            page.locator("#voice").tap()
            page.wait_for_selector("#voice:has-text('Остановить запись')")
            until(lambda: page.evaluate("fieldApp.recordingMs()") >= 1000, timeout=10)  # a second of the fake tone
            page.locator("#voice").tap()
            until(lambda: _count(db, Attachment) == 1, timeout=20)
            with db.read() as s:
                att = s.scalar(select(Attachment))
                assert att.kind == "voice" and att.content_type.startswith("audio/") and att.size > 0
                assert att.meta["duration_s"] >= 1.0
            ctx.close()
        finally:
            browser.close()
