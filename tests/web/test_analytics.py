"""«Отчёты → Аналитика» and «Отчёты → Сегодня» (issue 14 item 6, decision 0040): the scripted data set's
figures in the tables and the .xlsx, for managers and inspectors of the organization only; the
charting library served from /static and nothing from elsewhere; the «Сегодня» figures computed once
per organization and event, and updated after a call event seen on the event stream."""

from __future__ import annotations

import html
import io
import json
import re
from datetime import UTC, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from models.base import utcnow
from tests import analytics_script as sc
from tests import factories as f
from tests.web.helpers import check_error, check_schema
from tests.web.test_sse import _events, _next_event

PERIOD = {"from": sc.DAY_FROM.isoformat(), "to": sc.DAY_TO.isoformat()}


@pytest.fixture
def script(db, world):
    return sc.build(db, world)


def _table(page: str, table_id: str) -> list[list[str]]:
    body = page.split(f'id="{table_id}"')[1].split("</table>")[0].split("<tbody>")[1]
    rows = []
    for tr in body.split("</tr>")[:-1]:
        cells = re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)
        rows.append([re.sub(r"<[^>]+>", "", c).split("просрочено")[0].strip() for c in cells])
    return rows


@pytest.fixture(autouse=True)
def _fixed_now(monkeypatch):
    """The page's «now» (open tickets past their deadline) is the script's."""
    import web.panel.analytics as page

    monkeypatch.setattr(page, "utcnow", lambda: sc.NOW)


@pytest.mark.parametrize("who", ["manager", "inspector"])
def test_the_page_shows_the_period_in_tables(db, world, inspector, script, login_as, who) -> None:
    client = login_as(world.manager_a if who == "manager" else inspector)
    resp = client.get("/reports/analytics", query_string=PERIOD)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert 'id="nav-analytics"' in page and 'id="nav-today"' in page
    assert _table(page, "workload-executor") == [
        ["Сидоров Семён Сергеевич", "5", "3", "2", "67 %", "2", "1 дн 2 ч", "4 ч 00 мин"],
        ["Антонов Антон Антонович", "1", "1", "1", "100 %", "0", "1 ч 00 мин", "1 ч 00 мин"],
        ["не назначен", "1", "0", "0", "—", "0", "—", "—"],
    ]
    assert _table(page, "workload-house")[0] == ["г. Москва, ул. Ленина, д. 10", "4", "3", "2", "67 %", "1",
                                                 "1 дн 1 ч", "2 ч 00 мин"]
    assert [r[0] for r in _table(page, "workload-category")] == [world.cats_a["other"].name,
                                                                 world.cats_a["lighting"].name]
    assert _table(page, "answer-times") == [
        ["до 30 с", "2", "18.2 %"], ["30–60 с", "2", "18.2 %"], ["1–2 мин", "2", "18.2 %"],
        ["2–5 мин", "2", "18.2 %"], ["более 5 мин", "1", "9.1 %"], ["без ответа", "2", "18.2 %"],
    ]
    assert _table(page, "rating-weeks") == [
        ["02.11 — 08.11.2026", "3", "3.33", "1", "0", "0", "1", "1"],
        ["09.11 — 15.11.2026", "2", "5.00", "0", "0", "0", "0", "2"],
    ]
    # Organization B's executor, rating and slow call are nowhere.
    assert "Волков" not in page
    # The charts' data is the tables' numbers.
    charts = html.unescape(page.split('id="analytics-charts" data-charts=\'')[1].split("'")[0])
    assert json.loads(charts)["executor"]["on_time"] == [2, 1, 0]
    assert json.loads(charts)["answers"]["calls"] == [2, 2, 2, 2, 1, 2]


def test_the_page_loads_its_scripts_from_this_server_only(db, world, script, login_as) -> None:
    client = login_as(world.manager_a)
    page = client.get("/reports/analytics", query_string=PERIOD).get_data(as_text=True)
    assert not re.search(r"""(src|href|action)=["']?(https?:)?//""", page), "the page refers to another host"
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert "/static/vendor/chart.umd.min.js" in scripts and "/static/analytics.js" in scripts
    vendor = client.get("/static/vendor/chart.umd.min.js")
    assert vendor.status_code == 200, "web/static/vendor/ is empty: run `make vendor`"
    assert vendor.mimetype in ("text/javascript", "application/javascript")
    assert b"Chart.js v4" in vendor.get_data()[:300]
    vendor.close()


@pytest.mark.parametrize("who", ["dispatcher_a", "executor_a"])
def test_dispatchers_and_executors_are_refused(db, world, login_as, who) -> None:
    client = login_as(getattr(world, who))
    for url in ("/reports/analytics", "/reports/analytics.xlsx", "/reports/today", "/reports/today.json"):
        assert client.get(url).status_code == 403, url


def test_another_organization_sees_none_of_it(db, world, script, login_as) -> None:
    with db.write() as s:
        manager_b = f.make_user(s, [s.merge(world.org_b)], f.Role.MANAGER, login="man_b")
    client = login_as(manager_b)
    page = client.get("/reports/analytics", query_string=PERIOD).get_data(as_text=True)
    assert "Сидоров" not in page and "Ленина" not in page
    assert _table(page, "workload-executor") == [["Волков Виктор Викторович", "1", "1", "1", "100 %", "0",
                                                  "1 ч 00 мин", "1 ч 00 мин"]]
    wanted = {**PERIOD, "organization_id": world.org_a.id}
    assert client.get("/reports/analytics", query_string=wanted).status_code == 404
    assert client.get("/reports/analytics.xlsx", query_string=wanted).status_code == 404
    body = client.get("/reports/today.json").get_json()
    assert [o["organization_id"] for o in body["organizations"]] == [world.org_b.id]


def test_xlsx_has_one_sheet_per_block(db, world, inspector, script, login_as) -> None:
    client = login_as(inspector)
    resp = client.get("/reports/analytics.xlsx", query_string=PERIOD)
    assert resp.status_code == 200
    assert resp.headers["Content-Disposition"] == 'attachment; filename="analytics-2026-11-02-2026-11-15.xlsx"'
    wb = load_workbook(io.BytesIO(resp.get_data()))
    assert wb.sheetnames == ["По исполнителям", "По категориям", "По домам", "Время ответа", "Оценки по неделям"]
    rows = [tuple(r) for r in wb["По исполнителям"].iter_rows(values_only=True)]
    assert rows[0][:8] == ("Исполнитель", "Заявок", "Выполнено", "Выполнено в срок", "Доля в срок, %", "Просрочено",
                           "Среднее время до выполнения, ч", "Медиана, ч")
    assert rows[1] == ("Сидоров Семён Сергеевич", 5, 3, 2, 66.7, 2, 26, 4, "1 дн 2 ч", "4 ч 00 мин")
    assert rows[3][:6] == ("не назначен", 1, 0, 0, None, 0)
    houses = [tuple(r) for r in wb["По домам"].iter_rows(values_only=True)]
    assert [r[:2] for r in houses[1:]] == [("г. Москва, ул. Ленина, д. 10", 4), ("г. Москва, ул. Садовая, д. 3", 2),
                                          ("без адреса", 1)]
    answers = [tuple(r) for r in wb["Время ответа"].iter_rows(values_only=True)]
    assert [r[1] for r in answers[1:]] == [2, 2, 2, 2, 1, 2]
    weeks = [tuple(r) for r in wb["Оценки по неделям"].iter_rows(values_only=True)]
    assert weeks[1:] == [("02.11.2026", "08.11.2026", 3, 3.33, 1, 0, 0, 1, 1),
                         ("09.11.2026", "15.11.2026", 2, 5, 0, 0, 0, 0, 2)]
    wb.close()


def test_a_wrong_period_keeps_the_page_with_a_message(db, world, login_as) -> None:
    client = login_as(world.manager_a)
    resp = client.get("/reports/analytics", query_string={"from": "2026-11-10", "to": "2026-11-01"})
    assert resp.status_code == 400
    assert "начало периода позже конца" in resp.get_data(as_text=True)


# --- «Сегодня» ---------------------------------------------------------------------------------------------


def _today(client: Any) -> dict[str, Any]:
    body = client.get("/reports/today.json").get_json()
    [mine] = body["organizations"]
    return mine


@pytest.fixture
def live_now(monkeypatch, world):
    """«Сегодня»'s clock: now, but never in the first minutes of the company's local day (a test that
    writes a call "40 s ago" just after local midnight wrote it into yesterday: CI ran at 00:00 MSK).
    The panel's clock stands still, so a minute turning cannot count as a recomputation either."""
    import web.panel.analytics as page

    now = utcnow()
    local = now.astimezone(ZoneInfo(world.org_a.timezone))
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    frozen = max(now, day_start + timedelta(minutes=5))
    monkeypatch.setattr(page, "utcnow", lambda: frozen)
    return frozen


def test_today_is_computed_once_per_organization_and_event(app, db, world, inspector, login_as, live_now) -> None:
    from web.panel.analytics import today_cache

    client = login_as(inspector)
    page = client.get("/reports/today")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert f'id="today-{world.org_a.id}"' in text and "Ответ за 5 минут" in text
    assert "/events/stream" in text
    with app.app_context():
        cache = today_cache()
    before = cache.computed
    first = _today(client)
    other = login_as(world.manager_a)
    assert _today(other) == first and _today(client) == first
    assert cache.computed == before  # the page's figures served both clients
    with db.write() as s:
        f.make_missed_call(s, s.merge(world.org_a), "+79160000301", at=live_now - timedelta(minutes=2),
                           waited_seconds=60)
    after = _today(other)
    assert _today(client) == after
    assert cache.computed == before + 1
    assert after["missed"] == first["missed"] + 1 and after["missed_open"] == first["missed_open"] + 1
    # An event of another organization does not touch A's figures.
    with db.write() as s:
        f.make_missed_call(s, s.merge(world.org_b), "+79030000301", at=live_now)
    assert _today(client) == after and cache.computed == before + 1


def test_the_dashboard_hears_a_call_event_and_gets_new_figures(app, db, world, login_as, live_now) -> None:
    app.config.update(OPENADS_SSE_HEARTBEAT=0.5, OPENADS_SSE_MAX_SECONDS=8)
    client = login_as(world.manager_a)
    text = client.get("/reports/today").get_data(as_text=True)
    stream_url = re.search(r'data-stream="([^"]+)"', text).group(1).replace("&amp;", "&")
    before = _today(client)
    resp = client.get(stream_url, buffered=False)
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    try:
        events = _events(resp)
        with db.write() as s:
            call = f.make_inbound_call(s, s.merge(world.org_a), "+79160000401", at=live_now - timedelta(seconds=40))
            from models.services.calls import mark_call_answered

            mark_call_answered(s, org_id=world.org_a.id, call_id=call.id, by=None, at=live_now)
        names = set()
        while "call.answered" not in names:
            names.add(_next_event(events)[1])
    finally:
        resp.close()
    after = _today(client)
    assert (after["calls"], after["answered"], after["answered_in_5"]) == (
        before["calls"] + 1, before["answered"] + 1, before["answered_in_5"] + 1)
    assert after["last_event_id"] > before["last_event_id"]


# --- the API ------------------------------------------------------------------------------------------------


def test_the_api_gives_the_page_numbers(db, world, inspector, script, client, token_for) -> None:
    h = token_for(inspector)
    resp = client.get("/api/v1/analytics", query_string=PERIOD, headers=h)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    check_schema(client, body, "AnalyticsOut")
    assert (body["period_from"], body["period_to"]) == (PERIOD["from"], PERIOD["to"])
    assert {r["name"]: (r["tickets"], r["done"], r["done_on_time"], r["mean_seconds"], r["median_seconds"])
            for r in body["by_executor"]}["Сидоров Семён Сергеевич"] == (5, 3, 2, 26 * 3600, 4 * 3600)
    assert [b["calls"] for b in body["answer_times"]] == [2, 2, 2, 2, 1, 2]
    assert [w["counts"] for w in body["ratings_by_week"]] == [[1, 0, 0, 1, 1], [0, 0, 0, 0, 2]]
    today = client.get("/api/v1/analytics/today", headers=h)
    assert today.status_code == 200
    check_schema(client, today.get_json(), "TodayList")
    assert [i["organization_id"] for i in today.get_json()["items"]] == [world.org_a.id]
    check_error(client.get("/api/v1/analytics", query_string={"organization_id": world.org_b.id}, headers=h), 404)
    check_error(client.get("/api/v1/analytics", headers=token_for(world.dispatcher_a)), 403)
    check_error(client.get("/api/v1/analytics/today", headers=token_for(world.executor_a)), 403)


@pytest.mark.parametrize("query", [{"from": "вчера"}, {"to": "2026-13-01"}, {"organization_id": "abc"},
                                   {"organization_id": "99999999999"}, {"from": "2020-01-01", "to": "2026-01-01"}])
def test_bad_input_is_a_russian_message_never_a_500(db, world, login_as, token_for, query) -> None:
    client = login_as(world.manager_a)
    for url in ("/reports/analytics", "/reports/analytics.xlsx"):
        resp = client.get(url, query_string=query)
        assert resp.status_code in (400, 404), (url, resp.status_code)
        assert re.search("[а-я]", resp.get_data(as_text=True)), url
    check_error(client.get("/api/v1/analytics", query_string=query, headers=token_for(world.manager_a)), 400)
