"""«Отчёты → Перерывы в подаче услуг» (regulations D5) in the panel, as .xlsx, in the API and on the
command line: the same month's figures from the same incidents, for the organization's managers,
administrators and inspectors only."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from models.organization import Role
from openads.cli import main
from tests import factories as f
from tests.sheets import sheet_rows
from tests.web.helpers import API, check_error, check_schema

MSK = ZoneInfo("Europe/Moscow")
MONTH = {"month": "2026-11"}


def msk(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=MSK).astimezone(UTC)


@pytest.fixture
def outages(db, world) -> dict[str, int]:
    """November in Альфа: hot water off 6 h at once in ул. Ленина (over 4 h), cold water 3 h twice
    (6 h of 8: in the norm); Бета: gas off 10 h (6 h over 4 h a month)."""
    with db.write() as s:
        house_a, house_b = s.merge(world.house_a), s.merge(world.house_b)
        hot = f.make_incident(s, house_a, title="Прорыв ГВС", utility="hot_water", started_at=msk(5, 8),
                              liquidated_at=msk(5, 14))
        f.make_incident(s, house_a, title="Течь ХВС", utility="cold_water", started_at=msk(10, 9),
                        liquidated_at=msk(10, 12))
        f.make_incident(s, house_a, title="Течь ХВС", utility="cold_water", started_at=msk(20, 9),
                        liquidated_at=msk(20, 12))
        f.make_incident(s, house_b, title="Утечка газа", utility="gas", started_at=msk(7, 8), liquidated_at=msk(7, 18))
        return {"hot": hot.id}


def _rows(page: str) -> list[list[str]]:
    body = page.split('id="interruptions"')[1].split("</table>")[0].split("<tbody>")[1]
    return [[re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
            for tr in body.split("</tr>")[:-1]]


def test_the_manager_sees_the_months_breaches_first_with_the_fee_reduction(world, outages, login_as) -> None:
    client = login_as(world.manager_a)
    resp = client.get("/reports/interruptions", query_string=MONTH)
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert 'id="nav-interruptions"' in page and '<option value="2026-11" selected>Ноябрь 2026</option>' in page
    assert "с превышением: 1" in page
    assert _rows(page) == [
        ["г. Москва, ул. Ленина, д. 10", "ГВС", "05.11 08:00–14:00", "6,00 ч", "6,00 ч дольше допустимого: 1",
         "8 ч в месяц, 4 ч единовременно", "0,00 ч", "—"],
        ["г. Москва, ул. Ленина, д. 10", "ХВС", "10.11 09:00–12:00 20.11 09:00–12:00", "6,00 ч", "3,00 ч",
         "8 ч в месяц, 4 ч единовременно", "0,00 ч", "—"],
    ]
    assert "газ" not in page.lower().split('id="interruptions"')[1]  # Бета's house is not Альфа's
    # Another month: nothing; a month typed wrong: the message, and the current month shown.
    assert "перерывов в подаче ресурсов не было" in client.get(
        "/reports/interruptions", query_string={"month": "2026-10"}).get_data(as_text=True)
    resp = client.get("/reports/interruptions", query_string={"month": "ноябрь"})
    assert resp.status_code == 400 and "поле «месяц»: месяц в виде ГГГГ-ММ" in resp.get_data(as_text=True)


def test_the_xlsx_has_the_same_rows(world, outages, login_as) -> None:
    resp = login_as(world.manager_a).get("/reports/interruptions.xlsx", query_string=MONTH)
    assert resp.status_code == 200
    assert resp.headers["Content-Disposition"] == 'attachment; filename="interruptions-2026-11.xlsx"'
    rows = sheet_rows(resp.get_data())
    assert rows[0][:6] == ("Организация", "Дом", "Ресурс", "Перерывов", "Перерывы (местное время)", "Всего за месяц, ч")
    assert rows[1] == ("Альфа", "г. Москва, ул. Ленина, д. 10", "ГВС", 1, "05.11 08:00–14:00", 6, 8, 6, 4, 1, 0, 0,
                       "превышение")
    assert rows[2][2:6] == ("ХВС", 2, "10.11 09:00–12:00; 20.11 09:00–12:00", 6)
    assert len(rows) == 3


def test_only_managers_administrators_and_inspectors_of_the_organization(db, world, outages, login_as) -> None:
    for user in (world.dispatcher_a, world.executor_a):
        client = login_as(user)
        for url in ("/reports/interruptions", "/reports/interruptions.xlsx"):
            assert client.get(url, query_string=MONTH).status_code == 403, (user.login, url)
    with db.write() as s:
        inspector = f.make_user(s, [s.merge(world.org_a)], Role.INSPECTOR, login="insp_i")
    client = login_as(inspector)
    assert client.get("/reports/interruptions", query_string=MONTH).status_code == 200
    assert client.get("/reports/interruptions", query_string={**MONTH, "organization_id": world.org_b.id}
                      ).status_code == 404


def test_the_api_gives_the_same_figures(client, world, outages, token_for) -> None:
    h = token_for(world.manager_a, scopes="read")
    resp = client.get(f"{API}/analytics/interruptions", query_string=MONTH, headers=h)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    check_schema(client, body, "InterruptionsOut")
    assert (body["month"], body["breaches"]) == ("2026-11", 1)
    hot = body["items"][0]
    assert (hot["utility"], hot["utility_title"], hot["total_hours"], hot["singles_over"], hot["breached"]) == (
        "hot_water", "ГВС", 6.0, 1, True)
    assert hot["interruptions"] == [{"start": "2026-11-05T05:00:00Z", "end": "2026-11-05T11:00:00Z", "ongoing": False,
                                     "hours": 6.0, "incident_ids": [outages["hot"]]}]
    assert (hot["allowed_month_hours"], hot["allowed_single_hours"]) == (8, 4)
    check_error(client.get(f"{API}/analytics/interruptions", query_string={"month": "2026-13"}, headers=h),
                400, "invalid-input")
    check_error(client.get(f"{API}/analytics/interruptions", headers=token_for(world.dispatcher_a, scopes="read")),
                403, "forbidden")


def test_the_command_line_prints_it_and_writes_the_xlsx(database_url, monkeypatch, capsys, world, outages,
                                                        tmp_path) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)

    def cli(*args: str) -> tuple[int, Any]:
        code = main(list(args))
        return code, capsys.readouterr()

    code, out = cli("report", "interruptions", "--org", str(world.org_b.id), "--month", "2026-11")
    assert code == 0, out.err
    assert "Бета: перерывы в подаче коммунальных услуг, Ноябрь 2026; строк: 1, с превышением: 1" in out.out
    assert "Газоснабжение: превышение" in out.out
    assert "перерывы: 07.11 10:00–20:00" in out.out  # Yekaterinburg time
    assert "сверх нормы 6,00 ч, снижение платы 0,90 %" in out.out
    code, out = cli("report", "interruptions", "--org", str(world.org_a.id), "--month", "2026-11",
                    "--out", str(tmp_path / "r.xlsx"))
    assert code == 0 and "строк: 2, с превышением: 1" in out.out
    assert sheet_rows((tmp_path / "r.xlsx").read_bytes())[1][2] == "ГВС"
    with pytest.raises(SystemExit) as exited:
        main(["report", "interruptions", "--org", str(world.org_a.id), "--month", "11.2026"])
    assert exited.value.code == 2 and "ожидается месяц ГГГГ-ММ" in capsys.readouterr().err


def test_the_incidents_page_links_to_it_for_those_who_may_open_it(world, login_as) -> None:
    assert 'id="incidents-interruptions"' in login_as(world.manager_a).get("/incidents").get_data(as_text=True)
    assert 'id="incidents-interruptions"' not in login_as(world.dispatcher_a).get("/incidents").get_data(as_text=True)
