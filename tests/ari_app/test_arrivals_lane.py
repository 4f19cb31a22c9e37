"""New calls first: the arrivals' lane of `ari_app.db.Db` (registrations committed in groups, each
with its own result or error, ahead of the other work), the ARI client's gate on it, the
scheduler skipping wake-ups for far deadlines, and the warm-up at start that leaves nothing."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from ari_app.db import Db
from ari_app.flows.inbound import register_arrivals, warm_up
from ari_app.scheduler import Scheduler
from models.base import utcnow
from models.call import Call
from models.db import Database
from models.outbox import DomainEvent
from models.services.calls import InboundArrival, UnknownDid
from tests.ari_app.test_app_support import did, read


def _hold(release: threading.Event) -> Any:
    """A batch that keeps the lane busy until released (the others queue behind it meanwhile)."""
    return lambda _s, items: [release.wait(5) for _ in items]


def _arrival(did_: str, caller: str, channel: str) -> InboundArrival:
    return InboundArrival(did=did_, caller=caller, channel_id=channel)


def _counts(db: Database) -> tuple[int, int]:
    return read(db, lambda s: (s.scalar(select(func.count()).select_from(Call)),
                               s.scalar(select(func.count()).select_from(DomainEvent))))


def test_when_calls_arrive_together_then_each_is_registered_with_its_card_and_fewer_transactions(
        db: Database, world: Any) -> None:
    lane = Db(db, arrival_workers=1)
    release = threading.Event()

    async def main() -> list[Any]:
        first = asyncio.ensure_future(lane.arrive(_hold(release), None))
        await asyncio.sleep(0)  # the lane thread takes the first one alone
        calls = [asyncio.ensure_future(lane.arrive(
            register_arrivals, _arrival(did(world.org_a), f"+7916000000{k}", f"lane-{k}"))) for k in range(5)]
        calls.append(asyncio.ensure_future(lane.arrive(
            register_arrivals, _arrival(did(world.org_a), "+79161234567", "lane-known"))))
        release.set()
        await first
        return await asyncio.gather(*calls)

    try:
        regs = asyncio.run(main())
    finally:
        lane.close()
    assert [r.call.channel_id for r in regs] == [*(f"lane-{k}" for k in range(5)), "lane-known"]
    assert [r.display_name for r in regs] == [""] * 5 + ["Леонидов кв.30"]
    assert lane.arrival_groups == 2  # the first alone, the six that queued behind it in one transaction
    channel_of = read(db, lambda s: dict(s.execute(select(Call.id, Call.channel_id)).all()))
    ringing = read(db, lambda s: [channel_of[e.payload["call_id"]] for e in s.scalars(
        select(DomainEvent).where(DomainEvent.name == "call.ringing").order_by(DomainEvent.id))])
    assert ringing == [*(f"lane-{k}" for k in range(5)), "lane-known"]


def test_when_one_arrival_of_a_group_fails_then_only_it_fails_and_the_others_are_committed(
        db: Database, world: Any) -> None:
    lane = Db(db, arrival_workers=1)
    release = threading.Event()

    async def main() -> list[Any]:
        first = asyncio.ensure_future(lane.arrive(_hold(release), None))
        await asyncio.sleep(0)
        futures = [
            asyncio.ensure_future(lane.arrive(register_arrivals, _arrival(did(world.org_a), "+79160000001", "ok-1"))),
            asyncio.ensure_future(lane.arrive(register_arrivals, _arrival("+78120000000", "+79160000002", "bad"))),
            asyncio.ensure_future(lane.arrive(register_arrivals, _arrival(did(world.org_b), "+79160000003", "ok-2"))),
        ]
        release.set()
        await first
        return await asyncio.gather(*futures, return_exceptions=True)

    try:
        ok1, bad, ok2 = asyncio.run(main())
    finally:
        lane.close()
    assert isinstance(bad, UnknownDid)
    assert (ok1.call.channel_id, ok2.call.channel_id) == ("ok-1", "ok-2")
    assert read(db, lambda s: sorted(s.scalars(select(Call.channel_id)))) == ["ok-1", "ok-2"]


def test_when_a_new_deadline_is_after_the_planned_pass_then_the_scheduler_is_not_woken() -> None:
    async def main() -> tuple[bool, bool, bool]:
        scheduler = Scheduler(app=None, poll_seconds=1.0)  # type: ignore[arg-type]
        scheduler._next_pass_at = utcnow() + timedelta(seconds=1)
        scheduler.wake(utcnow() + timedelta(minutes=5))
        far = scheduler._wake.is_set()
        scheduler.wake(utcnow() + timedelta(milliseconds=10))
        near = scheduler._wake.is_set()
        scheduler._wake.clear()
        scheduler.wake()
        plain = scheduler._wake.is_set()
        return far, near, plain

    assert asyncio.run(main()) == (False, True, True)


def test_warm_up_registers_a_call_and_leaves_no_trace(db: Database, world: Any) -> None:
    before = _counts(db)
    with db.write() as s:
        assert warm_up(s) is True
    assert _counts(db) == before


def test_warm_up_without_any_hotline_does_nothing(db: Database) -> None:
    with db.write() as s:
        assert warm_up(s) is False
    assert _counts(db) == (0, 0)


def test_when_stopped_just_as_it_is_woken_then_the_scheduler_still_stops() -> None:
    class Idle(Scheduler):
        async def run_once(self) -> float:
            return 10.0

    async def main() -> bool:
        scheduler = Idle(app=None)  # type: ignore[arg-type]
        task = asyncio.ensure_future(scheduler.run())
        await asyncio.sleep(0.01)  # waiting for a wake-up
        scheduler.wake()
        task.cancel()  # in the same tick: wait_for returns the wake-up instead of raising
        done, _ = await asyncio.wait([task], timeout=2)
        return task in done and task.cancelled()

    assert asyncio.run(main()) is True
