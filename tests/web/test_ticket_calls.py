"""Issue 13 item 4: the ticket card shows its calls and recordings; the missed-call card has «Создать заявку»."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from models.services import calls as calls_svc
from tests import factories as f
from tests.web.test_panel_calls import AUDIO, access_rows, make_recording


def _linked(db, world, settings):
    with db.write() as s:
        org_a = s.merge(world.org_a)
        call, rec = make_recording(s, org_a, settings.recordings_dir)
        ticket = f.make_ticket(s, org_a, s.merge(world.cats_a["other"]))
        calls_svc.link_call_to_ticket(s, org_id=org_a.id, call_id=call.id, ticket_id=ticket.id, by=None)
        return call.id, rec.id, ticket.id


def test_ticket_card_shows_its_call_with_a_player_whose_access_is_logged(db, world, login_as, settings) -> None:
    call_id, rec_id, ticket_id = _linked(db, world, settings)
    client = login_as(world.dispatcher_a)
    html = client.get(f"/tickets/{ticket_id}").get_data(as_text=True)
    assert f'href="/calls/{call_id}"' in html
    assert f'<audio controls preload="none" src="/recordings/{rec_id}">' in html
    assert "+7 916 123-45-67" in html
    assert access_rows(db) == []  # showing the player is not an access
    played = client.get(f"/recordings/{rec_id}", buffered=True)
    assert played.data == AUDIO
    assert access_rows(db) == [(rec_id, world.dispatcher_a.id, "play")]


def test_executor_does_not_get_the_recordings_on_the_ticket_card(db, world, login_as, settings) -> None:
    _call_id, rec_id, ticket_id = _linked(db, world, settings)
    with db.write() as s:
        from models.services.tickets import assign_ticket
        assign_ticket(s, org=s.merge(world.org_a), ticket_id=ticket_id, executor_id=world.executor_a.id, by=None)
    html = login_as(world.executor_a).get(f"/tickets/{ticket_id}").get_data(as_text=True)
    assert f"/recordings/{rec_id}" not in html


def test_missed_call_card_has_create_ticket_prefilled_from_the_call(db, world, login_as) -> None:
    with db.write() as s:
        item = f.make_missed_call(s, s.merge(world.org_a), "+79161234567")
        item_id = item.id
        first_call = item.first_call_id
    html = login_as(world.dispatcher_a).get(f"/missed-calls/{item_id}").get_data(as_text=True)
    assert "Создать заявку" in html
    start = html.index('class="btn btn-primary new-ticket-link" href="') + len('class="btn btn-primary new-ticket-link" href="')
    href = html[start:html.index('"', start)].replace("&amp;", "&")
    args = {k: v[0] for k, v in parse_qs(urlparse(href).query).items()}
    assert args["reporter_phone"] == "+79161234567"
    assert args["resident_id"] == str(world.resident_a.id)
    assert args["house_id"] == str(world.house_a.id) and args["premise_id"] == str(world.premise_a.id)
    assert args["call_id"] == str(first_call)
    form = login_as(world.dispatcher_a).get(href).get_data(as_text=True)
    assert "Леонидов Леонид Леонидович" in form


def test_missed_call_card_of_another_organization_is_not_found(db, world, login_as) -> None:
    with db.write() as s:
        item = f.make_missed_call(s, s.merge(world.org_a), "+79161234567")
        item_id = item.id
    assert login_as(world.dispatcher_b).get(f"/missed-calls/{item_id}").status_code == 404
