"""/api/v1/residents: the caller lookup by phone in any spelling; tenants; roles."""

from __future__ import annotations

from typing import Any

import pytest

from tests import factories as f
from tests.web.helpers import API, check_error, check_not_found, check_schema, check_unauthorized


@pytest.fixture
def disp_a(world: Any, token_for: Any) -> dict[str, str]:
    return token_for(world.dispatcher_a)  # type: ignore[no-any-return]


@pytest.mark.parametrize("phone", ["+79161234567", "89161234567", "8 (916) 123-45-67", "+7 916 123 45 67"])
def test_lookup_by_phone_in_any_spelling_gives_the_caller_card(client, world, disp_a, db, phone):
    with db.write() as s:
        t = f.make_ticket(s, world.org_a, world.cats_a["sewer_blockage"], premise_id=world.premise_a.id)
    resp = client.get(f"{API}/residents", query_string={"phone": phone}, headers=disp_a)
    assert resp.status_code == 200
    body = resp.get_json()
    check_schema(client, body, "ResidentList")
    [r] = body["items"]
    assert r["id"] == world.resident_a.id and r["full_name"] == "Леонидов Леонид Леонидович"
    assert r["note"] == "ключи у старшей по дому"
    assert r["phones"] == [{"phone": "+79161234567", "label": ""}]
    assert r["premise"] == {"id": world.premise_a.id, "number": "30"}
    assert r["house"] == {"id": world.house_a.id, "address": "г. Москва, ул. Ленина, д. 10"}
    assert r["account"].startswith("ЛС")
    assert [o["number"] for o in r["open_tickets"]] == [t.number]


def test_unknown_and_other_organizations_phone_give_an_empty_list(client, world, disp_a, token_for):
    assert client.get(f"{API}/residents?phone=+79990000000", headers=disp_a).get_json() == {"items": []}
    assert client.get(f"{API}/residents?phone=+79031112233", headers=disp_a).get_json() == {"items": []}
    own = client.get(f"{API}/residents?phone=+79031112233", headers=token_for(world.dispatcher_b)).get_json()
    assert [r["id"] for r in own["items"]] == [world.resident_b.id]
    check_unauthorized(client, "get", f"{API}/residents?phone=+79161234567")


@pytest.mark.parametrize("query", ["", "phone=", "phone=абв", "phone=12"])
def test_missing_or_malformed_phone_is_400(client, world, disp_a, query):
    err = check_error(client.get(f"{API}/residents?{query}", headers=disp_a), 400, "invalid-input")
    assert err["details"]["field"] == "phone"


def test_resident_by_id_is_404_for_another_organization_and_403_for_executors(client, world, disp_a, token_for):
    resp = client.get(f"{API}/residents/{world.resident_a.id}", headers=disp_a)
    assert resp.status_code == 200
    check_schema(client, resp.get_json(), "Resident")
    check_not_found(client, "get", f"{API}/residents/{world.resident_b.id}", disp_a)
    check_unauthorized(client, "get", f"{API}/residents/{world.resident_a.id}")
    ex = token_for(world.executor_a)
    check_error(client.get(f"{API}/residents/{world.resident_a.id}", headers=ex), 403, "forbidden")
    check_error(client.get(f"{API}/residents?phone=+79161234567", headers=ex), 403, "forbidden")
