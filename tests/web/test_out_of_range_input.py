"""Out-of-range input is a clear 4xx, never a 500 (issue 10 item 9, web/inputs.py): ids past the
INTEGER columns in paths, query strings, forms and JSON bodies; date-times that cannot be read in
a zone or converted to UTC; JSON nested thousands of levels deep; oversized API bodies; forged
page cursors. The API answers with its usual error body, the panel with its error page or form.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from models.base import INT_MAX
from tests import factories as f
from tests.web.helpers import API, api_document, call, check_bogus_field, check_error, counts
from web.api.v1 import MAX_BODY_BYTES

# Past PostgreSQL's INTEGER (an error there), past SQLite's 64 bits (OverflowError in the driver),
# and more digits than int() converts.
HUGE_IDS = (str(INT_MAX + 1), str(10**20), "9" * 5000)
UNREPRESENTABLE = (
    "0001-01-01T00:00:00+14:00",  # year 0 in UTC
    "9999-12-31T23:59:59-14:00",  # year 10000 in UTC
    "0001-01-01T00:00:00",  # read in Moscow's zone: year 0 in UTC
)


@pytest.fixture
def disp_a(world: Any, token_for: Any) -> dict[str, str]:
    return token_for(world.dispatcher_a)  # type: ignore[no-any-return]


@pytest.fixture
def ticket(db: Any, world: Any) -> Any:
    with db.write() as s:
        return f.make_ticket(s, world.org_a, world.cats_a["roof_leak"])


def _body(world: Any) -> dict[str, Any]:
    return {"category_id": world.cats_a["roof_leak"].id, "description": "Течь с крыши"}


# --- API: paths --------------------------------------------------------------------------------------


def _id_routes() -> list[tuple[str, str]]:
    """Every documented operation with an id in its path."""
    return [(method, path) for path, ops in api_document()["paths"].items() if "_id}" in path for method in ops]


@pytest.mark.parametrize("method,path", _id_routes())
@pytest.mark.parametrize("huge", HUGE_IDS, ids=("int4+1", "10**20", "5000-digits"))
def test_api_path_id_past_the_id_range_is_a_json_404(client, world, disp_a, method, path, huge):
    url = API + re.sub(r"{[a-z_]+}", huge, path)
    body = {"reason": "x"} if method != "get" else None
    body = check_error(call(client, method, url, disp_a, json=body), 404, "not-found")
    assert body["details"] == {}


def test_the_largest_id_is_looked_up_as_usual(client, world, disp_a):
    body = check_error(client.get(f"{API}/tickets/{INT_MAX}", headers=disp_a), 404)
    assert body["details"] == {"ticket_id": INT_MAX}
    body = check_error(client.patch(f"{API}/tickets/{INT_MAX}", headers=disp_a, json={"reason": "x"}), 404)
    assert body["details"] == {"ticket_id": INT_MAX}


# --- API: bodies -------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["category_id", "house_id", "premise_id", "resident_id", "executor_id",
                                   "incident_id", "organization_id"])
@pytest.mark.parametrize("value", [10**20, INT_MAX + 1, 0, -1])
def test_api_body_id_out_of_range_is_400_naming_it(client, world, disp_a, db, field, value):
    before = counts(db)
    check_bogus_field(client, "post", f"{API}/tickets", disp_a, _body(world), field, value)
    assert counts(db) == before


def test_api_update_and_assign_refuse_huge_ids(client, world, disp_a, db, ticket):
    before = counts(db)
    check_bogus_field(client, "patch", f"{API}/tickets/{ticket.id}", disp_a, {}, "category_id", 10**20)
    check_bogus_field(client, "patch", f"{API}/tickets/{ticket.id}", disp_a, {}, "house_id", INT_MAX + 1)
    check_bogus_field(client, "post", f"{API}/tickets/{ticket.id}/assign", disp_a, {}, "executor_id", 10**20)
    assert counts(db) == before


@pytest.mark.parametrize("value", UNREPRESENTABLE)
@pytest.mark.parametrize("field", ["damage_detected_at", "planned_due_at"])
def test_api_date_time_not_representable_in_utc_is_400_naming_it(client, world, disp_a, db, field, value):
    before = counts(db)
    err = check_bogus_field(client, "post", f"{API}/tickets", disp_a, _body(world), field, value)
    assert "1900–2199" in err["details"]["fields"][0]["message"]
    assert counts(db) == before


def test_api_update_and_localized_refuse_unrepresentable_date_times(client, world, disp_a, db, ticket):
    before = counts(db)
    for value in UNREPRESENTABLE:
        check_bogus_field(client, "patch", f"{API}/tickets/{ticket.id}", disp_a, {}, "damage_detected_at", value)
        check_bogus_field(client, "post", f"{API}/tickets/{ticket.id}/localized", disp_a, {}, "at", value)
    assert counts(db) == before


def test_a_date_time_at_the_edge_of_the_range_is_taken(client, world, disp_a):
    resp = client.post(f"{API}/tickets", headers=disp_a,
                       json={**_body(world), "planned_due_at": "2199-12-31T23:59:59-14:00"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["planned_due_at"] == "2200-01-01T13:59:59Z"


@pytest.mark.parametrize("nested", [b"[" * 5000 + b"]" * 5000, b'{"a":' * 5000 + b"1" + b"}" * 5000],
                         ids=("arrays", "objects"))
def test_api_body_nested_5000_levels_is_400_not_json(client, world, disp_a, db, ticket, nested):
    before = counts(db)
    for url in (f"{API}/tickets", f"{API}/tickets/{ticket.id}/comments"):
        err = check_error(call(client, "post", url, disp_a, data=nested), 400, "invalid-input")
        assert err["details"] == {"field": "body"}
    assert counts(db) == before


def test_flask_json_parsing_has_the_same_depth_limit(app):
    """`request.get_json()` anywhere in the app: a ValueError, which Flask answers with 400."""
    with pytest.raises(ValueError):
        app.json.loads(b"[" * 5000 + b"]" * 5000)
    assert app.json.loads(b'{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}


def test_api_body_larger_than_the_limit_is_413(client, world, disp_a, db):
    before = counts(db)
    body = b'{"description": "' + b"x" * MAX_BODY_BYTES + b'"}'
    err = check_error(call(client, "post", f"{API}/tickets", disp_a, data=body), 413, "body-too-large")
    assert err["details"] == {"max_bytes": MAX_BODY_BYTES}
    assert counts(db) == before


# --- API: query strings ------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "/tickets?category_id=100000000000000000000",
    "/tickets?house_id=2147483648",
    "/tickets?registered_from=0001-01-01",
    "/tickets?registered_from=0001-01-01T00:00:00%2B14:00",
    "/tickets?registered_to=9999-12-31",
    "/tickets?incident_started_to=9999-12-31T23:59:59-14:00",
    "/houses?organization_id=100000000000000000000",
    "/categories?organization_id=100000000000000000000",
    "/calls?organization_id=100000000000000000000",
    "/calls?from=0001-01-01",
    "/calls?to=9999-12-31",
    "/missed-calls?organization_id=abc",
])
def test_api_query_out_of_range_is_400(client, world, disp_a, url):
    check_error(client.get(API + url, headers=disp_a), 400, "invalid-input")


@pytest.mark.parametrize("report", ["/ratings/executors", "/calls/compliance"])
def test_api_report_period_out_of_range_is_400(client, world, token_for, report):
    manager = token_for(world.manager_a)
    for query in ("to=9999-12-31", "from=0001-01-01&to=0001-01-02", "organization_id=100000000000000000000"):
        check_error(client.get(f"{API}{report}?{query}", headers=manager), 400, "invalid-input")


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("raw", [
    "0001-01-01T00:00:00|1",  # naive: the UTC column refuses it
    "0001-01-01T00:00:00+14:00|1",
    "2026-01-01T00:00:00+00:00|100000000000000000000",
    "2026-01-01T00:00:00+00:00",
])
@pytest.mark.parametrize("journal", ["tickets", "calls"])
def test_api_forged_page_cursor_is_400(client, world, disp_a, raw, journal):
    err = check_error(client.get(f"{API}/{journal}", headers=disp_a, query_string={"cursor": _cursor(raw)}),
                      400, "invalid-input")
    assert err["details"] == {"field": "cursor"}


@pytest.mark.parametrize("raw", ['["ул. Ленина", 100000000000000000000]', '["ул. Ленина", 0]', "[1, 2, 3]"])
def test_api_forged_houses_cursor_is_400(client, world, disp_a, raw):
    err = check_error(client.get(f"{API}/houses", headers=disp_a, query_string={"cursor": _cursor(raw)}),
                      400, "invalid-input")
    assert err["details"] == {"field": "cursor"}


def test_api_405_names_the_allowed_methods(client, world, disp_a):
    resp = client.delete(f"{API}/tickets", headers=disp_a)
    check_error(resp, 405, "method-not-allowed")
    assert set(resp.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "OPTIONS", "POST"}


# --- panel -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "/tickets/{id}", "/tickets/{id}/row", "/calls/{id}", "/calls/{id}/strip", "/missed-calls/{id}",
    "/missed-calls/{id}/item", "/recordings/{id}", "/attachments/{id}", "/houses/{id}/premises",
    "/categories/{id}/deadline", "/residents/{id}/contact", "/rating-attempts/{id}/audio", "/calls/{id}/resident",
])
def test_panel_path_id_past_the_id_range_is_404(world, login_as, url):
    client = login_as(world.dispatcher_a)
    for huge in HUGE_IDS[:2]:
        assert client.get(url.format(id=huge)).status_code == 404
    assert client.post(f"/tickets/{10**20}/transition", data={"to": "in_progress"}).status_code == 404


@pytest.mark.parametrize("query,message", [
    ("category_id=100000000000000000000", "слишком большое число"),
    ("house_id=100000000000000000000", "слишком большое число"),
    ("registered_from=0001-01-01", "1900–2199"),
    ("registered_to=9999-12-31", "1900–2199"),
    ("registered_from=0001-01-01T00:00:00%2B14:00", "1900–2199"),
])
def test_panel_journal_and_export_filters_out_of_range_are_400(world, login_as, query, message):
    client = login_as(world.dispatcher_a)
    resp = client.get(f"/?f=1&{query}")
    assert resp.status_code == 400
    assert message in resp.get_data(as_text=True)
    assert client.get(f"/journal/export.xlsx?{query}").status_code == 400


def test_panel_calls_journal_reports_unrepresentable_dates(world, login_as):
    client = login_as(world.dispatcher_a)
    for query in ("from=0001-01-01", "to=9999-12-31", "organization_id=100000000000000000000"):
        assert client.get(f"/calls?{query}").status_code == 400


def test_panel_reports_show_the_period_error(world, login_as):
    client = login_as(world.manager_a)
    for url in ("/calls/compliance?to=9999-12-31", "/ratings?to=9999-12-31"):
        resp = client.get(url)
        assert resp.status_code in (200, 400), url
        assert "1900–2199" in resp.get_data(as_text=True), url
    assert client.get(f"/ratings?executor_id={10**20}").status_code == 200


def test_panel_new_ticket_form_refuses_huge_ids_and_unrepresentable_dates(db, world, login_as):
    client = login_as(world.dispatcher_a)
    base = {"organization_id": str(world.org_a.id), "category_id": str(world.cats_a["roof_leak"].id),
            "description": "Течь с крыши", "reporter_phone": "+79160000000"}
    before = counts(db)
    for extra in ({"category_id": str(10**20)}, {"house_id": str(10**20)}, {"executor_id": str(INT_MAX + 1)},
                  {"organization_id": str(10**20)}, {"damage_detected_at": "0001-01-01T00:00"},
                  {"damage_detected_at": "9999-12-31T23:59"}):
        resp = client.post("/tickets/new", data={**base, **extra})
        assert resp.status_code == 400, extra
    assert counts(db) == before
    assert client.get(f"/tickets/new?house_id={10**20}").status_code == 200


def test_panel_incident_form_refuses_huge_house_id_and_year_one(db, world, login_as):
    client = login_as(world.dispatcher_a)
    base = {"organization_id": str(world.org_a.id), "house_id": str(world.house_a.id), "title": "Авария ХВС"}
    assert client.post("/incidents", data={**base, "house_id": str(10**20)}).status_code == 400
    assert client.post("/incidents", data={**base, "started_at": "0001-01-01T00:00"}).status_code == 400



def test_event_stream_ignores_a_last_event_id_past_bigint(app, db, world, login_as):
    """As a non-number is: the stream starts from now instead of failing at its first query."""
    app.config.update(OPENADS_SSE_HEARTBEAT=0.5, OPENADS_SSE_MAX_SECONDS=8)  # ends by itself if broken
    client = login_as(world.dispatcher_a)
    resp = client.get("/events/stream", buffered=False, headers={"Last-Event-ID": str(10**20)})
    assert resp.status_code == 200
    try:
        chunks = iter(resp.response)
        assert b"connected" in next(chunks)
        with db.write() as s:
            ticket = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"])
        for n, chunk in enumerate(chunks):
            assert n < 100
            if b"event: ticket.created" in chunk:
                assert f'"ticket_id":{ticket.id}'.encode() in chunk
                break
        else:
            raise AssertionError("the stream ended without the new ticket")
    finally:
        resp.close()
