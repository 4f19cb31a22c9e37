"""`openads ari` tells the panel how the telephony is (issue 12, part A item 2; decision 0029): its
heartbeat row (events WebSocket, AMI, the trunk, every phone's state) and the test calls an
administrator asks for (a row the app dials: the phone rings, the test prompt plays)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from ari_app.media import PROMPT_TEST_CALL
from ari_app.presence import parse_registry
from models.base import utcnow
from models.db import Database
from models.organization import Organization
from models.services import telephony
from models.services import telephony_status as status_svc
from models.telephony import AriStatus, TestCall, TestCallStatus
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import (
    CALLER,
    FakePresence,
    call_ended,
    did,
    played,
    read,
    run,
    running_app,
    setup_inbound,
    short_prompts,
)
from tests.emulator.ari.scenario import AriEmulator


def _status(db: Database) -> AriStatus | None:
    return read(db, lambda s: s.get(AriStatus, "openads"))


def _phone_id(db: Database, org: Any, endpoint: str) -> int:
    with db.write() as s:
        org_row = s.get(Organization, org.id)
        for phone in telephony.phones_of(s, org_id=org.id):
            if phone.endpoint == endpoint:
                return phone.id
        return telephony.add_phone(s, org=org_row, by=None, changes={"endpoint": endpoint}).id


def _test_call(db: Database, org: Any, endpoint: str, **kw: Any) -> int:
    phone_id = _phone_id(db, org, endpoint)
    with db.write() as s:
        return status_svc.request_test_call(s, org=s.get(Organization, org.id), phone_id=phone_id, by=None, **kw).id


def _row(db: Database, test_call_id: int) -> TestCall:
    return read(db, lambda s: s.get(TestCall, test_call_id))


def test_the_heartbeat_says_what_is_connected_and_each_phones_state(ari_emulator: AriEmulator, db: Database,
                                                                    world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org, "PJSIP/disp1")
    emu.set_endpoint_state("disp2", "offline")

    def state(endpoint: str) -> str | None:
        row = _status(db)
        return None if row is None else row.endpoints.get(endpoint)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec", presence=FakePresence(connected=False),
                               status_seconds=0.05) as app:
            await until(lambda: state("PJSIP/disp1") == "free", message="first beat")
            row = _status(db)
            assert row is not None and row.ari_connected and row.ari_since == app.connection.status.since
            assert (row.ami_configured, row.ami_connected) == (True, False)
            assert state("PJSIP/disp2") == "offline"
            assert row.trunk["endpoint"] == "PJSIP/trunk-operator" and row.trunk["state"] == "online"
            assert row.trunk["registration"] is None  # no AMI Registry event seen
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: state("PJSIP/disp1") == "ringing", message="ringing")
            # The phone's channel may show up after the heartbeat says «ringing» (CI, two workers busy).
            await until(lambda: bool(emu.requests(route="POST /channels")), message="dispatcher rung")
            emu.answer("disp1")
            await until(lambda: state("PJSIP/disp1") == "busy", message="talking")
            emu.hangup(caller)
            await until(lambda: call_ended(db), message="ended")
            await until(lambda: state("PJSIP/disp1") == "free", message="free again")
            emu.set_endpoint_state("disp2", "online")
            await until(lambda: state("PJSIP/disp2") == "free", message="disp2 registered")
        row = _status(db)
        assert row is not None and not row.ari_connected and row.endpoints == {}  # a clean stop says so at once

    run(main())


def test_without_a_heartbeat_setting_nothing_is_written_or_polled(ari_emulator: AriEmulator, db: Database,
                                                                  tmp_path: Path) -> None:
    async def main() -> None:
        async with running_app(ari_emulator, db, tmp_path / "rec"):
            pass

    run(main())
    assert _status(db) is None and not ari_emulator.requests(route="GET /endpoints")


def test_the_status_page_shows_an_organization_only_its_own_phones(ari_emulator: AriEmulator, db: Database,
                                                                   world: Any, tmp_path: Path) -> None:
    emu = ari_emulator
    _phone_id(db, world.org_a, "PJSIP/disp1")
    _phone_id(db, world.org_b, "PJSIP/disp2")
    _phone_id(db, world.org_a, "PJSIP/nosuch")

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec", status_seconds=0.05):
            await until(lambda: _status(db) is not None and bool(_status(db).endpoints), message="beat")
            mine = read(db, lambda s: status_svc.telephony_status(s, org_id=world.org_a.id))
            assert mine.running and {p.phone.endpoint: p.state for p in mine.phones} == {
                "PJSIP/disp1": "free", "PJSIP/nosuch": "offline"}
            theirs = read(db, lambda s: status_svc.telephony_status(s, org_id=world.org_b.id))
            assert {p.phone.endpoint for p in theirs.phones} == {"PJSIP/disp2"}
        # A heartbeat three beats old: `openads ari` is not running; the phones' states are unknown.
        later = read(db, lambda s: status_svc.telephony_status(s, org_id=world.org_a.id,
                                                                now=utcnow() + timedelta(seconds=20)))
        assert not later.running and {p.state for p in later.phones} == {"unknown"}

    run(main())


def test_a_test_call_rings_the_phone_and_plays_the_test_prompt(ari_emulator: AriEmulator, db: Database,
                                                               world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    short_prompts(emu)
    test_call_id = _test_call(db, org, "PJSIP/disp1")

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):  # disp1 picks up by itself
            await until(lambda: _row(db, test_call_id).status == TestCallStatus.ANSWERED, message="answered")
            await until(lambda: not emu.snapshot()["channels"], message="hung up after the prompt")

    run(main())
    (originate,) = emu.requests(route="POST /channels")
    assert originate.query["endpoint"] == "PJSIP/disp1"
    assert originate.query["appArgs"] == f"test_call,{test_call_id}"
    assert played(emu) == [PROMPT_TEST_CALL]
    row = _row(db, test_call_id)
    assert row.detail == "трубку сняли, подсказка прозвучала" and row.finished_at is not None
    assert row.channel_id == originate.query["channelId"]


def test_a_test_call_says_busy_no_answer_or_why_it_could_not_ring(ari_emulator: AriEmulator, db: Database,
                                                                  world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    emu.set_answer_mode("disp1", "manual")
    emu.set_answer_mode("disp2", "manual")
    ids: dict[str, int] = {}

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            busy = ids["busy"] = _test_call(db, org, "PJSIP/disp1")
            await until(lambda: len(emu.requests(route="POST /channels")) == 1, message="rung")
            emu.reject("disp1", 17)
            await until(lambda: _row(db, busy).status == TestCallStatus.BUSY, message="busy")
            silent = _test_call(db, org, "PJSIP/disp2")
            await until(lambda: len(emu.requests(route="POST /channels")) == 2, message="rung")
            emu.reject("disp2", 19)
            await until(lambda: _row(db, silent).status == TestCallStatus.NO_ANSWER, message="no answer")
            emu.set_endpoint_state("disp1", "offline")
            offline = ids["offline"] = _test_call(db, org, "PJSIP/disp1")
            await until(lambda: _row(db, offline).status == TestCallStatus.FAILED, message="failed")

    run(main())
    assert "Asterisk не позвонил: Allocation failed" in _row(db, ids["offline"]).detail
    assert "причина 17" in _row(db, ids["busy"]).detail


def test_a_test_call_nobody_took_in_time_fails_without_ringing(ari_emulator: AriEmulator, db: Database,
                                                               world: Any, tmp_path: Path) -> None:
    stale = _test_call(db, world.org_a, "PJSIP/disp1", now=utcnow() - timedelta(minutes=3))

    async def main() -> None:
        async with running_app(ari_emulator, db, tmp_path / "rec"):
            await until(lambda: _row(db, stale).status == TestCallStatus.FAILED, message="expired")

    run(main())
    assert not ari_emulator.requests(route="POST /channels")
    assert "2 минуты" in _row(db, stale).detail


def test_the_trunk_registration_comes_from_ami_registry_events() -> None:
    at = utcnow()
    reg = parse_registry({"Event": "Registry", "ChannelType": "PJSIP", "Username": "sip:123456-100@sip.zadarma.com",
                          "Domain": "sip:sip.zadarma.com", "Status": "Registered", "Cause": ""}, at)
    assert reg is not None and reg.registered and reg.domain == "sip:sip.zadarma.com" and reg.at == at
    rejected = parse_registry({"Event": "Registry", "Domain": "sip:x", "Status": "Rejected", "Cause": "403"}, at)
    assert rejected is not None and not rejected.registered and rejected.cause == "403"
    assert parse_registry({"Event": "PeerStatus"}, at) is None
