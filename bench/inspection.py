"""The inspection pack (decision 0038) of the bench organization for about a month holding
BENCH_INSPECTION_TICKETS tickets (default 30 000) out of the BENCH_TICKETS in the database, built
in a child process: its time and peak RSS (the child's own VmHWM, reset after its imports, as in
bench/export.py).

The parent picks whole local days ending a month before the data's end, going back until the
period holds the wanted number of the organization's tickets (fewer when the data set is small);
the child runs models/services/inspection.py `build_pack` exactly as the job does and checks the
ZIP (every member's SHA-256 against manifest.txt). The generated data has no outgoing messages:
the parent adds what a real month has (two SMS per ticket, two e-mails per emergency) once.

Environment: BENCH_INSPECTION_TICKETS (30 000), BENCH_INSPECTION_TIMEOUT (seconds, 300).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, func, select

from bench.common import BENCH_ORG, figure, note
from bench.export import _reset_peak, _status_kb
from models.organization import Organization
from models.ticket import Ticket

TICKETS = int(os.environ.get("BENCH_INSPECTION_TICKETS", "30000"))
TIMEOUT_S = float(os.environ.get("BENCH_INSPECTION_TIMEOUT", "300"))


def period(url: str, n_tickets: int, wanted: int) -> tuple[date, date, int]:
    """Local days [from, to] of the bench organization holding about `wanted` tickets."""
    t = Ticket.__table__
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tz = ZoneInfo(conn.scalar(select(Organization.__table__.c.timezone)
                                      .where(Organization.__table__.c.id == BENCH_ORG)) or "Europe/Moscow")
            last = conn.scalar(select(func.max(t.c.registered_at)).where(t.c.id <= n_tickets))
            day_to = (last.replace(tzinfo=UTC) - timedelta(days=30)).astimezone(tz).date()
            end = datetime.combine(day_to + timedelta(days=1), datetime.min.time(), tz).astimezone(UTC)
            nth = conn.scalar(
                select(t.c.registered_at).where(t.c.organization_id == BENCH_ORG, t.c.registered_at < end)
                .order_by(t.c.registered_at.desc()).offset(max(wanted - 1, 0)).limit(1))
            if nth is None:
                nth = conn.scalar(select(func.min(t.c.registered_at)).where(t.c.organization_id == BENCH_ORG))
            day_from = nth.replace(tzinfo=UTC).astimezone(tz).date()
            start = datetime.combine(day_from, datetime.min.time(), tz).astimezone(UTC)
            count = conn.scalar(select(func.count()).select_from(t).where(
                t.c.organization_id == BENCH_ORG, t.c.registered_at >= start, t.c.registered_at < end))
    finally:
        engine.dispose()
    return day_from, day_to, int(count or 0)


def seed_messages(url: str, day_from: date, day_to: date) -> int:
    """The messages a real month has and the generated data lacks: for each of the period's tickets
    of the bench organization two resident SMS (registered, done) with a delivery report, and for
    each emergency the municipality's two e-mails (start, liquidation). Once per database (a
    marker purpose); returns how many were added."""
    from sqlalchemy import insert

    from models.outbox import OutboxMessage

    t, o = Ticket.__table__, OutboxMessage.__table__
    engine = create_engine(url)
    added = 0
    try:
        with engine.begin() as conn:
            tz = ZoneInfo(conn.scalar(select(Organization.__table__.c.timezone)
                                      .where(Organization.__table__.c.id == BENCH_ORG)) or "Europe/Moscow")
            start = datetime.combine(day_from, datetime.min.time(), tz).astimezone(UTC)
            end = datetime.combine(day_to + timedelta(days=1), datetime.min.time(), tz).astimezone(UTC)
            if conn.scalar(select(func.count()).select_from(o).where(o.c.organization_id == BENCH_ORG,
                                                                     o.c.purpose == "resident_registered")):
                return 0
            batch: list[dict[str, object]] = []
            rows = conn.execute(select(t.c.id, t.c.number, t.c.registered_at, t.c.reporter_phone, t.c.is_emergency)
                                .where(t.c.organization_id == BENCH_ORG, t.c.registered_at >= start,
                                       t.c.registered_at < end)).all()
            for tid, number, at, phone, emergency in rows:
                common = {"organization_id": BENCH_ORG, "ticket_id": tid, "attempts": 1, "max_attempts": 10,
                          "last_error": "", "created_at": at, "next_attempt_at": at, "sent_at": at,
                          "status": "sent"}
                for event in ("registered", "done"):
                    batch.append({**common, "channel": "sms", "purpose": f"resident_{event}",
                                  "recipient": phone or "+79160000000", "subject": "",
                                  "body": f"Заявка № {number}: {'зарегистрирована' if event == 'registered' else 'выполнена'}. "
                                          "Управляющая компания, телефон 8 800 000-00-00",
                                  "provider_message_id": f"bench-{tid}-{event}", "delivery_status": "delivered",
                                  "delivery_checked_at": at})
                if emergency:
                    for purpose in ("municipality_emergency", "municipality_emergency_done"):
                        batch.append({**common, "channel": "email", "purpose": purpose,
                                      "recipient": "edds@example.org", "subject": f"Авария — заявка № {number}",
                                      "body": f"Заявка № {number}. Характер повреждения: авария. Срок локализации: 30 мин."
                                              "\nАварийно-диспетчерская служба", "provider_message_id": None,
                                      "delivery_status": None, "delivery_checked_at": None})
                if len(batch) >= 5000:
                    conn.execute(insert(o), batch)
                    added += len(batch)
                    batch.clear()
            if batch:
                conn.execute(insert(o), batch)
                added += len(batch)
    finally:
        engine.dispose()
    return added


def run(url: str, engine: str, n_tickets: int, out_dir: Path) -> bool:
    day_from, day_to, expected = period(url, n_tickets, TICKETS)
    seeded = seed_messages(url, day_from, day_to)
    if seeded:
        note(f"inspection {engine}: {seeded} resident and municipality messages added for the period")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"inspection_{engine}.zip"
    result = out_dir / f"inspection_{engine}.json"
    result.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "bench.inspection", url, day_from.isoformat(), day_to.isoformat(), str(path),
           str(result)]
    log_path = out_dir / f"inspection_{engine}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            note(f"inspection pack on {engine} killed after {TIMEOUT_S:.0f} s")
    if proc.returncode != 0 or not result.exists():
        tail = log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"inspection child failed on {engine} (exit {proc.returncode}):\n{tail}")
    data = json.loads(result.read_text())
    if data["tickets"] != expected:
        raise RuntimeError(f"the pack counted {data['tickets']} tickets, expected {expected}")
    figure(f"inspection_pack_{engine}", data["seconds"], "s", "<= 30 s", digits=2)
    figure(f"inspection_pack_peak_rss_{engine}", data["peak_kb"] / 1024 if data.get("peak_kb") else 0.0, "MB",
           "<= 300 MB", digits=0)
    note(f"inspection {engine}: {day_from}..{day_to}, {data['tickets']} tickets of the organization "
         f"(BENCH_INSPECTION_TICKETS={TICKETS}) among {n_tickets}; ZIP {data['size'] / 1e6:.1f} MB, "
         f"{data['files']} files, manifest checked; RSS before {data['rss_before_mb']:.0f} MB")
    path.unlink(missing_ok=True)
    return True


def _child(argv: list[str]) -> int:
    """Only the pack: build it, check its manifest, report the time and the peak."""
    import resource

    url, day_from, day_to, path, result = argv
    from models.db import Database
    from models.services.inspection import build_pack

    db = Database(url)
    rss_before = (_status_kb("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024
    _reset_peak()
    t0 = time.perf_counter()
    out = build_pack(db, org_id=BENCH_ORG, day_from=date.fromisoformat(day_from), day_to=date.fromisoformat(day_to),
                     now=datetime.now(UTC), path=Path(path), requested_by="bench")
    seconds = time.perf_counter() - t0
    peak_kb = _status_kb("VmHWM")
    db.dispose()
    with zipfile.ZipFile(path) as zf:
        for line in zf.read("manifest.txt").decode().splitlines():
            digest, name = line.split("  ", 1)
            if hashlib.sha256(zf.read(name)).hexdigest() != digest:
                raise RuntimeError(f"manifest mismatch: {name}")
        files = len(zf.namelist())
    Path(result).write_text(json.dumps({"tickets": out["tickets"], "seconds": seconds, "peak_kb": peak_kb,
                                        "rss_before_mb": rss_before, "size": out["size"], "files": files}))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
