"""Call-handling evidence of a month (issue 14 item 3; decision 0037): `daily_call_stats` and the
calls journal export for one month of the bench organization.

`BENCH_STATS_CALLS` (30 000) inbound calls are loaded once into a past month (January 2020, far
from the generated tickets' live data): 85 % answered (a tenth of them after 5 minutes), the rest
missed items, two thirds of them called back (a quarter of those late), one in five with a voice
message (half reviewed late). Reused when already there. Figures: the month's statistics (what
the compliance report and the inspection pack read) and the month's calls export to .xlsx.
"""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text

from bench.common import BENCH_ORG, figure, note
from models.call import Call, CallDirection, CallKind, CallOutcome
from models.call_stats import daily_call_stats
from models.db import Database
from models.export_calls import write_calls_xlsx
from models.missed_call import CallbackAttempt, CloseReason, MissedCall, MissedCallCall, MissedCallStatus
from models.queries_calls import CallFilter
from models.recording import Recording, RecordingKind

CALLS = int(os.environ.get("BENCH_STATS_CALLS", "30000"))
MONTH_START = date(2020, 1, 1)
MONTH_END = date(2020, 1, 31)
PREFIX = "bench-stats-"


def _load(db: Database) -> int:
    rng = random.Random(14)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    span = (MONTH_END - MONTH_START).days * 86400 + 80000
    with db.write() as s:
        calls, items, links, attempts, recordings = [], [], [], [], []
        base = int(s.scalar(select(func.coalesce(func.max(Call.id), 0))) or 0) + 1
        item_base = int(s.scalar(select(func.coalesce(func.max(MissedCall.id), 0))) or 0) + 1
        rec_base = int(s.scalar(select(func.coalesce(func.max(Recording.id), 0))) or 0) + 1
        cid, iid, rid = base, item_base, rec_base
        for n in range(CALLS):
            at = start + timedelta(seconds=rng.randrange(span))
            phone = f"+7916{n:07d}"
            common = dict(organization_id=BENCH_ORG, direction=CallDirection.INBOUND, kind=CallKind.INBOUND,
                          phone=phone, phone_raw=phone, channel_id=f"{PREFIX}{n}", started_at=at, is_fallback=False)
            if rng.random() < 0.85:
                wait = rng.randrange(301, 600) if rng.random() < 0.1 else rng.randrange(5, 290)
                calls.append(dict(common, id=cid, answered_at=at + timedelta(seconds=wait),
                                  ended_at=at + timedelta(seconds=wait + 120), outcome=CallOutcome.ANSWERED,
                                  wait_seconds=wait))
                cid += 1
                continue
            voice = rng.random() < 0.2
            calls.append(dict(common, id=cid, ended_at=at + timedelta(seconds=120), wait_seconds=120,
                              outcome=CallOutcome.VOICEMAIL if voice else CallOutcome.MISSED_TIMEOUT))
            first = cid
            cid += 1
            item = dict(id=iid, organization_id=BENCH_ORG, phone=phone, first_call_id=first, first_call_at=at,
                        last_call_at=at, calls_count=1, deadline_at=at + timedelta(minutes=10),
                        status=MissedCallStatus.OPEN, close_note="")
            links.append(dict(organization_id=BENCH_ORG, call_id=first, missed_call_id=iid))
            if voice:
                received = at + timedelta(seconds=150)
                late = rng.random() < 0.5
                recordings.append(dict(id=rid, organization_id=BENCH_ORG, call_id=first, kind=RecordingKind.VOICEMAIL,
                                       path=f"{BENCH_ORG}/bench-stats/{first}.wav", format="wav", created_at=received,
                                       reviewed_at=received + timedelta(minutes=25 if late else 4)))
                item["voice_message_id"] = rid
                rid += 1
            if rng.random() < 0.66:
                reached = at + timedelta(minutes=14 if rng.random() < 0.25 else 6)
                calls.append(dict(organization_id=BENCH_ORG, id=cid, direction=CallDirection.OUTBOUND,
                                  kind=CallKind.CALLBACK, phone=phone, phone_raw=phone, channel_id=f"{PREFIX}cb{n}",
                                  started_at=reached - timedelta(seconds=20), answered_at=reached,
                                  ended_at=reached + timedelta(minutes=1), outcome=CallOutcome.ANSWERED,
                                  is_fallback=False, wait_seconds=20))
                attempts.append(dict(organization_id=BENCH_ORG, missed_call_id=iid, call_id=cid,
                                     started_at=reached - timedelta(seconds=20), ended_at=reached + timedelta(minutes=1),
                                     outcome=CallOutcome.ANSWERED, resident_answered=True, resident_answered_at=reached))
                item.update(status=MissedCallStatus.CLOSED, closed_at=reached, close_reason=CloseReason.RESIDENT_ANSWERED,
                            closing_call_id=cid)
                cid += 1
            items.append(item)
            iid += 1
        for table, rows in ((Call, calls), (Recording, recordings), (MissedCall, items), (MissedCallCall, links),
                            (CallbackAttempt, attempts)):
            keys = sorted({k for row in rows for k in row})  # one shape per statement
            rows = [{k: row.get(k) for k in keys} for row in rows]
            for i in range(0, len(rows), 2000):
                s.execute(insert(table), rows[i:i + 2000])
        # The planner's statistics for what was just loaded, as autovacuum would take them on a live
        # server: without them PostgreSQL still expects the tables empty (a nested loop took 3 s).
        for table in (Call, Recording, MissedCall, MissedCallCall, CallbackAttempt):
            s.execute(text(f"ANALYZE {table.__tablename__}"))
        return len(calls)


def run(url: str, engine: str, out_dir: Path) -> None:
    db = Database(url)
    try:
        with db.read() as s:
            loaded = int(s.scalar(select(func.count()).select_from(Call).where(Call.channel_id.like(f"{PREFIX}%"))) or 0)
        if not loaded:
            started = time.perf_counter()
            loaded = _load(db)
            note(f"call_stats: loaded {loaded} calls of January 2020 in {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        with db.read() as s:
            stats = daily_call_stats(s, org_id=BENCH_ORG, start=MONTH_START, end=MONTH_END)
        figure(f"call_stats_month_{engine}", time.perf_counter() - started, "s", "<= 3", digits=2)
        total: Any = stats.totals
        note(f"call_stats: {total.calls} calls, {total.missed} missed, {len(stats.breaches)} breaches")
        out_dir.mkdir(parents=True, exist_ok=True)
        f = CallFilter(started_from=datetime(2020, 1, 1, tzinfo=UTC), started_to=datetime(2020, 2, 1, tzinfo=UTC))
        started = time.perf_counter()
        rows = write_calls_xlsx(db, [BENCH_ORG], f, datetime.now(UTC), out_dir / f"calls-{engine}.xlsx")
        figure(f"calls_export_month_{engine}", time.perf_counter() - started, "s", "<= 30")
        note(f"calls export: {rows} rows")
    finally:
        db.dispose()
