"""The background job runner: `openads worker` runs it in a thread of its own, beside the outbox
loop, so a long import never delays a notification; `openads import-housing` runs its own job with it.

One job at a time per runner: claim (a lease and a fresh token), run its handler, finish or fail.
The handler commits a checkpoint with every batch, renewing the lease. A runner stopped by SIGTERM
gives the job back at its next batch; a runner killed outright leaves the lease to expire
(`LEASE`), and the next claim resumes from the last checkpoint. The database unavailable or a lost
race (`Retry`): the handler starts again from the committed checkpoint after a growing pause, as
long as the lease is ours. Any other error fails the job with its Russian message (the job's page
shows it); a bug is logged with its traceback and shown as an internal error.

Housekeeping (every `HOUSEKEEPING_EVERY`): the day's recordings purges are queued, files of jobs
finished more than `FILE_RETENTION` ago are deleted (uploads and exports hold personal data), and
finished jobs older than `JOB_RETENTION` are removed.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, exists, or_, select

from models.base import utcnow
from models.db import Database, is_unavailable
from models.errors import DomainError
from models.job import FINISHED, Job, JobKind, JobStatus
from models.services.jobs import (
    Claim,
    LeaseLost,
    claim_job,
    fail_job,
    finish_job,
    release_job,
    update_result,
)
from openads.jobs import export, housing, inspection, recordings
from openads.jobs.context import JobContext, JobFailed, JobStopped, Retry

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
POLL_SECONDS = 1.0
RETRY_FIRST = 0.5
RETRY_MAX = 30.0
HOUSEKEEPING_EVERY = timedelta(minutes=10)
FILE_RETENTION = timedelta(days=7)
JOB_RETENTION = timedelta(days=90)

Handler = Callable[[JobContext], tuple[dict[str, Any], int]]
HANDLERS: dict[JobKind, Handler] = {
    JobKind.HOUSING_CHECK: housing.check,
    JobKind.HOUSING_IMPORT: housing.apply,
    JobKind.JOURNAL_EXPORT: export.export,
    JobKind.RECORDINGS_PURGE: recordings.purge,
    JobKind.INSPECTION_PACK: inspection.pack,
    JobKind.CALLS_EXPORT: export.export_calls,
}


def new_token() -> str:
    return uuid.uuid4().hex


def _reload(db: Database, claim: Claim) -> Claim:
    """The claim with the job's state and result as committed (after a failed batch)."""
    with db.read() as s:
        job = s.get(Job, claim.job_id)
        if job is None or job.lease_token != claim.token or job.status != JobStatus.RUNNING:
            raise LeaseLost("задание перехвачено другим обработчиком", job_id=claim.job_id)
        return Claim(claim.job_id, claim.token, claim.kind, claim.organization_id, claim.requested_by_id,
                     dict(job.params or {}), dict(job.state or {}), dict(job.result or {}), job.progress_total,
                     claim.attempts)


def run_claimed(db: Database, claim: Claim, *, var_dir: Path, recordings_dir: Path, stop: threading.Event,
                lease: timedelta = LEASE, clock: Callable[[], datetime] = utcnow,
                on_progress: Callable[[int, int | None], None] | None = None) -> JobStatus | None:
    """Run a claimed job to its end; returns its status, or None when it was given back (stop) or
    taken over (lease lost). `on_progress(done, total)`: after every checkpoint (the command line)."""
    handler = HANDLERS.get(claim.kind)
    retries = 0
    while True:
        ctx = JobContext(db, claim, var_dir, recordings_dir, stop, lease, clock, on_progress)
        try:
            if handler is None:
                raise JobFailed(f"неизвестный вид задания «{claim.kind}»")
            result, done = handler(ctx)
            if on_progress is not None:
                on_progress(done, done)
            with db.write() as s:
                finish_job(s, claim, result=result, done=done, now=clock())
            if claim.kind == JobKind.HOUSING_IMPORT:
                housing.discard_upload(ctx)
            log.info("job %s (%s) done: %s", claim.job_id, claim.kind, _summary(result))
            return JobStatus.DONE
        except JobStopped:
            _quietly(db, release_job, claim, at=clock())
            log.info("job %s (%s) given back: the runner stops", claim.job_id, claim.kind)
            return None
        except LeaseLost:
            log.warning("job %s (%s): lease lost to another runner; stopped", claim.job_id, claim.kind)
            return None
        except (JobFailed, DomainError) as exc:
            message = exc.message
            log.warning("job %s (%s) failed: %s", claim.job_id, claim.kind, message)
        except Exception as exc:
            if not (isinstance(exc, Retry) or is_unavailable(exc)):
                log.exception("job %s (%s) crashed", claim.job_id, claim.kind)
                message = f"внутренняя ошибка обработчика заданий ({type(exc).__name__}); подробности в журнале"
            else:
                pause = min(RETRY_MAX, RETRY_FIRST * 2 ** min(retries, 8))
                retries += 1
                log.warning("job %s (%s): %s; again from the last checkpoint in %.1f s", claim.job_id, claim.kind,
                            exc, pause)
                if stop.wait(pause):
                    _quietly(db, release_job, claim, at=clock())
                    return None
                try:
                    claim = _reload(db, claim)
                except LeaseLost:
                    return None
                except Exception as again:
                    if not is_unavailable(again):
                        raise
                continue
        # failed for good
        _quietly(db, fail_job, claim, error=message, now=clock())  # the result committed so far stays
        if claim.kind in (JobKind.HOUSING_CHECK, JobKind.HOUSING_IMPORT):
            housing.discard_upload(ctx)  # to be uploaded again: residents' data is not kept meanwhile
        return JobStatus.FAILED


def _quietly(db: Database, action: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    """`action(session, *args, **kwargs)` in a write transaction; a database that does not answer
    is logged (the lease then expires and the job is claimed again)."""
    try:
        with db.write() as s:
            action(s, *args, **kwargs)
    except LeaseLost:
        pass
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        log.warning("jobs: could not record a job's state (%s); its lease will expire", exc)


def _summary(result: dict[str, Any]) -> str:
    keys = ("rows_total", "rows_ok", "rows_failed", "rows", "purged")
    return ", ".join(f"{k}={result[k]}" for k in keys if k in result) or "-"


def claimable(db: Database, now: datetime, kinds: tuple[JobKind, ...] | None = None) -> bool:
    """Anything to claim? A read first, so an idle runner never takes SQLite's write lock."""
    with db.read() as s:
        stmt = select(exists().where(
            or_(Job.status == JobStatus.QUEUED, (Job.status == JobStatus.RUNNING) & (Job.lease_until < now)),
            *([Job.kind.in_(kinds)] if kinds else []),
        ))
        return bool(s.scalar(stmt))


def run_next(db: Database, *, var_dir: Path, recordings_dir: Path, stop: threading.Event, lease: timedelta = LEASE,
             clock: Callable[[], datetime] = utcnow, kinds: tuple[JobKind, ...] | None = None,
             job_id: int | None = None) -> tuple[int, JobStatus | None] | None:
    """Claim and run one job; None when there was none to claim."""
    if job_id is None and not claimable(db, clock(), kinds):
        return None
    with db.write() as s:
        claim = claim_job(s, token=new_token(), lease=lease, now=clock(), kinds=kinds, job_id=job_id)
    if claim is None:
        return None
    log.info("job %s (%s) claimed (attempt %s)", claim.job_id, claim.kind, claim.attempts)
    status = run_claimed(db, claim, var_dir=var_dir, recordings_dir=recordings_dir, stop=stop, lease=lease,
                         clock=clock)
    return claim.job_id, status


def run_pending(db: Database, *, var_dir: Path, recordings_dir: Path, stop: threading.Event | None = None,
                lease: timedelta = LEASE, clock: Callable[[], datetime] = utcnow) -> int:
    """Run every claimable job now, one after the other (`openads worker --once`, tests); returns how many."""
    stop = stop or threading.Event()
    ran = 0
    while not stop.is_set():
        if run_next(db, var_dir=var_dir, recordings_dir=recordings_dir, stop=stop, lease=lease, clock=clock) is None:
            break
        ran += 1
    return ran


def housekeeping(db: Database, var_dir: Path, now: datetime) -> None:
    queued = recordings.schedule_purges(db, now)
    if queued:
        log.info("jobs: %d recordings purge(s) queued", queued)
    prune_job_files(db, var_dir, now)
    with db.write() as s:
        s.execute(delete(Job).where(Job.status.in_(FINISHED), Job.finished_at < now - JOB_RETENTION))


def prune_job_files(db: Database, var_dir: Path, now: datetime, keep: timedelta = FILE_RETENTION) -> int:
    """Delete the uploads and exports of jobs finished more than `keep` ago (never a file an
    unfinished job still reads); their results say the file is gone. Returns how many went."""
    root = var_dir.resolve()
    with db.read() as s:
        old = s.execute(select(Job.id, Job.params, Job.result).where(
            Job.status.in_(FINISHED), Job.finished_at < now - keep)).all()
        busy = {str((p or {}).get("file")) for (p,) in s.execute(
            select(Job.params).where(Job.status.not_in(FINISHED), Job.kind == JobKind.HOUSING_IMPORT))}
    removed = 0
    for job_id, params, result in old:
        names = [n for n in ((params or {}).get("file"), (result or {}).get("file")) if n and n not in busy]
        if not names or (result or {}).get("file_deleted"):
            continue
        for name in names:
            path = (root / str(name)).resolve()
            if path.is_relative_to(root) and path != root and path.is_file():
                path.unlink()
                removed += 1
        with db.write() as s:
            job = s.get(Job, job_id)
            if job is not None:
                update_result(s, job, file_deleted=True)
    return removed


def run(db: Database, *, var_dir: Path, recordings_dir: Path, stop: threading.Event, poll_seconds: float = POLL_SECONDS,
        lease: timedelta = LEASE, clock: Callable[[], datetime] = utcnow, housekeeping_on: bool = True) -> None:
    """The runner loop until `stop` is set (`openads worker` runs it in a thread)."""
    log.info("job runner started")
    last_housekeeping: float | None = None
    while not stop.is_set():
        try:
            if housekeeping_on and (last_housekeeping is None
                                    or time.monotonic() - last_housekeeping >= HOUSEKEEPING_EVERY.total_seconds()):
                last_housekeeping = time.monotonic()
                housekeeping(db, var_dir, clock())
            ran = run_next(db, var_dir=var_dir, recordings_dir=recordings_dir, stop=stop, lease=lease, clock=clock)
        except Exception:
            log.exception("job runner round failed; retrying")
            stop.wait(min(poll_seconds * 5, 10))
            continue
        if ran is None:
            stop.wait(poll_seconds)
    log.info("job runner stopped")
