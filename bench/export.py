"""Export of ~100 000 journal rows to .xlsx in a child process: its time and peak RSS.

The parent picks a registration period holding 100 000 tickets of the bench organization and runs
`python -m bench.export <url> <from> <to> <path>`; the child measures its own peak itself, from
/proc/self/status (VmHWM). Not the parent's `wait4` rusage: Linux keeps `ru_maxrss` across fork
and exec, so a child started by a bench process of 600 MB reports 600 MB whatever it used (the
export figure carried whatever the bench held before, issue 12). The child also resets the mark
after its imports (`/proc/self/clear_refs`), so the figure is the peak while exporting (the
interpreter and libraries already resident included, as a worker running the export holds them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, select

from bench.common import BENCH_ORG, figure, note
from models.ticket import Ticket

ROWS = 100_000
TIMEOUT_S = 120.0


def period(url: str, n_tickets: int) -> tuple[datetime, datetime, int]:
    """[from, to) with ROWS generated tickets of the bench organization, ending a month before the data's end."""
    t = Ticket.__table__
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            last = conn.scalar(select(func.max(t.c.registered_at)).where(t.c.id <= n_tickets))
            to = last - timedelta(days=30)
            start = conn.scalar(
                select(t.c.registered_at).where(t.c.organization_id == BENCH_ORG, t.c.registered_at < to)
                .order_by(t.c.registered_at.desc()).offset(ROWS - 1).limit(1)
            )
            if start is None:  # small data sets: everything before `to`
                start = conn.scalar(select(func.min(t.c.registered_at)))
            count = conn.scalar(select(func.count()).select_from(t).where(
                t.c.organization_id == BENCH_ORG, t.c.registered_at >= start, t.c.registered_at < to))
    finally:
        engine.dispose()
    return start.replace(tzinfo=UTC), to.replace(tzinfo=UTC), int(count or 0)


def run(url: str, engine: str, n_tickets: int, out_dir: Path) -> bool:
    try:
        import models.export  # noqa: F401
    except ImportError:
        note("models.export not available: export skipped")
        return False
    start, to, expected = period(url, n_tickets)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"export_{engine}.xlsx"
    result = out_dir / f"export_{engine}.json"
    result.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "bench.export", url, start.isoformat(), to.isoformat(), str(path), str(result)]
    log = open(out_dir / f"export_{engine}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + TIMEOUT_S
    rusage = None
    status = 0
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() > deadline:
            proc.kill()
            _, status, rusage = os.wait4(proc.pid, 0)
            proc.returncode = -9
            note(f"export on {engine} killed after {TIMEOUT_S:.0f} s")
            break
        time.sleep(0.02)
    log.close()
    if proc.returncode != 0 or not result.exists():
        tail = (out_dir / f"export_{engine}.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"export child failed on {engine} (exit {proc.returncode}):\n{tail}")
    data = json.loads(result.read_text())
    if data["rows"] != expected:
        raise RuntimeError(f"export wrote {data['rows']} rows, expected {expected}")
    with zipfile.ZipFile(path) as zf:
        bad = zf.testzip()
        if bad is not None:
            raise RuntimeError(f"export produced a broken zip member {bad}")
    size_mb = path.stat().st_size / 1e6
    peak_mb = data["peak_kb"] / 1024 if data.get("peak_kb") else rusage.ru_maxrss / 1024
    figure(f"export_100k_seconds_{engine}", data["seconds"], "s", "<= 3 s", digits=2)
    figure(f"export_100k_peak_rss_{engine}", peak_mb, "MB", "<= 200 MB", digits=0)
    note(f"export {engine}: {data['rows']} rows, {size_mb:.1f} MB file, child wall {data['wall']:.2f} s "
         f"(interpreter and imports included), RSS before the export {data['rss_before_mb']:.0f} MB, peak measured "
         f"{'by the child (VmHWM, reset after imports)' if data.get('peak_kb') else 'by wait4 (inherits the parent)'}")
    path.unlink(missing_ok=True)
    return True


def _child(argv: list[str]) -> int:
    """Only the export: open the database, write the file, report the time."""
    import resource

    wall0 = time.perf_counter()
    url, start, to, path, result = argv
    from models.db import Database
    from models.export import write_journal_xlsx
    from models.queries import JournalFilter

    db = Database(url)
    f = JournalFilter(registered_from=datetime.fromisoformat(start), registered_to=datetime.fromisoformat(to))
    rss_before = (_status_kb("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024
    _reset_peak()
    t0 = time.perf_counter()
    rows = write_journal_xlsx(db, [BENCH_ORG], f, datetime.now(UTC), path)
    seconds = time.perf_counter() - t0
    peak_kb = _status_kb("VmHWM")
    db.dispose()
    Path(result).write_text(json.dumps({
        "rows": rows, "seconds": seconds, "wall": time.perf_counter() - wall0, "rss_before_mb": rss_before,
        "peak_kb": peak_kb,
    }))
    return 0


def _status_kb(field: str) -> int | None:
    """A `VmXxx:` line of /proc/self/status in kB (Linux); None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_peak() -> None:
    """Set the peak RSS mark (VmHWM) to the current RSS (Linux 4.0+), so it measures what follows."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
