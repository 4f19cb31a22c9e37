"""Issue 11, items 2 and 3: calls survive database errors. A registration that fails is tried again
while the caller hears the greeting; one that fails for good still leaves the call and its
missed-call item in the journal once the database is back; the end of a call is stored whatever
the database does meanwhile; calls whose channels are gone are ended by the scheduler's sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

import ari_app.db as ari_db
import ari_app.flows.inbound as inbound
from models.call import CallOutcome
from models.db import Database
from models.missed_call import MissedCallStatus
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import (
    CALLER,
    call_ended,
    did,
    last_call,
    missed_items,
    run,
    running_app,
    setup_inbound,
)
from tests.emulator.ari.scenario import AriEmulator


def db_down() -> OperationalError:
    return OperationalError("INSERT INTO calls ...", {}, Exception("server closed the connection unexpectedly"))


class Failing:
    """Wraps a function: raises OperationalError for its first `times` calls (None: until `up()`)."""

    def __init__(self, fn: Any, times: int | None) -> None:
        self.fn, self.times, self.calls, self.down = fn, times, 0, True

    def up(self) -> None:
        self.down = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.down and (self.times is None or self.calls <= self.times):
            raise db_down()
        return self.fn(*args, **kwargs)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ari_db, "RETRY_DELAYS", (0.01, 0.02), raising=False)
    monkeypatch.setattr(ari_db, "STORE_BACKOFF_MAX", 0.05, raising=False)


def test_when_the_registration_fails_twice_then_the_call_is_served_normally(
        ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)
    failing = Failing(inbound.register_arrivals, 2)
    monkeypatch.setattr(inbound, "register_arrivals", failing)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            emu.incoming_call(did(org), CALLER)
            await until(lambda: bool(emu.requests(route="POST /channels")), message="dispatcher rung")

    run(main())
    assert failing.calls == 3
    call = last_call(db)
    assert call is not None and not call.is_fallback and call.ended_at is None
    assert emu.requests(route="POST /channels/{channelId}/continue") == []


def test_when_the_registration_fails_for_good_then_the_fallback_call_and_its_item_are_written_once_the_db_is_back(
        ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)
    failing = Failing(inbound.register_arrivals, None)
    monkeypatch.setattr(inbound, "register_arrivals", failing)
    later = Failing(getattr(inbound, "register_fallback_arrival", None), None)
    monkeypatch.setattr(inbound, "register_fallback_arrival", later, raising=False)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: bool(emu.requests(route="POST /channels/{channelId}/continue")),
                        message="to the dialplan")
            await until(lambda: later.calls >= 2, message="written again and again")
            assert last_call(db) is None
            later.up()  # the database is back
            await until(lambda: bool(missed_items(db)), message="the call and its item written")
            call = last_call(db)
            assert call is not None and call.channel_id == caller.id

    run(main())
    assert failing.calls == 3  # the registration's tries
    call = last_call(db)
    assert call is not None and call.is_fallback and call.outcome == CallOutcome.FAILED
    [item] = missed_items(db)
    assert (item.phone, item.status, item.first_call_id) == ("+79161234567", MissedCallStatus.OPEN, call.id)


def test_when_the_end_of_a_call_fails_once_then_it_still_ends_with_its_outcome_and_item(
        ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import models.services.calls as calls

    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)
    failing = Failing(calls.end_call, 1)
    monkeypatch.setattr(calls, "end_call", failing)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: bool(emu.requests(route="POST /channels")), message="dispatcher rung")
            emu.hangup(caller)
            await until(lambda: call_ended(db), message="call ended")

    run(main())
    assert failing.calls == 2
    call = last_call(db)
    assert call is not None and (call.outcome, call.answered_at) == (CallOutcome.ABANDONED, None)
    [item] = missed_items(db)
    assert (item.status, item.first_call_id) == (MissedCallStatus.OPEN, call.id)
