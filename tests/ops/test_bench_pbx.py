"""The PBX part of `make bench` (bench/pbx.py): its SIPp scenarios, its reading of SIPp's log, and
the skip line when the PBX cannot run."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench import pbx

SCENARIOS = sorted((Path(pbx.SIPP_DIR)).glob("*.xml"))


def test_the_three_sipp_scenarios_are_well_formed_xml() -> None:
    assert [p.name for p in SCENARIOS] == ["dispatcher.xml", "register.xml", "resident.xml"]
    for path in SCENARIOS:
        assert ET.parse(path).getroot().tag == "scenario"


def test_sipp_log_lines_give_each_callers_invite_ringing_and_answer_times(tmp_path: Path) -> None:
    log = tmp_path / "burst_logs.log"
    log.write_text("invite 79500000001 2026-12-06\t05:17:07.856088\t1796534227.856088\n"
                   "answered 79500000001 2026-12-06\t05:17:07.862787\t1796534227.862787\n"
                   "invite 79500000002 2026-12-06\t05:17:07.956136\t1796534227.956136\n"
                   "bye 79500000001 2026-12-06\t05:17:09.867830\t1796534229.867830\n")
    times = pbx._read_times(log)
    assert times.invite == {"+79500000001": 1796534227.856088, "+79500000002": 1796534227.956136}
    assert times.answered == {"+79500000001": 1796534227.862787}
    assert times.ringing == {}


def test_without_sipp_the_part_prints_a_skip_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    monkeypatch.setattr(pbx.shutil, "which", lambda tool: None if tool == "sipp" else f"/usr/bin/{tool}")
    pbx.run("postgresql+psycopg://nowhere/none", "postgresql", tmp_path)
    assert capsys.readouterr().out == "bench: pbx_postgresql skipped (sipp not found (apt install sip-tester))\n"
