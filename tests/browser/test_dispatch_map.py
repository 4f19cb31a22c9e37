"""«Карта» and «Доска диспетчера» in a browser (decision 0044): markers drawn on the offline grid
with no request to another host, a click opens the ticket's card; a ticket dragged onto another
executor's column is reassigned and the board updates; the layout walk's checks (width, overlaps,
English words) at 1366×768 and 390 px for a dispatcher and an inspector."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from models.base import utcnow
from models.organization import Role
from models.services import field as field_svc
from models.ticket import Ticket
from tests import factories as f
from tests.browser.conftest import browser_login
from tests.browser.test_layout import JS_OVERLAPS, JS_PAGE_STATE, JS_TEXTS, english_words
from tests.conftest import until

pytestmark = pytest.mark.browser


def _seed(db: Any, world: Any) -> dict[str, Any]:
    now = utcnow()
    with db.write() as s:
        a = s.merge(world.org_a)
        cats = {k: s.merge(v) for k, v in world.cats_a.items()}
        house = f.make_house(s, a, address="г. Москва, ул. Картографическая, д. 7", latitude=55.75, longitude=37.60)
        other = f.make_house(s, a, address="г. Москва, ул. Соседняя, д. 8", latitude=55.76, longitude=37.62)
        disp = s.merge(world.dispatcher_a)
        em = f.make_ticket(s, a, cats["emergency_cold_water"], house_id=house.id, by=disp, now=now)
        plain = f.make_ticket(s, a, cats["roof_leak"], house_id=other.id, by=disp, executor_id=world.executor_a.id,
                              now=now)
        f.make_ticket(s, a, cats["lighting"], house_id=world.house_a.id, by=disp, now=now)  # no coordinates
        second = f.make_user(s, [a], Role.EXECUTOR, login="exec_two", full_name="Второй Виталий Витальевич")
        for who, lat in ((s.merge(world.executor_a), 55.751), (second, 55.752)):
            field_svc.set_duty(s, org=a, user=who, on_duty=True, now=now - timedelta(minutes=1))
            field_svc.report_position(s, org=a, user=who, lat=lat, lon=37.601, accuracy_m=5.0, at=now, now=now)
        insp = f.make_user(s, [a], Role.INSPECTOR, login="insp_map", full_name="Проверкина Инна Ивановна")
        return {"em": em.id, "plain": plain.id, "second": second.id, "inspector": insp.login}


def _layout_problems(page: Any, where: str) -> list[str]:
    problems = []
    state = page.evaluate(JS_PAGE_STATE)
    if state["scrollWidth"] > state["innerWidth"]:
        problems.append(f"{where}: page is {state['scrollWidth']} px wide")
    overlaps = page.evaluate(JS_OVERLAPS)
    if overlaps:
        problems.append(f"{where}: elements overlap: {overlaps[:5]}")
    english = english_words(page.evaluate(JS_TEXTS))
    if english:
        problems.append(f"{where}: English words: {sorted(english)[:8]}")
    return problems


def test_map_draws_markers_on_the_offline_grid_without_other_hosts(live_server: Any, chromium: Any, db: Any,
                                                                    world: Any) -> None:
    ids = _seed(db, world)
    ctx = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU")
    hosts: list[str] = []
    ctx.on("request", lambda req: hosts.append(urlsplit(req.url).netloc))
    csp: list[str] = []
    try:
        page = browser_login(ctx, live_server.url, world.dispatcher_a.login)
        page.on("console", lambda msg: csp.append(msg.text) if "Content Security Policy" in msg.text else None)
        page.goto(live_server.url + "/map")
        page.wait_for_selector("#dispatch-map[data-loaded='2']")
        assert page.locator("path.mk-emergency").count() == 1
        assert page.locator("path.mk-normal").count() == 1
        assert page.locator(".mk-exec").count() == 2
        assert page.locator("#dispatch-map canvas").count() > 0  # the grid's tiles, drawn locally
        assert page.locator("#dispatch-map img.leaflet-tile").count() == 0
        assert page.locator("#map-unplaced").is_visible() and page.locator("#map-unplaced-list li").count() == 1
        assert "без координат дома: 1" in page.locator("#map-summary").inner_text()
        page.locator("path.mk-emergency").click(force=True)
        card = page.locator("#map-card-body")
        assert "Аварийная" in card.inner_text()
        assert page.locator("#map-open-ticket").get_attribute("href") == f"/tickets/{ids['em']}"
        page.locator(".mk-exec").first.dispatch_event("click")
        assert "На связи" in card.inner_text()
        assert {h for h in hosts if h} == {urlsplit(live_server.url).netloc}, hosts
        page.goto(live_server.url + "/board")
        page.wait_for_selector(".board-card")
        assert csp == []  # neither page breaks the panel's Content-Security-Policy
    finally:
        ctx.close()


def test_drag_a_ticket_to_another_executor_reassigns_it(live_server: Any, chromium: Any, db: Any,
                                                        world: Any) -> None:
    ids = _seed(db, world)
    ctx = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU")
    try:
        page = browser_login(ctx, live_server.url, world.dispatcher_a.login)
        page.goto(live_server.url + "/board")
        card = page.locator(f".board-card[data-ticket='{ids['plain']}']")
        target = page.locator(f".board-col[data-executor='{ids['second']}']")
        card.drag_to(target)
        until(lambda: _executor_of(db, ids["plain"]) == ids["second"], timeout=10)
        page.wait_for_selector(f".board-col[data-executor='{ids['second']}'] .board-card[data-ticket='{ids['plain']}']")
        assert "назначен" in page.locator("#board-status").inner_text()
    finally:
        ctx.close()


def test_board_follows_assignments_and_completions_live(live_server: Any, chromium: Any, db: Any,
                                                        world: Any) -> None:
    """Changes made elsewhere (another dispatcher, the executor's app) reach an open board over the
    event stream, without a reload."""
    from models.services import tickets as tickets_svc
    from models.ticket import TicketStatus as S

    ids = _seed(db, world)
    ctx = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU")
    try:
        page = browser_login(ctx, live_server.url, world.dispatcher_a.login)
        page.goto(live_server.url + "/board")
        page.wait_for_selector(f".board-col:not([data-executor]) .board-card[data-ticket='{ids['em']}']")
        page.wait_for_selector("#live-state:not([hidden]):not(.off)")
        with db.write() as s:
            org, disp = s.merge(world.org_a), s.merge(world.dispatcher_a)
            tickets_svc.assign_ticket(s, org=org, ticket_id=ids["em"], executor_id=ids["second"], by=disp)
        page.wait_for_selector(f".board-col[data-executor='{ids['second']}'] .board-card[data-ticket='{ids['em']}']",
                               timeout=15000)
        with db.write() as s:
            org, who = s.merge(world.org_a), s.merge(world.executor_a)
            field_svc.accept_ticket(s, org=org, ticket_id=ids["plain"], by=who, via="app")
            tickets_svc.transition_ticket(s, org=org, ticket_id=ids["plain"], to=S.DONE, by=who)
        page.wait_for_selector(f".board-card[data-ticket='{ids['plain']}']", state="detached", timeout=15000)
    finally:
        ctx.close()


def _executor_of(db: Any, ticket_id: int) -> int | None:
    with db.read() as s:
        return s.get(Ticket, ticket_id).executor_id


def test_map_and_board_fit_desktop_and_phone_for_dispatcher_and_inspector(live_server: Any, chromium: Any, db: Any,
                                                                           world: Any, screenshots_dir: Any) -> None:
    ids = _seed(db, world)
    problems: list[str] = []
    for login in (world.dispatcher_a.login, ids["inspector"]):
        ctx = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU")
        try:
            page = browser_login(ctx, live_server.url, login)
            for width, height in ((1366, 768), (390, 844)):
                page.set_viewport_size({"width": width, "height": height})
                for url in ("/map", "/board"):
                    resp = page.goto(live_server.url + url)
                    assert resp is not None and resp.status == 200
                    if url == "/map":
                        page.wait_for_selector("#dispatch-map[data-loaded]")
                    problems += _layout_problems(page, f"{login} {width} {url}")
                    page.screenshot(path=str(screenshots_dir / f"{login}-{width}-{url.strip('/')}.png"), full_page=True)
        finally:
            ctx.close()
    assert not problems, "\n".join(problems)


def test_map_takes_tiles_from_the_configured_server_only(live_server: Any, chromium: Any, db: Any,
                                                         world: Any) -> None:
    """With a tile server set (here the panel itself stands in for it), the map asks it for tiles."""
    from models.organization import Organization

    _seed(db, world)
    with db.write() as s:
        s.get(Organization, world.org_a.id).map_tile_url = live_server.url + "/static/favicon.svg?t={z}-{x}-{y}"
    ctx = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU")
    tiles: list[str] = []
    ctx.on("request", lambda req: tiles.append(req.url) if "favicon.svg?t=" in req.url else None)
    try:
        page = browser_login(ctx, live_server.url, world.dispatcher_a.login)
        page.goto(live_server.url + "/map")
        page.wait_for_selector("#dispatch-map[data-loaded='2']")
        page.wait_for_selector("#dispatch-map img.leaflet-tile", state="attached")
        assert tiles and all(u.startswith(live_server.url + "/static/favicon.svg?t=") for u in tiles)
        assert page.locator("#map-offline").count() == 0
    finally:
        ctx.close()
