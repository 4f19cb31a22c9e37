"""Recordings purge jobs: one organization's call recordings past its retention, in batches.

Each batch: the oldest expired recordings are read (never those of a ticket under legal hold),
their files deleted with no transaction open, then the rows marked deleted (the deletion log) with
the job's checkpoint in one short write transaction. A run cut short finds the rows it did not mark
again and their files already gone («файл уже отсутствовал»), as the one-transaction purge does.

The worker queues one such job a day for each organization that has expired recordings
(`schedule_purges`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, select

from models.db import Database
from models.job import Job, JobKind
from models.organization import Organization
from models.services.calls import delete_recording_files, expired_recordings, mark_recordings_purged
from models.services.jobs import enqueue_job
from openads.jobs.context import JobContext

BATCH = 200
EVERY = timedelta(days=1)


def purge(ctx: JobContext) -> tuple[dict[str, Any], int]:
    purged = int(ctx.result.get("purged") or 0)
    org_id = ctx.claim.organization_id
    while True:
        ctx.check_stop()
        now = ctx.clock()
        with ctx.db.read() as s:
            days, recs = expired_recordings(s, org_id=org_id, now=now, limit=BATCH)
            s.expunge_all()  # read: kept as they are when the read session rolls back
        if not recs:
            return {"purged": purged, "retention_days": days}, purged
        reasons = delete_recording_files(ctx.recordings_dir, recs, days)
        with ctx.db.write() as s:
            purged += mark_recordings_purged(s, reasons, now=now)
            ctx.checkpoint(s, done=purged, result={"purged": purged, "retention_days": days})


def schedule_purges(db: Database, now: datetime) -> int:
    """Queue a purge for each organization with recordings past its retention and no purge queued
    or run within `EVERY`; returns how many were queued."""
    queued = 0
    with db.read() as s:
        org_ids = list(s.scalars(select(Organization.id).order_by(Organization.id)))
    for org_id in org_ids:
        with db.read() as s:
            recent = s.scalar(select(exists().where(Job.organization_id == org_id, Job.kind == JobKind.RECORDINGS_PURGE,
                                                    Job.created_at > now - EVERY)))
            if recent:
                continue
            _days, due = expired_recordings(s, org_id=org_id, now=now, limit=1)
        if due:
            with db.write() as s:
                enqueue_job(s, org_id=org_id, kind=JobKind.RECORDINGS_PURGE, params={}, by=None, now=now)
            queued += 1
    return queued
