"""Calls API: the calls journal, one call, the missed-call queue, closing an item with a reason, and
the 10-minute callback compliance per organization and local day (ПП 416). Staff only (the
compliance report: managers, as its panel page): calls carry residents' personal data. A token
needs the `telephony` scope for every route here, whatever the method."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import request
from pydantic import BaseModel, Field

from models import queries_calls as qc
from models.call import Call as CallRow
from models.call import CallDirection, CallKind, CallOutcome
from models.call_stats import CallBreach, DailyCallStats
from models.missed_call import CloseReason, MissedCallStatus
from models.missed_call import MissedCall as MissedRow
from models.organization import User
from models.recording import Recording
from models.rules import access
from models.rules.access import Scope
from models.rules.call_evidence import BreachKind, MissedOutcome
from models.rules.text_limits import max_length
from models.services import callbacks as cb_svc
from models.services import calls as calls_svc
from models.services import voice_messages as vm_svc
from web.api.v1 import bp
from web.api.v1 import common as c
from web.api.v1.schemas import Body, Out, UserRef
from web.auth import api_scope, require_user
from web.dbsession import session as db_session
from web.inputs import optional_int
from web.panel.calls import (
    calls_page,
    compliance_period,
    compliance_stats,
    missed_page,
    parse_call_filter,
    parse_missed_filter,
)

# --- schemas -----------------------------------------------------------------------------------


class MissedCallCloseRequest(Body):
    reason: str = Field(min_length=1, max_length=max_length("reason"), description="Почему закрыт без обратного вызова")


class RecordingOut(Out):
    id: int
    kind: str = Field(description="conversation — разговор, voicemail — голосовое сообщение")
    format: str
    duration_seconds: int | None
    created_at: datetime
    deleted: bool
    play_url: str | None = Field(description="Прослушивание в панели (каждый доступ записывается в журнал)")
    download_url: str | None


class TicketLink(Out):
    id: int
    number: str


class Call(Out):
    id: int
    organization_id: int
    direction: CallDirection
    kind: CallKind
    did: str | None
    phone: str | None = Field(description="Номер жителя в E.164; null — номер скрыт")
    resident_id: int | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    wait_seconds: int | None
    answered_by: UserRef | None
    dispatcher_endpoint: str | None
    outcome: CallOutcome | None = Field(description="null — звонок идёт")
    is_fallback: bool
    recordings: list[RecordingOut]
    tickets: list[TicketLink]
    missed_call_id: int | None = Field(description="Пропущенный звонок, к которому относится звонок: пропущенный, "
                                                   "обратный вызов по нему или повторный звонок жителя, закрывший его")


class CallPage(Out):
    items: list[Call]
    next_cursor: str | None


class CallbackAttemptOut(Out):
    id: int
    call_id: int = Field(description="Звонок обратного вызова (/calls/{call_id})")
    dispatcher_id: int | None = Field(description="Кто перезванивал; null — автоперезвон")
    dispatcher: UserRef | None
    started_at: datetime
    ended_at: datetime | None
    outcome: CallOutcome | None
    resident_answered: bool
    resident_answered_at: datetime | None = Field(description="Когда житель ответил")
    recording_url: str | None = Field(description="Запись разговора (прослушивание в панели, с журналом доступа)")


class VoiceMessageOut(Out):
    id: int = Field(description="Запись (recording) голосового сообщения")
    call_id: int | None
    received_at: datetime
    review_deadline_at: datetime = Field(description="Получено + 10 минут (ПП 416)")
    reviewed_at: datetime | None
    reviewed_by: UserRef | None
    review_breach: bool = Field(description="Прослушано позже 10 минут или не прослушано, а срок прошёл")
    deleted: bool
    play_url: str | None


class MissedCall(Out):
    id: int
    organization_id: int
    phone: str
    resident_id: int | None
    first_call_id: int
    first_call_at: datetime
    last_call_at: datetime
    calls_count: int = Field(description="Повторные звонки с того же номера объединяются")
    deadline_at: datetime = Field(description="Первый звонок + 10 минут")
    overdue: bool
    status: MissedCallStatus
    outcome: MissedOutcome = Field(description="in_time — житель достигнут в срок; late — позже срока; "
                                               "not_reached — не достигнут, срок прошёл; pending — срок не прошёл")
    breach: bool = Field(description="Нарушение ПП 416: late или not_reached")
    reached_at: datetime | None = Field(description="Когда житель был достигнут (ответил на обратный вызов "
                                                    "или его повторный звонок принят)")
    late_seconds: int | None = Field(description="На сколько позже срока (для late)")
    voice_message_id: int | None
    voice_message: VoiceMessageOut | None
    voice_review_breach: bool = Field(description="Голосовое сообщение не прослушано за 10 минут")
    closed_at: datetime | None
    close_reason: CloseReason | None
    close_note: str
    closed_by_id: int | None
    closing_call_id: int | None = Field(description="Звонок, которым житель был достигнут")
    attempts: list[CallbackAttemptOut]


class MissedCallList(Out):
    items: list[MissedCall]
    next_cursor: str | None = Field(default=None, description="Следующая страница (закрытые и все; очередь — одна страница)")


class VoiceMessageReviewed(Out):
    voice_message: VoiceMessageOut
    missed_call_id: int | None


class ComplianceDay(Out):
    organization_id: int
    day: date = Field(description="Местный день организации (звонка, первого пропущенного звонка, получения сообщения)")
    calls: int = Field(description="Входящих звонков, поступивших в АДС")
    answered: int = Field(description="Из них принято диспетчером")
    answered_in_5min: int = Field(description="Принято не позже 5 минут с поступления (ПП 416)")
    answered_in_5min_share: float | None = Field(
        description="answered_in_5min / calls (непринятый звонок считается против); null — звонков не было")
    missed: int = Field(description="Пропущенных (повторные звонки с того же номера объединяются)")
    callback_in_time: int = Field(description="Житель ответил на обратный вызов не позже 10 минут")
    recall_in_time: int = Field(description="Житель сам перезвонил и был принят не позже 10 минут")
    reached_in_time: int
    called_back_late: int = Field(description="Житель достигнут позже 10 минут")
    not_called_back: int = Field(description="Житель не достигнут, срок прошёл")
    awaiting_callback: int = Field(description="Открыты, срок ещё не прошёл")
    attempts: int
    share: float | None = Field(description="reached_in_time / missed; null, если пропущенных не было")
    voice_messages: int = Field(description="Голосовых сообщений получено")
    voice_messages_reviewed_late: int = Field(description="Не прослушано за 10 минут (позже или ещё нет)")


class ComplianceBreach(Out):
    kind: BreachKind = Field(description="late_answer — ответ позже 5 минут; late_callback — перезвон позже 10 "
                                         "минут; not_called_back — не перезвонили; late_voice_review — голосовое "
                                         "сообщение не прослушано за 10 минут")
    organization_id: int
    day: date
    phone: str | None
    started_at: datetime = Field(description="Поступление звонка, первый пропущенный звонок или получение сообщения")
    deadline_at: datetime
    actual_at: datetime | None = Field(description="Фактический ответ, перезвон или прослушивание; null — не было")
    late_seconds: int | None
    user_id: int | None = Field(description="Кто ответил, дозвонился или прослушал")
    call_id: int | None
    missed_call_id: int | None
    recording_id: int | None
    note: str = Field(description="Причина, указанная диспетчером при закрытии вручную")


class ComplianceList(Out):
    items: list[ComplianceDay]
    breaches: list[ComplianceBreach]


REQUEST_MODELS: tuple[type[BaseModel], ...] = (MissedCallCloseRequest,)
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (Call, CallPage, MissedCall, MissedCallList, ComplianceList,
                                                VoiceMessageReviewed)


# --- serialisation -----------------------------------------------------------------------------


def call_json(call: CallRow, missed_call_id: int | None = None) -> dict[str, Any]:
    return {
        "id": call.id, "organization_id": call.organization_id, "direction": call.direction.value,
        "kind": call.kind.value, "did": call.did, "phone": call.phone, "resident_id": call.resident_id,
        "started_at": c.utc_iso(call.started_at), "answered_at": c.utc_iso(call.answered_at),
        "ended_at": c.utc_iso(call.ended_at), "wait_seconds": call.wait_seconds,
        "answered_by": {"id": call.answered_by.id, "full_name": call.answered_by.full_name} if call.answered_by else None,
        "dispatcher_endpoint": call.dispatcher_endpoint,
        "outcome": call.outcome.value if call.outcome else None, "is_fallback": call.is_fallback,
        "recordings": [
            {"id": r.id, "kind": r.kind.value, "format": r.format, "duration_seconds": r.duration_seconds,
             "created_at": c.utc_iso(r.created_at), "deleted": r.deleted,
             "play_url": None if r.deleted else f"/recordings/{r.id}",
             "download_url": None if r.deleted else f"/recordings/{r.id}/download"}
            for r in call.recordings
        ],
        "tickets": [{"id": t.id, "number": t.number} for t in call.tickets],
        "missed_call_id": missed_call_id,
    }


def user_ref(u: User | None) -> dict[str, Any] | None:
    return {"id": u.id, "full_name": u.full_name} if u is not None else None


def voice_json(rec: Recording, now: datetime) -> dict[str, Any]:
    return {
        "id": rec.id, "call_id": rec.call_id, "received_at": c.utc_iso(rec.created_at),
        "review_deadline_at": c.utc_iso(rec.review_deadline_at), "reviewed_at": c.utc_iso(rec.reviewed_at),
        "reviewed_by": user_ref(rec.reviewed_by), "review_breach": rec.review_breach(now), "deleted": rec.deleted,
        "play_url": None if rec.deleted else f"/recordings/{rec.id}",
    }


def missed_json(item: MissedRow) -> dict[str, Any]:
    now = c.now()
    ev = item.evidence(now)
    voice = item.voice_message
    attempts = []
    for a in item.attempts:
        rec = a.call.recording
        attempts.append({
            "id": a.id, "call_id": a.call_id, "dispatcher_id": a.dispatcher_id, "dispatcher": user_ref(a.dispatcher),
            "started_at": c.utc_iso(a.started_at), "ended_at": c.utc_iso(a.ended_at),
            "outcome": a.outcome.value if a.outcome else None, "resident_answered": a.resident_answered,
            "resident_answered_at": c.utc_iso(a.resident_answered_at),
            "recording_url": f"/recordings/{rec.id}" if rec is not None and not rec.deleted else None,
        })
    return {
        "id": item.id, "organization_id": item.organization_id, "phone": item.phone, "resident_id": item.resident_id,
        "first_call_id": item.first_call_id, "first_call_at": c.utc_iso(item.first_call_at),
        "last_call_at": c.utc_iso(item.last_call_at), "calls_count": item.calls_count,
        "deadline_at": c.utc_iso(item.deadline_at), "overdue": item.is_overdue(now), "status": item.status.value,
        "outcome": ev.outcome.value, "breach": ev.breach, "reached_at": c.utc_iso(ev.reached_at),
        "late_seconds": ev.late_seconds, "voice_message_id": item.voice_message_id,
        "voice_message": voice_json(voice, now) if voice is not None else None,
        "voice_review_breach": voice.review_breach(now) if voice is not None else False,
        "closed_at": c.utc_iso(item.closed_at), "close_reason": item.close_reason.value if item.close_reason else None,
        "close_note": item.close_note or "", "closed_by_id": item.closed_by_id, "closing_call_id": item.closing_call_id,
        "attempts": attempts,
    }


# --- routes ------------------------------------------------------------------------------------


def _organization_arg() -> int | None:
    return optional_int(request.args.get("organization_id"), "organization_id")


def _zone(ids: list[int], organization_id: int | None) -> ZoneInfo:
    """The zone dates are read in: the named organization's if it is the caller's, else the first one's."""
    return ZoneInfo(c.organization(organization_id if organization_id in ids else ids[0]).timezone)


@bp.get("/calls")
@api_scope(Scope.TELEPHONY)
def list_calls() -> Any:
    """Newest first; dates without a time are local days of the chosen (or the first) organization."""
    user = require_user(access.CALL_RECORDS)
    ids = c.user_orgs(user)
    f = parse_call_filter(request.args, _zone(ids, _organization_arg()))
    s = db_session()
    rows, cursor = calls_page(s, ids, f)
    items = qc.missed_items_of_calls(s, org_ids=ids, call_ids=[x.id for x in rows])
    return {"items": [call_json(x, items.get(x.id)) for x in rows], "next_cursor": cursor}


@bp.get("/calls/<int:call_id>")
@api_scope(Scope.TELEPHONY)
def get_call(call_id: int) -> Any:
    user = require_user(access.CALL_RECORDS)
    s = db_session()
    call = qc.call_card(s, org_ids=c.user_orgs(user), call_id=call_id)
    items = qc.missed_items_of_calls(s, org_ids=[call.organization_id], call_ids=[call.id])
    return call_json(call, items.get(call.id))


@bp.get("/missed-calls")
@api_scope(Scope.TELEPHONY)
def list_missed_calls() -> Any:
    """`status=open` (default): the queue, the most urgent first; `closed` or `all`: the newest
    first, in pages (`cursor`). `from`/`to`: the first call's local days; `breach=1`: breaches only."""
    user = require_user(access.CALL_RECORDS)
    ids = c.user_orgs(user)
    f = parse_missed_filter(request.args, _zone(ids, _organization_arg()))
    items, cursor = missed_page(db_session(), ids, f, c.now())
    return {"items": [missed_json(x) for x in items], "next_cursor": cursor}


@bp.get("/missed-calls/<int:missed_call_id>")
@api_scope(Scope.TELEPHONY)
def get_missed_call(missed_call_id: int) -> Any:
    user = require_user(access.CALL_RECORDS)
    return missed_json(qc.missed_call_card(db_session(), org_ids=c.user_orgs(user), missed_call_id=missed_call_id))


@bp.post("/voice-messages/<int:recording_id>/reviewed")
@api_scope(Scope.TELEPHONY)
def voice_message_reviewed(recording_id: int) -> Any:
    """Mark a voice message reviewed (who and when: the caller, now); idempotent."""
    user = require_user(access.CALL_RECORDS)
    s = db_session()
    rec = vm_svc.voice_message_of(s, org_ids=c.user_orgs(user), recording_id=recording_id)
    vm_svc.mark_voice_message_reviewed(s, org_id=rec.organization_id, recording_id=rec.id, by=user, now=c.now())
    item = vm_svc.voice_message_item(s, rec)
    return {"voice_message": voice_json(rec, c.now()), "missed_call_id": item.id if item else None}


@bp.post("/missed-calls/<int:missed_call_id>/close")
@api_scope(Scope.TELEPHONY)
def close_missed_call(missed_call_id: int) -> Any:
    user = require_user(access.CALL_RECORDS)
    s = db_session()
    item = calls_svc.get_missed_call(s, org_ids=c.user_orgs(user), missed_call_id=missed_call_id)
    body = c.parse_body(MissedCallCloseRequest)
    cb_svc.close_missed_call(s, org_id=item.organization_id, missed_call_id=item.id, reason=body.reason, by=user,
                             now=c.now())
    return missed_json(qc.missed_call_card(s, org_ids=[item.organization_id], missed_call_id=item.id))


@bp.get("/calls/compliance")
@api_scope(Scope.TELEPHONY)
def calls_compliance() -> Any:
    """Per local day: calls answered within 5 minutes, missed calls reached within 10, voice
    messages reviewed within 10; and every breach with its actual times (`models/call_stats.py`)."""
    user = require_user(access.CALLBACK_COMPLIANCE)
    ids = c.user_orgs(user)
    organization_id = _organization_arg()
    day_from, day_to = compliance_period(request.args, _zone(ids, organization_id), c.now())
    stats = compliance_stats(db_session(), ids, organization_id, day_from, day_to, now=c.now())
    return {"items": [_day_json(d) for st in stats for d in st.days],
            "breaches": [_breach_json(b) for st in stats for b in st.breaches]}


def _day_json(d: DailyCallStats) -> dict[str, Any]:
    return {
        "organization_id": d.organization_id, "day": d.day.isoformat(), "calls": d.calls, "answered": d.answered,
        "answered_in_5min": d.answered_in_5min, "answered_in_5min_share": d.answered_in_5min_share,
        "missed": d.missed, "callback_in_time": d.callback_in_time, "recall_in_time": d.recall_in_time,
        "reached_in_time": d.called_back_in_time, "called_back_late": d.called_back_late,
        "not_called_back": d.not_called_back, "awaiting_callback": d.awaiting_callback, "attempts": d.attempts,
        "share": d.callback_share, "voice_messages": d.voice_messages,
        "voice_messages_reviewed_late": d.voice_messages_reviewed_late,
    }


def _breach_json(b: CallBreach) -> dict[str, Any]:
    return {
        "kind": b.kind.value, "organization_id": b.organization_id, "day": b.day.isoformat(), "phone": b.phone,
        "started_at": c.utc_iso(b.started_at), "deadline_at": c.utc_iso(b.deadline_at),
        "actual_at": c.utc_iso(b.actual_at), "late_seconds": b.late_seconds, "user_id": b.user_id,
        "call_id": b.call_id, "missed_call_id": b.missed_call_id, "recording_id": b.recording_id, "note": b.note,
    }
