"""The recordings' logs (issue 14 item 4, decision 0035): who played or downloaded recordings, and
which recordings were purged and by which rule. Managers, administrators and inspectors; read scope.
And the manual delete of one recording (decision 0039): managers and administrators, telephony scope."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask import request
from pydantic import BaseModel, Field
from sqlalchemy import select

from models.recording import PurgeRule, Recording, RecordingAction
from models.rules import access
from models.rules.access import MANAGERS, Scope
from models.services import recordings as rec_svc
from models.services.calls import RecordingNotFound
from web.api.v1 import bp
from web.api.v1 import common as c
from web.api.v1.schemas import Body, Out
from web.auth import api_scope, require_user
from web.dbsession import commit_now, database
from web.dbsession import session as db_session
from web.panel.common import settings
from web.panel.ratings import rating_scope

LIMIT = 10_000


class RecordingAccessOut(Out):
    organization_id: int
    at: datetime = Field(description="Когда (UTC)")
    recording_id: int
    call_id: int | None
    user: str = Field(description="Сотрудник (ФИО)")
    action: RecordingAction = Field(description="play — прослушивание, download — скачивание")
    ip: str | None = Field(description="Адрес, с которого обратились")


class RecordingPurgeOut(Out):
    organization_id: int
    purged_at: datetime = Field(description="Когда файл удалён (UTC)")
    recording_id: int
    call_id: int | None
    path: str = Field(description="Файл относительно каталога записей")
    size_bytes: int | None
    rule: PurgeRule = Field(description="retention — по сроку хранения, manual — вручную")
    retention_days: int | None = Field(description="Срок хранения, дней (для retention)")
    by: str = Field(description="Кто удалил (пусто: обработчик заданий)")
    note: str | None = Field(description="Например, «файл уже отсутствовал»")


class RecordingAccessLog(Out):
    period_from: date = Field(description="Первый день периода (местный день организации)")
    period_to: date = Field(description="Последний день периода включительно")
    items: list[RecordingAccessOut]


class RecordingPurgeLog(Out):
    period_from: date = Field(description="Первый день периода (местный день организации)")
    period_to: date = Field(description="Последний день периода включительно")
    items: list[RecordingPurgeOut]


class RecordingDeleteRequest(Body):
    reason: str = Field(min_length=1, max_length=150,
                        description="Основание удаления (заявление жителя по 152-ФЗ, запись по ошибке); "
                                    "пишется в журнал удаления")


class RecordingDeletedOut(Out):
    recording_id: int
    purge_id: int = Field(description="Строка журнала удаления записей")


RESPONSE_MODELS: tuple[type[BaseModel], ...] = (RecordingAccessLog, RecordingPurgeLog, RecordingDeletedOut)


def _period() -> tuple[list[int], date, date, tuple[datetime, datetime]]:
    user = require_user(access.RECORDING_LOGS)
    return rating_scope(request.args, c.user_orgs(user), c.now())


@bp.get("/recordings/access-log")
def recording_access_log() -> Any:
    ids, day_from, day_to, (since, until) = _period()
    rows = rec_svc.access_log(db_session(), org_ids=ids, since=since, until=until, limit=LIMIT)
    return {"period_from": day_from.isoformat(), "period_to": day_to.isoformat(),
            "items": [{"organization_id": r.organization_id, "at": c.utc_iso(r.at), "recording_id": r.recording_id,
                       "call_id": r.call_id, "user": r.user, "action": r.action.value, "ip": r.ip} for r in rows]}


@bp.get("/recordings/purge-log")
def recording_purge_log() -> Any:
    ids, day_from, day_to, (since, until) = _period()
    rows = rec_svc.purge_log(db_session(), org_ids=ids, since=since, until=until, limit=LIMIT)
    return {"period_from": day_from.isoformat(), "period_to": day_to.isoformat(),
            "items": [{"organization_id": r.organization_id, "purged_at": c.utc_iso(r.purged_at),
                       "recording_id": r.recording_id, "call_id": r.call_id, "path": r.path,
                       "size_bytes": r.size_bytes, "rule": r.rule.value, "retention_days": r.retention_days,
                       "by": r.by, "note": r.note} for r in rows]}


@bp.post("/recordings/<int:recording_id>/delete")
@api_scope(Scope.TELEPHONY)
def recording_delete(recording_id: int) -> Any:
    """`models.services.recordings.purge_recording`, as the ticket card's «Удалить запись»: logged in
    the purge log (rule `manual`, who, why); 409 under legal hold, 410 already deleted, 404 another
    organization's."""
    user = require_user(MANAGERS)
    ids = c.user_orgs(user)
    if db_session().scalar(select(Recording.id).where(Recording.id == recording_id,
                                                      Recording.organization_id.in_(ids))) is None:
        raise RecordingNotFound("запись не найдена", recording_id=recording_id)  # before the body: 404 first
    body = c.parse_body(RecordingDeleteRequest)
    commit_now()  # the purge writes in transactions of its own (SQLite: one writer at a time)
    purge_id = rec_svc.purge_recording(database(), org_ids=ids, recording_id=recording_id, reason=body.reason,
                                       recordings_dir=settings().recordings_dir, by=user)
    return {"recording_id": recording_id, "purge_id": purge_id}
