"""pbx/build.sh and pbx/run.sh refuse what they must refuse, before building anything."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / "pbx" / args[0]), *args[1:]], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)


def test_a_tarball_with_another_checksum_is_refused(tmp_path: Path) -> None:
    (tmp_path / "asterisk-master-f0c1c1a7.tar.xz").write_bytes(b"not the sources")
    (tmp_path / "pjproject-2.17.tar.bz2").write_bytes(b"not the sources either")
    done = run("build.sh", OPENADS_ASTERISK_SRC=str(tmp_path), OPENADS_PBX_CACHE=str(tmp_path / "cache"))
    assert done.returncode == 1
    assert "asterisk-master-f0c1c1a7.tar.xz: sha256" in done.stderr and "expected e3f6bbca" in done.stderr
    assert not (tmp_path / "cache").exists()


def test_missing_sources_are_named(tmp_path: Path) -> None:
    done = run("build.sh", OPENADS_ASTERISK_SRC=str(tmp_path), OPENADS_PBX_CACHE=str(tmp_path / "cache"))
    assert done.returncode == 1 and "not found (set OPENADS_ASTERISK_SRC)" in done.stderr


@pytest.mark.skipif(shutil.which("ss") is None, reason="ss (iproute2) not installed")
def test_a_busy_ari_port_is_an_error_not_a_silent_move(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run("run.sh", "start", OPENADS_PBX_ARI_PORT=str(port), OPENADS_PBX_HOME=str(tmp_path / "pbx"))
    assert done.returncode == 1
    assert f"ARI port 127.0.0.1:{port} is busy" in done.stderr and "OPENADS_PBX_ARI_PORT" in done.stderr
    assert not (tmp_path / "pbx" / "etc").exists()  # nothing configured, nothing started
