"""Issue 11, items 2 and 3: calls survive database errors. A registration that fails is tried again
while the caller hears the greeting; one that fails for good still leaves the call and its
missed-call item in the journal once the database is back; the end of a call is stored whatever
the database does meanwhile; calls whose channels are gone are ended by the scheduler's sweep."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

import ari_app.db as ari_db
import ari_app.flows.inbound as inbound
from models.call import CallOutcome
from models.db import Database
from models.missed_call import MissedCallStatus
from tests.ari_app.helpers import assign_phone, until
from tests.ari_app.test_app_support import (
    CALLER,
    call_answered,
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


def _down_for_good(monkeypatch: pytest.MonkeyPatch) -> tuple[Failing, Failing]:
    """The registration fails for good (the arrival's 3 tries), and so does the write after the
    outage until `.up()` of the second."""
    failing = Failing(inbound.register_arrivals, None)
    monkeypatch.setattr(inbound, "register_arrivals", failing)
    later = Failing(inbound.register_fallback_arrival, None)
    monkeypatch.setattr(inbound, "register_fallback_arrival", later)
    return failing, later


def _fallback_emulator(make_ari_emulator: Any, **kw: Any) -> AriEmulator:
    """An emulator whose dialplan fallback rings PJSIP/disp2, a phone answered by hand."""
    emu: AriEmulator = make_ari_emulator(fallback_dial=["PJSIP/disp2"], **kw)
    emu.set_answer_mode("disp2", "manual")
    return emu


def test_when_the_registration_fails_for_good_then_the_call_is_written_once_the_db_is_back_and_missed_when_the_caller_hangs_up(
        ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No CDR table: while the caller is in the fallback the call has no missed-call item (a
    dispatcher may be answering); once the caller's channel is gone it is missed, with its item."""
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)
    failing, later = _down_for_good(monkeypatch)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec") as app:
            app.fallback_watches.every = 0.02
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: bool(emu.requests(route="POST /channels/{channelId}/continue")),
                        message="to the dialplan")
            await until(lambda: later.calls >= 2, message="written again and again")
            assert last_call(db) is None
            later.up()  # the database is back
            await until(lambda: last_call(db) is not None, message="the call written")
            call = last_call(db)
            assert call is not None and (call.channel_id, call.is_fallback, call.ended_at, call.outcome) == (
                caller.id, True, None, None)
            assert missed_items(db) == []  # the caller is in the fallback
            assert app.fallback_watches.channels == {caller.id}
            emu.hangup(caller)
            await until(lambda: call_ended(db), message="ended once the channel is gone")

    run(main())
    assert failing.calls == 3  # the registration's tries
    call = last_call(db)
    assert call is not None and call.is_fallback and (call.outcome, call.answered_at) == (CallOutcome.ABANDONED, None)
    [item] = missed_items(db)
    assert (item.phone, item.status, item.first_call_id) == ("+79161234567", MissedCallStatus.OPEN, call.id)


def test_when_a_dispatcher_answers_in_the_fallback_while_the_db_is_away_then_the_call_is_answered_and_never_missed(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    emu, org = _fallback_emulator(make_ari_emulator), world.org_a
    setup_inbound(emu, db, org)
    assign_phone(db, org, "PJSIP/disp2", world.dispatcher_a.id)
    _failing, later = _down_for_good(monkeypatch)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec") as app:
            app.fallback_watches.every = 0.02
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: bool(caller_legs(emu, caller)), message="the fallback rings disp2")
            emu.answer("disp2")  # while the database is still away
            answered["at"] = datetime.now(UTC).replace(microsecond=0)
            await until(lambda: later.calls >= 2, message="written again and again")
            later.up()
            await until(lambda: call_answered(db), message="the answer written")
            assert missed_items(db) == []
            emu.hangup("disp2")  # the conversation ends (the caller's channel goes with it)
            await until(lambda: call_ended(db), message="ended")

    answered: dict[str, datetime] = {}
    run(main())
    call = last_call(db)
    assert call is not None and call.is_fallback
    assert (call.outcome, call.dispatcher_endpoint, call.answered_by_id) == (
        CallOutcome.ANSWERED, "PJSIP/disp2", world.dispatcher_a.id)
    assert abs((_aware(call.answered_at) - answered["at"]).total_seconds()) <= 1  # type: ignore[operator]
    assert missed_items(db) == []


def caller_legs(emu: AriEmulator, caller: Any) -> list[str]:
    return list(emu.channel(caller).fallback_legs)


def test_a_call_the_watchdog_handed_to_the_fallback_and_answered_there_is_answered_after_the_app_restarts(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path) -> None:
    """The app stops with a caller in the queue; the watchdog moves the caller to [openads-fallback],
    where disp2 answers. The restarted app's sweep watches the caller's channel: the answer is
    written, and the end is an answered call, not a missed one."""
    from models.services.calls import hand_call_to_fallback

    emu, org = _fallback_emulator(make_ari_emulator), world.org_a
    setup_inbound(emu, db, org)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: bool(emu.requests(route="POST /channels")), message="disp1 rung")
        # `openads ari-watchdog`: OPENADS_WATCHDOG=1, continue at [openads-fallback], marked handed over.
        emu._run(emu.asterisk.continue_in_dialplan, caller.id, "openads-fallback", "s", 1)
        with db.write() as s:
            hand_call_to_fallback(s, channel_id=caller.id)
        emu.answer("disp2")
        async with running_app(emu, db, tmp_path / "rec") as app:
            app.fallback_watches.every = 0.02
            app.scheduler.sweep_seconds = 0.05
            await until(lambda: call_answered(db), message="the answer written")
            assert app.fallback_watches.channels == {caller.id}
            emu.hangup(caller)
            await until(lambda: call_ended(db), message="ended")

    run(main())
    call = last_call(db)
    assert call is not None and (call.outcome, call.dispatcher_endpoint, call.is_fallback) == (
        CallOutcome.ANSWERED, "PJSIP/disp2", True)
    assert missed_items(db) == []


def test_with_the_cdr_table_a_call_written_after_the_outage_and_answered_in_the_fallback_gets_no_missed_item(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator writes master.db as Asterisk does; the app reads it (ASTERISK_CDR_URL)."""
    from openads.config import AsteriskCdrSettings

    master = tmp_path / "master.db"
    emu, org = _fallback_emulator(make_ari_emulator, cdr_path=master), world.org_a
    setup_inbound(emu, db, org)
    _failing, later = _down_for_good(monkeypatch)
    cdr = AsteriskCdrSettings(url=f"sqlite:///{master}", table="openads_cdr", poll_seconds=3600)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec", cdr=cdr) as app:
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: bool(caller_legs(emu, caller)), message="the fallback rings disp2")
            emu.answer("disp2")
            later.up()
            await until(lambda: last_call(db) is not None, message="the call written")
            assert missed_items(db) == [] and not app.fallback_watches.channels  # the CDR will tell
            emu.hangup(caller)
            assert app.cdr_source is not None
            await app.cdr_source.poll()
            await until(lambda: call_ended(db), message="completed from the CDR")

    run(main())
    call = last_call(db)
    assert call is not None and (call.outcome, call.dispatcher_endpoint, call.is_fallback) == (
        CallOutcome.ANSWERED, "PJSIP/disp2", True)
    assert missed_items(db) == []


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


def test_when_the_answer_fails_twice_then_the_call_is_answered_recorded_and_never_missed(
        ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chaos suite's finding: a dispatcher answering during a database outage used to leave the
    answer unwritten ("error while connected"), and the end then journaled the call as abandoned
    with a missed item, so the resident who had been helped was called back."""
    import models.services.calls as calls

    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)
    failing = Failing(calls.mark_call_answered, 2)
    monkeypatch.setattr(calls, "mark_call_answered", failing)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: bool(emu.requests(route="POST /channels")), message="dispatcher rung")
            answered_at = datetime.now(UTC)
            emu.answer("disp1")
            await until(lambda: call_answered(db), message="answer stored")
            emu.hangup(caller)
            await until(lambda: call_ended(db), message="call ended")
            call = last_call(db)
            assert call is not None and _aware(call.answered_at) is not None
            assert abs((_aware(call.answered_at) - answered_at).total_seconds()) < 1  # type: ignore[operator]

    run(main())
    assert failing.calls == 3
    call = last_call(db)
    assert call is not None and call.outcome == CallOutcome.ANSWERED
    assert missed_items(db) == []
    assert emu.requests(route="POST /bridges/{bridgeId}/record")  # recorded from the answer on


def _when(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["timestamp"]).astimezone(UTC)


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else value if value.tzinfo else value.replace(tzinfo=UTC)


def test_when_the_end_of_a_call_cannot_be_written_then_the_sweep_ends_it_at_the_hangup(
        ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The session's write fails for a reason no retry cures; the call would stay "in progress" for
    good. The scheduler's sweep finds its channel gone and ends it at the caller's hangup."""
    import models.services.calls as calls

    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)
    broken = {"on": True}
    end_call = calls.end_call

    def failing(*args: Any, **kwargs: Any) -> Any:
        if broken["on"]:
            raise RuntimeError("a bug in the end of the call")
        return end_call(*args, **kwargs)

    monkeypatch.setattr(calls, "end_call", failing)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec") as app:
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: bool(emu.requests(route="POST /channels")), message="dispatcher rung")
            emu.hangup(caller)
            await until(lambda: not app.dispatcher.sessions, message="session over")
            assert not call_ended(db)
            broken["on"] = False  # (the sweep's own write goes through)
            app.scheduler.sweep_seconds = 0.01
            await until(lambda: call_ended(db), message="ended by the sweep")

    run(main())
    call = last_call(db)
    assert call is not None and (call.outcome, call.answered_at) == (CallOutcome.ABANDONED, None)
    assert _aware(call.ended_at) == _when(emu.events("StasisEnd")[-1])  # the hangup, not the sweep
    [item] = missed_items(db)
    assert item.first_call_id == call.id


def test_when_the_app_restarts_after_the_caller_hung_up_then_the_call_ends_at_the_cdr_end(
        ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path) -> None:
    """Answered, then `openads ari` restarts; meanwhile the caller hangs up. Reconcile hangs up the
    dispatcher's orphan leg and ends the call at the end Asterisk's CDR table gives the caller."""
    from openads.config import AsteriskCdrSettings

    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)
    table = tmp_path / "master.db"
    with sqlite3.connect(table) as conn:
        conn.execute('CREATE TABLE openads_cdr (AcctId INTEGER PRIMARY KEY, uniqueid, start, "end", openads_fallback)')
    cdr = AsteriskCdrSettings(url=f"sqlite:///{table}", table="openads_cdr", poll_seconds=60)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec", cdr=cdr):
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: bool(emu.requests(route="POST /channels")), message="dispatcher rung")
            emu.answer("disp1")
            await until(lambda: call_answered(db), message="answered")
        emu.hangup(caller)  # while no app runs: Asterisk writes the caller's CDR
        call = last_call(db)
        assert call is not None
        real_end = _aware(call.answered_at) + timedelta(seconds=42)  # type: ignore[operator]
        with sqlite3.connect(table) as conn:
            conn.execute("INSERT INTO openads_cdr (uniqueid, start, \"end\", openads_fallback) VALUES (?, ?, ?, '')",
                         (caller.id, _aware(call.started_at).isoformat(), real_end.isoformat()))  # type: ignore[union-attr]
        async with running_app(emu, db, tmp_path / "rec", cdr=cdr) as app2:
            assert app2.last_reconcile is not None and len(app2.last_reconcile.hung_up) == 1
            await until(lambda: call_ended(db), message="ended")

    run(main())
    call = last_call(db)
    assert call is not None and call.outcome == CallOutcome.ANSWERED
    assert _aware(call.ended_at) == _aware(call.answered_at) + timedelta(seconds=42)  # type: ignore[operator]


def test_a_call_that_reached_stasis_as_the_app_was_killed_and_ended_before_its_restart_is_journaled_from_the_cdr(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path) -> None:
    """Issue 11's chaos run (seed 2128): the caller's StasisStart went to an `openads ari` that was
    killed before it wrote anything, and the resident hung up before it was back. The emulator
    writes master.db as Asterisk does; the restarted app finds the call there, in no record of its
    own, and journals it as abandoned with its missed-call item."""
    from websockets.asyncio.client import connect

    from openads.config import AsteriskCdrSettings

    master = tmp_path / "master.db"
    emu, org = _fallback_emulator(make_ari_emulator, cdr_path=master), world.org_a
    setup_inbound(emu, db, org)
    # Read twice at least: the call is the table's last row, held back one poll in case more of its
    # records are still being written (a fallback's).
    cdr = AsteriskCdrSettings(url=f"sqlite:///{master}", table="openads_cdr", poll_seconds=0.2)
    events = emu.url.replace("http://", "ws://") + "/ari/events?app=openads&api_key=openads:openads"

    async def main() -> None:
        async with connect(events):  # the app's WebSocket: Stasis() takes the call
            caller = emu.incoming_call(did(org), CALLER)
            assert emu.channel(caller.id).variables.get("STASISSTATUS") != "FAILED"
        # killed: the socket is gone, nothing was written; the resident hangs up
        emu.hangup(caller)
        assert last_call(db) is None
        async with running_app(emu, db, tmp_path / "rec", cdr=cdr) as app:
            assert app.cdr_source is not None
            await until(lambda: call_ended(db), message="journaled from the CDR")

    run(main())
    call = last_call(db)
    assert call is not None and (call.outcome, call.is_fallback, call.answered_at, call.phone) == (
        CallOutcome.ABANDONED, False, None, "+" + CALLER.lstrip("+"))
    [item] = missed_items(db)
    assert (item.status, item.first_call_id) == (MissedCallStatus.OPEN, call.id)
