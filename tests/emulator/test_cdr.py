"""The emulated Asterisk's CDR table (tests/emulator/ari/cdr.py): made and filled as
cdr_sqlite3_custom makes and fills master.db from dialplan/cdr_sqlite3_custom.conf, one record per
channel when it ends with its real start, answer and end; a hotline call in [openads-fallback] with
the records a real Asterisk writes for it (one per dispatcher's phone rung, then the hangup
handler's), which `openads ari` reads back as the call it was (ari_app/cdr_source.py)."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ari_app.cdr_source import cdr_record, fallback_end
from ari_app.reconcile import FallbackCall
from tests.emulator.ari import Asterisk, FakeClock
from tests.emulator.ari.cdr import CdrWriter, load_config

ROOT = Path(__file__).resolve().parents[2]
DID, CALLER = "74951112233", "79161234567"


def _conf_columns() -> list[str]:
    conf = (ROOT / "dialplan" / "cdr_sqlite3_custom.conf").read_text(encoding="utf-8")
    [columns] = re.findall(r"^columns\s*=>\s*(.+)$", conf, re.M)
    return [c.strip() for c in columns.split(",")]


def rows(path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM openads_cdr ORDER BY AcctId")]


def wall(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _utc(ts: float) -> datetime:
    """What `openads ari` reads back: naive UTC, to the second."""
    return datetime.fromtimestamp(int(ts), UTC).replace(tzinfo=None)


@pytest.fixture
def master(tmp_path: Path) -> Path:
    return tmp_path / "master.db"


def asterisk(master: Path, *, app_up: bool = True, **kw: Any) -> Asterisk:
    return Asterisk(clock=FakeClock(), recordings_dir=master.parent / "rec", cdr=CdrWriter(master),
                    app_active=lambda app: app_up, **kw)


def test_the_table_is_made_when_it_starts_with_the_dialplans_table_and_columns(master: Path) -> None:
    asterisk(master)
    with sqlite3.connect(master) as conn:
        [sql] = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'openads_cdr'").fetchone()
    assert sql == f"CREATE TABLE openads_cdr (AcctId INTEGER PRIMARY KEY, {','.join(_conf_columns())})"
    assert load_config().columns == tuple(_conf_columns())
    assert rows(master) == []
    CdrWriter(master).close()  # a restart: the table is kept as it is


def test_an_inbound_call_bridged_with_a_dispatcher_gives_each_channel_its_record_when_it_ends(master: Path) -> None:
    ast = asterisk(master)
    t0 = ast.now()
    caller = ast.incoming_call(DID, CALLER, app="openads")
    ast.clock.advance(1)
    ast.answer(caller.id)
    ast.clock.advance(2)
    leg = ast.originate("PJSIP/disp1", app="openads", app_args="dispatcher,1")
    ast.clock.advance(0)  # disp1 answers at once
    bridge = ast.create_bridge("mixing", None, None)
    ast.add_channels(bridge.id, [caller.id, leg.id])
    assert rows(master) == []  # nothing before the end
    ast.clock.advance(40)
    ast.phone_hangup(caller)
    ast.clock.advance(1)
    ast.hangup(leg.id)

    first, second = rows(master)
    assert first == {
        "AcctId": 1, "uniqueid": caller.id, "linkedid": caller.id, "src": CALLER, "dst": DID, "dcontext": "from-trunk",
        "channel": caller.name, "dstchannel": leg.name, "lastapp": "Stasis", "lastdata": f"openads,inbound,{DID}",
        "start": wall(t0), "answer": wall(t0 + 1), "end": wall(t0 + 43), "duration": "43", "billsec": "42",
        "disposition": "ANSWERED", "userfield": "", "openads_did": DID, "openads_org_id": "", "openads_fallback": "",
        "openads_answered_at": "", "openads_dialstatus": "", "openads_answered_by": "", "openads_vmstatus": "",
        "openads_vmfile": "", "openads_recording": "",
    }
    assert (second["uniqueid"], second["dstchannel"], second["start"], second["answer"], second["end"],
            second["disposition"], second["openads_did"]) == (
        leg.id, caller.name, wall(t0 + 3), wall(t0 + 3), wall(t0 + 44), "ANSWERED", "")


def test_legs_that_were_never_answered_get_busy_or_no_answer(master: Path) -> None:
    ast = asterisk(master)
    busy = ast.originate(f"PJSIP/{CALLER}@trunk-operator", app="openads", app_args="callback,1")
    ast.clock.advance(0)
    ast.phone_reject(CALLER)
    t1 = ast.now()
    ringing = ast.originate(f"PJSIP/{CALLER}@trunk-operator", app="openads", app_args="robot,1", timeout=30)
    ast.clock.advance(30)
    assert [(r["uniqueid"], r["disposition"], r["answer"], r["billsec"]) for r in rows(master)] == [
        (busy.id, "BUSY", "", "0"), (ringing.id, "NO ANSWER", "", "0")]
    assert rows(master)[1]["end"] == wall(t1 + 30)


def _read_back(master: Path) -> FallbackCall:
    """The rows as `openads ari` groups them (ari_app/cdr_source.py `CdrSource._handle`)."""
    records = [r for r in rows(master) if r["openads_fallback"] == "1"]
    call = FallbackCall(records[0]["uniqueid"])
    for row in records:
        call.cdrs.append(cdr_record(row))
        call.end = fallback_end(row) or call.end
    return call


def test_a_call_the_app_did_not_take_is_answered_in_the_fallback_and_read_back_as_answered(master: Path) -> None:
    ast = asterisk(master, app_up=False, fallback_dial=["PJSIP/disp1", "PJSIP/disp2"])
    for name in ("PJSIP/disp1", "PJSIP/disp2"):
        ast.endpoints[name].auto_answer = False
    t0 = ast.now()
    caller = ast.incoming_call(DID, CALLER, app="openads")
    assert (caller.in_stasis, caller.state, caller.variables["STASISSTATUS"]) == (False, "Up", "FAILED")
    legs = [ast.channels[i] for i in caller.fallback_legs]
    assert [(leg.name.split("-")[0], leg.state, leg.outgoing) for leg in legs] == [
        ("PJSIP/disp1", "Ringing", True), ("PJSIP/disp2", "Ringing", True)]
    assert ast.get_variable(caller.id, "CDR(openads_answered_at)") == ""
    ast.clock.advance(12)
    ast.phone_answer("disp2")
    assert ast.get_variable(caller.id, "CDR(openads_answered_at)") == str(int(t0 + 12))
    assert ast.get_variable(caller.id, "DIALEDPEERNAME") == legs[1].name
    assert legs[0].hungup and not legs[1].hungup  # answered elsewhere
    ast.clock.advance(90)
    ast.phone_hangup("disp2")  # the dispatcher hangs up: the caller too (Dial without g)
    assert caller.hungup

    records = rows(master)
    assert [(r["uniqueid"], r["dstchannel"], r["disposition"], r["end"]) for r in records] == [
        (caller.id, legs[0].name, "NO ANSWER", wall(t0 + 12)),
        (caller.id, legs[1].name, "ANSWERED", wall(t0 + 102)),
        (caller.id, "", "ANSWERED", wall(t0 + 102)),
    ]
    assert {r["openads_fallback"] for r in records} == {"1"} and {r["openads_did"] for r in records} == {DID}
    assert (records[-1]["openads_dialstatus"], records[-1]["openads_answered_by"]) == ("ANSWER", legs[1].name)
    call = _read_back(master)
    assert (call.disposition(), call.answering_endpoint(), call.answer_time()) == (
        "ANSWERED", "PJSIP/disp2", _utc(t0 + 12))
    assert (min(c.start for c in call.cdrs), max(c.end for c in call.cdrs)) == (
        _utc(t0), _utc(t0 + 102))


def test_a_caller_the_app_gave_back_who_hangs_up_while_the_phones_ring_is_read_back_unanswered(
        master: Path) -> None:
    ast = asterisk(master, fallback_dial=["PJSIP/disp1"])
    ast.endpoints["PJSIP/disp1"].auto_answer = False
    caller = ast.incoming_call(DID, CALLER, app="openads")
    ast.answer(caller.id)
    ast.clock.advance(5)
    ast.continue_in_dialplan(caller.id, None, None, None)  # a failure in the app: [openads-fallback]
    assert caller.fallback and len(caller.fallback_legs) == 1
    ast.clock.advance(20)
    ast.phone_hangup(caller)
    assert ast.channels[caller.fallback_legs[0]].hungup

    last = rows(master)[-1]
    assert (last["openads_dialstatus"], last["openads_answered_by"], last["openads_fallback"]) == ("CANCEL", "", "1")
    call = _read_back(master)
    assert (call.disposition(), call.answering_endpoint()) == ("NO ANSWER", None)


def test_the_fallbacks_dial_times_out_to_the_voice_mailbox(master: Path) -> None:
    ast = asterisk(master, app_up=False, fallback_dial=["PJSIP/disp1"], fallback_ring_timeout=30)
    ast.endpoints["PJSIP/disp1"].auto_answer = False
    caller = ast.incoming_call(DID, CALLER, app="openads")
    ast.clock.advance(30)
    assert (caller.variables["DIALSTATUS"], caller.dialplan["app_name"]) == ("NOANSWER", "VoiceMail")
    ast.clock.advance(10)
    ast.phone_hangup(caller)
    assert rows(master)[-1]["openads_dialstatus"] == "NOANSWER"
    assert _read_back(master).disposition() == "NO ANSWER"


def test_without_a_cdr_file_nothing_is_written_and_a_restart_writes_no_record(master: Path) -> None:
    plain = Asterisk(clock=FakeClock(), recordings_dir=master.parent / "rec")
    plain.phone_hangup(plain.incoming_call(DID, CALLER, app="openads"))
    assert not master.exists()
    ast = asterisk(master)
    ast.incoming_call(DID, CALLER, app="openads")
    ast.restart()  # a crash: the calls are gone without records
    assert rows(master) == []


def test_a_record_the_locked_file_refuses_is_lost_as_on_asterisk_and_the_call_goes_on(master: Path) -> None:
    ast = asterisk(master)
    caller = ast.incoming_call(DID, CALLER, app="openads")
    with sqlite3.connect(master, isolation_level=None) as holder:
        holder.execute("BEGIN EXCLUSIVE")  # longer than busy_timeout (1 s, cdr_sqlite3_custom.conf)
        ast.phone_hangup(caller)
        holder.execute("ROLLBACK")
    assert caller.hungup and (ast.cdr.written, ast.cdr.failed) == (0, 1)
    ast.phone_hangup(ast.incoming_call(DID, CALLER, app="openads"))
    assert len(rows(master)) == 1
