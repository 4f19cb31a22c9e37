"""Residents' ratings after execution (ПП 416 D6, issue 4): the robot's durable call schedule,
its attempts, the rating itself and the executors' averages.

The schedule is rows (`rating_calls`), run by `openads worker` / the ARI robot flow:

1. `schedule_rating_call` when a ticket reaches done or closed: one active row per ticket
   (partial unique index), planned at the dispatcher's time or in the organization's next call
   window (default 10:00–20:00 local, never at night);
2. `claim_due_rating_calls` leases due rows to a worker (`FOR UPDATE SKIP LOCKED` on PostgreSQL,
   `BEGIN IMMEDIATE` serialises on SQLite) and opens one `RatingAttempt` per claimed row in the
   same transaction. A row whose lease expired (worker killed mid-call) is reclaimed: its open
   attempt is closed as failed and the next one planned like any failure, so a dead worker
   never causes a second simultaneous call;
3. `record_rating_attempt` closes the attempt with its outcome: a rating → `record_rating`;
   no answer, busy, failure, not understood → the next attempt `retry_interval` later inside the
   window, until `max_attempts`, then failed.

Events: `ticket.changed` with action `rated`, `rating_call_scheduled` or `rating_call_failed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import events
from models.errors import NotFound, TransitionNotAllowed, ValidationFailed
from models.housing import ResidentPhone
from models.notification import ResidentContactPreference, RobotSettings, default_robot_settings
from models.organization import Organization, User
from models.rating import (
    ACTIVE_RATING_CALL,
    RATING_SOURCE_TITLES_RU,
    RatingAttempt,
    RatingAttemptOutcome,
    RatingCall,
    RatingCallStatus,
    RatingSource,
    TicketRating,
)
from models.rules import robot as rules
from models.ticket import Ticket, TicketHistory, TicketStatus

# A claimed call must end (record_rating_attempt) within this time, or another worker reclaims it.
# A rating call lasts about two minutes (ring 30 s, prompt, two answers, confirmation).
DEFAULT_LEASE = timedelta(minutes=10)
RATED_STATUSES = (TicketStatus.DONE, TicketStatus.CLOSED)
FLAG_AT_OR_BELOW = 2
RETRYABLE_OUTCOMES = frozenset(set(RatingAttemptOutcome) - {RatingAttemptOutcome.ANSWERED})


@dataclass(frozen=True)
class ClaimedRatingCall:
    """Everything the robot flow needs to place one attempt, with no further lookups."""

    rating_call_id: int
    attempt_id: int
    attempt_number: int
    max_attempts: int
    organization_id: int
    ticket_id: int
    ticket_number: str
    phone: str  # E.164, dial through the outbound trunk
    caller_id: str | None  # the organization's hotline (E.164)
    prompt: str  # the rendered per-organization Russian prompt
    voice: str | None


@dataclass(frozen=True)
class ExecutorRating:
    executor_id: int
    full_name: str
    count: int
    average: float  # rounded to 2 decimals
    low_count: int  # ratings 1–2


# --- settings and small helpers ---------------------------------------------------------------


def robot_settings(session: Session, org_id: int) -> RobotSettings:
    return session.get(RobotSettings, org_id) or default_robot_settings(org_id)


def tz_of(org: Organization) -> ZoneInfo:
    return ZoneInfo(org.timezone)


def _ids(org_ids: list[int] | set[int]) -> list[int]:
    ids = list(org_ids)
    if not ids:
        raise NotFound("нет доступных организаций")
    return ids


def _emit(session: Session, ticket: Ticket, action: str, **extra: Any) -> None:
    """Same payload shape as the ticket services' `ticket.changed` (panels refresh the row)."""
    payload: dict[str, Any] = {
        "ticket_id": ticket.id, "number": ticket.number, "status": ticket.status.value, "action": action,
        "executor_ids": [ticket.executor_id] if ticket.executor_id is not None else [],
        "by": None, "fields": ["rating"] if action == "rated" else [],
    }
    payload.update(extra)
    events.emit(session, ticket.organization_id, events.TICKET_CHANGED, payload)


def _preference(session: Session, resident_id: int | None) -> ResidentContactPreference | None:
    if resident_id is None:
        return None
    return session.scalar(
        select(ResidentContactPreference).where(ResidentContactPreference.resident_id == resident_id)
    )


def resident_phone(session: Session, ticket: Ticket) -> str | None:
    """The number to call about a ticket: the reporter's, else the resident's first phone."""
    if ticket.reporter_phone:
        return ticket.reporter_phone
    if ticket.resident_id is None:
        return None
    return session.scalar(
        select(ResidentPhone.phone).where(ResidentPhone.resident_id == ticket.resident_id)
        .order_by(ResidentPhone.id).limit(1)
    )


def _active_call(session: Session, ticket_id: int, *, lock: bool = False) -> RatingCall | None:
    stmt = select(RatingCall).where(RatingCall.ticket_id == ticket_id, RatingCall.status.in_(ACTIVE_RATING_CALL))
    if lock:
        stmt = stmt.with_for_update()
    return session.scalar(stmt)


def _completed_at(ticket: Ticket) -> datetime | None:
    return ticket.resolved_at or ticket.closed_at


# --- scheduling ---------------------------------------------------------------------------------


def schedule_rating_call(
    session: Session, *, ticket: Ticket, now: datetime, at: datetime | None = None
) -> RatingCall | None:
    """Plan the robot's rating call for a done or closed ticket; idempotent.

    Returns the active call (the existing one if any: a dispatcher's `at` re-plans it while it
    waits) or None when no call is due: the ticket is not done/closed, rating calls are off for
    the organization, the resident has no phone or opted out of robot calls, or this completion
    was already rated or already called about. Emits `ticket.changed` (`rating_call_scheduled`)
    when a row is created or re-planned.
    """
    if ticket.status not in RATED_STATUSES:
        return None
    org: Organization = ticket.organization
    settings = robot_settings(session, org.id)
    if not settings.rating_calls_enabled:
        return None
    tz = tz_of(org)
    existing = _active_call(session, ticket.id, lock=True)
    if existing is not None:
        if at is not None and existing.status == RatingCallStatus.SCHEDULED:
            existing.requested_at = at
            existing.planned_at = rules.next_call_time(now, settings.call_window, tz, at=at)
            _emit(session, ticket, "rating_call_scheduled", planned_at=existing.planned_at.isoformat())
        return existing
    completed = _completed_at(ticket)
    if completed is not None:
        rated = session.scalar(
            select(TicketRating.id).where(TicketRating.ticket_id == ticket.id, TicketRating.rated_at >= completed)
        )
        called = session.scalar(
            select(RatingCall.id).where(RatingCall.ticket_id == ticket.id, RatingCall.created_at >= completed)
        )
        if rated is not None or called is not None:
            return None
    pref = _preference(session, ticket.resident_id)
    if pref is not None and (pref.opt_out or pref.no_robot_calls):
        return None
    phone = resident_phone(session, ticket)
    if not phone:
        return None
    call = RatingCall(
        organization_id=org.id, ticket_id=ticket.id, phone=phone, resident_id=ticket.resident_id,
        planned_at=rules.next_call_time(now, settings.call_window, tz, at=at), requested_at=at,
        attempts=0, max_attempts=settings.max_attempts, retry_interval_minutes=settings.retry_interval_minutes,
        status=RatingCallStatus.SCHEDULED, cancel_reason="", created_at=now,
    )
    try:
        with session.begin_nested():  # another process scheduled it at the same moment
            session.add(call)
    except IntegrityError:
        return _active_call(session, ticket.id)
    _emit(session, ticket, "rating_call_scheduled", planned_at=call.planned_at.isoformat())
    return call


def rating_call_refusal(session: Session, *, ticket: Ticket) -> str | None:
    """Why no rating call can be made about a done or closed ticket (the reason recorded on the
    ticket, decision 0039), or None when one can, or when none is needed (already rated or
    called about since this completion)."""
    if ticket.status not in RATED_STATUSES:
        return None
    completed = _completed_at(ticket)
    if completed is not None and session.scalar(
        select(TicketRating.id).where(TicketRating.ticket_id == ticket.id, TicketRating.rated_at >= completed)
    ) is not None:
        return None
    if not robot_settings(session, ticket.organization_id).rating_calls_enabled:
        return "звонки робота для оценки отключены в настройках организации"
    pref = _preference(session, ticket.resident_id)
    if pref is not None and pref.opt_out:
        return "житель отказался от уведомлений и звонков"
    if pref is not None and pref.no_robot_calls:
        return "житель отказался от звонков робота"
    if not resident_phone(session, ticket):
        return "нет телефона заявителя"
    return None


def cancel_rating_call(session: Session, *, ticket_id: int, reason: str, now: datetime) -> RatingCall | None:
    """Cancel the ticket's active rating call (reopened, rated by a dispatcher, ...); an open attempt is closed."""
    call = _active_call(session, ticket_id, lock=True)
    if call is None:
        return None
    _close_open_attempt(session, call, now, RatingAttemptOutcome.FAILED, f"отменено: {reason}")
    call.status = RatingCallStatus.CANCELLED
    call.cancel_reason = reason[:200]
    call.finished_at = now
    call.locked_by = call.locked_until = None
    return call


# --- the worker's side --------------------------------------------------------------------------


def _open_attempt(session: Session, call: RatingCall) -> RatingAttempt | None:
    return session.scalar(
        select(RatingAttempt).where(RatingAttempt.rating_call_id == call.id, RatingAttempt.ended_at.is_(None))
        .order_by(RatingAttempt.id.desc()).limit(1)
    )


def _close_open_attempt(
    session: Session, call: RatingCall, now: datetime, outcome: RatingAttemptOutcome, error: str
) -> None:
    attempt = _open_attempt(session, call)
    if attempt is not None:
        attempt.ended_at = now
        attempt.outcome = outcome
        attempt.error = error
        call.last_outcome = outcome


def _plan_retry_or_fail(session: Session, call: RatingCall, ticket: Ticket, now: datetime) -> None:
    call.locked_by = call.locked_until = None
    if call.attempts >= call.max_attempts:
        call.status = RatingCallStatus.FAILED
        call.finished_at = now
        _emit(session, ticket, "rating_call_failed", attempts=call.attempts)
        return
    settings = robot_settings(session, call.organization_id)
    call.status = RatingCallStatus.SCHEDULED
    call.planned_at = rules.retry_time(
        now, interval=timedelta(minutes=call.retry_interval_minutes), window=settings.call_window,
        tz=tz_of(ticket.organization),
    )


def _cancel_reason(session: Session, call: RatingCall, ticket: Ticket, settings: RobotSettings) -> str | None:
    if ticket.status not in RATED_STATUSES:
        return "заявка открыта повторно"
    if not settings.rating_calls_enabled:
        return "звонки робота отключены"
    rated = session.scalar(
        select(TicketRating.id).where(TicketRating.ticket_id == ticket.id, TicketRating.rated_at >= call.created_at)
    )
    if rated is not None:
        return "оценка уже получена"
    pref = _preference(session, call.resident_id)
    if pref is not None and (pref.opt_out or pref.no_robot_calls):
        return "житель отказался от звонков робота"
    return None


def claim_due_rating_calls(
    session: Session, *, now: datetime, worker_id: str, limit: int = 10, lease: timedelta = DEFAULT_LEASE
) -> list[ClaimedRatingCall]:
    """Lease up to `limit` due rating calls to `worker_id` and open one attempt for each.

    Side effects, all in the caller's transaction: rows whose lease expired are reclaimed (the
    open attempt → failed "worker lost", next attempt planned or the call failed); rows that
    are due but outside the window now (the worker was down) are re-planned to the next window,
    never called at night; rows whose ticket was reopened or already rated are cancelled.
    """
    stmt = (
        select(RatingCall)
        .where(or_(
            and_(RatingCall.status == RatingCallStatus.SCHEDULED, RatingCall.planned_at <= now),
            and_(RatingCall.status == RatingCallStatus.IN_PROGRESS, RatingCall.locked_until <= now),
        ))
        .order_by(RatingCall.planned_at, RatingCall.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name != "sqlite":
        stmt = stmt.with_for_update(skip_locked=True)
    claimed: list[ClaimedRatingCall] = []
    for call in session.scalars(stmt).all():
        ticket = call.ticket
        if call.status == RatingCallStatus.IN_PROGRESS:
            _close_open_attempt(session, call, now, RatingAttemptOutcome.FAILED,
                                f"обработчик {call.locked_by} не завершил звонок (блокировка истекла)")
            _plan_retry_or_fail(session, call, ticket, now)
            continue
        settings = robot_settings(session, call.organization_id)
        reason = _cancel_reason(session, call, ticket, settings)
        if reason is not None:
            call.status = RatingCallStatus.CANCELLED
            call.cancel_reason = reason
            call.finished_at = now
            continue
        org = ticket.organization
        tz = tz_of(org)
        if not rules.inside(now, settings.call_window, tz):
            call.planned_at = rules.next_call_time(now, settings.call_window, tz)
            continue
        call.status = RatingCallStatus.IN_PROGRESS
        call.attempts += 1
        call.locked_by = worker_id
        call.locked_until = now + lease
        attempt = RatingAttempt(
            organization_id=call.organization_id, rating_call_id=call.id, ticket_id=ticket.id,
            number=call.attempts, worker_id=worker_id, started_at=now, transcript="", dtmf="", error="",
        )
        session.add(attempt)
        session.flush()
        claimed.append(ClaimedRatingCall(
            rating_call_id=call.id, attempt_id=attempt.id, attempt_number=attempt.number,
            max_attempts=call.max_attempts, organization_id=call.organization_id, ticket_id=ticket.id,
            ticket_number=ticket.number, phone=call.phone, caller_id=org.hotlines[0] if org.hotlines else None,
            prompt=rating_prompt(org, ticket, settings), voice=settings.voice,
        ))
    return claimed


def rating_prompt(org: Organization, ticket: Ticket, settings: RobotSettings | None = None) -> str:
    """The organization's prompt with the company and the ticket number filled in."""
    template = (settings or default_robot_settings(org.id)).rating_prompt
    return rules.render_template(template, {"company": org.name, "number": ticket.number})


def confirmation_text(value: int) -> str:
    """What the robot says before hanging up: «Спасибо, ваша оценка — четыре»."""
    return f"Спасибо, ваша оценка — {rules.RATING_WORDS_RU[value]}. До свидания!"


def record_rating_attempt(
    session: Session,
    *,
    attempt_id: int,
    outcome: RatingAttemptOutcome,
    now: datetime,
    value: int | None = None,
    source: RatingSource | None = None,
    transcript: str = "",
    dtmf: str = "",
    audio_path: str | None = None,
    error: str = "",
    call_id: int | None = None,
) -> RatingCall:
    """Close one attempt with what happened; store the rating or plan the next attempt.

    A `value` makes the outcome `answered` (the keypad after a speech error still rated); an
    answered attempt without a value counts as `not_understood`. `source` defaults to `dtmf`
    when keys were pressed, else `speech`. A result for an attempt already closed (its lease
    expired and another worker reclaimed it) keeps the attempt as it is, but a rating in it is
    still stored: the resident did rate. Emits what `record_rating` and the retry planning emit.
    """
    attempt = session.scalar(select(RatingAttempt).where(RatingAttempt.id == attempt_id).with_for_update())
    if attempt is None:
        raise NotFound("попытка звонка не найдена", attempt_id=attempt_id)
    call = session.scalar(select(RatingCall).where(RatingCall.id == attempt.rating_call_id).with_for_update())
    assert call is not None  # FK, cascade
    ticket = call.ticket
    if value is not None and not 1 <= value <= 5:
        raise ValidationFailed("оценка — от 1 до 5", field="value")
    if value is not None:
        outcome = RatingAttemptOutcome.ANSWERED
    elif outcome == RatingAttemptOutcome.ANSWERED:
        outcome = RatingAttemptOutcome.NOT_UNDERSTOOD
    src = source or (RatingSource.DTMF if dtmf else RatingSource.SPEECH)
    if attempt.ended_at is not None:  # reclaimed meanwhile: late result
        if value is not None:
            record_rating(session, ticket=ticket, value=value, source=src, transcript=transcript,
                          audio_path=audio_path, now=now, rating_call=call)
        return call
    attempt.ended_at = now
    attempt.outcome = outcome
    attempt.transcript = transcript
    attempt.dtmf = dtmf[:20]
    attempt.recognized_value = value
    attempt.audio_path = audio_path
    attempt.error = error
    if call_id is not None:
        attempt.call_id = call_id
    call.last_outcome = outcome
    if value is not None:
        record_rating(session, ticket=ticket, value=value, source=src, transcript=transcript,
                      audio_path=audio_path, now=now, rating_call=call)
        return call
    if call.status == RatingCallStatus.IN_PROGRESS:
        _plan_retry_or_fail(session, call, ticket, now)
    return call


# --- the rating -----------------------------------------------------------------------------------


def record_rating(
    session: Session,
    *,
    ticket: Ticket,
    value: int,
    source: RatingSource,
    transcript: str = "",
    audio_path: str | None = None,
    by: User | None = None,
    now: datetime,
    rating_call: RatingCall | None = None,
) -> TicketRating:
    """Store (or replace) the ticket's rating; 1–2 flag it for the manager.

    Writes `ticket_ratings`, the ticket's `rating` column, one append-only history row (action
    `rated`, change `rating: [old, new]`) and emits `ticket.changed` with action `rated`. The
    ticket's active rating call, if any, is finished (done when this is its rating, else
    cancelled). A dispatcher may enter a rating only for a done or closed ticket.
    """
    if not 1 <= value <= 5:
        raise ValidationFailed("оценка — от 1 до 5", field="value")
    if source == RatingSource.DISPATCHER and ticket.status not in RATED_STATUSES:
        raise TransitionNotAllowed(ticket.status.value, "rated", "оценить можно только выполненную или закрытую заявку")
    # Serialise ratings of one ticket (PostgreSQL; SQLite's write transaction already does).
    session.execute(select(Ticket.id).where(Ticket.id == ticket.id).with_for_update())
    rating = session.scalar(select(TicketRating).where(TicketRating.ticket_id == ticket.id))
    old = rating.value if rating is not None else None
    if rating is None:
        rating = TicketRating(organization_id=ticket.organization_id, ticket_id=ticket.id)
        session.add(rating)
    rating.value = value
    rating.source = source
    rating.transcript = transcript
    rating.audio_path = audio_path
    rating.rated_at = now
    rating.rated_by_id = by.id if by is not None else None
    rating.executor_id = ticket.executor_id
    rating.rating_call_id = rating_call.id if rating_call is not None else None
    rating.flagged_for_manager = value <= FLAG_AT_OR_BELOW
    ticket.rating = value
    ticket.updated_at = now
    session.add(TicketHistory(
        organization_id=ticket.organization_id, ticket_id=ticket.id, at=now, user_id=rating.rated_by_id,
        action="rated", from_status=None, to_status=None, changes={"rating": [old, value]},
        reason=f"оценка {value} {RATING_SOURCE_TITLES_RU[source]}",
    ))
    active = _active_call(session, ticket.id, lock=True)
    if active is not None:
        if rating_call is not None and active.id == rating_call.id:
            active.status = RatingCallStatus.DONE
            active.finished_at = now
            active.locked_by = active.locked_until = None
        else:
            cancel_rating_call(session, ticket_id=ticket.id, reason="оценка получена другим способом", now=now)
    _emit(session, ticket, "rated", rating=value, flagged=rating.flagged_for_manager)
    return rating


# --- reads ------------------------------------------------------------------------------------------


def get_ticket_rating(session: Session, *, org_ids: list[int] | set[int], ticket_id: int) -> TicketRating | None:
    ids = _ids(org_ids)
    return session.scalar(
        select(TicketRating).where(TicketRating.ticket_id == ticket_id, TicketRating.organization_id.in_(ids))
    )


def rating_attempts(session: Session, *, org_ids: list[int] | set[int], ticket_id: int) -> list[RatingAttempt]:
    """Every robot attempt about the ticket, oldest first (the card's feedback history)."""
    ids = _ids(org_ids)
    return list(session.scalars(
        select(RatingAttempt).where(RatingAttempt.ticket_id == ticket_id, RatingAttempt.organization_id.in_(ids))
        .order_by(RatingAttempt.id)
    ))


def executor_average_ratings(
    session: Session, *, org_ids: list[int] | set[int], period: tuple[datetime, datetime]
) -> list[ExecutorRating]:
    """Each executor's average rating over ratings given in [start, end), by name."""
    ids = _ids(org_ids)
    start, end = period
    low = func.sum(case((TicketRating.value <= FLAG_AT_OR_BELOW, 1), else_=0))
    rows = session.execute(
        select(TicketRating.executor_id, User.full_name, func.count(TicketRating.id),
               func.avg(TicketRating.value), low)
        .join(User, User.id == TicketRating.executor_id)
        .where(TicketRating.organization_id.in_(ids), TicketRating.rated_at >= start, TicketRating.rated_at < end)
        .group_by(TicketRating.executor_id, User.full_name)
        .order_by(User.full_name, TicketRating.executor_id)
    ).all()
    return [
        ExecutorRating(executor_id=eid, full_name=name, count=int(count), average=round(float(avg), 2),
                       low_count=int(low_n or 0))
        for eid, name, count, avg, low_n in rows
    ]
