"""`openads push keys`, `openads user alerts`, `openads category set --ack-minutes` (decision 0043),
in-process `main()` on the test database."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from models.alerts import ExecutorAlertSettings
from models.ticket import Category
from openads.cli import main


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Any:
    monkeypatch.setenv("DATABASE_URL", database_url)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_push_keys_are_written_into_the_env_file_once(cli, tmp_path: Path) -> None:
    env = tmp_path / "openads.env"
    env.write_text("DATABASE_URL=postgresql://x\n")
    env.chmod(0o644)
    code, out, _ = cli("push", "keys", "--env-file", str(env))
    assert code == 0 and "Ключи VAPID записаны" in out
    lines = env.read_text().splitlines()
    assert lines[0] == "DATABASE_URL=postgresql://x"
    values = dict(line.split("=", 1) for line in lines[1:])
    assert set(values) == {"OPENADS_VAPID_PRIVATE_KEY", "OPENADS_VAPID_PUBLIC_KEY"}
    assert len(values["OPENADS_VAPID_PUBLIC_KEY"]) == 87 and len(values["OPENADS_VAPID_PRIVATE_KEY"]) == 43
    assert stat.S_IMODE(os.stat(env).st_mode) == 0o644  # an existing file keeps its mode (the services read it)
    code, _, err = cli("push", "keys", "--env-file", str(env))
    assert code == 2 and "уже есть OPENADS_VAPID_PRIVATE_KEY" in err
    assert cli("push", "keys", "--env-file", str(env), "--force")[0] == 0
    again = dict(line.split("=", 1) for line in env.read_text().splitlines()[1:])
    assert again["OPENADS_VAPID_PUBLIC_KEY"] != values["OPENADS_VAPID_PUBLIC_KEY"] and len(again) == 2


def test_a_new_env_file_is_private(cli, tmp_path: Path) -> None:
    env = tmp_path / "new.env"
    assert cli("push", "keys", "--env-file", str(env))[0] == 0
    assert stat.S_IMODE(os.stat(env).st_mode) == 0o600


def test_push_keys_printed(cli) -> None:
    code, out, _ = cli("push", "keys")
    assert code == 0 and out.startswith("OPENADS_VAPID_PRIVATE_KEY=") and "OPENADS_VAPID_PUBLIC_KEY=" in out


def test_user_alerts_shows_and_sets_an_executors_channels(cli, db, world) -> None:
    code, out, _ = cli("user", "alerts", "exec_a")
    assert code == 0 and "каналы — уведомление на телефон, SMS, звонок робота, эл. почта; тихие часы — нет" in out
    code, out, _ = cli("user", "alerts", "exec_a", "--channels", "sms,voice", "--quiet", "22:00-07:00")
    assert code == 0 and "каналы — SMS, звонок робота; тихие часы — 22:00–07:00" in out
    code, _, err = cli("user", "alerts", "exec_a", "--channels", "голубь")
    assert code == 2 and "неизвестный канал: голубь" in err
    code, _, err = cli("user", "alerts", "disp_a", "--channels", "sms")
    assert code == 2 and "настройки уведомлений — у исполнителей" in err
    with db.read() as s:
        assert s.get(ExecutorAlertSettings, world.executor_a.id).channels == ["sms", "voice"]


def test_category_ack_minutes(cli, db, world) -> None:
    cat_id = world.cats_a["emergency_cold_water"].id
    code, out, _ = cli("category", "set", str(cat_id), "--ack-minutes", "3")
    assert code == 0, out
    with db.read() as s:
        assert s.get(Category, cat_id).ack_minutes == 3
    code, _, err = cli("category", "set", str(cat_id), "--ack-minutes", "0")
    assert code == 2 and "от 1 до 120 минут" in err
