"""/api/v1/houses: address search with keyset paging, the house card, tenants."""

from __future__ import annotations

from typing import Any

import pytest

from models.housing import HouseNote
from tests import factories as f
from tests.web.helpers import API, check_error, check_not_found, check_schema, check_unauthorized


@pytest.fixture
def disp_a(world: Any, token_for: Any) -> dict[str, str]:
    return token_for(world.dispatcher_a)  # type: ignore[no-any-return]


def test_list_finds_by_address_words_and_only_own_houses(client, world, disp_a, db):
    with db.write() as s:
        f.make_house(s, world.org_a, address="г. Москва, ул. Ленина, д. 12")
        f.make_house(s, world.org_a, address="г. Москва, пр. Мира, д. 1")
        f.make_house(s, world.org_b, address="г. Екатеринбург, ул. Ленина, д. 3")
    resp = client.get(f"{API}/houses?q=ленина", headers=disp_a)
    assert resp.status_code == 200
    body = resp.get_json()
    check_schema(client, body, "HousePage")
    assert [h["address"] for h in body["items"]] == ["г. Москва, ул. Ленина, д. 10", "г. Москва, ул. Ленина, д. 12"]
    assert body["next_cursor"] is None
    assert [h["address"] for h in client.get(f"{API}/houses?q=Ленина 12", headers=disp_a).get_json()["items"]] == [
        "г. Москва, ул. Ленина, д. 12"]
    assert client.get(f"{API}/houses?q=Екатеринбург", headers=disp_a).get_json()["items"] == []
    assert client.get(f"{API}/houses?organization_id={world.org_b.id}", headers=disp_a).get_json()["items"] == []
    check_unauthorized(client, "get", f"{API}/houses")


def test_paging_returns_every_house_exactly_once(client, world, disp_a, db):
    with db.write() as s:
        for i in range(12):
            f.make_house(s, world.org_a, address=f"г. Москва, ул. Садовая, д. {i:02d}")
    seen: list[str] = []
    cursor = None
    while True:
        body = client.get(f"{API}/houses?limit=5" + (f"&cursor={cursor}" if cursor else ""), headers=disp_a).get_json()
        seen += [h["address"] for h in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 13 and seen == sorted(seen)


@pytest.mark.parametrize("query", ["limit=0", "limit=abc", "cursor=!!", "organization_id=x"])
def test_bad_arguments_are_400(client, world, disp_a, query):
    check_error(client.get(f"{API}/houses?{query}", headers=disp_a), 400, "invalid-input")


def test_card_has_premises_and_notes_and_other_organization_is_404(client, world, disp_a, db, token_for):
    with db.write() as s:
        s.add(HouseNote(organization_id=world.org_a.id, house_id=world.house_a.id, text="Ключи от подвала в кв. 1"))
    resp = client.get(f"{API}/houses/{world.house_a.id}", headers=disp_a)
    assert resp.status_code == 200
    card = resp.get_json()
    check_schema(client, card, "HouseCard")
    assert card["address"] == "г. Москва, ул. Ленина, д. 10" and card["organization_id"] == world.org_a.id
    assert [p["number"] for p in card["premises"]] == ["30"]
    assert [n["text"] for n in card["notes"]] == ["Ключи от подвала в кв. 1"]
    check_not_found(client, "get", f"{API}/houses/{world.house_b.id}", disp_a)
    check_not_found(client, "get", f"{API}/houses/999999", disp_a)
    check_unauthorized(client, "get", f"{API}/houses/{world.house_a.id}")
    # executors need the per-house hints of their tickets' houses (and only those: test_executor_visibility);
    # the centre dispatcher sees both organizations' houses
    executor = token_for(world.executor_a)
    check_not_found(client, "get", f"{API}/houses/{world.house_a.id}", executor)
    with db.write() as s:
        f.make_ticket(s, s.merge(world.org_a), world.cats_a["other"], house_id=world.house_a.id,
                      executor_id=world.executor_a.id)
    assert client.get(f"{API}/houses/{world.house_a.id}", headers=executor).status_code == 200
    centre = token_for(world.centre_dispatcher)
    assert client.get(f"{API}/houses/{world.house_b.id}", headers=centre).status_code == 200
    assert len(client.get(f"{API}/houses", headers=centre).get_json()["items"]) == 2
