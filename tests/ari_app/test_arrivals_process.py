"""The arrivals' lane in a child process (ari_app/arrivals_process.py, `ARI_ARRIVALS_PROCESS`):
calls registered there exactly as on the lane's thread, a child that dies is replaced without a
call lost or registered twice, and a parent killed with -9 leaves no child behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from ari_app.arrivals_process import ArrivalsProcess
from ari_app.db import Db
from ari_app.flows.inbound import register_arrivals, warm_up
from models.call import Call
from models.db import Database
from models.errors import TransitionNotAllowed
from models.outbox import DomainEvent
from models.services.calls import InboundArrival, UnknownDid
from tests.ari_app.test_app_support import did, read

ROOT = Path(__file__).resolve().parents[2]


def _arrival(did_: str, caller: str, channel: str) -> InboundArrival:
    return InboundArrival(did=did_, caller=caller, channel_id=channel)


def _ringing_channels(db: Database) -> list[str]:
    channel_of = read(db, lambda s: dict(s.execute(select(Call.id, Call.channel_id)).all()))
    return read(db, lambda s: [channel_of[e.payload["call_id"]] for e in s.scalars(
        select(DomainEvent).where(DomainEvent.name == "call.ringing").order_by(DomainEvent.id))])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (not reaped yet) is gone as far as the test is concerned
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# Batches run in the child: module-level (the child imports them by name).

def die_after_commit(session: Any, items: list[Any]) -> list[Any]:
    """Register, then die right after the commit (once: the marker file says it happened)."""
    marker = Path(os.environ["OPENADS_TEST_MARKER"])
    results = register_arrivals(session, items)
    if not marker.exists():
        marker.write_text("died")
        event.listen(session, "after_commit", lambda _s: os.kill(os.getpid(), signal.SIGKILL))
    return results


def refuse_transition(_session: Any, items: list[Any]) -> list[Any]:
    raise TransitionNotAllowed("new", "done")


@pytest.fixture
def child(database_url: str, db: Database) -> Any:
    process = ArrivalsProcess(database_url, None, warm_up=warm_up)
    yield process
    process.close()


def test_calls_registered_by_the_child_process_get_their_cards_and_events(db: Database, world: Any,
                                                                          child: ArrivalsProcess) -> None:
    lane = Db(db)
    lane.use_process(child)
    pid = child.start()
    assert pid != os.getpid() and _alive(pid)

    async def main() -> list[Any]:
        calls = [lane.arrive(register_arrivals, _arrival(did(world.org_a), f"+7916000000{k}", f"proc-{k}"))
                 for k in range(3)]
        calls.append(lane.arrive(register_arrivals, _arrival(did(world.org_a), "+79161234567", "proc-known")))
        return await asyncio.gather(*calls)

    try:
        regs = asyncio.run(main())
    finally:
        lane.close()
    assert [r.call.channel_id for r in regs] == ["proc-0", "proc-1", "proc-2", "proc-known"]
    assert regs[-1].display_name == "Леонидов кв.30"  # the caller card was read in the child
    assert sorted(_ringing_channels(db)) == sorted(["proc-0", "proc-1", "proc-2", "proc-known"])
    warm = read(db, lambda s: s.scalar(select(func.count()).select_from(Call).where(
        Call.channel_id.like("openads-warm-up-%"))))
    assert warm == 0  # the child's warm-up left nothing behind


def test_errors_cross_the_process_boundary(db: Database, world: Any, child: ArrivalsProcess) -> None:
    lane = Db(db)
    lane.use_process(child)

    async def main() -> tuple[Any, Any]:
        unknown = lane.arrive(register_arrivals, _arrival("+78120000000", "+79160000002", "no-such-did"))
        odd = lane.arrive(refuse_transition, None)
        return tuple(await asyncio.gather(unknown, odd, return_exceptions=True))  # type: ignore[return-value]

    try:
        unknown, odd = asyncio.run(main())
    finally:
        lane.close()
    assert isinstance(unknown, UnknownDid)  # the flow sends such a call to the dialplan
    assert isinstance(odd, Exception) and "TransitionNotAllowed" in str(odd)
    assert _ringing_channels(db) == []


def test_a_child_killed_between_calls_is_replaced(db: Database, world: Any, child: ArrivalsProcess) -> None:
    lane = Db(db)
    lane.use_process(child)
    first = child.start()
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _alive(first) and time.monotonic() < deadline:
        time.sleep(0.05)

    try:
        reg = asyncio.run(lane.arrive(register_arrivals, _arrival(did(world.org_a), "+79161234567", "after-kill")))
    finally:
        lane.close()
    assert reg.call.channel_id == "after-kill"
    assert child.restarts == 1
    assert _ringing_channels(db) == ["after-kill"]


def test_a_child_dying_right_after_its_commit_registers_the_call_once(
        db: Database, world: Any, child: ArrivalsProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENADS_TEST_MARKER", str(tmp_path / "died"))  # inherited by the spawned child
    lane = Db(db)
    lane.use_process(child)
    try:
        reg = asyncio.run(lane.arrive(die_after_commit, _arrival(did(world.org_a), "+79161234567", "dies")))
    finally:
        lane.close()
    assert (tmp_path / "died").exists() and child.restarts == 1
    assert reg.call.channel_id == "dies" and reg.display_name == "Леонидов кв.30"
    assert _ringing_channels(db) == ["dies"]  # the group ran again in the new child: a replay, no second event
    assert read(db, lambda s: s.scalar(select(func.count()).select_from(Call))) == 1


def test_a_parent_killed_with_minus_9_leaves_no_child_behind(database_url: str, db: Database) -> None:
    script = textwrap.dedent(f"""
        import os, signal
        from ari_app.arrivals_process import ArrivalsProcess
        if __name__ == "__main__":
            print(ArrivalsProcess({database_url!r}, None).start(), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    pid = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
