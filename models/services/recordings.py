"""Recordings governance: the retention purge with its purge log, and the two logs' reads.

The purge (decision 0035) deletes files of recordings older than the organization's retention
(`retention_days`, at least `MIN_RETENTION_DAYS`), never those of a call linked to a ticket under
legal hold, in bounded batches. Each batch is three steps, so a worker killed anywhere leaves
nothing inconsistent:

1. `plan_purges` (a write transaction): a `RecordingPurge` row per recording with `purged_at`
   NULL, the intent, with the file's path and size. The unique `recording_id` makes it one row per
   recording, ever.
2. `delete_planned_files` (no transaction): the files are deleted. A file already gone is fine:
   either a run killed after this step deleted it, or someone removed it by hand (noted when the
   intent found no file).
3. `complete_purges` (a write transaction): the intent rows get `purged_at`, the recordings
   `deleted_at` and `deleted_reason`. A file that could not be deleted keeps its intent pending,
   so no recording is marked purged while its file still exists.

A run killed after 1 or 2 leaves pending intents: the next run (`pending_purges`) finishes them
first. An intent whose recording was put under legal hold meanwhile is dropped if its file is still
there. `purge_expired_recordings` runs the batches (the worker's daily job,
openads/jobs/recordings.py, and `openads recordings purge`).

Reads: `access_log` and `purge_log`, for one organization and a date range (panel page, API,
xlsx export).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from models.base import utcnow
from models.call import CallTicket, TelephonySettings, TicketLegalHold
from models.db import Database
from models.errors import DomainError, ValidationFailed
from models.organization import Organization, User
from models.recording import PurgeRule, Recording, RecordingAccess, RecordingAction, RecordingPurge
from models.rules.telephony import DEFAULT_RETENTION_DAYS, MIN_RETENTION_DAYS
from models.services.calls import RecordingDeleted, RecordingNotFound, recording_file

logger = logging.getLogger(__name__)

BATCH = 200
FILE_MISSING = "файл уже отсутствовал"
OUTSIDE = "путь вне каталога, файл не тронут"


def retention_days(session: Session, org_id: int) -> int:
    """How many days the organization keeps call recordings (never fewer than the minimum: a value
    stored before the minimum existed does not shorten it)."""
    days = session.scalar(select(TelephonySettings.recording_retention_days)
                          .where(TelephonySettings.organization_id == org_id))
    return max(int(days or DEFAULT_RETENTION_DAYS), MIN_RETENTION_DAYS)


def _held() -> object:
    return exists().where(CallTicket.call_id == Recording.call_id, TicketLegalHold.ticket_id == CallTicket.ticket_id)


def expired_recordings(session: Session, *, org_id: int, now: datetime, limit: int = 1000) -> tuple[int, list[Recording]]:
    """The organization's retention in days and its oldest live recordings past it with no purge
    planned (at most `limit`), never those of calls linked to a ticket under legal hold. Reads only."""
    days = retention_days(session, org_id)
    planned = exists().where(RecordingPurge.recording_id == Recording.id)
    recs = session.scalars(
        select(Recording)
        .where(Recording.organization_id == org_id, Recording.deleted_at.is_(None),
               Recording.created_at < now - timedelta(days=days), ~_held(), ~planned)  # type: ignore[operator]
        .order_by(Recording.created_at, Recording.id)
        .limit(limit)
    ).all()
    return days, list(recs)


def _size(recordings_dir: Path, rec: Recording) -> tuple[int | None, str | None]:
    """The file's size now, and a note when it is not there to delete."""
    try:
        return recording_file(recordings_dir, rec).stat().st_size, None
    except FileNotFoundError:
        return rec.size_bytes, FILE_MISSING
    except ValidationFailed:
        return rec.size_bytes, OUTSIDE


def plan_purges(
    session: Session, recs: Iterable[Recording], *, rule: PurgeRule, recordings_dir: Path, now: datetime,
    days: int | None = None, by: User | None = None, note: str | None = None,
) -> list[RecordingPurge]:
    """Step 1: an intent row per recording (what, where, how big, by which rule)."""
    planned = []
    for rec in recs:
        size, missing = _size(recordings_dir, rec)
        row = RecordingPurge(organization_id=rec.organization_id, recording_id=rec.id, call_id=rec.call_id,
                             path=rec.path, size_bytes=size, rule=rule, retention_days=days,
                             by_id=by.id if by else None, started_at=now,
                             note="; ".join(n for n in (note, missing) if n) or None)
        session.add(row)
        planned.append(row)
    session.flush()
    return planned


def pending_purges(session: Session, *, org_id: int, limit: int = BATCH) -> list[RecordingPurge]:
    """Intents a run did not complete (it was killed), oldest first."""
    return list(session.scalars(
        select(RecordingPurge).where(RecordingPurge.organization_id == org_id, RecordingPurge.purged_at.is_(None))
        .order_by(RecordingPurge.id).limit(limit)
    ))


@dataclass(frozen=True)
class PlannedFile:
    purge_id: int
    recording_id: int
    path: str
    held: bool  # put under legal hold after the intent was written


def planned_files(session: Session, purges: Sequence[RecordingPurge]) -> list[PlannedFile]:
    held = set(session.scalars(
        select(Recording.id).where(Recording.id.in_([p.recording_id for p in purges]), _held())  # type: ignore[arg-type]
    )) if purges else set()
    return [PlannedFile(p.id, p.recording_id, p.path, p.recording_id in held) for p in purges]


def delete_planned_files(recordings_dir: Path, files: Sequence[PlannedFile]) -> tuple[list[int], list[int]]:
    """Step 2, no database: delete the files. Returns the purge ids to complete and those to drop
    (a recording put under legal hold since, whose file is still there). A file that cannot be
    deleted (permissions) is neither: its intent stays pending and is tried again next run."""
    done: list[int] = []
    dropped: list[int] = []
    for item in files:
        probe = Recording(id=item.recording_id, path=item.path)
        try:
            target = recording_file(recordings_dir, probe)
        except ValidationFailed:
            done.append(item.purge_id)  # never touched: the row is marked, the note says so
            continue
        if item.held:
            if target.exists():
                dropped.append(item.purge_id)
                continue
            done.append(item.purge_id)  # gone already: the log tells the truth
            continue
        try:
            target.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.error("recording %s: file %s not deleted (%s); the purge is tried again next run",
                         item.recording_id, item.path, exc)
            continue
        done.append(item.purge_id)
    return done, dropped


def complete_purges(session: Session, done: Sequence[int], dropped: Sequence[int], *, now: datetime) -> int:
    """Step 3: mark the purges done and their recordings deleted; drop the cancelled intents.
    Returns how many recordings were marked."""
    if dropped:
        session.execute(delete(RecordingPurge).where(RecordingPurge.id.in_(list(dropped)),
                                                     RecordingPurge.purged_at.is_(None)))
    marked = 0
    for purge in session.scalars(select(RecordingPurge).where(RecordingPurge.id.in_(list(done)),
                                                              RecordingPurge.purged_at.is_(None))):
        purge.purged_at = now
        reason = (f"срок хранения {purge.retention_days} дн." if purge.rule == PurgeRule.RETENTION
                  else "удалена вручную")
        if purge.note:
            reason += f"; {purge.note}"
        result = session.execute(
            update(Recording).where(Recording.id == purge.recording_id, Recording.deleted_at.is_(None))
            .values(deleted_at=now, deleted_reason=reason[:200])
        )
        marked += int(result.rowcount)  # type: ignore[attr-defined]
        logger.info("recording purged: id=%s org=%s call=%s path=%s (%s)", purge.recording_id,
                    purge.organization_id, purge.call_id, purge.path, reason)
    session.flush()
    return marked


Checkpoint = Callable[[Session, int, int], None]


def purge_batch(
    db: Database, *, org_id: int, now: datetime, recordings_dir: Path, limit: int = BATCH,
    checkpoint: Checkpoint | None = None, fail_after_delete: Callable[[], None] | None = None,
) -> tuple[bool, int, int]:
    """One batch of the three steps for one organization: pending intents first, topped up with
    new ones. Returns (anything done, recordings marked, retention days); nothing done means
    nothing is left but files that cannot be deleted (tried again next run).
    `checkpoint(session, marked, days)` runs inside step 3's transaction (the job's progress).
    `fail_after_delete`: tests kill the run between steps 2 and 3."""
    with db.write() as s:
        days = retention_days(s, org_id)
        purges = pending_purges(s, org_id=org_id, limit=limit)
        if len(purges) < limit:
            _days, recs = expired_recordings(s, org_id=org_id, now=now, limit=limit - len(purges))
            purges += plan_purges(s, recs, rule=PurgeRule.RETENTION, recordings_dir=recordings_dir, now=now,
                                  days=days)
        files = planned_files(s, purges)
    if not files:
        return False, 0, days
    done, dropped = delete_planned_files(recordings_dir, files)
    if fail_after_delete is not None:
        fail_after_delete()
    with db.write() as s:
        marked = complete_purges(s, done, dropped, now=now)
        if checkpoint is not None:
            checkpoint(s, marked, days)
    return bool(done or dropped), marked, days


def purge_expired_recordings(
    db: Database, *, now: datetime | None = None, recordings_dir: Path, org_ids: Sequence[int] | None = None,
    batch: int = BATCH, stop: Callable[[], bool] | None = None,
) -> int:
    """The retention rule for the given organizations (None: every one, explicitly), batch by batch
    until nothing is left or `stop()` says so; returns how many recordings were purged."""
    now = now or utcnow()
    if org_ids is None:
        with db.read() as s:
            org_ids = list(s.scalars(select(Organization.id).order_by(Organization.id)))
    total = 0
    for org_id in org_ids:
        while not (stop and stop()):
            progressed, marked, _days = purge_batch(db, org_id=org_id, now=now, recordings_dir=recordings_dir,
                                                    limit=batch)
            total += marked
            if not progressed:
                break
    return total


class RecordingHeld(DomainError):
    """A recording of a call linked to a ticket under legal hold: it cannot be deleted."""

    error_id = "recording-held"
    http_status = 409


def purge_recording(
    db: Database, *, org_ids: Sequence[int], recording_id: int, reason: str, recordings_dir: Path,
    by: User | None = None, now: datetime | None = None,
) -> int:
    """Delete one recording's file by hand (a resident's 152-ФЗ request, a recording made by
    mistake), in the same three steps as the retention purge, logged with the rule `manual`, who and
    why. Refused for another organization's recording (not found), a purged one (410) and one under
    legal hold (409). Returns the purge log row's id."""
    now = now or utcnow()
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("укажите причину удаления записи", field="reason")
    with db.write() as s:
        rec = s.scalar(select(Recording).where(Recording.id == recording_id,
                                               Recording.organization_id.in_(list(org_ids))))
        if rec is None:
            raise RecordingNotFound("запись не найдена", recording_id=recording_id)
        if rec.deleted_at is not None:
            raise RecordingDeleted("запись уже удалена", recording_id=recording_id)
        if s.scalar(select(_held()).where(Recording.id == rec.id)):  # type: ignore[call-overload]
            raise RecordingHeld("запись относится к заявке с запретом удаления", recording_id=recording_id)
        purge = s.scalar(select(RecordingPurge).where(RecordingPurge.recording_id == rec.id))
        if purge is None:  # else: the retention purge planned it and was cut short: finished here
            purge = plan_purges(s, [rec], rule=PurgeRule.MANUAL, recordings_dir=recordings_dir, now=now, by=by,
                                note=reason[:150])[0]
        files = planned_files(s, [purge])
        purge_id = purge.id
    done, dropped = delete_planned_files(recordings_dir, files)
    with db.write() as s:
        complete_purges(s, done, dropped, now=now)
    if not done:
        raise ValidationFailed("файл записи не удалось удалить; повторите позже", recording_id=recording_id)
    return purge_id


# --- the logs, for the panel page, the API and the export ----------------------------------------


@dataclass(frozen=True)
class AccessRow:
    organization_id: int
    at: datetime
    recording_id: int
    call_id: int | None
    user: str
    action: RecordingAction
    ip: str | None


@dataclass(frozen=True)
class PurgeRow:
    organization_id: int
    purged_at: datetime
    recording_id: int
    call_id: int | None
    path: str
    size_bytes: int | None
    rule: PurgeRule
    retention_days: int | None
    by: str
    note: str | None


def _user_name(user: User | None) -> str:
    if user is None:
        return ""
    return user.full_name or user.login


def access_log(session: Session, *, org_ids: Sequence[int], since: datetime | None, until: datetime | None,
               limit: int | None = 1000) -> list[AccessRow]:
    """The organizations' recording plays and downloads in [since, until), newest first."""
    stmt = (select(RecordingAccess, Recording.call_id, User)
            .join(Recording, Recording.id == RecordingAccess.recording_id)
            .outerjoin(User, User.id == RecordingAccess.user_id)
            .where(RecordingAccess.organization_id.in_(list(org_ids))))
    if since is not None:
        stmt = stmt.where(RecordingAccess.at >= since)
    if until is not None:
        stmt = stmt.where(RecordingAccess.at < until)
    stmt = stmt.order_by(RecordingAccess.at.desc(), RecordingAccess.id.desc()).limit(limit)
    return [AccessRow(a.organization_id, a.at, a.recording_id, call_id, _user_name(u), a.action, a.ip)
            for a, call_id, u in session.execute(stmt)]


def purge_log(session: Session, *, org_ids: Sequence[int], since: datetime | None, until: datetime | None,
              limit: int | None = 1000) -> list[PurgeRow]:
    """The organizations' completed purges in [since, until), newest first."""
    stmt = (select(RecordingPurge, User).outerjoin(User, User.id == RecordingPurge.by_id)
            .where(RecordingPurge.organization_id.in_(list(org_ids)), RecordingPurge.purged_at.is_not(None)))
    if since is not None:
        stmt = stmt.where(RecordingPurge.purged_at >= since)
    if until is not None:
        stmt = stmt.where(RecordingPurge.purged_at < until)
    stmt = stmt.order_by(RecordingPurge.purged_at.desc(), RecordingPurge.id.desc()).limit(limit)
    return [PurgeRow(p.organization_id, p.purged_at or p.started_at, p.recording_id, p.call_id, p.path, p.size_bytes, p.rule,
                     p.retention_days, _user_name(u), p.note) for p, u in session.execute(stmt)]


ACTION_TITLES_RU = {RecordingAction.PLAY: "прослушивание", RecordingAction.DOWNLOAD: "скачивание"}
RULE_TITLES_RU = {PurgeRule.RETENTION: "срок хранения", PurgeRule.MANUAL: "вручную"}

# The two logs as workbook sheets: (title, width) and each row's cells (the export's and the page's order).
ACCESS_COLUMNS: tuple[tuple[str, int], ...] = (("Организация", 22), ("Когда", 17), ("Запись", 9), ("Звонок", 9), ("Сотрудник", 28),
                  ("Действие", 15), ("Адрес", 16))
PURGE_COLUMNS: tuple[tuple[str, int], ...] = (("Организация", 22), ("Удалена", 17), ("Запись", 9), ("Звонок", 9), ("Файл", 40),
                 ("Размер, байт", 13), ("Правило", 16), ("Срок хранения, дней", 12), ("Кто удалил", 24),
                 ("Примечание", 30))


def access_cells(row: AccessRow, org_names: dict[int, str]) -> tuple[str | int | datetime | None, ...]:
    return (org_names.get(row.organization_id, ""), row.at, row.recording_id, row.call_id, row.user,
            ACTION_TITLES_RU[row.action], row.ip)


def purge_cells(row: PurgeRow, org_names: dict[int, str]) -> tuple[str | int | datetime | None, ...]:
    return (org_names.get(row.organization_id, ""), row.purged_at, row.recording_id, row.call_id, row.path,
            row.size_bytes, RULE_TITLES_RU[row.rule], row.retention_days,
            row.by or ("обработчик заданий" if row.rule == PurgeRule.RETENTION else ""), row.note)
