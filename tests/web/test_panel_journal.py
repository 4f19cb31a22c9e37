"""The journal page: tenant isolation, filters, remembered filters, keyset pages, row fragments."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from models.base import utcnow
from models.services.tickets import transition_ticket
from models.ticket import TicketStatus
from tests import factories as f


def _rows(html: str) -> str:
    return html.split('id="journal-rows"')[1].split("</tbody>")[0]


def test_journal_shows_own_tickets_only(db: Any, world: Any, login_as: Any) -> None:
    with db.write() as s:
        ta = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"], description="Протечка над кв. 30",
                           house_id=world.house_a.id, premise_id=world.premise_a.id, reporter_phone="+79161234567")
        tb = f.make_ticket(s, world.org_b, world.cats_b["roof_leak"], description="Чужая протечка")
    client = login_as(world.dispatcher_a)
    html = client.get("/?f=1").get_data(as_text=True)
    rows = _rows(html)
    assert ta.number in rows and "Протечка над кв. 30" in rows
    assert "ул. Ленина, д. 10" in rows and "кв. 30" in rows and "+7 916 123-45-67" in rows
    assert "Альфа" in rows  # the company badge
    assert "Чужая протечка" not in rows and f'id="ticket-{tb.id}"' not in rows
    # the centre dispatcher serves both: sees both, each with its company badge
    client = login_as(world.centre_dispatcher)
    rows = _rows(client.get("/?f=1").get_data(as_text=True))
    assert "Протечка над кв. 30" in rows and "Чужая протечка" in rows
    assert "Альфа" in rows and "Бета" in rows
    # organization filter
    rows = _rows(client.get(f"/?organization_id={world.org_b.id}").get_data(as_text=True))
    assert "Чужая протечка" in rows and "Протечка над кв. 30" not in rows
    # another organization's id in the filter gives nothing, not the other's tickets
    client = login_as(world.dispatcher_a)
    rows = _rows(client.get(f"/?organization_id={world.org_b.id}").get_data(as_text=True))
    assert "Чужая протечка" not in rows and "Протечка над кв. 30" not in rows


def test_filters(db: Any, world: Any, login_as: Any) -> None:
    now = utcnow()
    with db.write() as s:
        other_house = f.make_house(s, world.org_a, address="г. Москва, ул. Садовая, д. 3")
        emergency = f.make_ticket(s, world.org_a, world.cats_a["emergency_cold_water"], description="Прорыв трубы",
                                  house_id=world.house_a.id, is_emergency=True, now=now - timedelta(hours=2),
                                  registered_at=now - timedelta(hours=2))
        overdue = f.make_ticket(s, world.org_a, world.cats_a["sewer_blockage"], description="Засор стояка",
                                house_id=other_house.id, now=now - timedelta(hours=5),
                                registered_at=now - timedelta(hours=5), reporter_phone="+79035556677")
        fresh = f.make_ticket(s, world.org_a, world.cats_a["lighting"], description="Нет света в подъезде",
                              house_id=other_house.id, executor_id=world.executor_a.id)
        transition_ticket(s, org=world.org_a, ticket_id=fresh.id, to=TicketStatus.IN_PROGRESS, by=None)
    client = login_as(world.dispatcher_a)

    def texts(query: str) -> str:
        resp = client.get("/?f=1&" + query)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return _rows(resp.get_data(as_text=True))

    rows = texts("status=in_progress")
    assert "Нет света" in rows and "Прорыв" not in rows and "Засор" not in rows
    rows = texts("status=new&status=in_progress")
    assert "Нет света" in rows and "Прорыв" in rows and "Засор" in rows
    rows = texts("emergency=1")
    assert "Прорыв" in rows and "Засор" not in rows and "Нет света" not in rows
    assert "АВАРИЙНАЯ" in rows
    rows = texts("emergency=0")
    assert "Прорыв" not in rows and "Засор" in rows
    rows = texts("overdue=1")
    assert "Засор" in rows and "Нет света" not in rows and "просрочена" in rows
    assert "Прорыв" in rows  # localisation (30 min) is overdue too
    rows = texts("overdue=0")
    assert "Засор" not in rows and "Нет света" in rows
    rows = texts(f"q={overdue.number}")
    assert "Засор" in rows and "Прорыв" not in rows
    rows = texts("q=8 903 555-66-77")
    assert "Засор" in rows and "Прорыв" not in rows
    rows = texts(f"q={int(emergency.number.split('-')[1])}")
    assert "Прорыв" in rows and "Засор" not in rows
    rows = texts("q=подъезд")
    assert "Нет света" in rows and "Засор" not in rows
    rows = texts(f"house_id={other_house.id}")
    assert "Засор" in rows and "Нет света" in rows and "Прорыв" not in rows
    rows = texts(f"executor_id={world.executor_a.id}")
    assert "Нет света" in rows and "Засор" not in rows
    rows = texts(f"category_id={world.cats_a['sewer_blockage'].id}")
    assert "Засор" in rows and "Прорыв" not in rows
    tomorrow = (now + timedelta(days=2)).date().isoformat()
    rows = texts(f"registered_from={tomorrow}")
    assert "Засор" not in rows and "Прорыв" not in rows
    # a bad filter is a clear Russian error, not a crash
    resp = client.get("/?f=1&registered_from=вчера")
    assert resp.status_code == 400
    assert "неверная дата" in resp.get_data(as_text=True)
    resp = client.get("/?f=1&status=lost")
    assert resp.status_code == 400 and "неизвестный статус" in resp.get_data(as_text=True)


def test_filters_are_remembered(db: Any, world: Any, login_as: Any) -> None:
    client = login_as(world.dispatcher_a)
    client.get("/?f=1&emergency=1&status=new")
    resp = client.get("/")
    assert resp.status_code == 302
    assert "emergency=1" in resp.headers["Location"] and "status=new" in resp.headers["Location"]
    resp = client.get("/?reset=1")
    assert resp.status_code == 302
    assert client.get("/").status_code == 200


def test_keyset_pages(db: Any, world: Any, login_as: Any) -> None:
    now = utcnow()
    with db.write() as s:
        for i in range(55):
            f.make_ticket(s, world.org_a, world.cats_a["other"], description=f"Заявка номер {i:02d}",
                          registered_at=now - timedelta(minutes=60 - i), now=now)
    client = login_as(world.dispatcher_a)
    html = client.get("/?f=1").get_data(as_text=True)
    assert html.count('class="row') == 50
    assert "Заявка номер 54" in html and "Заявка номер 04" not in html
    next_url = html.split('id="more"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    resp = client.get(next_url + "&partial=1")
    part = resp.get_data(as_text=True)
    assert part.count('class="row') == 5
    assert "Заявка номер 04" in part and "Заявка номер 05" not in part
    assert "X-Next-Url" not in resp.headers


def test_row_fragment(db: Any, world: Any, login_as: Any) -> None:
    with db.write() as s:
        ta = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"], description="Протечка")
        tb = f.make_ticket(s, world.org_b, world.cats_b["roof_leak"], description="Чужая")
    client = login_as(world.dispatcher_a)
    resp = client.get(f"/tickets/{ta.id}/row")
    assert resp.status_code == 200
    assert ta.number in resp.get_data(as_text=True)
    assert client.get(f"/tickets/{ta.id}/row?status=new").status_code == 200
    assert client.get(f"/tickets/{ta.id}/row?status=done").status_code == 204
    assert client.get(f"/tickets/{ta.id}/row?emergency=1").status_code == 204
    assert client.get(f"/tickets/{tb.id}/row").status_code == 404
    assert client.get("/tickets/999999/row").status_code == 404


def test_export_and_import_links_only_when_present(app: Any, world: Any, login_as: Any) -> None:
    client = login_as(world.dispatcher_a)
    html = client.get("/?f=1&emergency=1").get_data(as_text=True)
    has_export = "panel.export_journal_job" in app.view_functions
    assert ('id="nav-export"' in html) == has_export
    if has_export:  # the export job gets the journal's filter
        assert '<input type="hidden" name="emergency" value="1">' in html.split('id="nav-export-form"')[1].split(
            'id="nav-export"')[0]
    assert 'id="nav-import"' not in html  # importing the housing stock is for managers and admins
    manager_html = login_as(world.manager_a).get("/?f=1").get_data(as_text=True)
    assert ('id="nav-import"' in manager_html) == ("panel.import_housing" in app.view_functions)


def test_a_request_sent_before_a_filter_was_saved_does_not_put_the_old_cookie_back(
        db: Any, world: Any, login_as: Any, app: Any) -> None:
    """The journal's rows refresh by themselves: a request the browser sent with the cookie it held
    before the dispatcher chose a filter may answer after the page that saved it. Its answer must
    not carry that older cookie, or the browser would keep it and forget the filter."""
    client = login_as(world.dispatcher_a)
    name = app.config["SESSION_COOKIE_NAME"]
    before = client.get_cookie(name).value
    client.get("/?f=1&emergency=1&status=new")  # saves the filter: a new cookie
    assert client.get_cookie(name).value != before
    stale = app.test_client()
    stale.set_cookie(name, before)
    resp = stale.get("/?f=1&partial=1")  # a row refresh sent before the filter was chosen
    assert resp.status_code == 200
    assert not [c for c in resp.headers.getlist("Set-Cookie") if c.startswith(name + "=")]
    resp = client.get("/")
    assert resp.status_code == 302 and "status=new" in resp.headers["Location"]
