"""Who answered: a dispatcher's SIP endpoint is mapped to a user (`assign_dispatcher_phone`), so
an inbound call answered on that phone records the user, and the panel's callback rings the
clicking dispatcher's own phone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from models.call import Call, CallKind
from models.db import Database
from models.errors import ValidationFailed
from models.missed_call import CallbackAttempt
from models.organization import Organization, User
from models.services import calls as calls_svc
from models.services.callbacks import record_callback_result, start_callback
from tests import factories as f
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import configure, did, read, run, running_app, short_prompts
from tests.emulator.ari.scenario import AriEmulator

RESIDENT = "79161234567"


def _assign(db: Database, org: Any, endpoint: str, user_id: int | None) -> None:
    with db.write() as s:
        calls_svc.assign_dispatcher_phone(s, org=s.get(Organization, org.id), endpoint=endpoint, user_id=user_id,
                                          by=None)


def _inbound(db: Database) -> list[Call]:
    return read(db, lambda s: list(s.scalars(select(Call).where(Call.kind == CallKind.INBOUND).order_by(Call.id))))


def test_when_a_dispatcher_answers_then_the_call_is_answered_by_the_user_of_that_phone(
        ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    configure(db, org, endpoints=["PJSIP/disp1", "PJSIP/disp2"], strategy="round_robin")
    _assign(db, org, "PJSIP/disp1", world.dispatcher_a.id)  # disp2 is nobody's phone
    short_prompts(emu)
    emu.set_answer_mode("disp1", "manual")
    emu.set_answer_mode("disp2", "manual")

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            for n in (1, 2):
                caller = emu.incoming_call(did(org), RESIDENT)
                await until(lambda n=n: len(emu.requests(route="POST /channels")) == n, message="a phone rings")
                endpoint = emu.requests(route="POST /channels")[-1].query["endpoint"]
                emu.answer(endpoint)
                await until(lambda n=n: len(_inbound(db)) == n and _inbound(db)[-1].answered_at is not None,
                            message="answered")
                emu.hangup(caller)
                await until(lambda: _inbound(db)[-1].ended_at is not None, message="ended")

    run(main())
    assert sorted((c.dispatcher_endpoint, c.answered_by_id) for c in _inbound(db)) == [
        ("PJSIP/disp1", world.dispatcher_a.id), ("PJSIP/disp2", None)]


def test_callback_button_rings_the_clicking_dispatchers_own_phone(
        ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path, login_as: Any) -> None:
    emu, org = ari_emulator, world.org_a
    configure(db, org, endpoints=["PJSIP/disp1", "PJSIP/disp2"])
    _assign(db, org, "PJSIP/disp2", world.dispatcher_a.id)
    _assign(db, org, "PJSIP/disp1", world.centre_dispatcher.id)
    with db.write() as s:
        item = f.make_missed_call(s, s.get(Organization, org.id), "+" + RESIDENT)
    emu.set_answer_mode("disp2", "manual")

    resp = login_as(world.dispatcher_a).post(f"/missed-calls/{item.id}/callback")
    assert resp.status_code == 302
    [call] = read(db, lambda s: list(s.scalars(select(Call).where(Call.kind == CallKind.CALLBACK))))
    assert (call.dispatcher_endpoint, call.initiated_by_id) == ("PJSIP/disp2", world.dispatcher_a.id)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):  # the scheduler dials what the panel wrote
            await until(lambda: len(emu.requests(route="POST /channels")) == 1, message="dispatcher's phone rung")

    run(main())
    [leg] = emu.requests(route="POST /channels")
    assert (leg.query["endpoint"], leg.query["appArgs"]) == ("PJSIP/disp2", f"callback,{call.id}")


def test_callback_button_of_a_dispatcher_without_a_phone_is_refused(db: Database, world: Any,
                                                                     login_as: Any) -> None:
    with db.write() as s:
        item = f.make_missed_call(s, s.get(Organization, world.org_a.id), "+" + RESIDENT)
    _assign(db, world.org_a, "PJSIP/disp1", world.centre_dispatcher.id)  # someone else's phone
    resp = login_as(world.dispatcher_a).post(f"/missed-calls/{item.id}/callback")
    assert resp.status_code == 400
    assert "ваш телефон не указан в настройках телефонии" in resp.get_data(as_text=True)
    assert read(db, lambda s: list(s.scalars(select(CallbackAttempt)))) == []


def test_auto_callback_answered_is_credited_to_the_user_of_the_rung_phone(db: Database, world: Any) -> None:
    _assign(db, world.org_a, "PJSIP/disp1", world.dispatcher_a.id)
    with db.write() as s:
        org = s.get(Organization, world.org_a.id)
        item = f.make_missed_call(s, org, "+" + RESIDENT)
        attempt = start_callback(s, org_id=org.id, missed_call_id=item.id, by=None, endpoint="PJSIP/disp1")
        record_callback_result(s, org_id=org.id, attempt_id=attempt.id, resident_answered=True)
        call = s.get(Call, attempt.call_id)
        assert (call.kind, call.answered_by_id, attempt.dispatcher_id) == (
            CallKind.AUTO_CALLBACK, world.dispatcher_a.id, None)


def test_assign_dispatcher_phone_checks_the_endpoint_and_the_membership(db: Database, world: Any) -> None:
    with db.write() as s:
        org_a = s.get(Organization, world.org_a.id)
        with pytest.raises(ValidationFailed):
            calls_svc.assign_dispatcher_phone(s, org=org_a, endpoint="disp 1", user_id=world.dispatcher_a.id, by=None)
        with pytest.raises(ValidationFailed):  # works in another organization only
            calls_svc.assign_dispatcher_phone(s, org=org_a, endpoint="PJSIP/disp1", user_id=world.dispatcher_b.id,
                                              by=None)
        calls_svc.assign_dispatcher_phone(s, org=org_a, endpoint="PJSIP/disp1", user_id=world.dispatcher_a.id, by=None)
        calls_svc.assign_dispatcher_phone(s, org=org_a, endpoint="PJSIP/disp1", user_id=world.centre_dispatcher.id,
                                          by=None)  # reassigned, not duplicated
        assert calls_svc.endpoint_of_user(s, org_id=org_a.id, user_id=world.centre_dispatcher.id) == "PJSIP/disp1"
        assert calls_svc.endpoint_of_user(s, org_id=org_a.id, user_id=world.dispatcher_a.id) is None
        # tenant: the same endpoint means nobody in organization B
        assert calls_svc.dispatcher_of_endpoint(s, org_id=world.org_b.id, endpoint="PJSIP/disp1") is None
        centre = calls_svc.dispatcher_of_endpoint(s, org_id=org_a.id, endpoint="PJSIP/disp1")
        assert isinstance(centre, User) and centre.id == world.centre_dispatcher.id
        calls_svc.assign_dispatcher_phone(s, org=org_a, endpoint="PJSIP/disp1", user_id=None, by=None)
        assert calls_svc.dispatcher_of_endpoint(s, org_id=org_a.id, endpoint="PJSIP/disp1") is None
