"""/api/v1/incidents: an accident registered, localised, liquidated and told to the house's residents
through the API, with what the panel does after each step (the municipality's notices, the follow-up
inspection ticket); readers read, staff write, another organization's incident is 404."""

from __future__ import annotations

from sqlalchemy import select

from models.outbox import OutboxMessage
from models.ticket import Ticket
from tests.web.helpers import API, call, check_error, check_not_found, check_schema


def test_an_incident_through_its_whole_life(client, db, world, token_for) -> None:
    h = token_for(world.dispatcher_a, scopes="read write")
    resp = call(client, "post", f"{API}/incidents", h, json={
        "house_id": world.house_a.id, "title": "Прорыв стояка ХВС", "utility": "cold_water",
        "announcement": "Перекрыт стояк ХВС, подъезд 2.", "started_at": "2026-03-02T10:15:00",
        "expected_end_at": "2026-03-02T16:00:00"})
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    check_schema(client, body, "IncidentOut")
    inc_id = body["id"]
    assert (body["address"], body["utility_title"], body["active"]) == ("г. Москва, ул. Ленина, д. 10", "ХВС", True)
    assert body["started_at"] == "2026-03-02T07:15:00Z"  # 10:15 in Moscow
    with db.read() as s:  # the municipality is told, as from the panel
        assert s.scalar(select(OutboxMessage.id).where(OutboxMessage.incident_id == inc_id,
                                                       OutboxMessage.purpose == "municipality_incident"))
    notice = call(client, "post", f"{API}/incidents/{inc_id}/notify-residents", h, json={"event": "incident"})
    assert notice.status_code == 200, notice.get_json()
    check_schema(client, notice.get_json(), "ResidentsNoticeOut")
    assert notice.get_json() == {"queued": 1, "already": 0, "unreachable": 0}
    assert call(client, "post", f"{API}/incidents/{inc_id}/localize", h,
                json={"at": "2026-03-02T10:40:00"}).get_json()["localized_at"] == "2026-03-02T07:40:00Z"
    resp = call(client, "post", f"{API}/incidents/{inc_id}/liquidate", h)
    assert resp.status_code == 200, resp.get_json()
    done = resp.get_json()
    assert done["active"] is False and done["follow_up_ticket_id"] is not None
    with db.read() as s:
        follow_up = s.get(Ticket, done["follow_up_ticket_id"])
        assert (follow_up.incident_id, follow_up.registered_by_id) == (inc_id, world.dispatcher_a.id)
    check_error(call(client, "post", f"{API}/incidents/{inc_id}/liquidate", h), 400, "invalid-input")
    # The list, for an inspector too; filtered by state.
    items = client.get(f"{API}/incidents", headers=h).get_json()["items"]
    assert [i["id"] for i in items] == [inc_id]
    check_schema(client, {"items": items}, "IncidentList")
    assert client.get(f"{API}/incidents?active=true", headers=h).get_json()["items"] == []
    check_error(client.get(f"{API}/incidents?active=может", headers=h), 400, "invalid-input")


def test_bad_bodies_roles_and_other_organizations(client, db, world, token_for) -> None:
    h = token_for(world.dispatcher_a, scopes="read write")
    url = f"{API}/incidents"
    for body, field in (({"house_id": world.house_a.id}, "title"),
                        ({"house_id": world.house_a.id, "title": "x", "utility": "lift2"}, "utility"),
                        ({"house_id": world.house_a.id, "title": "x", "colour": "red"}, "colour")):
        err = check_error(call(client, "post", url, h, json=body), 400, "invalid-input")
        assert [f["field"] for f in err["details"]["fields"]] == [field]
    # Another organization's house: refused, nothing written.
    check_error(call(client, "post", url, h, json={"house_id": world.house_b.id, "title": "x"}), 400, "invalid-input")
    inc_b = call(client, "post", url, token_for(world.dispatcher_b, scopes="read write"),
                 json={"house_id": world.house_b.id, "title": "Нет отопления", "utility": "heating"}).get_json()["id"]
    check_not_found(client, "get", f"{url}/{inc_b}", h)
    check_not_found(client, "post", f"{url}/{inc_b}/liquidate", h)
    check_not_found(client, "post", f"{url}/{inc_b}/notify-residents", h, json={"event": "incident"})
    assert [i["id"] for i in client.get(url, headers=h).get_json()["items"]] == []
    # An executor neither reads nor writes here; a read-only token cannot write.
    check_error(client.get(url, headers=token_for(world.executor_a, scopes="read write")), 403, "forbidden")
    check_error(call(client, "post", url, token_for(world.dispatcher_a, scopes="read"),
                     json={"house_id": world.house_a.id, "title": "x"}), 403, "insufficient-scope")
