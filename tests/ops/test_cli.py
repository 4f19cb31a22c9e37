"""The `openads` console script as a user runs it: a real subprocess on a temporary SQLite file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from models.audit import AuditEntry
from models.db import Database
from models.housing import House
from models.organization import ApiToken, Organization, User
from models.outbox import MessageStatus, OutboxMessage
from models.rules.catalog import DEFAULT_CATEGORIES
from models.ticket import Category, Ticket
from tests import factories as f
from tests.conftest import until
from tests.ops.conftest import SmtpServer

OPENADS = str(Path(sys.executable).with_name("openads"))


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SMTP_", "OPENADS_", "DATABASE_URL", "REDIS_URL", "SECRET_KEY"))}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'cli.sqlite3'}", OPENADS_VAR_DIR=str(tmp_path / "var"))
    return env


def openads(env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OPENADS, *args], env=env, capture_output=True, text=True, input=stdin, timeout=timeout)


def db_of(env: dict[str, str]) -> Database:
    return Database(env["DATABASE_URL"])


@pytest.fixture(scope="module")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `openads db upgrade` per module; each test gets a copy of the migrated file."""
    base = tmp_path_factory.mktemp("template")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENADS_", "DATABASE_URL"))}
    env.update(DATABASE_URL=f"sqlite:///{base / 'cli.sqlite3'}", OPENADS_VAR_DIR=str(base / "var"))
    result = openads(env, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    return base / "cli.sqlite3"


@pytest.fixture
def migrated(cli_env: dict[str, str], migrated_template: Path) -> dict[str, str]:
    shutil.copyfile(migrated_template, cli_env["DATABASE_URL"].removeprefix("sqlite:///"))
    return cli_env


def test_db_upgrade_then_check_on_an_empty_database(cli_env: dict[str, str]) -> None:
    up = openads(cli_env, "db", "upgrade")
    assert up.returncode == 0, up.stderr
    assert "База данных обновлена" in up.stdout
    assert (Path(cli_env["OPENADS_VAR_DIR"]) / "secret_key").exists()
    check = openads(cli_env, "db", "check")
    assert check.returncode == 0, check.stderr
    assert "Схема БД соответствует моделям" in check.stdout


def test_org_add_creates_the_organization_with_default_categories(migrated: dict[str, str]) -> None:
    result = openads(migrated, "org", "add", "--name", "ООО «УК Жилкомфорт»", "--short-name", "Жилкомфорт",
                     "--kind", "УК", "--tz", "Europe/Samara", "--municipality-email", "edds@samara.example",
                     "--hotline", "8 (846) 200-70-80", "--hotline", "+7 846 200-70-81", "--centre", "ОДС Центральная")
    assert result.returncode == 0, result.stderr
    assert "Организация создана: id=1" in result.stdout
    db = db_of(migrated)
    with db.read() as s:
        (org,) = s.scalars(select(Organization)).all()
        assert (org.name, org.short_name, org.kind, org.timezone) == (
            "ООО «УК Жилкомфорт»", "Жилкомфорт", "УК", "Europe/Samara")
        assert org.municipality_email == "edds@samara.example"
        assert org.hotlines == ["+78462007080", "+78462007081"]
        assert org.dispatch_centre.name == "ОДС Центральная"
        codes = set(s.scalars(select(Category.code).where(Category.organization_id == org.id)))
        logged = {(e.field, e.via, e.new_value) for e in s.scalars(select(AuditEntry).where(
            AuditEntry.organization_id == org.id))}
    db.dispose()
    assert ("hotlines", "cli", "+78462007080, +78462007081") in logged and ("name", "cli", "ООО «УК Жилкомфорт»") in logged
    assert {"emergency_cold_water", "sewer_blockage", "garbage_chute_blockage", "other"} <= codes
    assert len(codes) == len(DEFAULT_CATEGORIES)

    bare = openads(migrated, "org", "add", "--name", "ТСЖ «Берёзка»", "--short-name", "Берёзка", "--kind", "ТСЖ",
                   "--no-default-categories")
    assert bare.returncode == 0, bare.stderr
    assert "категорий заявок: 0" in bare.stdout


def test_user_add_with_token_prints_a_working_api_token(migrated: dict[str, str]) -> None:
    assert openads(migrated, "org", "add", "--name", "УК А", "--short-name", "А").returncode == 0
    assert openads(migrated, "org", "add", "--name", "УК Б", "--short-name", "Б").returncode == 0
    env = dict(migrated, OPENADS_PASSWORD="s3cret-pass")
    result = openads(env, "user", "add", "--login", "centre", "--name", "Смирнова Анна Петровна",
                     "--role", "dispatcher", "--org", "1", "--org", "2", "--email", "anna@uk.example", "--token")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("oads_")

    from web.auth import hash_token

    db = db_of(migrated)
    with db.read() as s:
        user = s.scalar(select(User).where(User.login == "centre"))
        assert user.role.value == "dispatcher" and user.email == "anna@uk.example"
        assert user.organization_ids == [1, 2]
        assert s.scalar(select(ApiToken.user_id).where(ApiToken.token_sha256 == hash_token(token))) == user.id
        from web.auth import verify_password

        assert verify_password(user, "s3cret-pass")
    db.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("org", "add", "--name", "X"), "не указаны обязательные параметры: --short-name"),
        (("org", "add", "--name", "X", "--short-name", "X", "--kind", "ООО"), "параметр --kind: недопустимое значение"),
        (("org", "add", "--name", "X", "--short-name", "X", "--tz", "Mars/Olympus"), "неизвестный часовой пояс"),
        (("org", "add", "--name", "X", "--short-name", "X", "--municipality-email", "нет"), "некорректный адрес эл. почты"),
        (("org", "add", "--name", "X", "--short-name", "X", "--hotline", "12"), "некорректный номер телефона"),
        (("user", "add", "--login", "a", "--name", "А", "--role", "boss", "--org", "1"), "параметр --role"),
        (("user", "add", "--login", "ab", "--name", "А", "--role", "admin", "--org", "x"), "ожидается целое число"),
        (("user", "add", "--login", "ab", "--name", "А", "--role", "admin", "--org", "7", "--password", "long-enough"),
         "нет организации с id 7"),
        (("user", "add", "--login", "ab", "--name", "А", "--role", "admin", "--org", "1"), "пароль не задан"),
        (("web", "--port", "99999"), "номер порта"),
        (("frobnicate",), "недопустимое значение 'frobnicate'"),
        (("db",), "укажите действие"),
        (("import-housing", "/nonexistent/houses.csv", "--org", "1"), "файл не найден"),
        (("export-journal", "--org", "1", "--out", "journal.csv"), "ожидается имя файла .xlsx"),
    ],
)
def test_bad_usage_exits_2_with_a_russian_message_and_no_traceback(
    migrated: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    result = openads(migrated, *args, stdin="")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    db = db_of(migrated)
    with db.read() as s:
        assert s.scalar(select(Organization.id)) is None  # nothing written
        assert s.scalar(select(User.id)) is None
    db.dispose()


def test_duplicate_login_is_refused_and_writes_nothing(migrated: dict[str, str]) -> None:
    assert openads(migrated, "org", "add", "--name", "УК А", "--short-name", "А").returncode == 0
    env = dict(migrated, OPENADS_PASSWORD="Bpmh-seven-rivers")
    assert openads(env, "user", "add", "--login", "ivan", "--name", "Иванов И. И.", "--role", "executor",
                   "--org", "1").returncode == 0
    again = openads(env, "user", "add", "--login", "ivan", "--name", "Другой", "--role", "admin", "--org", "1")
    assert again.returncode == 2 and "пользователь с логином 'ivan' уже есть" in again.stderr
    db = db_of(migrated)
    with db.read() as s:
        assert [u.full_name for u in s.scalars(select(User))] == ["Иванов И. И."]
    db.dispose()


def test_database_without_schema_exits_1_with_a_hint(cli_env: dict[str, str]) -> None:
    result = openads(cli_env, "org", "add", "--name", "УК", "--short-name", "УК")
    assert result.returncode == 1
    assert "ошибка базы данных" in result.stderr and "openads db upgrade" in result.stderr
    assert "Traceback" not in result.stderr


def test_worker_process_delivers_the_municipality_email_and_stops_on_sigterm(
    migrated: dict[str, str], smtp_server: SmtpServer
) -> None:
    smtp_server.start()
    db = db_of(migrated)
    with db.write() as s:
        org = f.make_org(s, name="УК «Альфа»", short_name="Альфа", municipality_email="edds@city.example")
        cats = f.make_categories(s, org)
        house = f.make_house(s, org, address="г. Москва, ул. Ленина, д. 10")
        ticket = f.make_ticket(s, org, cats["emergency_heating"], house_id=house.id, description="Течь радиатора")
        ticket_id, number = ticket.id, ticket.number
    env = dict(migrated, SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp_server.port), SMTP_FROM="ads@alfa.example",
               OPENADS_ALLOW_SQLITE="1")
    proc = subprocess.Popen([OPENADS, "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        until(lambda: smtp_server.received, timeout=60)

        def notified() -> bool:
            with db.read() as s:
                return s.get(Ticket, ticket_id).municipality_notified_at is not None

        until(notified, timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "worker stopped" in err
    (mail,) = smtp_server.received
    assert mail.rcpt_tos == ["edds@city.example"] and number in mail.subject
    with db.read() as s:
        assert s.scalar(select(OutboxMessage.status)) == MessageStatus.SENT
    db.dispose()


def test_import_housing_and_export_journal_are_wired_to_the_exchange_commands(
    migrated: dict[str, str], tmp_path: Path
) -> None:
    assert openads(migrated, "org", "add", "--name", "УК А", "--short-name", "А").returncode == 0
    source = tmp_path / "houses.csv"
    source.write_text("Адрес,Помещение,Лицевой счёт,ФИО,Телефоны\n"
                      "\"г. Москва, ул. Новая, д. 1\",5,ЛС1,Петров Пётр Петрович,+79161112233\n", encoding="utf-8")
    imported = openads(migrated, "import-housing", str(source), "--org", "1", "--quiet")
    assert imported.returncode == 0, imported.stderr
    db = db_of(migrated)
    with db.read() as s:
        assert [h.address for h in s.scalars(select(House))] == ["г. Москва, ул. Новая, д. 1"]
    db.dispose()
    out = tmp_path / "journal.xlsx"
    exported = openads(migrated, "export-journal", "--org", "1", "--status", "new", "--emergency", "1",
                       "--from", "2026-01-01", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert out.stat().st_size > 0


def test_house_location_is_set_shown_checked_and_cleared_by_house_id_within_the_named_organization(
    migrated: dict[str, str],
) -> None:
    db = db_of(migrated)
    with db.write() as s:
        org, other = f.make_org(s), f.make_org(s)
        house_id, foreign_id = f.make_house(s, org).id, f.make_house(s, other).id
        org_id = org.id

    def location(*args: str) -> subprocess.CompletedProcess[str]:
        return openads(migrated, "house", "location", *args)

    shown = location(str(house_id), "--org", str(org_id))
    assert shown.returncode == 0, shown.stderr
    assert "координаты не заданы" in shown.stdout
    saved = location(str(house_id), "--org", str(org_id), "--lat", "55,7512", "--lon", "37.6184")
    assert saved.returncode == 0, saved.stderr
    assert "Координаты дома сохранены" in saved.stdout and "широта 55.7512, долгота 37.6184" in saved.stdout
    # The API's checks and messages; a refused change writes nothing.
    for args, message in (
        (("--lat", "95", "--lon", "37"), "--lat: широта от −90 до 90, долгота от −180 до 180"),
        (("--lat", "55", "--lon", "-181"), "--lat: широта от −90 до 90, долгота от −180 до 180"),
        (("--lat", "55.1"), "--lat: укажите и широту, и долготу (или очистите обе)"),
        (("--lat", "55", "--lon", "сорок"), "--lon: долгота: укажите число"),
        (("--clear", "--lat", "55"), "--clear нельзя указывать вместе с --lat и --lon"),
    ):
        refused = location(str(house_id), "--org", str(org_id), *args)
        assert refused.returncode == 2 and message in refused.stderr, (args, refused.stderr)
        assert "Traceback" not in refused.stderr
    # Another organization's house is not found in this one (and keeps no coordinates).
    foreign = location(str(foreign_id), "--org", str(org_id), "--lat", "1", "--lon", "1")
    assert foreign.returncode == 2 and "дом не найден в этой организации" in foreign.stderr
    with db.read() as s:
        assert (s.get(House, house_id).latitude, s.get(House, house_id).longitude) == (55.7512, 37.6184)
        assert s.get(House, foreign_id).latitude is None
    cleared = location(str(house_id), "--org", str(org_id), "--clear")
    assert cleared.returncode == 0 and "Координаты дома очищены" in cleared.stdout
    with db.read() as s:
        assert (s.get(House, house_id).latitude, s.get(House, house_id).longitude) == (None, None)
        logged = [(e.object_type, e.object_id, e.field, e.old_value, e.new_value, e.via) for e in s.scalars(
            select(AuditEntry).where(AuditEntry.organization_id == org_id).order_by(AuditEntry.id))]
    db.dispose()
    assert logged == [
        ("house", house_id, "latitude", None, "55.7512", "cli"), ("house", house_id, "longitude", None, "37.6184", "cli"),
        ("house", house_id, "latitude", "55.7512", None, "cli"), ("house", house_id, "longitude", "37.6184", None, "cli"),
    ]


def test_robot_settings_and_notification_templates_are_shown_and_set_like_the_settings_page(
    migrated: dict[str, str],
) -> None:
    from models.notification import RobotSettings

    db = db_of(migrated)
    with db.write() as s:
        org_id = f.make_org(s).id

    shown = openads(migrated, "robot", "show", "--org", str(org_id))
    assert shown.returncode == 0, shown.stderr
    assert "en_route — Исполнитель выехал" in shown.stdout and "{eta}" in shown.stdout
    assert "{company}: по заявке № {number} исполнитель выехал, ориентировочно в {eta}." in shown.stdout
    saved = openads(migrated, "robot", "set", "--org", str(org_id), "--attempts", "2", "--quiet", "22:00-08:00",
                    "--template", "en_route", "{company}: мастер выехал по заявке {number}, будет в {eta}")
    assert saved.returncode == 0, saved.stderr
    assert "мастер выехал по заявке {number}, будет в {eta}" in saved.stdout
    # The settings page's checks and messages, named by the option; a refused change writes nothing.
    for args, message in (
        (("--template", "assigned", "будет в {eta}"), "--template assigned: неизвестные подстановки: {eta}"),
        (("--template", "en_route", "  "), "--template en_route: текст не может быть пустым"),
        (("--template", "arrived", "текст"), "--template: нет такого уведомления: arrived"),
        (("--attempts", "11"), "--attempts: попыток — от 1 до 10"),
        (("--call-window", "06:00-20:00"), "--call-window: робот звонит только с 08:00 до 22:00"),
        ((), "укажите, что изменить"),
    ):
        refused = openads(migrated, "robot", "set", "--org", str(org_id), *args)
        assert refused.returncode == 2 and message in refused.stderr, (args, refused.stderr)
    with db.read() as s:
        row = s.get(RobotSettings, org_id)
        assert (row.max_attempts, row.quiet_start.hour, row.template_en_route, row.template_assigned) == (
            2, 22, "{company}: мастер выехал по заявке {number}, будет в {eta}",
            "{company}: по заявке № {number} назначен исполнитель {executor}, срок выполнения {deadline}.")
        logged = {(e.object_type, e.field, e.via) for e in s.scalars(
            select(AuditEntry).where(AuditEntry.organization_id == org_id))}
    db.dispose()
    assert logged == {("robot_settings", "max_attempts", "cli"), ("robot_settings", "quiet_hours", "cli"),
                      ("robot_settings", "template_en_route", "cli")}
