"""`openads telephony ...` (issue 12, part A item 2): the administration page «Телефония» from the
command line (in-process `main()` on the test database), logged as «командная строка»."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from models.audit import AuditEntry
from models.call import DispatcherPhone, RingStrategy, TelephonySettings
from models.telephony import TestCall, TestCallStatus
from openads.cli import main


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Any) -> Any:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SPEECH_PROVIDER", "fake")
    monkeypatch.setenv("OPENADS_PROMPTS_DIR", str(tmp_path / "prompts"))

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def _phones(db) -> dict[str, int]:
    with db.read() as s:
        return {p.endpoint: p.id for p in s.scalars(select(DispatcherPhone))}


def test_settings_are_shown_and_changed_with_defaults_and_logged(cli, db, world) -> None:
    org = str(world.org_a.id)
    code, out, err = cli("telephony", "set", "--org", org, "--wait", "90", "--strategy", "in_order", "--retry", "10",
                         "--no-voicemail", "--auto-callback", "--auto-callback-delay", "60", "--moh-class", "night",
                         "--greeting", "Слушаем вас.")
    assert code == 0, err
    assert "действуют со следующего звонка" in out and "по порядку" in out and "«перезвоним»" in out
    with db.read() as s:
        row = s.get(TelephonySettings, world.org_a.id)
        assert (row.wait_limit_seconds, row.ring_strategy, row.ring_retry_seconds, row.voicemail_enabled,
                row.auto_callback, row.auto_callback_delay_seconds, row.moh_class, row.greeting_text) == (
            90, RingStrategy.IN_ORDER, 10, False, True, 60, "night", "Слушаем вас.")
        rows = s.scalars(select(AuditEntry)).all()
        assert {r.via for r in rows} == {"cli"} and all(r.actor_name.startswith("командная строка") for r in rows)
    code, out, _ = cli("telephony", "set", "--org", org, "--retry", "default", "--moh-class", "default")
    assert code == 0 and "как на сервере (ARI_RING_RETRY_SECONDS)" in out and "как на сервере (ARI_MOH_CLASS)" in out
    code, _, err = cli("telephony", "set", "--org", org, "--wait", "301", "--moh-class", "моя музыка")
    assert code == 2 and "--wait:" in err and "не более 5 минут" in err and "--moh-class:" in err
    code, _, err = cli("telephony", "set", "--org", org)
    assert code == 2 and "укажите, что изменить" in err
    code, _, err = cli("telephony", "show", "--org", "999")
    assert code == 2 and "нет организации с id 999" in err


def test_phones_added_changed_reordered_and_removed(cli, db, world) -> None:
    org = str(world.org_a.id)
    code, out, err = cli("telephony", "phone", "add", "--org", org, "--endpoint", "PJSIP/201", "--user", "disp_a")
    assert code == 0, err
    assert "Смирнова Анна Петровна (disp_a)" in out and "звонят по порядку: PJSIP/201" in out
    assert cli("telephony", "phone", "add", "--org", org, "--endpoint", "PJSIP/202")[0] == 0
    phones = _phones(db)
    code, out, _ = cli("telephony", "phone", "set", str(phones["PJSIP/202"]), "--position", "1")
    assert code == 0 and "звонят по порядку: PJSIP/202, PJSIP/201" in out
    code, out, _ = cli("telephony", "phone", "set", str(phones["PJSIP/201"]), "--user", "none", "--no-ring")
    assert code == 0 and "звонят по порядку: PJSIP/202\n" in out
    code, _, err = cli("telephony", "phone", "add", "--org", org, "--endpoint", "201")
    assert code == 2 and "--endpoint: телефон указывается" in err
    code, _, err = cli("telephony", "phone", "add", "--org", org, "--endpoint", "PJSIP/203", "--user", "disp_b")
    assert code == 2 and "--user: пользователь не найден в этой организации" in err
    code, _, err = cli("telephony", "phone", "add", "--org", org, "--endpoint", "PJSIP/203", "--user", "nobody")
    assert code == 2 and "нет пользователя с логином" in err
    assert cli("telephony", "phone", "remove", str(phones["PJSIP/201"]))[0] == 0
    assert set(_phones(db)) == {"PJSIP/202"}
    code, _, err = cli("telephony", "phone", "remove", "999")
    assert code == 2 and "нет телефона с id 999" in err


def test_status_test_call_and_listen(cli, db, world, tmp_path) -> None:
    org = str(world.org_a.id)
    cli("telephony", "phone", "add", "--org", org, "--endpoint", "PJSIP/201")
    code, out, _ = cli("telephony", "status", "--org", org)
    assert code == 0 and "ни разу не сообщал о себе" in out and "телефон PJSIP/201: нет данных" in out
    assert "последний звонок — входящий через ARI-приложение: не было" in out
    phone = _phones(db)["PJSIP/201"]
    code, out, _ = cli("telephony", "test-call", "--org", org, "--phone", str(phone))
    assert code == 0 and "заказан" in out
    code, _, err = cli("telephony", "test-call", "--org", org, "--phone", str(phone))
    assert code == 2 and "уже идёт" in err
    with db.read() as s:
        assert [(t.endpoint, t.status) for t in s.scalars(select(TestCall))] == [("PJSIP/201", TestCallStatus.PENDING)]
    code, _, err = cli("telephony", "test-call", "--org", str(world.org_b.id), "--phone", str(phone))
    assert code == 2 and "телефон не найден" in err
    out_file = tmp_path / "greeting.wav"
    code, out, err = cli("telephony", "listen", "--org", org, "greeting", "--text", "Слушаем.", "--out", str(out_file))
    assert code == 0, err
    assert out_file.read_bytes()[:4] == b"RIFF" and "«Слушаем.»" in out
    code, out, _ = cli("telephony", "listen", "--org", org, "voicemail_offer", "--out", str(out_file))
    assert code == 0 and "Все диспетчеры сейчас заняты" in out
