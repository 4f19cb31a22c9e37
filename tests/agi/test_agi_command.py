"""`openads agi`: the console command around the FastAGI server."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from openads.cli import main


def test_when_the_port_is_taken_then_a_clear_message_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    monkeypatch.setenv("OPENADS_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}")
    monkeypatch.setenv("OPENADS_ALLOW_SQLITE", "1")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["agi", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"не удалось занять 127.0.0.1:{port}" in err and "AGI_PORT" in err


def test_agi_port_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from openads.config import load_settings

    monkeypatch.setenv("OPENADS_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("AGI_HOST", "10.0.0.5")
    monkeypatch.setenv("AGI_PORT", "4600")
    settings = load_settings()
    assert (settings.agi_host, settings.agi_port) == ("10.0.0.5", 4600)
    monkeypatch.setenv("AGI_PORT", "x")
    from openads.config import ConfigError

    with pytest.raises(ConfigError):
        load_settings()
