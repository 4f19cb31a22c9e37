"""Background jobs: queue one, claim the next, checkpoint, finish or fail (decision 0030).

The web, the command line and the worker's own schedule queue jobs (`enqueue_job`); a runner
(openads/jobs) claims one with a lease and a fresh token (`claim_job`) and commits a checkpoint with
every batch (`checkpoint_job`), which also renews the lease. Every write of a runner names its
token: a runner whose lease expired and was taken over meets `LeaseLost` at its next write and stops,
its batch rolled back, so two runners never both apply a batch. Events: `job.progress` (queued,
running: how far; a runner sends at most two a second) and `job.finished` (done or failed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from models import events
from models.base import table_of, utcnow
from models.errors import DomainError, NotFound
from models.job import Job, JobKind, JobStatus
from models.organization import User
from models.rules.access import MANAGERS

# A job claimed this many times without finishing (each claim after the first means a runner died
# or was stopped mid-job) fails instead of taking workers down again and again.
MAX_ATTEMPTS = 8
MAX_ERROR_TEXT = 2000


class LeaseLost(DomainError):
    """The runner's lease on a job expired and another runner took it (or the job was finished)."""

    error_id = "job-lease-lost"
    http_status = 409


@dataclass(frozen=True)
class Claim:
    """A job leased to one runner: what to do and where it got to."""

    job_id: int
    token: str
    kind: JobKind
    organization_id: int
    requested_by_id: int | None
    params: dict[str, Any]
    state: dict[str, Any]
    result: dict[str, Any]
    total: int | None
    attempts: int


def payload(job_id: int, kind: str, status: str, done: int, total: int | None,
            requested_by_id: int | None) -> dict[str, Any]:
    return {"job_id": job_id, "kind": str(kind), "status": str(status), "done": done, "total": total,
            "requested_by_id": requested_by_id}


def enqueue_job(session: Session, *, org_id: int, kind: JobKind, params: dict[str, Any], by: User | None,
                total: int | None = None, now: datetime | None = None) -> Job:
    """A new job of `org_id`, queued (a caller that runs it itself claims it by id in the same
    transaction). Emits `job.progress`."""
    now = now or utcnow()
    job = Job(organization_id=org_id, kind=kind, params=params, requested_by_id=by.id if by else None,
              progress_total=total, created_at=now, updated_at=now, status=JobStatus.QUEUED, progress_done=0,
              state={}, result={}, error="", attempts=0)
    session.add(job)
    session.flush()
    events.emit(session, org_id, events.JOB_PROGRESS,
                payload(job.id, kind, job.status, 0, total, job.requested_by_id))
    return job


def claim_job(session: Session, *, token: str, lease: timedelta, now: datetime | None = None,
              kinds: tuple[JobKind, ...] | None = None, job_id: int | None = None) -> Claim | None:
    """Lease the oldest queued job, or a running one whose lease expired (its runner died), to the
    caller's `token`. A job claimed `MAX_ATTEMPTS` times already fails instead. None: nothing to do."""
    now = now or utcnow()
    is_pg = session.get_bind().dialect.name == "postgresql"
    while True:
        stmt = (
            select(Job)
            .where(or_(Job.status == JobStatus.QUEUED,
                       (Job.status == JobStatus.RUNNING) & (Job.lease_until < now)))
            .order_by(Job.id)
            .limit(1)
        )
        if kinds is not None:
            stmt = stmt.where(Job.kind.in_(kinds))
        if job_id is not None:
            stmt = stmt.where(Job.id == job_id)
        if is_pg:
            stmt = stmt.with_for_update(skip_locked=True)
        job = session.scalar(stmt)
        if job is None:
            return None
        if job.attempts >= MAX_ATTEMPTS:
            _finish(session, job, JobStatus.FAILED, now,
                    error=f"задание прерывалось {job.attempts} раз (остановка или сбой обработчика) и снято")
            continue
        job.status = JobStatus.RUNNING
        job.lease_token = token
        job.lease_until = now + lease
        job.attempts += 1
        job.started_at = job.started_at or now
        job.updated_at = now
        session.flush()
        return Claim(job.id, token, JobKind(job.kind), job.organization_id, job.requested_by_id,
                     dict(job.params or {}), dict(job.state or {}), dict(job.result or {}), job.progress_total,
                     job.attempts)


def _owned(token: str, job_id: int) -> list[ColumnElement[bool]]:
    return [Job.id == job_id, Job.lease_token == token, Job.status == JobStatus.RUNNING]


def checkpoint_job(session: Session, claim: Claim, *, done: int, total: int | None = None,
                   state: dict[str, Any] | None = None, result: dict[str, Any] | None = None,
                   lease: timedelta, now: datetime | None = None, announce: bool = False) -> None:
    """Record how far the job got (and the runner's `state`) in the caller's transaction, renewing
    the lease; `announce`: also a `job.progress` event. LeaseLost when the job is no longer ours
    (the caller must roll back)."""
    now = now or utcnow()
    values: dict[str, Any] = {"progress_done": done, "lease_until": now + lease, "updated_at": now}
    if total is not None:
        values["progress_total"] = total
    if state is not None:
        values["state"] = state
    if result is not None:
        values["result"] = result
    jobs = table_of(Job)
    changed = session.execute(
        update(jobs).where(*_owned(claim.token, claim.job_id)).values(**values)
        .returning(jobs.c.progress_total)
    ).first()
    if changed is None:
        raise LeaseLost("задание перехвачено другим обработчиком", job_id=claim.job_id)
    if announce:
        events.emit(session, claim.organization_id, events.JOB_PROGRESS, payload(
            claim.job_id, claim.kind, JobStatus.RUNNING, done, changed[0], claim.requested_by_id))


def _finish(session: Session, job: Job, status: JobStatus, now: datetime, *, error: str = "",
            result: dict[str, Any] | None = None, done: int | None = None) -> None:
    job.status = status
    job.finished_at = now
    job.updated_at = now
    job.lease_until = None
    job.lease_token = None
    job.error = error[:MAX_ERROR_TEXT]
    if result is not None:
        job.result = result
    if done is not None:
        job.progress_done = done
    if status == JobStatus.DONE and job.progress_total is None:
        job.progress_total = job.progress_done
    session.flush()
    events.emit(session, job.organization_id, events.JOB_FINISHED, {
        **payload(job.id, job.kind, status, job.progress_done, job.progress_total, job.requested_by_id),
        "error": job.error,
    })


def _own(session: Session, claim: Claim) -> Job:
    job = session.scalar(select(Job).where(*_owned(claim.token, claim.job_id)))
    if job is None:
        raise LeaseLost("задание перехвачено другим обработчиком", job_id=claim.job_id)
    return job


def finish_job(session: Session, claim: Claim, *, result: dict[str, Any], done: int,
               now: datetime | None = None) -> None:
    """The job is done: `result` kept, lease dropped, `job.finished` emitted (LeaseLost if not ours)."""
    _finish(session, _own(session, claim), JobStatus.DONE, now or utcnow(), result=result, done=done)


def fail_job(session: Session, claim: Claim, *, error: str, result: dict[str, Any] | None = None,
             now: datetime | None = None) -> None:
    """The job failed for good (`error`: why, in Russian); `job.finished` emitted."""
    _finish(session, _own(session, claim), JobStatus.FAILED, now or utcnow(), error=error, result=result)


def release_job(session: Session, claim: Claim, *, at: datetime | None = None) -> None:
    """Give the job back (the runner stops): any runner may claim it from `at` (default now) on."""
    session.execute(update(table_of(Job)).where(*_owned(claim.token, claim.job_id))
                    .values(lease_until=at or utcnow()))


def update_result(session: Session, job: Job, **changes: Any) -> None:
    """Merge `changes` into a finished job's result (a check's file discarded or applied)."""
    job.result = {**(job.result or {}), **changes}
    job.updated_at = utcnow()


# --- who sees which jobs ----------------------------------------------------------------------------


def sees_all_jobs(user: User) -> bool:
    """Admins and managers see every job of their organizations; others the jobs they asked for."""
    return user.role in MANAGERS


def job_conditions(user: User) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Job.organization_id.in_(user.organization_ids or [-1])]
    if not sees_all_jobs(user):
        conditions.append(Job.requested_by_id == user.id)
    return conditions


def visible_jobs(session: Session, user: User, *, limit: int = 50) -> list[Job]:
    """The jobs `user` may see, newest first."""
    return list(session.scalars(select(Job).where(*job_conditions(user)).order_by(Job.id.desc()).limit(limit)))


def visible_job(session: Session, user: User, job_id: int) -> Job:
    """The job if `user` may see it, else NotFound (another organization's job is not disclosed)."""
    job = session.scalar(select(Job).where(Job.id == job_id, *job_conditions(user)))
    if job is None:
        raise NotFound("задание не найдено", job_id=job_id)
    return job
