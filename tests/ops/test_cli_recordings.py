"""`openads recordings purge|delete` (decision 0035): the same services as the worker's purge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from models.organization import Organization
from models.recording import PurgeRule, RecordingPurge, recording_relpath
from models.services import calls
from openads.cli import main
from tests import factories as f


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Path) -> Any:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("OPENADS_RECORDINGS_DIR", str(tmp_path / "rec"))

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def _recording(db: Any, org_id: int, root: Path, age_days: int) -> tuple[int, Path]:
    started = datetime.now(UTC) - timedelta(days=age_days)
    with db.write() as s:
        call = f.make_inbound_call(s, s.get(Organization, org_id), "+79160007777", at=started)
        rel = recording_relpath(org_id, call.id, started)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"RIFF")
        return calls.attach_recording(s, org_id=org_id, call_id=call.id, path=rel, size_bytes=4, at=started).id, \
            root / rel


def test_purge_and_delete_from_the_command_line_write_the_purge_log(cli, db, world, tmp_path) -> None:
    root = tmp_path / "rec"
    old_a, old_a_file = _recording(db, world.org_a.id, root, 100)
    old_b, old_b_file = _recording(db, world.org_b.id, root, 100)
    young, young_file = _recording(db, world.org_a.id, root, 5)
    assert cli("recordings", "purge", "--org", str(world.org_a.id))[:2] == (0, "Удалено записей по сроку хранения: 1\n")
    assert not old_a_file.exists() and old_b_file.exists()
    code, _out, err = cli("recordings", "delete", str(young), "--org", str(world.org_b.id), "--reason", "ошибка")
    assert code != 0 and "запись не найдена" in err and young_file.exists()
    code, out, _err = cli("recordings", "delete", str(young), "--org", str(world.org_a.id), "--reason", "запрос жителя")
    assert code == 0 and not young_file.exists()
    with db.read() as s:
        log = [(p.recording_id, p.rule) for p in s.scalars(select(RecordingPurge).order_by(RecordingPurge.id))]
    assert log == [(old_a, PurgeRule.RETENTION), (young, PurgeRule.MANUAL)]
