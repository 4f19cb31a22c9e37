"""Files with personal data are not world-readable (issue 10, item 10; models/files.py).

Database, attachments, recordings and uploaded imports: files 0640, directories 0750, the secret
key 0600 — whatever the umask the process was started with (each test sets a loose one: a
service started by hand, a test runner). `openads` itself sets OPENADS_UMASK (027) at start.
"""

from __future__ import annotations

import asyncio
import io
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from ari_app.flows.base import FlowConfig, fetch_recording
from models.db import Database
from models.files import DEFAULT_UMASK, parse_umask
from models.recording import recording_relpath
from models.ticket import Attachment
from tests import factories as f
from tests.web.test_panel_exchange import CSV

ROOT = Path(__file__).resolve().parents[2]


def openads(env: dict[str, str], *args: str, umask: int = -1) -> subprocess.CompletedProcess[str]:
    """`openads ...` run from this checkout (`-m`: the installed script may point at another one)."""
    return subprocess.run([sys.executable, "-m", "openads.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120, umask=umask)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode) & 0o777  # without the setgid bit a shared parent may give


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The common default umask (files 0644, directories 0755) for the test's duration."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def no_world_access(root: Path) -> list[str]:
    return [f"{p.relative_to(root)} {oct(mode(p))}" for p in [root, *root.rglob("*")] if mode(p) & 0o007]


def test_openads_sets_its_umask_so_the_database_and_the_key_are_private(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENADS_", "DATABASE_URL", "SECRET_KEY"))}
    data = tmp_path / "data"
    env.update(DATABASE_URL=f"sqlite:///{data / 'db' / 'openads.sqlite3'}", OPENADS_VAR_DIR=str(data / "var"))
    done = openads(env, "db", "upgrade", umask=0)
    assert done.returncode == 0, done.stderr
    assert mode(data / "db" / "openads.sqlite3") == 0o640
    assert mode(data / "db") == 0o750 and mode(data / "var") == 0o750
    assert mode(data / "var" / "secret_key") == 0o600
    assert no_world_access(data) == []


def test_a_bad_openads_umask_is_a_clear_error(tmp_path: Path) -> None:
    env = dict(os.environ, OPENADS_UMASK="rw-r-----", DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}",
               OPENADS_VAR_DIR=str(tmp_path / "var"))
    done = openads(env, "db", "upgrade")
    assert done.returncode == 2 and "OPENADS_UMASK" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x.sqlite3").exists()


@pytest.mark.parametrize(("raw", "value"), [(None, DEFAULT_UMASK), ("", 0o027), ("077", 0o077), ("0o007", 0o007)])
def test_openads_umask_is_octal(raw: str | None, value: int) -> None:
    assert parse_umask(raw) == value


def test_a_new_sqlite_database_and_its_wal_are_0640(tmp_path: Path, loose_umask: None) -> None:
    path = tmp_path / "new" / "openads.sqlite3"
    db = Database(f"sqlite:///{path}")
    try:
        with db.write() as s:
            s.execute(text("CREATE TABLE t (x INTEGER)"))
            s.execute(text("INSERT INTO t VALUES (1)"))
        with db.read() as s:
            assert s.execute(text("SELECT x FROM t")).scalar() == 1
            wal = [p for p in path.parent.iterdir() if p.name.endswith(("-wal", "-shm"))]
            assert wal  # WAL mode keeps them while a connection is open
            assert {p.name: mode(p) for p in wal} == {p.name: 0o640 for p in wal}
    finally:
        db.dispose()
    assert mode(path) == 0o640 and mode(path.parent) == 0o750


def test_an_attachment_and_its_folders_are_private(db: Any, world: Any, login_as: Any, settings: Any,
                                                  loose_umask: None) -> None:
    with db.write() as s:
        ticket = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"])
    client = login_as(world.dispatcher_a)
    resp = client.post(f"/tickets/{ticket.id}/attachments", data={"file": (io.BytesIO(b"\x89PNG"), "течь.png")},
                       content_type="multipart/form-data")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    with db.read() as s:
        stored = Path(settings.var_dir) / s.scalars(select(Attachment)).one().storage_path
    assert mode(stored) == 0o640
    assert mode(stored.parent) == 0o750 and mode(stored.parent.parent) == 0o750  # attachments/<org>/
    assert no_world_access(Path(settings.var_dir) / "attachments") == []


def test_an_uploaded_housing_import_is_private(db: Any, world: Any, login_as: Any, settings: Any,
                                              loose_umask: None) -> None:
    client = login_as(world.manager_a)
    resp = client.post("/housing/import", data={"organization_id": str(world.org_a.id),
                                                "file": (io.BytesIO(CSV.encode()), "fond.csv")},
                       content_type="multipart/form-data")
    assert resp.status_code == 302
    imports = Path(settings.var_dir) / "imports"
    assert sorted(p.suffix for p in imports.iterdir()) == [".csv"]
    assert mode(imports) == 0o750 and no_world_access(imports) == []


class StoredRecordings:
    """The two ARI calls `fetch_recording` makes for a finished recording."""

    def __init__(self, audio: bytes) -> None:
        self.audio = audio

    async def get_stored_recording_file(self, name: str) -> bytes:
        return self.audio

    async def delete_stored_recording(self, name: str) -> None:
        return None


def test_a_recording_and_its_folders_are_private(tmp_path: Path, loose_umask: None) -> None:
    recordings = tmp_path / "recordings"
    relpath = recording_relpath(7, 42, datetime(2025, 3, 4, 10, 0, tzinfo=UTC))
    saved = asyncio.run(fetch_recording(StoredRecordings(b"RIFF" + bytes(100)), FlowConfig(recordings_dir=recordings),
                                        "openads-42", relpath, finished=True))
    assert saved is not None
    path = recordings / relpath
    assert path.read_bytes().startswith(b"RIFF") and mode(path) == 0o640
    assert mode(recordings) == 0o750 and no_world_access(recordings) == []
