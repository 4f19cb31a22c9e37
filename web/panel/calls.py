"""Telephony screens: calls journal, call card, recordings (every play and download logged),
missed-call queue and its actions (callback, close with a reason), the 10-minute compliance page,
and "create resident" from an unknown caller's card.

Executors never see calls (residents' personal data): every route here is for staff only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from flask import (
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    stream_with_context,
    url_for,
)
from sqlalchemy import false, select
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from models import queries_calls as qc
from models.base import utcnow
from models.call import (
    CALL_DIRECTION_TITLES_RU,
    CALL_KIND_TITLES_RU,
    CALL_OUTCOME_TITLES_RU,
    Call,
    CallDirection,
    CallOutcome,
)
from models.call_stats import CallStats, daily_call_stats_of
from models.errors import DomainError, NotFound, ValidationFailed
from models.export import MIMETYPE
from models.export_calls import iter_calls_xlsx
from models.housing import Premise
from models.job import JobKind
from models.missed_call import (
    CLOSE_REASON_TITLES_RU,
    CallbackAttempt,
    CloseReason,
    MissedCall,
    MissedCallCall,
)
from models.organization import Organization, User
from models.queries_calls import CallerCard, CallFilter, MissedFilter, MissedStatusFilter
from models.recording import Recording, RecordingAction, RecordingKind
from models.rules import access
from models.rules.call_evidence import BREACH_TITLES_RU, answered_in_time
from models.rules.phones import display as phone_display
from models.rules.phones import try_e164
from models.services import callbacks as cb_svc
from models.services import calls as calls_svc
from models.services import housing
from models.services import voice_messages as vm_svc
from models.services.jobs import enqueue_job
from models.ticket import Ticket
from web.auth import login_required, org_ids
from web.dbsession import database
from web.dbsession import session as db_session
from web.inputs import day_arg, decode_cursor, encode_cursor, moment_arg, optional_int
from web.journal_args import bool_arg
from web.panel import bp
from web.panel.common import STAFF, my_orgs, org_by_id, settings, user
from web.redirects import next_target

PAGE_SIZE = 50
SOON_SECONDS = 120  # a missed call's countdown turns red two minutes before its deadline
COMPLIANCE_DEFAULT_DAYS = 7
COMPLIANCE_MAX_DAYS = 92

DIRECTION_TITLES = CALL_DIRECTION_TITLES_RU
KIND_TITLES = CALL_KIND_TITLES_RU
OUTCOME_CLASS = {CallOutcome.ANSWERED: "ok", CallOutcome.VOICEMAIL: "warn"}


# --- the web side of the domain services --------------------------------------------------------


def request_callback(session: Session, *, org_id: int, missed_call_id: int, by: User) -> CallbackAttempt:
    """The "Перезвонить" button. There is no separate "callback request" service: `start_callback`
    already writes what the ARI app needs — the outbound call row (kind `callback`, its channel id
    chosen for ARI `originate ?channelId=`) and the attempt — and emits `call.ringing` with
    `missed_call_id` and `attempt_id`; the ARI app places the call when it sees that event.
    Refused (409) for a closed item or while another callback of it is in progress.

    The callback rings the clicking dispatcher's own phone first: their endpoint in this
    organization (`assign_dispatcher_phone`) goes on the call row, where the ARI app's scheduler
    reads it. A user with no phone there is refused (400): the call would have nowhere to ring."""
    endpoint = calls_svc.endpoint_of_user(session, org_id=org_id, user_id=by.id)
    if endpoint is None:
        raise ValidationFailed("ваш телефон не указан в настройках телефонии организации — обратный вызов "
                               "некуда направить; обратитесь к администратору", field="endpoint", user_id=by.id)
    return cb_svc.start_callback(session, org_id=org_id, missed_call_id=missed_call_id, by=by, endpoint=endpoint)


def link_ticket_to_call(session: Session, *, org: Organization, call_id: Any, ticket: Ticket, by: User) -> None:
    """A ticket registered from a caller card: link the call (and so its recording) to it."""
    cid = optional_int(call_id, "call_id")
    if cid is None:
        return
    try:
        calls_svc.link_call_to_ticket(session, org_id=org.id, call_id=cid, ticket_id=ticket.id, by=by)
    except NotFound as exc:
        raise ValidationFailed("звонок не найден в организации заявки", field="call_id", value=cid) from exc


# --- presentation ------------------------------------------------------------------------------


def _zone(org: Organization) -> ZoneInfo:
    return ZoneInfo(org.timezone)


@bp.app_template_filter("mmss")
def mmss(seconds: float) -> str:
    s = int(abs(seconds))
    return f"{s // 60}:{s % 60:02d}"


@dataclass(frozen=True)
class Countdown:
    """A missed call's countdown as the server renders it (the browser then ticks it every second)."""

    css: str  # "cd-ok", "cd-soon", "cd-overdue"
    text: str  # "7:12", "1:05", "+3:20"
    label: str  # "осталось", "меньше 2 минут", "просрочен"


def countdown(deadline_at: datetime, now: datetime) -> Countdown:
    left = (deadline_at - now).total_seconds()
    if left < 0:
        return Countdown("cd-overdue", "+" + mmss(left), "ПРОСРОЧЕН")
    if left < SOON_SECONDS:
        return Countdown("cd-soon", mmss(left), "меньше 2 минут")
    return Countdown("cd-ok", mmss(left), "осталось")


def ticket_prefill(call: Call, card: CallerCard, resident_id: int | None = None) -> dict[str, Any]:
    """Arguments of the new-ticket form opened from a caller card (`call_id` links the call on save)."""
    args: dict[str, Any] = {"organization_id": call.organization_id, "call_id": call.id, "channel": "phone"}
    if call.phone:
        args["reporter_phone"] = call.phone
    for r in card.residents:
        if r.id == resident_id:
            args.update(resident_id=r.id, reporter_name=r.full_name)
            if r.house_id is not None:
                args.update(house_id=r.house_id, house_address=r.address)
            if r.premise_id is not None:
                args["premise_id"] = r.premise_id
    return args


def ticket_url(call: Call, card: CallerCard, resident_id: int | None = None) -> str:
    return url_for("panel.ticket_new", **ticket_prefill(call, card, resident_id))


def card_context(session: Session, call: Call) -> dict[str, Any]:
    """The caller card of a call, with its "create ticket" links (one per matched resident)."""
    card = qc.caller_card(session, org_id=call.organization_id, phone=call.phone)
    return {
        "card": card,
        "held_calls": qc.held_call_ids(session, [call.id]),
        "ticket_links": {r.id: ticket_url(call, card, r.id) for r in card.residents},
        "ticket_link": ticket_url(call, card, card.residents[0].id if len(card.residents) == 1 else None),
    }


@bp.app_template_filter("call_phone")
def call_phone(phone: str | None) -> str:
    return phone_display(phone) if phone else "номер скрыт"


@bp.app_template_filter("utc_iso")
def utc_iso(moment: datetime | None) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else ""


@bp.app_template_filter("times_ru")
def times_ru(n: int) -> str:
    """3 → "3 раза", 5 → "5 раз"."""
    return f"{n} раза" if n % 10 in (2, 3, 4) and n % 100 not in (12, 13, 14) else f"{n} раз"


@bp.app_context_processor
def _call_titles() -> dict[str, Any]:
    return {"outcome_titles": CALL_OUTCOME_TITLES_RU, "kind_titles": KIND_TITLES,
            "direction_titles": DIRECTION_TITLES, "close_reason_titles": CLOSE_REASON_TITLES_RU,
            "outcome_class": OUTCOME_CLASS, "answered_in_time": answered_in_time}


# --- filters and keyset paging -----------------------------------------------------------------


def encode_call_cursor(call: Call) -> str:
    return encode_cursor(call.started_at, call.id)


CALL_FILTER_ARGS = ("organization_id", "from", "to", "direction", "outcome", "phone")


def parse_call_filter(args: MultiDict[str, str], tz: ZoneInfo, default_limit: int = PAGE_SIZE) -> CallFilter:
    """The calls journal's filter (panel and API): organization_id, from, to, direction, outcome
    (repeatable; `missed` = every unanswered inbound outcome), phone, cursor, limit (1..200)."""
    f = CallFilter(limit=default_limit)
    f.organization_id = optional_int(args.get("organization_id"), "organization_id")
    f.started_from = moment_arg("from", args.get("from"), tz)
    f.started_to = moment_arg("to", args.get("to"), tz, end_day=True)
    if f.started_from is not None and f.started_to is not None and f.started_from > f.started_to:
        raise ValidationFailed("период задан наоборот: дата «с» позже даты «по»; поменяйте даты местами",
                               field="from", value=args.get("from", ""))
    raw = args.get("direction", "").strip()
    if raw:
        try:
            f.direction = CallDirection(raw)
        except ValueError as exc:
            raise ValidationFailed(f"неизвестное направление «{raw[:40]}»", field="direction", value=raw) from exc
    for value in args.getlist("outcome"):
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            if part == "missed":
                f.missed = True
                continue
            try:
                f.outcomes.append(CallOutcome(part))
            except ValueError as exc:
                raise ValidationFailed(f"неизвестный исход {part!r}", field="outcome", value=part) from exc
    phone = args.get("phone", "").strip()
    if phone:
        if try_e164(phone) is None:
            raise ValidationFailed("некорректный номер телефона", field="phone", value=phone)
        f.phone = phone
    return _paged(f, args, 200)


F = TypeVar("F", CallFilter, MissedFilter)


def _paged(f: F, args: MultiDict[str, str], max_limit: int) -> F:
    """The page of a list filter: `cursor` (where the previous page ended) and `limit` (1..max_limit)."""
    cursor = args.get("cursor", "").strip()
    if cursor:
        f.before = decode_cursor(cursor)
    raw_limit = args.get("limit", "").strip()
    if raw_limit:
        limit = optional_int(raw_limit, "limit")
        if limit is None or not 1 <= limit <= max_limit:
            raise ValidationFailed(f"limit должен быть от 1 до {max_limit}", field="limit", value=raw_limit)
        f.limit = limit
    return f


MISSED_FILTER_ARGS = ("organization_id", "status", "from", "to", "breach")
QUEUE_LIMIT = 500
MISSED_STATUS_TITLES = {MissedStatusFilter.OPEN: "ждут перезвона", MissedStatusFilter.CLOSED: "закрытые",
                        MissedStatusFilter.ALL: "все"}


def parse_missed_filter(args: MultiDict[str, str], tz: ZoneInfo, default_limit: int = 100) -> MissedFilter:
    """The missed-call lists' filter (panel and API): organization_id, status (open — the queue,
    closed, all), from/to (the first call's local days, inclusive, or ISO date-times), breach
    (1: only breaches — the resident reached late or not at all, or the item's voice message not
    reviewed within 10 minutes), cursor, limit (1..500)."""
    f = MissedFilter(limit=default_limit)
    f.organization_id = optional_int(args.get("organization_id"), "organization_id")
    raw = args.get("status", "").strip() or MissedStatusFilter.OPEN.value
    try:
        f.status = MissedStatusFilter(raw)
    except ValueError as exc:
        raise ValidationFailed(f"неизвестное состояние «{raw[:40]}»: open, closed или all", field="status",
                               value=raw) from exc
    if f.status == MissedStatusFilter.OPEN:
        f.limit = QUEUE_LIMIT  # the queue is one page: every waiting item
    f.first_from = moment_arg("from", args.get("from"), tz)
    f.first_to = moment_arg("to", args.get("to"), tz, end_day=True)
    if f.first_from is not None and f.first_to is not None and f.first_from > f.first_to:
        raise ValidationFailed("период задан наоборот: дата «с» позже даты «по»; поменяйте даты местами",
                               field="from", value=args.get("from", ""))
    f.breach_only = bool(bool_arg("breach", args.get("breach", "")))
    return _paged(f, args, QUEUE_LIMIT)


def missed_page(session: Session, ids: list[int], f: MissedFilter,
                now: datetime | None = None) -> tuple[list[MissedCall], str | None]:
    """One page of a missed-call list and the next page's cursor (None: the last page; the open
    queue is one page)."""
    limit = f.limit
    f.limit = limit + 1
    found = list(qc.missed_calls_list(session, org_ids=ids, f=f, now=now))
    f.limit = limit
    if len(found) > limit and f.status != MissedStatusFilter.OPEN:
        return found[:limit], encode_cursor(found[limit - 1].first_call_at, found[limit - 1].id)
    return found[:limit], None


def calls_page(session: Session, ids: list[int], f: CallFilter) -> tuple[list[Call], str | None]:
    """One keyset page of the calls journal and the cursor of the next one (None: the last page)."""
    limit = f.limit
    f.limit = limit + 1
    found = list(qc.calls_journal(session, org_ids=ids, f=f))
    f.limit = limit
    if len(found) > limit:
        return found[:limit], encode_call_cursor(found[limit - 1])
    return found, None


def _tz_for(args: MultiDict[str, str], orgs: list[Organization]) -> ZoneInfo:
    chosen = args.get("organization_id", "")
    for org in orgs:
        if str(org.id) == chosen:
            return _zone(org)
    return _zone(orgs[0]) if orgs else ZoneInfo("Europe/Moscow")


# --- calls journal and call card ---------------------------------------------------------------


@bp.get("/calls")
@login_required(access.CALL_RECORDS)
def calls_journal() -> Any:
    orgs = my_orgs()
    ids = [o.id for o in orgs]
    args = MultiDict([(k, v.strip()) for k in CALL_FILTER_ARGS for v in request.args.getlist(k) if v.strip()])
    error = None
    rows: list[Call] = []
    next_url = None
    try:
        f = parse_call_filter(request.args, _tz_for(args, orgs))
        rows, cursor = calls_page(db_session(), ids, f)
    except ValidationFailed as exc:
        error = exc.message
    else:
        if cursor:
            next_url = url_for("panel.calls_journal") + "?" + urlencode([*args.items(multi=True), ("cursor", cursor)])
    items = qc.missed_items_of_calls(db_session(), org_ids=ids, call_ids=[c.id for c in rows]) if rows else {}
    context = dict(
        rows=rows, error=error, next_url=next_url, v={k: args.get(k, "") for k in CALL_FILTER_ARGS}, items=items,
        export_url=url_for("panel.calls_export") + ("?" + urlencode(list(args.items(multi=True))) if args else ""),
        held_calls=qc.held_call_ids(db_session(), [c.id for c in rows]),
        outcomes=args.getlist("outcome"), orgs=orgs, org_map={o.id: o for o in orgs},
        first_page_url=url_for("panel.calls_journal") + "?" + urlencode(list(args.items(multi=True)))
        if request.args.get("cursor") else None,
    )
    return render_template("calls/journal.html", **context), 400 if error else 200


def _export_filter(args: MultiDict[str, str], orgs: list[Organization]) -> tuple[MultiDict[str, str], CallFilter]:
    """The calls journal's filter arguments (no page cursor or size) and the filter they make;
    another organization's id is not found."""
    kept = MultiDict([(k, v.strip()) for k in CALL_FILTER_ARGS for v in args.getlist(k) if v.strip()])
    f = parse_call_filter(kept, _tz_for(kept, orgs))
    if f.organization_id is not None and f.organization_id not in {o.id for o in orgs}:
        raise NotFound("организация не найдена", organization_id=f.organization_id)
    return kept, f


def _export_name(orgs: list[Organization], args: MultiDict[str, str]) -> str:
    return f"calls-{utcnow().astimezone(_tz_for(args, orgs)).date().isoformat()}.xlsx"


@bp.get("/calls/export.xlsx")
@login_required(access.CALL_RECORDS)
def calls_export() -> Any:
    """The filtered calls journal (every page) as a streamed .xlsx, with each call's ПП 416
    evidence (`models/export_calls.py`). For inspectors and small sets: the page's button queues
    a job for staff (`calls_export_job`)."""
    orgs = my_orgs()
    if not orgs:
        raise NotFound("нет доступных организаций")
    args, f = _export_filter(request.args, orgs)
    body = iter_calls_xlsx(database(), [o.id for o in orgs], f, utcnow())  # each batch opens its own read session
    return Response(stream_with_context(body), mimetype=MIMETYPE,
                    headers={"Content-Disposition": f'attachment; filename="{_export_name(orgs, args)}"',
                             "Cache-Control": "no-store"})


@bp.post("/calls/export")
@login_required(STAFF)
def calls_export_job() -> Any:
    """The filtered calls journal exported in the background (large periods): a job, redirected to;
    its page offers the file when it is written."""
    orgs = my_orgs()
    if not orgs:
        raise NotFound("нет доступных организаций")
    args, f = _export_filter(request.form, orgs)  # a bad filter is refused now, not in the worker
    covered = [f.organization_id] if f.organization_id is not None else sorted(o.id for o in orgs)
    job = enqueue_job(db_session(), org_id=covered[0], kind=JobKind.CALLS_EXPORT, by=user(),
                      params={"args": [[k, v] for k, v in args.items(multi=True)], "org_ids": covered,
                              "filename": _export_name(orgs, args)})
    return redirect(url_for("panel.job_page", job_id=job.id))


@bp.get("/calls/<int:call_id>")
@login_required(access.CALL_RECORDS)
def call_card(call_id: int) -> Any:
    """The call (right zone of the console with `?partial=1`, or a page of its own)."""
    s = db_session()
    call = qc.call_card(s, org_ids=org_ids(), call_id=call_id)
    item_id = qc.missed_items_of_calls(s, org_ids=[call.organization_id], call_ids=[call.id]).get(call.id)
    missed = qc.missed_call_card(s, org_ids=[call.organization_id], missed_call_id=item_id) if item_id else None
    return render_template("calls/call_card.html", call=call, partial=request.args.get("partial") == "1",
                           missed=missed, now=utcnow(), **card_context(s, call))


# --- recordings --------------------------------------------------------------------------------


def _serve_recording(recording_id: int, action: RecordingAction) -> Any:
    """Log the access (152-ФЗ: user, time, address) and stream the file with Range support.

    The log row is committed before the first byte goes out, in its own write transaction (the
    request's GET session is a read one); another organization's recording is "not found" and
    a missing file rolls the log row back."""
    root = settings().recordings_dir
    with database().write() as ws:
        rec = calls_svc.log_recording_access(ws, org_ids=org_ids(), recording_id=recording_id, action=action,
                                             by=user(), ip=request.remote_addr)
        try:
            path = calls_svc.recording_file(root, rec)
        except ValidationFailed:
            abort(404)
        if not path.is_file():
            abort(404)
        mimetype = "audio/wav" if rec.format == "wav" else f"audio/{rec.format}"
        name = f"zapis-{rec.call_id or rec.id}-{rec.kind.value}.{rec.format}"
    resp = send_file(path, mimetype=mimetype, conditional=True, as_attachment=action == RecordingAction.DOWNLOAD,
                     download_name=name, max_age=0)
    resp.headers["Cache-Control"] = "private, no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


@bp.get("/recordings/<int:recording_id>")
@login_required(access.CALL_RECORDS)
def recording_play(recording_id: int) -> Any:
    return _serve_recording(recording_id, RecordingAction.PLAY)


@bp.get("/recordings/<int:recording_id>/download")
@login_required(access.CALL_RECORDS)
def recording_download(recording_id: int) -> Any:
    return _serve_recording(recording_id, RecordingAction.DOWNLOAD)


# --- missed-call queue -------------------------------------------------------------------------


@bp.get("/missed-calls")
@login_required(access.CALL_RECORDS)
def missed_calls() -> Any:
    """The open queue (live, the most urgent first), or with `status=closed|all` the closed items
    the newest first, each marked in time or a breach with its actual times; `from`/`to` (the first
    call's days) and `breach=1` narrow both."""
    orgs = my_orgs()
    args = MultiDict([(k, v.strip()) for k in MISSED_FILTER_ARGS for v in request.args.getlist(k) if v.strip()])
    s = db_session()
    now = utcnow()
    error = None
    items: list[MissedCall] = []
    next_url = None
    f = MissedFilter()
    try:
        f = parse_missed_filter(request.args, _tz_for(args, orgs))
        items, cursor = missed_page(s, [o.id for o in orgs], f, now)
    except ValidationFailed as exc:
        error = exc.message
    else:
        if cursor:
            next_url = url_for("panel.missed_calls") + "?" + urlencode([*args.items(multi=True), ("cursor", cursor)])
    queue = f.status == MissedStatusFilter.OPEN and not f.breach_only and f.first_from is None and f.first_to is None
    return render_template("calls/missed.html", items=items, now=now, countdown=countdown, queue=queue,
                           server_now=now.replace(tzinfo=UTC).isoformat(), org_map={o.id: o for o in orgs},
                           orgs=orgs, error=error, next_url=next_url, status_titles=MISSED_STATUS_TITLES,
                           v={k: args.get(k, "") for k in MISSED_FILTER_ARGS}, status=f.status.value,
                           back=url_for("panel.missed_calls")), 400 if error else 200


def _missed_card(missed_call_id: int, *, error: str | None = None, status: int = 200) -> Any:
    s = db_session()
    item = qc.missed_call_card(s, org_ids=org_ids(), missed_call_id=missed_call_id)
    calls = list(s.scalars(
        select(Call).join(MissedCallCall, MissedCallCall.call_id == Call.id)
        .where(MissedCallCall.missed_call_id == item.id).order_by(Call.started_at)
    ))
    voice_messages = list(s.scalars(
        select(Recording).where(Recording.call_id.in_([c.id for c in calls]) if calls else false(),
                                Recording.kind == RecordingKind.VOICEMAIL, Recording.organization_id == item.organization_id)
        .order_by(Recording.created_at, Recording.id)
    ))
    recall = item.closing_call if item.close_reason == CloseReason.CALLED_AGAIN_ANSWERED else None
    card = qc.caller_card(s, org_id=item.organization_id, phone=item.phone)
    # «Создать заявку» from a missed call: prefilled from its first call (phone, resident, house,
    # premise), and that call (with its voice message) is linked to the ticket on save
    links: dict[str, Any] = {}
    if calls:
        links = {"ticket_links": {r.id: ticket_url(calls[0], card, r.id) for r in card.residents},
                 "ticket_link": ticket_url(calls[0], card,
                                           card.residents[0].id if len(card.residents) == 1 else None)}
    return render_template(
        "calls/missed_card.html", item=item, calls=calls, card=card, **links, now=utcnow(), countdown=countdown,
        voice_messages=voice_messages, recall=recall,
        partial=request.args.get("partial") == "1", error=error, reason=request.form.get("reason", ""),
        running=any(a.ended_at is None for a in item.attempts),
    ), status


@bp.get("/missed-calls/<int:missed_call_id>")
@login_required(access.CALL_RECORDS)
def missed_call_card(missed_call_id: int) -> Any:
    return _missed_card(missed_call_id)


@bp.post("/missed-calls/<int:missed_call_id>/callback")
@login_required(STAFF)
def missed_call_callback(missed_call_id: int) -> Any:
    s = db_session()
    item = calls_svc.get_missed_call(s, org_ids=org_ids(), missed_call_id=missed_call_id)
    try:
        request_callback(s, org_id=item.organization_id, missed_call_id=item.id, by=user())
    except NotFound:
        raise
    except DomainError as exc:
        s.rollback()
        return _missed_card(missed_call_id, error=exc.message, status=exc.http_status)
    flash(f"Обратный вызов на {call_phone(item.phone)} запрошен: ответьте на своём телефоне", "ok")
    return redirect(next_target(url_for("panel.index")))


@bp.post("/missed-calls/<int:missed_call_id>/close")
@login_required(STAFF)
def missed_call_close(missed_call_id: int) -> Any:
    s = db_session()
    item = calls_svc.get_missed_call(s, org_ids=org_ids(), missed_call_id=missed_call_id)
    try:
        cb_svc.close_missed_call(s, org_id=item.organization_id, missed_call_id=item.id,
                                 reason=request.form.get("reason", ""), by=user())
    except NotFound:
        raise
    except DomainError as exc:
        s.rollback()
        return _missed_card(missed_call_id, error=exc.message, status=exc.http_status)
    flash(f"Пропущенный звонок {call_phone(item.phone)} закрыт", "ok")
    return redirect(next_target(url_for("panel.index")))


@bp.post("/voice-messages/<int:recording_id>/reviewed")
@login_required(STAFF)
def voice_message_reviewed(recording_id: int) -> Any:
    """«Отметить прослушанным»: the voice message's review (ПП 416 T3) stamped with who and when."""
    s = db_session()
    rec = vm_svc.voice_message_of(s, org_ids=org_ids(), recording_id=recording_id)
    vm_svc.mark_voice_message_reviewed(s, org_id=rec.organization_id, recording_id=rec.id, by=user())
    flash("Голосовое сообщение отмечено прослушанным", "ok")
    return redirect(next_target(url_for("panel.missed_calls")))


# --- "create resident" from an unknown caller's card --------------------------------------------


@bp.route("/calls/<int:call_id>/resident", methods=["GET", "POST"])
@login_required(STAFF)
def call_resident_new(call_id: int) -> Any:
    s = db_session()
    call = calls_svc.get_call(s, org_ids=org_ids(), call_id=call_id)
    org = org_by_id(call.organization_id)
    form = request.form.to_dict() if request.method == "POST" else {}
    error = None
    if request.method == "POST":
        try:
            premise_id = None
            house_id = optional_int(form.get("house_id"), "house_id")
            number = (form.get("premise") or "").strip()
            if house_id is not None:
                housing.owned_house(s, org=org, house_id=house_id)
                if number:
                    premise_id = s.scalar(select(Premise.id).where(
                        Premise.house_id == house_id, Premise.organization_id == org.id, Premise.number == number))
                    if premise_id is None:
                        raise ValidationFailed(f"в этом доме нет помещения «{number}»", field="premise")
            if not call.phone:
                raise ValidationFailed("номер звонящего скрыт: жителя создайте в справочнике", field="phone")
            resident = housing.create_resident(s, org=org, full_name=form.get("full_name", ""), phones=[call.phone],
                                               premise_id=premise_id, note=form.get("note", "")[:2000])
        except DomainError as exc:
            s.rollback()
            error = exc.message
        else:
            card = qc.caller_card(s, org_id=org.id, phone=call.phone)
            flash(f"Житель «{resident.full_name}» создан: номер {call_phone(call.phone)} теперь узнаётся", "ok")
            return redirect(ticket_url(call, card, resident.id))
    return render_template("calls/resident_new.html", call=call, org=org, form=form, error=error), \
        400 if error else 200


# --- compliance (ПП 416: calls answered within 5 minutes, missed calls called back within 10) ----


@bp.app_template_filter("share_percent")
def share_percent(share: float | None) -> str:
    """0.5 → "50 %"; None (nothing to count) → "—"."""
    return "—" if share is None else f"{share * 100:.0f} %"


@bp.app_template_filter("share_css")
def share_css(share: float | None) -> str:
    """The mark of a compliance share: all in time "ok", at least 90 % "warn", less "bad"."""
    if share is None:
        return "none"
    return "ok" if share >= 1 else "warn" if share >= 0.9 else "bad"


def compliance_period(args: MultiDict[str, str], tz: ZoneInfo, now: datetime) -> tuple[date, date]:
    """`from`/`to` local dates (inclusive); by default the last seven days up to today."""
    today = now.replace(tzinfo=UTC).astimezone(tz).date()
    day_to = day_arg(args.get("to"), "to") or today
    day_from = day_arg(args.get("from"), "from") or day_to - timedelta(days=COMPLIANCE_DEFAULT_DAYS - 1)
    if day_to < day_from:
        raise ValidationFailed("начало периода позже конца", field="from")
    if (day_to - day_from).days >= COMPLIANCE_MAX_DAYS:
        raise ValidationFailed(f"период не длиннее {COMPLIANCE_MAX_DAYS} дней", field="to")
    return day_from, day_to


def compliance_stats(session: Session, ids: list[int], organization_id: int | None, day_from: date,
                     day_to: date, now: datetime | None = None) -> list[CallStats]:
    """The call statistics of the period for the chosen organization, or each of the caller's
    (another organization's id: not found)."""
    if organization_id is not None:
        if organization_id not in ids:
            raise NotFound("организация не найдена", organization_id=organization_id)
        ids = [organization_id]
    return daily_call_stats_of(session, org_ids=ids, start=day_from, end=day_to, now=now)


COMPLIANCE_BREACH_ROWS = 200  # per organization on the page; the inspection pack lists all


@bp.get("/calls/compliance")
@login_required(access.CALLBACK_COMPLIANCE)
def calls_compliance() -> Any:
    orgs = my_orgs()
    org_map = {o.id: o for o in orgs}
    args = request.args
    error = None
    stats: list[CallStats] = []
    tz = _tz_for(args, orgs)
    day_from, day_to = date.today(), date.today()
    s = db_session()
    try:
        day_from, day_to = compliance_period(args, tz, utcnow())
        stats = compliance_stats(s, list(org_map), optional_int(args.get("organization_id"), "organization_id"),
                                 day_from, day_to)
    except ValidationFailed as exc:
        error = exc.message
    user_ids = {b.user_id for st in stats for b in st.breaches if b.user_id is not None}
    people = {u.id: u.full_name for u in s.scalars(select(User).where(User.id.in_(user_ids)))} if user_ids else {}
    return render_template(
        "calls/compliance.html", stats=stats, org_map=org_map, orgs=orgs, error=error, people=people,
        breach_titles=BREACH_TITLES_RU, breach_rows=COMPLIANCE_BREACH_ROWS,
        v={"organization_id": args.get("organization_id", ""), "from": day_from.isoformat(),
           "to": day_to.isoformat()},
    ), 400 if error else 200
