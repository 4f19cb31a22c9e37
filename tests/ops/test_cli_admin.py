"""`openads org list|show|set`, `openads category ...` and `openads audit` (issue 12, part A): the
administration page's operations from the command line (in-process `main()` on the test database)."""

from __future__ import annotations

from datetime import time
from typing import Any

import pytest
from sqlalchemy import select

from models.audit import AuditEntry
from models.call import TelephonySettings
from models.notification import RobotSettings
from models.organization import Organization
from models.ticket import Category, Ticket
from openads.cli import main
from tests import factories as f


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Any:
    monkeypatch.setenv("DATABASE_URL", database_url)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_org_list_and_show(cli, world) -> None:
    code, out, _ = cli("org", "list")
    assert code == 0 and "Альфа" in out and "Бета" in out and world.org_a.hotlines[0] in out
    code, out, _ = cli("org", "show", str(world.org_b.id))
    assert code == 0 and "часовой пояс: Asia/Yekaterinburg" in out and "робот звонит жителям: 10:00–20:00" in out
    assert "диспетчерская служба: круглосуточно" in out
    code, _, err = cli("org", "show", "999")
    assert code == 2 and "нет организации с id 999" in err


def test_org_set_changes_time_zone_and_hotlines_after_org_add_and_logs_it(cli, db, world) -> None:
    code, out, err = cli("org", "set", str(world.org_a.id), "--tz", "Europe/Samara", "--hotline", "8 846 200-70-80",
                         "--hotline", "+7 846 200-70-81", "--municipality-email", "edds@samara.example",
                         "--municipality-email", "omsu@samara.example", "--call-window", "09:00-19:00",
                         "--retention-days", "120", "--dispatch-hours", "08:00-20:00")
    assert code == 0, err
    assert "Настройки сохранены" in out and "горячая линия: +78462007080, +78462007081" in out
    with db.read() as s:
        org = s.get(Organization, world.org_a.id)
        assert (org.timezone, org.hotlines, org.municipality_emails) == (
            "Europe/Samara", ["+78462007080", "+78462007081"], ["edds@samara.example", "omsu@samara.example"])
        assert (org.dispatch_hours_start, org.dispatch_hours_end) == (time(8), time(20))
        assert s.get(RobotSettings, org.id).call_window_start == time(9)
        assert s.get(TelephonySettings, org.id).recording_retention_days == 120
        rows = s.scalars(select(AuditEntry)).all()
        assert {r.via for r in rows} == {"cli"} and all(r.actor_name.startswith("командная строка") for r in rows)
    assert cli("org", "set", str(world.org_a.id), "--dispatch-hours", "круглосуточно")[0] == 0
    code, out, _ = cli("audit", "--org", str(world.org_a.id))
    assert code == 0 and "Часовой пояс: Europe/Moscow → Europe/Samara" in out
    assert "Часы работы диспетчерской службы: 08:00–20:00 → круглосуточно" in out
    assert "(Europe/Samara)" in out  # times in the organization's zone


def test_org_set_reports_every_bad_option_and_changes_nothing(cli, db, world) -> None:
    code, _, err = cli("org", "set", str(world.org_a.id), "--tz", "Moscow", "--hotline", world.org_b.hotlines[0],
                       "--call-window", "06:00-09:00", "--retention-days", "0", "--municipality-email", "bad")
    assert code == 2
    for line in ("--tz: неизвестный часовой пояс 'Moscow'",
                 f"--hotline: номер уже используется другой организацией: {world.org_b.hotlines[0]}",
                 "--call-window: робот звонит только с 08:00 до 22:00",
                 "--retention-days: срок хранения записей, дней (записи разговоров хранятся не менее 3 месяцев)"
                 " — от 90 до 3650",
                 "--municipality-email: некорректный адрес эл. почты: 'bad'"):
        assert line in err, (line, err)
    assert cli("org", "set", str(world.org_a.id), "--call-window", "09:00")[2].strip().endswith(
        "--call-window: укажите интервал ЧЧ:ММ-ЧЧ:ММ, получено '09:00'")
    assert "укажите, что изменить" in cli("org", "set", str(world.org_a.id))[2]
    with db.read() as s:
        assert s.get(Organization, world.org_a.id).timezone == "Europe/Moscow"
        assert s.scalar(select(AuditEntry.id)) is None


def test_org_add_refuses_a_hotline_of_another_organization(cli, db, world) -> None:
    code, _, err = cli("org", "add", "--name", "УК Новая", "--short-name", "Новая", "--hotline", world.org_a.hotlines[0])
    assert code == 2 and "номер уже используется другой организацией" in err
    with db.read() as s:
        assert s.scalar(select(Organization.id).where(Organization.short_name == "Новая")) is None


def test_category_add_set_deactivate_activate_and_list(cli, db, world) -> None:
    org = str(world.org_a.id)
    code, out, err = cli("category", "add", "--org", org, "--name", "Протечка с балкона", "--resolve-minutes", "1440",
                         "--window", "08:00-20:00", "--code", "balcony")
    assert code == 0, err
    with db.read() as s:
        cat_id = s.scalar(select(Category.id).where(Category.code == "balcony"))
    code, out, err = cli("category", "set", str(cat_id), "--resolve-minutes", "720", "--localize-minutes", "60",
                         "--emergency", "--window", "none")
    assert code == 0, err
    assert "сроки зарегистрированных заявок не меняются" in out
    assert cli("category", "deactivate", str(cat_id))[0] == 0
    code, out, _ = cli("category", "list", "--org", org)
    line = next(li for li in out.splitlines() if "balcony" in li)
    assert "аварийная" in line and "локализация 60 мин" in line and "устранение 720 мин" in line and "ОТКЛЮЧЕНА" in line
    assert cli("category", "activate", str(cat_id))[0] == 0
    with db.read() as s:
        cat = s.get(Category, cat_id)
        assert (cat.resolve_minutes, cat.localize_minutes, cat.is_emergency, cat.window_start, cat.active) == (
            720, 60, True, None, True)
    code, out, _ = cli("audit", "--object", "category", "--object-id", str(cat_id))
    assert "Устранение, мин: 1440 → 720" in out and "Действует: да → нет" in out


def test_category_set_keeps_deadlines_of_registered_tickets_and_checks_input(cli, db, world) -> None:
    with db.write() as s:
        t = f.make_ticket(s, s.merge(world.org_a), s.merge(world.cats_a["roof_leak"]))
        ticket_id, due = t.id, t.due_at
    roof = str(world.cats_a["roof_leak"].id)
    assert cli("category", "set", roof, "--resolve-minutes", "60")[0] == 0
    with db.read() as s:
        assert s.get(Ticket, ticket_id).due_at == due
    code, _, err = cli("category", "set", roof, "--resolve-minutes", "час", "--name", "Прочее")
    assert code == 2 and "--resolve-minutes: укажите целое число минут" in err
    assert "--name: категория с таким названием уже есть" in err
    code, _, err = cli("category", "add", "--org", str(world.org_a.id), "--name", "Новая", "--code", "Плохой")
    assert code == 2 and "--code: код — строчные латинские буквы" in err
    assert "нет категории с id 99999" in cli("category", "set", "99999", "--name", "x")[2]


def test_org_set_map_tiles_sets_checks_and_clears_the_tile_server(cli, db, world) -> None:
    """The dispatcher's map tile server (decision 0044) from the command line, as the panel and the API."""
    org = str(world.org_a.id)
    code, _, err = cli("org", "set", org, "--map-tiles", "http://tiles.local/{z}/{x}.png")
    assert code == 2 and "--map-tiles: в адресе нет {y}" in err
    code, out, err = cli("org", "set", org, "--map-tiles", "http://tiles.local/{z}/{x}/{y}.png")
    assert code == 0, err
    assert "сервер карты: http://tiles.local/{z}/{x}/{y}.png" in out
    with db.read() as s:
        assert s.get(Organization, world.org_a.id).map_tile_url == "http://tiles.local/{z}/{x}/{y}.png"
    code, out, _ = cli("org", "set", org, "--no-map-tiles")
    assert code == 0 and "сервер карты: нет (сетка без подложки)" in out
    with db.read() as s:
        assert s.get(Organization, world.org_a.id).map_tile_url is None
    code, out, _ = cli("audit", "--org", org)
    assert "Сервер карты: нет → http://tiles.local/{z}/{x}/{y}.png" in out
    assert "Сервер карты: http://tiles.local/{z}/{x}/{y}.png → нет" in out


def test_org_set_position_retention_days_and_a_wrong_value_names_the_option(cli, db, world) -> None:
    code, out, err = cli("org", "set", str(world.org_a.id), "--position-retention-days", "14")
    assert code == 0, err
    assert "местоположения исполнителей хранятся, дней: 14" in out
    with db.read() as s:
        assert s.get(Organization, world.org_a.id).position_retention_days == 14
        assert any(r.field == "position_retention_days" for r in s.scalars(select(AuditEntry)))
    code, _, err = cli("org", "set", str(world.org_a.id), "--position-retention-days", "365")
    assert code == 2 and "--position-retention-days: от 1 до 90 дней" in err


def test_org_set_interruption_limits_and_back_to_the_act(cli, db, world) -> None:
    org = str(world.org_a.id)
    code, out, err = cli("org", "set", org, "--interruption-limits", "electricity=-/24; heating=24/8")
    assert code == 0, err
    assert "Электроснабжение: 24 ч единовременно" in out and "Отопление: 24 ч в месяц, 8 ч единовременно" in out
    with db.read() as s:
        assert s.get(Organization, world.org_a.id).interruption_limits == {"electricity": [None, 24],
                                                                           "heating": [24, 8]}
    code, _, err = cli("org", "set", org, "--interruption-limits", "lift=1/1")
    assert code == 2 and "--interruption-limits: «lift»: нет такого ресурса" in err
    code, out, err = cli("org", "set", org, "--interruption-limits", "пп354")
    assert code == 0 and "Электроснабжение: 2 ч единовременно" in out, err
    with db.read() as s:
        assert s.get(Organization, world.org_a.id).interruption_limits is None
