"""Housing import jobs: check a stored upload (nothing written), then apply it in batches.

`check`: reads the file once, plans every row against the database in read sessions (one per
batch) and keeps the report (counts, every row's problems, the first rows) as the job's result.

`apply`: the same plan, then each batch's writes (one executemany INSERT per table), the report so
far and the checkpoint (the file row the batch ended on) in one short write transaction. The batch
size adapts so that the write takes about `TARGET_WRITE_SECONDS` (on SQLite 30 ms: it holds its one
write lock for that long, then the dispatchers' requests go in), and on SQLite it is never more than
1000 rows; after each batch the WAL is copied back into the database file outside any transaction
(`Database.checkpoint_wal`), so no batch's commit (nor a dispatcher's) runs that checkpoint itself. Each batch's lock hold (from the moment the transaction has the lock to the end of its
commit, not the wait for it) is logged at debug, with the rows, and `make bench` reports the longest. A worker killed mid-import: the next claim skips the rows up to the checkpoint and
goes on with the counts as committed, so nothing is applied twice (and applying it twice would
change nothing: the import is idempotent).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError

from models.errors import ImportFailed
from models.housing_file import HousingRows, estimate_data_rows, parse_housing_file
from models.rules.housing_rows import RowData
from models.services.housing_import import Importer, ImportReport, batches
from openads.jobs.context import JobContext, JobFailed, Retry

log = logging.getLogger(__name__)

# How long a batch's write transaction should take. SQLite: the time its one write lock is held (the
# bound asked for is 0.1 s, issue 12 item B4; on a loaded machine the slowest batch takes about three
# times the usual). PostgreSQL locks rows, and only the import's own: larger
# batches there mean fewer commits (each an fsync) and fewer round trips per row.
TARGET_WRITE_SECONDS = {"sqlite": 0.03, "postgresql": 0.25}
FIRST_BATCH = 100
MIN_BATCH = 10
MAX_BATCH = {"sqlite": 1000, "postgresql": 5000}
CHECK_BATCH = 1000


class BatchSizer:
    """Rows per batch, adapted after each write to take about `target` seconds."""

    def __init__(self, start: int = FIRST_BATCH, target: float = TARGET_WRITE_SECONDS["sqlite"],
                 low: int = MIN_BATCH, high: int = MAX_BATCH["sqlite"]) -> None:
        self.current = max(low, min(high, start))
        self.target, self.low, self.high = target, low, high

    def size(self) -> int:
        return self.current

    def took(self, seconds: float, rows: int) -> None:
        if rows <= 0:
            return
        ideal = rows * self.target / max(seconds, 1e-4)
        # Shrink at once, grow by at most half: one slow write (a busy disk) must not be repeated.
        wanted = min(ideal, self.current * 1.5) if ideal > self.current else ideal
        self.current = int(max(self.low, min(self.high, wanted)))


def _open(ctx: JobContext) -> tuple[Path, HousingRows]:
    path = ctx.var_path(str(ctx.params.get("file") or ""))
    if not path.is_file():
        raise JobFailed("загруженный файл больше не хранится: загрузите его заново")
    try:
        rows = parse_housing_file(path, str(ctx.params.get("filename") or path.name))
    except ImportFailed as exc:
        raise JobFailed(exc.message) from exc
    return path, rows


def _reading(rows: HousingRows) -> Iterator[RowData]:
    try:
        yield from rows
    except ImportFailed as exc:  # a file broken further down (a damaged sheet)
        raise JobFailed(exc.message) from exc


def check(ctx: JobContext) -> tuple[dict[str, Any], int]:
    """Count what the file would change and list its rows' problems; writes nothing but progress."""
    path, rows = _open(ctx)
    total = ctx.claim.total or rows.total_hint or estimate_data_rows(path)
    with ctx.db.read() as s:
        importer = Importer(s, ctx.claim.organization_id, dry_run=True)
    report = importer.report
    report.columns, report.ignored_columns = list(rows.columns), list(rows.ignored_columns)
    done = 0
    try:
        for chunk in batches(_reading(rows), lambda: CHECK_BATCH):
            ctx.check_stop()
            with ctx.db.read() as s:
                importer.plan(s, chunk)
            done += len(chunk)
            ctx.progress(done, max(total or 0, done))
    finally:
        rows.close()
    if report.rows_total == 0:
        raise JobFailed("в файле нет строк с данными")
    return report.to_state(), done


def apply(ctx: JobContext) -> tuple[dict[str, Any], int]:
    """Apply the file in batches, resuming after the last committed one."""
    path, rows = _open(ctx)
    last_row = int(ctx.state.get("last_row") or 0)
    report = ImportReport.from_state(ctx.result) if last_row else ImportReport()
    report.columns, report.ignored_columns = list(rows.columns), list(rows.ignored_columns)
    total = ctx.claim.total or rows.total_hint or estimate_data_rows(path)
    dialect = "sqlite" if ctx.db.is_sqlite else "postgresql"
    sizer = BatchSizer(int(ctx.state.get("batch") or FIRST_BATCH), TARGET_WRITE_SECONDS[dialect], MIN_BATCH,
                       MAX_BATCH[dialect])
    with ctx.db.read() as s:
        importer = Importer(s, ctx.claim.organization_id, report=report)
    if last_row:
        log.info("housing import job %s: resuming after file row %s (%s rows done)", ctx.claim.job_id, last_row,
                 report.rows_total)
    remaining = (r for r in _reading(rows) if r.row > last_row)
    try:
        for chunk in batches(remaining, sizer.size):
            ctx.check_stop()
            planned = time.perf_counter()
            with ctx.db.read() as s:
                batch = importer.plan(s, chunk)
            started = time.perf_counter()
            gc.disable()  # no collection of the importer's caches while the write lock is held
            try:
                with ctx.db.write() as s:
                    s.connection()  # BEGIN (IMMEDIATE on SQLite): waits until the write lock is ours
                    locked = time.perf_counter()
                    importer.write(s, batch)
                    ctx.checkpoint(s, done=report.rows_total, total=max(total or 0, report.rows_total),
                                   state={"last_row": batch.last_row, "batch": sizer.size()},
                                   result=report.to_state())
            except IntegrityError as exc:
                # Another writer added the same house, premise or account between our read and our
                # write: plan the batch again against what is committed now.
                raise Retry(f"batch up to file row {batch.last_row}: {exc.orig}") from exc
            finally:
                gc.enable()
            done = time.perf_counter()
            held = done - locked
            log.debug("housing import job %s: %d rows up to file row %d, planned in %.0f ms, written in %.0f ms, "
                      "lock held %.1f ms", ctx.claim.job_id, len(chunk), batch.last_row, (started - planned) * 1000,
                      (done - started) * 1000, held * 1000)
            sizer.took(held, len(chunk))
            importer.written()
            ctx.db.checkpoint_wal()  # the WAL copied back now, outside any transaction
    finally:
        rows.close()
    if report.rows_total == 0:
        raise JobFailed("в файле нет строк с данными")
    report.applied = True
    return report.to_state(), report.rows_total


def discard_upload(ctx: JobContext) -> None:
    """The import is done: its upload (residents' personal data) is not kept."""
    try:
        ctx.var_path(str(ctx.params.get("file") or "")).unlink(missing_ok=True)
    except JobFailed:
        pass
