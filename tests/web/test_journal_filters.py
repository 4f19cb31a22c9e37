"""Issue 13 item 6: search takes % and _ literally; a reversed period is a clear Russian error (and the
export refuses it); a remembered filter is shown with a one-click reset; no internal names in errors."""

from __future__ import annotations

from datetime import timedelta

from models.base import utcnow
from tests import factories as f


def _tickets(db, world) -> None:
    with db.write() as s:
        for text in ("Течь в подвале", "Скидка 100% на ремонт", "Код_домофона не работает"):
            f.make_ticket(s, world.org_a, world.cats_a["sewer_blockage"], by=world.dispatcher_a, description=text)


def test_percent_and_underscore_are_letters_not_wildcards(db, world, login_as) -> None:
    _tickets(db, world)
    client = login_as(world.dispatcher_a)
    page = client.get("/?f=1&q=т_чь").get_data(as_text=True)
    assert "Течь в подвале" not in page
    page = client.get("/?f=1&q=%25").get_data(as_text=True)  # q=%
    assert "Скидка 100%" in page and "Течь в подвале" not in page
    page = client.get("/?f=1&q=_").get_data(as_text=True)
    assert "Код_домофона" in page and "Течь в подвале" not in page
    page = client.get("/?f=1&q=код_домофона").get_data(as_text=True)
    assert "Код_домофона" in page


def test_api_search_escapes_too(db, world, client, token_for) -> None:
    _tickets(db, world)
    items = client.get("/api/v1/tickets?q=т_чь", headers=token_for(world.dispatcher_a)).get_json()["items"]
    assert items == []


def test_reversed_period_is_a_clear_error_in_journal_and_export(db, world, login_as, client, token_for) -> None:
    _tickets(db, world)
    c = login_as(world.dispatcher_a)
    today = utcnow().date()
    args = f"registered_from={today.isoformat()}&registered_to={(today - timedelta(days=3)).isoformat()}"
    resp = c.get(f"/?f=1&{args}")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400
    error = page.split("Ошибка в фильтре:")[1].split("</div>")[0]
    assert "период задан наоборот" in error and "registered_from" not in error
    export = c.get(f"/journal/export.xlsx?{args}")
    assert export.status_code == 400 and "период задан наоборот" in export.get_data(as_text=True)
    api = client.get(f"/api/v1/tickets?{args}", headers=token_for(world.dispatcher_a))
    assert api.status_code == 400 and "период задан наоборот" in api.get_json()["message"]


def test_error_messages_name_fields_in_russian(db, world, login_as) -> None:
    c = login_as(world.dispatcher_a)
    page = c.get("/?f=1&registered_from=вчера").get_data(as_text=True)
    error = page.split("Ошибка в фильтре:")[1].split("</div>")[0]
    assert "«зарегистрирована с»" in error and "registered_from" not in error
    page = c.get("/?f=1&emergency=maybe").get_data(as_text=True)
    error = page.split("Ошибка в фильтре:")[1].split("</div>")[0]
    assert "emergency" not in error and "«аварийные»" in error


def test_remembered_filter_is_shown_with_a_one_click_reset(db, world, login_as) -> None:
    _tickets(db, world)
    c = login_as(world.dispatcher_a)
    c.get(f"/?f=1&q=течь&emergency=1&executor_id={world.executor_a.id}")
    later = c.get("/", follow_redirects=True).get_data(as_text=True)  # a later visit to «Пульт»
    chips = later.split('id="active-filters"')[1].split("</ul>")[0]  # the one display of them
    assert later.count('class="chip active-filter"') == 3
    assert "поиск: «течь»" in chips and "только аварийные" in chips and world.executor_a.full_name in chips
    assert 'class="filter-count">3<' in later
    reset = later.split('id="filters-reset"')[0].rsplit("<a ", 1)[1]
    assert 'href="/?reset=1"' in reset
    after = c.get("/?reset=1", follow_redirects=True).get_data(as_text=True)
    assert 'id="active-filters"' not in after and "filter-count" not in after
    assert "Скидка 100%" in after
