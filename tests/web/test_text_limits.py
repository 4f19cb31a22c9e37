"""Issue 13 item 3: one table of text limits, the same refusal in the panel and the API."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from models.rules.text_limits import TEXT_LIMITS, max_length
from models.ticket import Ticket, TicketComment
from tests import factories as f

API = "/api/v1"
HUGE = "х" * 2_000_000


def _tickets(db: Any) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(Ticket)) or 0


def _form(world: Any, **over: Any) -> dict[str, Any]:
    data = {
        "organization_id": world.org_a.id, "category_id": world.cats_a["sewer_blockage"].id,
        "description": "Засор", "house_id": world.house_a.id, "channel": "phone",
    }
    data.update(over)
    return data


def test_a_2_000_000_character_description_is_refused_in_the_panel_with_a_russian_message(db, world, login_as):
    client = login_as(world.dispatcher_a)
    resp = client.post("/tickets/new", data=_form(world, description=HUGE))
    page = resp.get_data(as_text=True)
    assert resp.status_code in (200, 400), resp.status_code
    assert "«описание» длиннее допустимого" in page and "10\u00a0000" in page
    assert _tickets(db) == 0


def test_a_2_000_000_character_description_is_refused_by_the_api(client, world, token_for, db):
    headers = token_for(world.dispatcher_a)
    body = {"category_id": world.cats_a["sewer_blockage"].id, "description": HUGE}
    resp = client.post(f"{API}/tickets", json=body, headers=headers)
    assert resp.status_code in (400, 413)  # 413: the body is past the request size limit before parsing
    assert _tickets(db) == 0


def test_the_limit_is_the_same_in_the_panel_and_the_api(db, world, login_as, client, token_for):
    limit = max_length("description")
    headers = token_for(world.dispatcher_a)
    over = "а" * (limit + 1)
    api = client.post(f"{API}/tickets", json={"category_id": world.cats_a["sewer_blockage"].id, "description": over},
                      headers=headers)
    assert api.status_code == 400
    assert api.get_json()["details"]["fields"][0]["message"] == "слишком длинное значение"
    panel = login_as(world.dispatcher_a).post("/tickets/new", data=_form(world, description=over))
    assert "длиннее допустимого" in panel.get_data(as_text=True)
    assert _tickets(db) == 0
    ok = client.post(f"{API}/tickets", json={"category_id": world.cats_a["sewer_blockage"].id,
                                             "description": "а" * limit}, headers=headers)
    assert ok.status_code == 201


def test_panel_edit_comment_and_reporter_name_are_limited(db, world, login_as):
    with db.write() as s:
        t = f.make_ticket(s, world.org_a, world.cats_a["sewer_blockage"], by=world.dispatcher_a)
        tid = t.id
    client = login_as(world.dispatcher_a)
    client.post(f"/tickets/{tid}/comments", data={"text": "к" * (max_length("comment") + 1), "visibility": "internal"})
    client.post(f"/tickets/{tid}/edit", data={"description": "ок", "reporter_name": "и" * 201})
    with db.read() as s:
        t = s.get(Ticket, tid)
        assert t is not None and len(t.reporter_name) <= TEXT_LIMITS["reporter_name"][0]
        assert s.scalar(select(func.count()).select_from(TicketComment)) == 0


def test_form_fields_carry_maxlength_from_the_table(world, login_as):
    page = login_as(world.dispatcher_a).get("/tickets/new").get_data(as_text=True)
    assert f'maxlength="{max_length("description")}"' in page
    assert f'maxlength="{max_length("reporter_name")}"' in page


def test_journal_row_tooltip_does_not_carry_the_whole_description(db, world, login_as):
    with db.write() as s:
        f.make_ticket(s, world.org_a, world.cats_a["sewer_blockage"], by=world.dispatcher_a,
                      description="д" * 10_000)
    page = login_as(world.dispatcher_a).get("/").get_data(as_text=True)
    assert "д" * 1000 not in page
