"""Issue 9 C4: the dispatchers' phones show one name for a caller, whoever rings them: the ARI app
(first ring, ring again, ring after an `openads ari` restart) and the fallback's AGI
`lookup_caller` both use models.rules.caller_name ("Фамилия кв.70", as the caller card)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from models.db import Database
from tests import factories as f
from tests.agi.test_lookup_caller import LoopThread, asterisk_headers, play_asterisk, start_server, variables
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import did, run, running_app, setup_inbound
from tests.emulator.ari.scenario import AriEmulator

RESIDENT = "79161234567"  # world.resident_a, "Леонидов Леонид Леонидович", кв. 30
CALLER_ID = re.compile(r'^"(?P<name>[^"]*)" <(?P<number>[^>]*)>$')


def _name_in(caller_id: str) -> str:
    """The name part of ARI's `callerId` ("" when the number goes alone)."""
    m = CALLER_ID.match(caller_id)
    return m.group("name") if m else ""


def _legs(emu: AriEmulator) -> list[Any]:
    return emu.requests(route="POST /channels")


def _ari_name(emu: AriEmulator, db: Database, org: Any, number: str, tmp_path: Path) -> str:
    """What a dispatcher's phone shows when the ARI app rings it for a call from `number`."""

    async def main() -> str:
        async with running_app(emu, db, tmp_path / "rec"):
            caller = emu.incoming_call(did(org), number)
            await until(lambda: bool(_legs(emu)), message="a phone rings")
            emu.hangup(caller)
            return str(_legs(emu)[-1].query["callerId"])

    caller_id = run(main())
    assert caller_id.rstrip(">").endswith(number)  # the number as the trunk sent it, with or without a name
    return _name_in(caller_id)


def _agi_name(db: Database, org: Any, number: str) -> str | None:
    """What `lookup_caller` sets as CALLERID(name) for the fallback's Dial (None: left alone)."""
    loop = LoopThread()
    try:
        server = start_server(loop, db)
        try:
            got = variables(play_asterisk(server.port, asterisk_headers("lookup_caller", number, "s", did(org))))
        finally:
            loop.run(server.close())
    finally:
        loop.stop()
    return got.get("CALLERID(name)")


def _one(_s: Any, _world: Any) -> None:
    pass


def _family(s: Any, world: Any) -> None:
    f.make_resident(s, world.premise_a, (f"+{RESIDENT}",), full_name="Леонидова Анна Сергеевна")


def _neighbours(s: Any, world: Any) -> None:
    flat = f.make_premise(s, world.house_a, "70")
    f.make_resident(s, flat, (f"+{RESIDENT}",), full_name="Яковлева Зоя Петровна")


@pytest.mark.parametrize(("residents", "expected"), [
    (_one, "Леонидов кв.30"),
    (_family, "Леонидов, Леонидова кв.30"),
    (_neighbours, "Леонидов кв.30, Яковлева кв.70"),
])
def test_the_ari_app_and_the_fallback_agi_show_the_same_name(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path, residents: Any, expected: str,
) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)
    with db.write() as s:
        residents(s, world)

    ari, agi = _ari_name(emu, db, org, RESIDENT, tmp_path), _agi_name(db, org, RESIDENT)

    assert ari == agi == expected


def test_an_unknown_number_is_shown_without_a_name_by_both(ari_emulator: AriEmulator, db: Database, world: Any,
                                                           tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)

    assert _ari_name(emu, db, org, "79990001122", tmp_path) == ""
    assert _agi_name(db, org, "79990001122") is None  # the network's name stays


def test_after_a_restart_the_phones_rung_again_show_the_callers_name(ari_emulator: AriEmulator, db: Database,
                                                                    world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)
    first_ring = '"Леонидов кв.30" <79161234567>'

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            caller = emu.incoming_call(did(org), RESIDENT)
            await until(lambda: bool(_legs(emu)), message="a phone rings")
            assert _legs(emu)[0].query["callerId"] == first_ring
        # The app is gone while the phone rings; the new one knows the call only from Asterisk and the DB.
        async with running_app(emu, db, tmp_path / "rec", ring_retry_delay=0.05) as app2:
            assert app2.last_reconcile is not None and app2.last_reconcile.reattached == [caller.id]
            await until(lambda: len(_legs(emu)) == 2, message="rung again after the re-attach")
            emu.reject("disp1")  # busy: the re-attached call rings again a moment later
            await until(lambda: len(_legs(emu)) == 3, message="rung again after busy")
            emu.hangup(caller)

    run(main())
    assert [leg.query["callerId"] for leg in _legs(emu)] == [first_ring] * 3
