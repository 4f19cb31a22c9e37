"""Production defaults (issue 12 B.2, decision 0026): the long-running services refuse SQLite unless
OPENADS_ALLOW_SQLITE=1 says this is the demo or a single-user trial; `openads demo` says so itself."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from openads.cli import main
from openads.config import ConfigError, check_service_database, load_settings
from tests.conftest import until

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["web", "worker", "ari", "agi", "ari-watchdog"]


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENADS_", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ARI_", "AGI_", "SMTP_"))}
    env.update(OPENADS_VAR_DIR=str(tmp_path / "var"), PYTHONPATH=str(ROOT))
    return env


@pytest.fixture
def sqlite_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("OPENADS_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'trial.sqlite3'}")
    monkeypatch.delenv("OPENADS_ALLOW_SQLITE", raising=False)
    return tmp_path


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port in use: a service that wrongly got past the check stops at once instead of serving."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield int(busy.getsockname()[1])


@pytest.mark.parametrize("service", SERVICES)
def test_when_a_service_is_started_on_sqlite_without_the_flag_then_it_refuses_with_the_reason(
    service: str, tmp_path: Path, taken_port: int
) -> None:
    env = _clean_env(tmp_path)
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'trial.sqlite3'}", OPENADS_WEB_PORT=str(taken_port),
               AGI_PORT=str(taken_port), ARI_URL=f"http://127.0.0.1:{taken_port}")
    done = subprocess.run([sys.executable, "-m", "openads.cli", service], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    err = done.stderr
    assert done.returncode == 2, err
    assert err.startswith(f"openads: ошибка конфигурации: `openads {service}` не запускается на SQLite"), err
    assert "только для демо и пробы одним пользователем" in err and "database is locked" in err
    assert "DATABASE_URL=postgresql://" in err and "OPENADS_ALLOW_SQLITE=1" in err and "docs/install.md" in err
    assert f"`openads {service}` refuses SQLite" in err  # the English line for the log readers
    assert "Traceback" not in err
    assert not (tmp_path / "trial.sqlite3").exists()  # nothing created on the way out


def test_the_default_database_is_sqlite_and_is_refused_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    monkeypatch.setenv("OPENADS_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("OPENADS_ALLOW_SQLITE", raising=False)
    assert main(["worker", "--once"]) == 2
    assert "не запускается на SQLite" in capsys.readouterr().err


@pytest.mark.parametrize(("service", "port_var"), [("web", "OPENADS_WEB_PORT"), ("agi", "AGI_PORT")])
def test_with_the_flag_a_service_passes_the_check_and_goes_on_to_start(
    service: str, port_var: str, sqlite_env: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """With OPENADS_ALLOW_SQLITE=1 the service goes on; the taken port stops it one step later, which
    shows it got past the database check without serving anything."""
    monkeypatch.setenv("OPENADS_ALLOW_SQLITE", "1")
    monkeypatch.setenv(port_var, str(taken_port))
    assert main([service]) == 1
    err = capsys.readouterr().err
    assert "не удалось занять" in err and "SQLite" not in err


def test_postgresql_needs_no_flag_and_one_shot_commands_keep_working_on_sqlite(
    sqlite_env: Path, capsys: Any
) -> None:
    settings = load_settings()
    check_service_database(replace(settings, database_url="postgresql+psycopg://openads@127.0.0.1/openads"), "web")
    with pytest.raises(ConfigError):
        check_service_database(settings, "web")
    check_service_database(replace(settings, allow_sqlite=True), "web")
    # Administration commands (a trial's setup, the install's first steps on a copy) are not services.
    assert main(["db", "upgrade"]) == 0
    assert main(["org", "add", "--name", "УК Проба", "--short-name", "Проба"]) == 0
    assert "Организация создана" in capsys.readouterr().out


def test_openads_demo_serves_on_sqlite_without_the_flag_in_its_environment(tmp_path: Path) -> None:
    """`openads demo` on its default SQLite starts `openads web` and `openads ari` itself and tells them
    it is the demo: the panel answers although nobody set OPENADS_ALLOW_SQLITE."""
    env = _clean_env(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env.update(OPENADS_WEB_PORT=str(port), PYTHONUNBUFFERED="1")
    log_path = tmp_path / "demo.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "openads.cli", "demo", "--tickets", "20", "--seed", "1"],
                                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def up() -> bool:
            assert proc.poll() is None, log_path.read_text(errors="replace")[-3000:]
            return "OpenADS работает" in log_path.read_text(errors="replace")

        until(up, timeout=240, interval=0.2)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
    output = log_path.read_text(errors="replace")
    assert proc.returncode == 0, output[-3000:]
    assert "не запускается на SQLite" not in output
    assert f"Веб-панель: http://127.0.0.1:{port}/" in output and "Демо остановлено." in output


def test_a_data_directory_that_cannot_be_made_is_a_configuration_error_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    """Under ProtectSystem=strict the default ./var of the code directory cannot be created: the
    service stops with what to set (docs/install.md), and systemd does not restart it (exit 2)."""
    (tmp_path / "code").write_text("not a directory")
    monkeypatch.setenv("OPENADS_VAR_DIR", str(tmp_path / "code" / "var"))
    assert main(["db", "upgrade"]) == 2
    err = capsys.readouterr().err
    assert f"OPENADS_VAR_DIR: cannot create {tmp_path / 'code' / 'var'}" in err and "/var/lib/openads" in err
    assert "Traceback" not in err
