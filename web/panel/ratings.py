"""Residents' ratings in the panel: the rating block of the ticket card (value, source, transcript,
answer audio with logged access, the robot's attempts, the dispatcher's call time and rating
forms) and the managers' page (each executor's average, ratings 1–2 that need attention)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import abort, render_template, request, send_file
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload
from werkzeug.datastructures import MultiDict

from models.base import utcnow
from models.errors import NotFound, ValidationFailed
from models.organization import Organization
from models.rating import (
    ACTIVE_RATING_CALL,
    RATING_OUTCOME_TITLES_RU,
    RATING_SOURCE_TITLES_RU,
    RatingAttempt,
    RatingCall,
    RatingCallStatus,
    RatingSource,
    TicketRating,
)
from models.recording import RecordingAction
from models.rules import access
from models.services import rating_audio
from models.services import ratings as ratings_svc
from models.ticket import Ticket
from web.auth import login_required, org_ids
from web.dbsession import database
from web.dbsession import session as db_session
from web.inputs import day_arg, optional_int, possible_id
from web.kept_form import form_page
from web.panel import bp
from web.panel.common import STAFF, is_executor, my_orgs, parse_local_datetime, settings, user

DEFAULT_DAYS = 30
MAX_DAYS = 366
CALL_STATUS_TITLES_RU = {
    RatingCallStatus.SCHEDULED: "запланирован",
    RatingCallStatus.IN_PROGRESS: "идёт звонок",
    RatingCallStatus.DONE: "оценка получена",
    RatingCallStatus.FAILED: "не дозвонились",
    RatingCallStatus.CANCELLED: "отменён",
}


# --- shared with the API -------------------------------------------------------------------------


def chosen_org_ids(args: MultiDict[str, str], ids: list[int]) -> list[int]:
    """A report's organizations: `organization_id` narrows to one of the caller's `ids` (another
    one is "not found"); without it, all of them."""
    raw = (args.get("organization_id") or "").strip()
    if not raw:
        return ids
    oid = optional_int(raw, "organization_id")
    if oid not in ids:
        raise NotFound("организация не найдена", organization_id=oid)
    return [oid]


def rating_scope(
    args: MultiDict[str, str], ids: list[int], now: datetime
) -> tuple[list[int], date, date, tuple[datetime, datetime]]:
    """(organizations, first day, last day, [start, end) in UTC) of a ratings report.

    `organization_id` narrows to one of the caller's organizations (another one is "not found");
    `from`/`to` are local days of that organization (else of the first one), inclusive; by
    default the last 30 days."""
    ids = chosen_org_ids(args, ids)
    org = db_session().get(Organization, ids[0])
    tz = ZoneInfo(org.timezone if org is not None else "Europe/Moscow")
    today = now.astimezone(tz).date() if now.tzinfo else now.replace(tzinfo=UTC).astimezone(tz).date()
    day_to = day_arg(args.get("to"), "to") or today
    day_from = day_arg(args.get("from"), "from") or day_to - timedelta(days=DEFAULT_DAYS - 1)
    if day_to < day_from:
        raise ValidationFailed("начало периода позже конца", field="from")
    if (day_to - day_from).days >= MAX_DAYS:
        raise ValidationFailed(f"период не длиннее {MAX_DAYS} дней", field="to")
    start = datetime.combine(day_from, time(0), tz).astimezone(UTC)
    end = datetime.combine(day_to + timedelta(days=1), time(0), tz).astimezone(UTC)
    return ids, day_from, day_to, (start, end)


def card_context(session: Session, ticket: Ticket) -> dict[str, Any]:
    """What the ticket card shows about the rating (three small queries, the card only)."""
    ids = [ticket.organization_id]
    rating = ratings_svc.get_ticket_rating(session, org_ids=ids, ticket_id=ticket.id)
    attempts = ratings_svc.rating_attempts(session, org_ids=ids, ticket_id=ticket.id)
    calls = list(session.scalars(select(RatingCall).where(RatingCall.ticket_id == ticket.id,
                                                          RatingCall.organization_id.in_(ids))
                                 .order_by(RatingCall.id)))
    active = next((c for c in calls if c.status in ACTIVE_RATING_CALL), None)
    rating_attempt = None
    if rating is not None and rating.audio_path:
        rating_attempt = next((a for a in reversed(attempts) if a.audio_path == rating.audio_path), None)
    return dict(
        rating=rating, rating_attempt=rating_attempt, rating_attempts=attempts, rating_calls=calls,
        rating_call_active=active, rating_source_titles=RATING_SOURCE_TITLES_RU,
        rating_outcome_titles=RATING_OUTCOME_TITLES_RU, rating_call_titles=CALL_STATUS_TITLES_RU,
        can_rate=ticket.status in ratings_svc.RATED_STATUSES and not is_executor(), is_executor_view=is_executor(),
    )


# --- ticket card actions -----------------------------------------------------------------------------


@bp.post("/tickets/<int:ticket_id>/rating-call")
@form_page("panel.ticket_card")
@login_required(STAFF)
def ticket_rating_call(ticket_id: int) -> Any:
    """The dispatcher's time for the robot's rating call (in the organization's zone)."""
    from web.panel.tickets import _act

    def run(t: Ticket) -> None:
        at = parse_local_datetime(request.form.get("at"), ZoneInfo(t.organization.timezone), "at")
        if at is None:
            raise ValidationFailed("укажите время звонка", field="at")
        now = utcnow()
        if at.astimezone(UTC) < now - timedelta(minutes=1):
            raise ValidationFailed("время звонка уже прошло", field="at")
        call = ratings_svc.schedule_rating_call(db_session(), ticket=t, now=now, at=at.astimezone(UTC))
        if call is None:
            raise ValidationFailed("звонок не запланирован: заявка не выполнена, уже оценена, звонки робота "
                                   "отключены, нет номера или житель отказался от звонков", field="at")
        if call.status != RatingCallStatus.SCHEDULED:
            raise ValidationFailed("робот уже звонит: время можно изменить после звонка", field="at")

    return _act(ticket_id, run, "Время звонка робота сохранено")


@bp.post("/tickets/<int:ticket_id>/rating")
@form_page("panel.ticket_card")
@login_required(STAFF)
def ticket_rating(ticket_id: int) -> Any:
    """A rating the resident gave the dispatcher (by phone)."""
    from web.panel.tickets import _act

    def run(t: Ticket) -> None:
        value = optional_int(request.form.get("value"), "value")
        if value is None:
            raise ValidationFailed("выберите оценку", field="value")
        ratings_svc.record_rating(db_session(), ticket=t, value=value, source=RatingSource.DISPATCHER,
                                  transcript=(request.form.get("transcript") or "").strip()[:2000], by=user(),
                                  now=utcnow())

    return _act(ticket_id, run, "Оценка сохранена")


def _serve_answer(attempt_id: int, action: RecordingAction) -> Any:
    """Log the access (152-ФЗ: user, time, address) in its own committed transaction, then stream
    the file; an executor hears only the answers about their own tickets."""
    root = settings().recordings_dir
    with database().write() as ws:
        if is_executor():
            owner = ws.scalar(select(Ticket.executor_id).join(RatingAttempt, RatingAttempt.ticket_id == Ticket.id)
                              .where(RatingAttempt.id == attempt_id))
            if owner != user().id:
                raise NotFound("запись ответа не найдена", attempt_id=attempt_id)
        attempt = rating_audio.log_rating_audio_access(ws, org_ids=org_ids(), attempt_id=attempt_id, action=action,
                                                       by=user(), ip=request.remote_addr)
        try:
            path = rating_audio.rating_audio_file(root, attempt)
        except ValidationFailed:
            abort(404)
        if not path.is_file():
            abort(404)
        name = f"otsenka-{attempt.ticket_id}-{attempt.number}{path.suffix or '.wav'}"
    resp = send_file(path, mimetype="audio/wav" if path.suffix in ("", ".wav") else f"audio/{path.suffix[1:]}",
                     conditional=True, as_attachment=action == RecordingAction.DOWNLOAD, download_name=name,
                     max_age=0)
    resp.headers["Cache-Control"] = "private, no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


@bp.get("/rating-attempts/<int:attempt_id>/audio")
@login_required(access.READERS)
def rating_answer_play(attempt_id: int) -> Any:
    return _serve_answer(attempt_id, RecordingAction.PLAY)


@bp.get("/rating-attempts/<int:attempt_id>/audio/download")
@login_required(access.READERS)
def rating_answer_download(attempt_id: int) -> Any:
    return _serve_answer(attempt_id, RecordingAction.DOWNLOAD)


# --- managers' page --------------------------------------------------------------------------------------


@bp.get("/ratings")
@login_required(access.EXECUTOR_RATINGS)
def ratings_report() -> Any:
    """Each executor's average over a period and the ratings 1–2 that need the manager's attention."""
    orgs = my_orgs()
    error = None
    try:
        ids, day_from, day_to, period = rating_scope(request.args, org_ids(), utcnow())
    except ValidationFailed as exc:
        error = exc.message
        ids, day_from, day_to, period = rating_scope(MultiDict(), org_ids(), utcnow())
    s = db_session()
    rows = ratings_svc.executor_average_ratings(s, org_ids=ids, period=period)
    executor_id = possible_id(request.args.get("executor_id"))
    only_flagged = request.args.get("flagged", "1") != "0"
    stmt = (
        select(TicketRating)
        .where(TicketRating.organization_id.in_(ids), TicketRating.rated_at >= period[0],
               TicketRating.rated_at < period[1])
        .options(joinedload(TicketRating.ticket), joinedload(TicketRating.executor))
        .order_by(TicketRating.rated_at.desc())
        .limit(500)
    )
    if only_flagged:
        stmt = stmt.where(TicketRating.flagged_for_manager.is_(True))
    if executor_id is not None:
        stmt = stmt.where(TicketRating.executor_id == executor_id)
    listed = list(s.scalars(stmt))
    org_map = {o.id: o for o in orgs}
    return render_template(
        "ratings.html", rows=rows, listed=listed, orgs=orgs, org_map=org_map, day_from=day_from, day_to=day_to,
        chosen_org=request.args.get("organization_id", ""), executor_id=executor_id, only_flagged=only_flagged,
        source_titles=RATING_SOURCE_TITLES_RU, error=error,
    ), 400 if error else 200
