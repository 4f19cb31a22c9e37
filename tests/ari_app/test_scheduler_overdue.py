"""ПП 416 T2: when an open missed-call item's 10-minute deadline passes, the ARI app's scheduler
announces it once (`missed_call.overdue`), also while the ARI connection is down (DB only)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ari_app.app import AriApp, AriSettings
from ari_app.flows.base import FlowConfig
from models.base import utcnow
from models.db import Database
from models.missed_call import MissedCall
from models.organization import User
from models.outbox import DomainEvent
from models.services.callbacks import close_missed_call
from models.services.calls import mark_call_missed, register_inbound_call
from tests.ari_app.test_app_support import did, read


def _missed(db: Database, org: Any, phone: str, started_ago: timedelta) -> int:
    with db.write() as s:
        call = register_inbound_call(s, did=did(org), caller=phone, channel_id=f"ch-{phone}",
                                     started_at=utcnow() - started_ago)
        item = mark_call_missed(s, org_id=org.id, call_id=call.id)
        assert item is not None
        return item.id


def _overdue_events(db: Database) -> list[tuple[int | None, Any, str]]:
    return read(db, lambda s: [(e.organization_id, e.payload["missed_call_id"], e.payload["action"])
                               for e in s.scalars(select(DomainEvent).where(DomainEvent.name == "missed_call.overdue")
                                                  .order_by(DomainEvent.id))])


def test_when_the_deadline_passes_then_missed_call_overdue_is_emitted_once_per_open_item(
    db: Database, world: Any, tmp_path: Path,
) -> None:
    late_a = _missed(db, world.org_a, "79161234567", timedelta(minutes=10, seconds=5))
    late_b = _missed(db, world.org_b, "79031112233", timedelta(minutes=10, seconds=1))
    closed = _missed(db, world.org_a, "79035556677", timedelta(minutes=11))
    # 10 s short of its deadline: a loaded CI machine took over half a second between this line and the pass.
    fresh = _missed(db, world.org_a, "79037778899", timedelta(minutes=9, seconds=50))
    with db.write() as s:
        close_missed_call(s, org_id=world.org_a.id, missed_call_id=closed, reason="дозвонились с мобильного",
                          by=s.get_one(User, world.dispatcher_a.id))
    settings = AriSettings(url="http://127.0.0.1:9", user="openads", password="openads", app="openads",
                           flow=FlowConfig(recordings_dir=tmp_path))
    app = AriApp(settings, db, scheduler_poll=60.0)  # never connected: the pass still runs its DB part

    async def main() -> tuple[float, float]:
        try:
            first = await app.scheduler.run_once()
            second = await app.scheduler.run_once()
            return first, second
        finally:
            await app.ari.aclose()
            app.db.close()

    first, second = asyncio.run(main())
    # Earliest deadline first, each organization's item on its own stream; once only.
    assert _overdue_events(db) == [(world.org_a.id, late_a, "overdue"), (world.org_b.id, late_b, "overdue")]
    stamped = read(db, lambda s: {m.id: m.overdue_notified_at is not None for m in s.scalars(select(MissedCall))})
    assert stamped == {late_a: True, late_b: True, closed: False, fresh: False}
    # The next pass is due at the fresh item's deadline (10 s away), not after the poll (60 s).
    assert 0 < first <= 10 and 0 < second <= 10
