"""Recordings purge jobs: one organization's call recordings past its retention, in batches.

Each batch is models/services/recordings.py `purge_batch`: the purge log's intent rows, then the
files deleted with no transaction open, then the rows completed with the job's checkpoint in one
short write transaction (decision 0035). A run killed anywhere leaves pending intents that the next
run completes first: one log row per recording, no recording marked purged while its file exists.

The worker queues one such job a day for each organization that has expired recordings or pending
intents (`schedule_purges`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from models.db import Database
from models.job import Job, JobKind
from models.organization import Organization
from models.services.jobs import enqueue_job
from models.services.recordings import expired_recordings, pending_purges, purge_batch
from openads.jobs.context import JobContext

BATCH = 200
EVERY = timedelta(days=1)


def purge(ctx: JobContext) -> tuple[dict[str, Any], int]:
    purged = int(ctx.result.get("purged") or 0)
    org_id = ctx.claim.organization_id
    while True:
        ctx.check_stop()

        def checkpoint(s: Session, marked: int, days: int) -> None:
            nonlocal purged
            purged += marked
            ctx.checkpoint(s, done=purged, result={"purged": purged, "retention_days": days})

        progressed, _marked, days = purge_batch(ctx.db, org_id=org_id, now=ctx.clock(),
                                                recordings_dir=ctx.recordings_dir, limit=BATCH, checkpoint=checkpoint)
        if not progressed:
            return {"purged": purged, "retention_days": days}, purged


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
            due = bool(expired_recordings(s, org_id=org_id, now=now, limit=1)[1]
                       or pending_purges(s, org_id=org_id, limit=1))
        if due:
            with db.write() as s:
                enqueue_job(s, org_id=org_id, kind=JobKind.RECORDINGS_PURGE, params={}, by=None, now=now)
            queued += 1
    return queued
