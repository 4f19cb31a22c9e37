"""Executors see and change only what their assigned tickets need (issue 10, item 3; `models.access`).

One organization, two houses: executor_a has a ticket in house_a; house_x has a door-code note, a
ticket with a photo that is not theirs, and house_a has another open ticket that is not theirs.
Each leak found by the security test is a test here, and dispatchers and managers keep their access.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from models.errors import NotFound
from models.housing import HouseNote
from models.services import housing
from models.ticket import Attachment
from tests import factories as f
from tests.web.helpers import API, check_not_found

DOOR_CODE = "Код домофона 1234К, ключи от подвала у кв. 5"


@dataclass
class Scene:
    mine: Any        # executor_a's ticket in house_a
    mine_att: int
    other: Any       # someone else's ticket in house_x
    other_att: int
    neighbour: Any   # another open ticket in house_a, not executor_a's
    house_x: Any


def _upload(client: Any, ticket_id: int, name: str) -> None:
    resp = client.post(f"/tickets/{ticket_id}/attachments", data={"file": (io.BytesIO(b"photo"), name)},
                       content_type="multipart/form-data")
    assert resp.status_code == 302, resp.get_data(as_text=True)


@pytest.fixture
def scene(db: Any, world: Any, login_as: Any) -> Scene:
    with db.write() as s:
        org = s.merge(world.org_a)
        house_x = f.make_house(s, org, address="г. Москва, ул. Тверская, д. 7")
        premise_x = f.make_premise(s, house_x, "5")
        s.add(HouseNote(organization_id=org.id, house_id=house_x.id, text=DOOR_CODE))
        mine = f.make_ticket(s, org, world.cats_a["sewer_blockage"], house_id=world.house_a.id,
                             premise_id=world.premise_a.id, executor_id=world.executor_a.id)
        other = f.make_ticket(s, org, world.cats_a["roof_leak"], house_id=house_x.id, premise_id=premise_x.id,
                              description="Протечка кровли над кв. 5")
        neighbour = f.make_ticket(s, org, world.cats_a["other"], house_id=world.house_a.id,
                                  premise_id=world.premise_a.id, description="Соседняя заявка")
    client = login_as(world.dispatcher_a)
    _upload(client, mine.id, "моё.jpg")
    _upload(client, other.id, "чужое.jpg")
    with db.read() as s:
        ids = {a.ticket_id: a.id for a in s.scalars(select(Attachment))}
    return Scene(mine=mine, mine_att=ids[mine.id], other=other, other_att=ids[other.id], neighbour=neighbour,
                 house_x=house_x)


def test_executor_downloads_only_the_files_of_their_tickets(world, scene, login_as) -> None:
    client = login_as(world.executor_a)
    assert client.get(f"/attachments/{scene.other_att}").status_code == 404
    own = client.get(f"/attachments/{scene.mine_att}")
    assert own.status_code == 200 and own.data == b"photo"
    own.close()
    for user in (world.dispatcher_a, world.manager_a):
        client = login_as(user)
        for att in (scene.mine_att, scene.other_att):
            resp = client.get(f"/attachments/{att}")
            assert resp.status_code == 200, (user.login, att)
            resp.close()
    assert login_as(world.dispatcher_b).get(f"/attachments/{scene.mine_att}").status_code == 404


def test_executor_has_no_resident_directory(world, scene, login_as) -> None:
    client = login_as(world.executor_a)
    for q in ("8916123", "Леонидов", "Ленина"):
        resp = client.get(f"/lookup?q={q}")
        assert resp.status_code == 403
        assert "Леонидов" not in resp.get_data(as_text=True)
    for user in (world.dispatcher_a, world.manager_a):
        found = login_as(user).get("/lookup?q=8916123").get_json()
        assert [r["name"] for r in found["residents"]] == ["Леонидов Леонид Леонидович"]


def test_executor_reads_house_notes_only_of_houses_of_their_tickets(world, scene, login_as, db) -> None:
    with db.write() as s:
        s.add(HouseNote(organization_id=world.org_a.id, house_id=world.house_a.id, text="Ключи у старшей"))
    client = login_as(world.executor_a)
    assert client.get(f"/houses/{scene.house_x.id}/premises").status_code == 404
    own = client.get(f"/houses/{world.house_a.id}/premises").get_json()
    assert own["notes"] == ["Ключи у старшей"] and own["premises"][0]["id"] == world.premise_a.id
    card = client.get(f"/tickets/{scene.mine.id}").get_data(as_text=True)
    assert "Ключи у старшей" in card and DOOR_CODE not in card
    for user in (world.dispatcher_a, world.manager_a):
        data = login_as(user).get(f"/houses/{scene.house_x.id}/premises").get_json()
        assert data["notes"] == [DOOR_CODE]


def test_executor_adds_notes_only_to_houses_of_their_tickets(world, scene, login_as, db) -> None:
    client = login_as(world.executor_a)
    resp = client.post(f"/houses/{scene.house_x.id}/notes", data={"text": "подделка", "ticket_id": scene.mine.id})
    assert resp.status_code == 404
    resp = client.post(f"/houses/{world.house_a.id}/notes", data={"text": "Код подъезда 77", "ticket_id": scene.mine.id})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/tickets/{scene.mine.id}#house-notes")
    disp = login_as(world.dispatcher_a)
    assert disp.post(f"/houses/{scene.house_x.id}/notes", data={"text": "Щиток в подвале"}).status_code == 302
    with db.read() as s:
        notes = {(n.house_id, n.text) for n in s.scalars(select(HouseNote))}
    assert notes == {(scene.house_x.id, DOOR_CODE), (world.house_a.id, "Код подъезда 77"),
                     (scene.house_x.id, "Щиток в подвале")}


def test_the_note_service_holds_the_same_rule(world, scene, db) -> None:
    with db.write() as s:
        org, executor = s.merge(world.org_a), s.merge(world.executor_a)
        with pytest.raises(NotFound):
            housing.add_house_note(s, org=org, house_id=scene.house_x.id, text="x", by=executor)
        assert housing.add_house_note(s, org=org, house_id=world.house_a.id, text="y", by=executor).id


def test_executor_card_shows_no_other_ticket_of_the_house(world, scene, login_as) -> None:
    card = login_as(world.executor_a).get(f"/tickets/{scene.mine.id}").get_data(as_text=True)
    assert scene.neighbour.number not in card
    assert login_as(world.executor_a).get(f"/tickets/{scene.neighbour.id}").status_code == 404
    card = login_as(world.dispatcher_a).get(f"/tickets/{scene.mine.id}").get_data(as_text=True)
    assert scene.neighbour.number in card


def test_executor_card_lists_their_own_other_ticket_of_the_premise(world, scene, login_as, db) -> None:
    with db.write() as s:
        second = f.make_ticket(s, s.merge(world.org_a), world.cats_a["other"], house_id=world.house_a.id,
                               premise_id=world.premise_a.id, executor_id=world.executor_a.id)
    card = login_as(world.executor_a).get(f"/tickets/{scene.mine.id}").get_data(as_text=True)
    assert second.number in card and scene.neighbour.number not in card


def test_api_house_card_and_list_follow_the_same_rule(client, world, scene, token_for) -> None:
    executor = token_for(world.executor_a)
    check_not_found(client, "get", f"{API}/houses/{scene.house_x.id}", executor)
    card = client.get(f"{API}/houses/{world.house_a.id}", headers=executor)
    assert card.status_code == 200
    assert [h["id"] for h in client.get(f"{API}/houses", headers=executor).get_json()["items"]] == [world.house_a.id]
    check_not_found(client, "get", f"{API}/houses/{world.house_a.id}", token_for(world.executor_b))
    for user in (world.dispatcher_a, world.manager_a):
        headers = token_for(user)
        card = client.get(f"{API}/houses/{scene.house_x.id}", headers=headers).get_json()
        assert [n["text"] for n in card["notes"]] == [DOOR_CODE]
        assert len(client.get(f"{API}/houses", headers=headers).get_json()["items"]) == 2


def test_api_ticket_card_lists_only_own_tickets_attachments(client, world, scene, token_for) -> None:
    executor = token_for(world.executor_a)
    card = client.get(f"{API}/tickets/{scene.mine.id}", headers=executor).get_json()
    assert [a["id"] for a in card["attachments"]] == [scene.mine_att]
    check_not_found(client, "get", f"{API}/tickets/{scene.other.id}", executor)
    check_not_found(client, "post", f"{API}/tickets/{scene.other.id}/comments", executor, json={"text": "x"})
    assert client.get(f"{API}/residents?phone=+79161234567", headers=executor).status_code == 403
