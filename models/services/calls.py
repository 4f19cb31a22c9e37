"""Call services: register, answer, end and miss calls; recordings, legal hold; fallback.
The retention purge and the recordings' logs are models/services/recordings.py.

The ARI app, the AGI server, the CDR reconciler and the web panel all call these functions; none
of them commits. Idempotency keys are Asterisk's: the channel id (= uniqueid) of the resident's
channel, so a replayed StasisStart or a CDR row of a call the app already saw never makes a
second call row.

Events: `call.ringing`, `call.answered`, `call.ended`, `missed_call.created`,
`missed_call.updated`, `missed_call.closed`, `missed_call.overdue` (see docs/events.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import events
from models.base import attach_inserted, insert_values, table_of, utcnow
from models.call import (
    MISSED_OUTCOMES,
    ROBOT_KINDS,
    Call,
    CallDirection,
    CallKind,
    CallOutcome,
    CallTicket,
    TelephonySettings,
    TicketLegalHold,
    default_telephony_settings,
)
from models.errors import DomainError, NotFound, TicketNotFound, ValidationFailed
from models.housing import ResidentPhone
from models.missed_call import CloseReason, MissedCall, MissedCallCall, MissedCallStatus
from models.organization import Hotline, Membership, Organization, User
from models.queries_calls import CallerCard, caller_card, caller_cards
from models.recording import Recording, RecordingAccess, RecordingAction, RecordingKind, is_safe_relpath
from models.rules.deadlines import missed_call_deadline, wait_deadline
from models.rules.phones import try_e164

# The telephony settings and phones moved to models/services/telephony.py; these names stay here
# for the callers that import them from calls.
from models.services.telephony import ENDPOINT_RE as ENDPOINT_RE
from models.services.telephony import MAX_RETENTION_DAYS as MAX_RETENTION_DAYS
from models.services.telephony import TELEPHONY_AUDIT_FIELDS as TELEPHONY_AUDIT_FIELDS
from models.services.telephony import assign_dispatcher_phone as assign_dispatcher_phone
from models.services.telephony import dispatcher_of_endpoint as dispatcher_of_endpoint
from models.services.telephony import endpoint_of_user as endpoint_of_user
from models.services.telephony import telephony_settings as telephony_settings
from models.services.telephony import update_telephony_settings as update_telephony_settings
from models.ticket import Ticket

logger = logging.getLogger(__name__)



# --- errors --------------------------------------------------------------------------------------


class CallNotFound(NotFound):
    error_id = "call-not-found"


class UnknownDid(NotFound):
    error_id = "did-unknown"


class MissedCallNotFound(NotFound):
    error_id = "missed-call-not-found"


class RecordingNotFound(NotFound):
    error_id = "recording-not-found"


class CallStateConflict(DomainError):
    error_id = "call-state-conflict"
    http_status = 409


class MissedCallClosed(DomainError):
    error_id = "missed-call-closed"
    http_status = 409


class RecordingDeleted(DomainError):
    error_id = "recording-deleted"
    http_status = 410


# --- lookups -------------------------------------------------------------------------------------


def organization_for_did(session: Session, did: str | None) -> Organization:
    """The organization whose hotline numbers (`hotlines`) contain this DID.

    Trunks send DIDs as 74951234567, 84951234567 or +74951234567: all normalise to E.164.
    """
    return hotline_of(session, did)[0]


def hotline_of(session: Session, did: str | None) -> tuple[Organization, TelephonySettings]:
    """`organization_for_did` with the organization's telephony settings (`telephony_settings`),
    in one query: a call's registration needs both."""
    e164 = try_e164(did)
    if e164 is None:
        raise UnknownDid("номер горячей линии не настроен", did=did)
    found = session.execute(
        select(Organization, TelephonySettings)
        .join(Hotline, Hotline.organization_id == Organization.id)
        .outerjoin(TelephonySettings, TelephonySettings.organization_id == Organization.id)
        .where(Hotline.number == e164)
    ).first()  # the number is unique: one organization at most
    if found is None:
        raise UnknownDid("номер горячей линии не настроен", did=did)
    org, settings = found
    return org, settings or default_telephony_settings(org.id)


def get_call(session: Session, *, org_ids: list[int] | set[int], call_id: int, lock: bool = False) -> Call:
    stmt = select(Call).where(Call.id == call_id, Call.organization_id.in_(list(org_ids)))
    if lock:
        stmt = stmt.with_for_update()
    call = session.scalar(stmt)
    if call is None:
        raise CallNotFound("звонок не найден", call_id=call_id)
    return call


def call_by_channel(session: Session, channel_id: str) -> Call | None:
    """The call of an Asterisk channel (any organization): the ARI app's re-attach after a reconnect."""
    return session.scalar(select(Call).where(Call.channel_id == channel_id))


def get_missed_call(session: Session, *, org_ids: list[int] | set[int], missed_call_id: int,
                    lock: bool = False) -> MissedCall:
    stmt = select(MissedCall).where(MissedCall.id == missed_call_id, MissedCall.organization_id.in_(list(org_ids)))
    if lock:
        stmt = stmt.with_for_update()
    item = session.scalar(stmt)
    if item is None:
        raise MissedCallNotFound("пропущенный звонок не найден", missed_call_id=missed_call_id)
    return item


def _check_member(session: Session, org_id: int, user: User | None) -> None:
    if user is None:
        return
    member = session.scalar(
        select(Membership.id).where(Membership.user_id == user.id, Membership.organization_id == org_id)
    )
    if member is None:
        raise ValidationFailed("пользователь не работает в этой организации", user_id=user.id)


def _payload(call: Call, **extra: Any) -> dict[str, Any]:
    return {"call_id": call.id, "direction": call.direction.value, "kind": call.kind.value, "phone": call.phone,
            "did": call.did, **extra}


def _item_payload(item: MissedCall, action: str, **extra: Any) -> dict[str, Any]:
    return {"missed_call_id": item.id, "phone": item.phone, "status": item.status.value,
            "deadline_at": item.deadline_at.isoformat(), "calls_count": item.calls_count,
            "voice_message_id": item.voice_message_id, "action": action, **extra}


def _seconds(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds()))


# --- inbound calls -------------------------------------------------------------------------------


def register_inbound_call(
    session: Session, *, did: str, caller: str | None, channel_id: str, linkedid: str | None = None,
    started_at: datetime | None = None, now: datetime | None = None,
) -> Call:
    """A call arrived on a hotline (StasisStart). Idempotent on `channel_id`: a replayed event returns
    the existing call and emits nothing.

    Finds the organization by DID (UnknownDid otherwise), the residents by the caller's number
    (`resident_id` is set when exactly one matches), fixes the wait deadline from the organization's
    wait limit, and emits `call.ringing` with the caller card, so every panel of the organization
    shows it before anyone answers.
    """
    return register_inbound_call_with_card(session, did=did, caller=caller, channel_id=channel_id, linkedid=linkedid,
                                           started_at=started_at, now=now)[0]


def register_inbound_call_with_card(
    session: Session, *, did: str, caller: str | None, channel_id: str, linkedid: str | None = None,
    started_at: datetime | None = None, now: datetime | None = None,
) -> tuple[Call, CallerCard]:
    """`register_inbound_call`, also returning the caller card it put in `call.ringing`. A
    replayed event's card is read again."""
    arrival = InboundArrival(did=did, caller=caller, channel_id=channel_id, linkedid=linkedid, started_at=started_at)
    return register_inbound_calls(session, [arrival], now=now)[0]


@dataclass(frozen=True)
class InboundArrival:
    """A call arriving on a hotline (StasisStart), as `register_inbound_calls` takes it."""

    did: str
    caller: str | None
    channel_id: str
    linkedid: str | None = None
    started_at: datetime | None = None


def register_inbound_calls(
    session: Session, arrivals: Sequence[InboundArrival], *, now: datetime | None = None,
) -> list[tuple[Call, CallerCard]]:
    """`register_inbound_call` of calls arriving together, in one transaction (the ARI app's
    arrivals' lane), each with its caller card, in order. The statements do not grow with the
    group: the organization and settings once per DID, the cards in two reads per organization
    (`caller_cards`), the calls in one INSERT, their `call.ringing` events in one more, so on
    PostgreSQL a burst of calls costs a few round trips per group instead of several per call.

    A replay (a channel already registered, or twice in the group) is found by the unique channel
    id at the insert, not by a read before it (arrivals are many, replays rare): it returns the
    existing call with its card read again, and emits nothing. UnknownDid for a DID that is no
    hotline (nothing of the group is written then).
    """
    now = now or utcnow()
    orgs: dict[str, tuple[Organization, TelephonySettings]] = {}
    for a in arrivals:
        if a.did not in orgs:
            orgs[a.did] = hotline_of(session, a.did)
    by_org: dict[int, list[int]] = {}
    for k, a in enumerate(arrivals):
        by_org.setdefault(orgs[a.did][0].id, []).append(k)
    card_of: dict[int, CallerCard] = {}
    for org_id, idxs in by_org.items():
        card_of.update(zip(idxs, caller_cards(session, org_id=org_id, phones=[arrivals[k].caller for k in idxs]),
                           strict=True))
    cards = [card_of[k] for k in range(len(arrivals))]
    calls = []
    for a, card in zip(arrivals, cards, strict=True):
        org, settings = orgs[a.did]
        started_at = a.started_at or now
        calls.append(Call(
            organization_id=org.id, direction=CallDirection.INBOUND, kind=CallKind.INBOUND, did=try_e164(a.did),
            phone=card.phone, phone_raw=(a.caller or "")[:64], channel_id=a.channel_id, linkedid=a.linkedid,
            started_at=started_at, wait_deadline_at=wait_deadline(started_at, settings.wait_limit_seconds),
            resident_id=card.residents[0].id if len(card.residents) == 1 else None, is_fallback=False,
        ))
    winners = _insert_calls(session, calls)
    registered, ringing = [], []
    for call, winner, card in zip(calls, winners, cards, strict=True):
        if winner is not call:
            registered.append((winner, caller_card(session, org_id=winner.organization_id, phone=winner.phone)))
            continue
        registered.append((call, card))
        ringing.append((call.organization_id, events.CALL_RINGING, _payload(
            call, wait_deadline_at=call.wait_deadline_at.isoformat() if call.wait_deadline_at else None,
            card=card.as_payload())))
    events.emit_many(session, ringing)
    return registered


_CALLS = table_of(Call)
_CALL_KEYS = tuple(c.key for c in _CALLS.c if not c.primary_key)
_CALL_INSERTS = {
    name: dialect.insert(_CALLS).on_conflict_do_nothing(index_elements=[_CALLS.c.channel_id])
    .returning(_CALLS.c.id, _CALLS.c.channel_id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def _insert_calls(session: Session, calls: list[Call]) -> list[Call]:
    """Insert new calls in one statement; for each, the call itself (now persistent in the
    session) or, when its channel is taken, the row registered first (by an earlier or a
    concurrent registration, or by an earlier call of the same list)."""
    if not calls:
        return []
    rows = [insert_values(call, _CALL_KEYS) for call in calls]
    conn = session.connection()
    stmt = _CALL_INSERTS[conn.dialect.name]
    result = conn.execute(stmt, rows if len(rows) > 1 else rows[0])
    ids = dict((channel, call_id) for call_id, channel in result)
    winners = []
    for call, values in zip(calls, rows, strict=True):
        call_id = ids.pop(call.channel_id, None)
        if call_id is not None:
            attach_inserted(session, call, values, id=call_id)
            winners.append(call)
            continue
        existing = call_by_channel(session, call.channel_id)
        if existing is None:  # (the row that took the channel was deleted meanwhile)
            raise CallStateConflict("канал звонка занят", channel_id=call.channel_id)
        winners.append(existing)
    return winners


def _insert_call(session: Session, call: Call) -> Call:
    """Insert, or return the row registered first on this channel (`_insert_calls`)."""
    return _insert_calls(session, [call])[0]


# --- outbound calls of the voice robot ----------------------------------------------------------


def register_outbound_call(
    session: Session, *, org_id: int, kind: CallKind | str, phone: str, channel_id: str,
    caller_id: str | None = None, resident_id: int | None = None, started_at: datetime | None = None,
) -> Call:
    """The voice robot dials a resident: a rating call (`robot`) or a voice notification
    (`voice_notification`), registered before the ARI originate with the channel id it will use,
    so the call is in the journal whatever happens next. Idempotent on `channel_id` (a row of
    another organization or kind on that channel is refused).

    `did` is the hotline number presented as caller ID; the resident is set when exactly one of
    the organization's residents has this number (unless given). Then `mark_call_answered` and
    `end_call` (outcome `no_answer`, `busy` or `failed` when nobody answered) as for any call.
    Emits nothing: no dispatcher is on the call, panels see it in the journal.
    """
    try:
        kind = CallKind(kind)
    except ValueError:
        raise ValidationFailed("неизвестный вид звонка", field="kind", value=str(kind)) from None
    if kind not in ROBOT_KINDS:
        raise ValidationFailed("так регистрируются только звонки робота", field="kind", value=kind.value)
    if session.get(Organization, org_id) is None:
        raise NotFound("организация не найдена", organization_id=org_id)
    e164 = try_e164(phone)
    if resident_id is None and e164 is not None:
        matches = session.scalars(
            select(ResidentPhone.resident_id).where(ResidentPhone.organization_id == org_id,
                                                    ResidentPhone.phone == e164).distinct().limit(2)
        ).all()
        resident_id = matches[0] if len(matches) == 1 else None
    call = Call(
        organization_id=org_id, direction=CallDirection.OUTBOUND, kind=kind, did=try_e164(caller_id), phone=e164,
        phone_raw=(phone or "")[:64], resident_id=resident_id, channel_id=channel_id,
        started_at=started_at or utcnow(), is_fallback=False,
    )
    winner = _insert_call(session, call)
    if winner is not call and (winner.organization_id != org_id or winner.kind != kind):
        raise ValidationFailed("канал уже занят другим звонком", field="channel_id", value=channel_id)
    return winner


def mark_call_answered(
    session: Session, *, org_id: int, call_id: int, by: User | None, endpoint: str | None = None,
    dispatcher_channel_id: str | None = None, at: datetime | None = None,
) -> Call:
    """A dispatcher answered an inbound call, or the resident answered an outbound one.
    Idempotent for the same answer.

    Stores the answer time and the wait; an answered inbound call from a number with an open
    missed-call item closes that item (`called_again_answered`); an answered callback settles
    its attempt and closes its item (`resident_answered`). Emits `call.answered`
    (and `missed_call.closed`).
    """
    call = get_call(session, org_ids=[org_id], call_id=call_id, lock=True)
    if call.answered_at is not None:
        if call.answered_by_id == (by.id if by else None) and (endpoint is None or endpoint == call.dispatcher_endpoint):
            return call
        raise CallStateConflict("звонок уже принят", call_id=call.id, answered_by_id=call.answered_by_id)
    if call.ended_at is not None or call.outcome is not None:
        raise CallStateConflict("звонок уже завершён или пропущен", call_id=call.id,
                                outcome=call.outcome.value if call.outcome else None)
    _check_member(session, org_id, by)
    at = at or utcnow()
    call.answered_at = at
    call.answered_by_id = by.id if by else None
    call.dispatcher_endpoint = endpoint or call.dispatcher_endpoint
    call.dispatcher_channel_id = dispatcher_channel_id or call.dispatcher_channel_id
    call.wait_seconds = _seconds(call.started_at, at)
    if call.kind in ROBOT_KINDS:
        session.flush()
        return call  # no dispatcher on it: not shown among the live calls (see `register_outbound_call`)
    events.emit(session, org_id, events.CALL_ANSWERED,
                _payload(call, answered_by_id=call.answered_by_id, endpoint=call.dispatcher_endpoint,
                         wait_seconds=call.wait_seconds))
    if call.direction == CallDirection.INBOUND:
        _close_by_recall(session, call)
    elif call.kind in (CallKind.CALLBACK, CallKind.AUTO_CALLBACK):
        from models.services.callbacks import callback_call_answered

        callback_call_answered(session, call)
    return call


def _close_by_recall(session: Session, call: Call) -> None:
    if call.phone is None or call.answered_at is None:
        return
    item = session.scalar(
        select(MissedCall).where(
            MissedCall.organization_id == call.organization_id, MissedCall.phone == call.phone,
            MissedCall.status == MissedCallStatus.OPEN, MissedCall.first_call_at <= call.answered_at,
        ).with_for_update()
    )
    if item is not None:
        close_item(session, item, reason=CloseReason.CALLED_AGAIN_ANSWERED, at=call.answered_at,
                   by_id=call.answered_by_id, closing_call_id=call.id)


def close_item(
    session: Session, item: MissedCall, *, reason: CloseReason, at: datetime, by_id: int | None,
    closing_call_id: int | None = None, note: str = "",
) -> MissedCall:
    """Close an open item (internal to the telephony services). Emits `missed_call.closed`."""
    item.status = MissedCallStatus.CLOSED
    item.closed_at = at
    item.close_reason = reason
    item.close_note = note
    item.closed_by_id = by_id
    item.closing_call_id = closing_call_id
    session.flush()
    events.emit(session, item.organization_id, events.MISSED_CALL_CLOSED,
                _item_payload(item, "closed", reason=reason.value, closed_by_id=by_id,
                              in_time=at <= item.deadline_at))
    return item


def notify_overdue_missed_calls(session: Session, *, now: datetime | None = None, limit: int = 500) -> list[int]:
    """ПП 416 T2: the 10-minute deadline of open items passed. Each such item, of any organization
    (the ARI app's scheduler calls this at every deadline), is stamped `overdue_notified_at` and
    `missed_call.overdue` is emitted once, so panels and reports learn of it at that moment rather
    than from a browser's countdown. Idempotent: a stamped item is never announced again; rows a
    concurrent pass holds are skipped (PostgreSQL). Returns the ids announced, earliest deadline first."""
    now = now or utcnow()
    items = session.scalars(
        select(MissedCall)
        .where(MissedCall.status == MissedCallStatus.OPEN, MissedCall.overdue_notified_at.is_(None),
               MissedCall.deadline_at <= now)
        .order_by(MissedCall.deadline_at, MissedCall.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for item in items:
        item.overdue_notified_at = now
        events.emit(session, item.organization_id, events.MISSED_CALL_OVERDUE,
                    _item_payload(item, "overdue", notified_at=now.isoformat()))
    session.flush()
    return [item.id for item in items]


def end_call(
    session: Session, *, org_id: int, call_id: int, outcome: CallOutcome | None = None, at: datetime | None = None,
) -> Call:
    """Someone hung up. Idempotent: a call already ended is returned as is.

    The outcome defaults to `answered` for an answered call, `abandoned` for an inbound call
    nobody answered, `no_answer` for an outbound one; an outcome set earlier (a miss, a voice
    message) is kept. An unanswered inbound call goes to the missed-call queue. A callback call
    whose attempt has no result yet records it as failed. Emits `call.ended` (and the queue's events).
    """
    call = get_call(session, org_ids=[org_id], call_id=call_id, lock=True)
    if call.ended_at is not None:
        return call
    at = at or utcnow()
    if call.answered_at is not None:
        final = CallOutcome.ANSWERED
    elif call.outcome is not None:
        final = call.outcome
    else:
        final = outcome or (CallOutcome.ABANDONED if call.direction == CallDirection.INBOUND else CallOutcome.NO_ANSWER)
        if final == CallOutcome.ANSWERED:
            raise CallStateConflict("звонок не был принят", call_id=call.id)
    call.ended_at = at
    if call.direction == CallDirection.INBOUND and final in MISSED_OUTCOMES:
        _mark_missed(session, call, final, at)
    else:
        call.outcome = final
    if call.kind in (CallKind.CALLBACK, CallKind.AUTO_CALLBACK):
        from models.services.callbacks import finish_attempt_of_call

        finish_attempt_of_call(session, call, at)
    events.emit(session, org_id, events.CALL_ENDED,
                _payload(call, outcome=call.outcome.value if call.outcome else None,
                         duration_seconds=_seconds(call.started_at, at), is_fallback=call.is_fallback))
    return call


def end_call_of_any_org(session: Session, *, call_id: int, at: datetime | None = None) -> Call | None:
    """`end_call` for a process that serves every organization and knows only the call's id (the
    ARI watchdog ending a conversation while `openads ari` is down). None if there is no such call."""
    call = session.get(Call, call_id)
    if call is None:
        return None
    return end_call(session, org_id=call.organization_id, call_id=call.id, at=at)


def hand_call_to_fallback(session: Session, *, channel_id: str) -> Call | None:
    """The caller on `channel_id` left the ARI app for the dialplan fallback (an error in the app,
    or the watchdog while the app is down). The call stays open and is marked `is_fallback`: no
    reconcile ends it for its channel being out of Stasis or gone; the fallback's CDR completes
    this same row (`record_fallback_call`, keyed by the caller's uniqueid = the channel id), and
    the app's wait limit no longer applies to it. Idempotent; None when no live call has that
    channel. Emits nothing: the fallback's outcome emits `call.ended`."""
    call = call_by_channel(session, channel_id)
    if call is None or call.ended_at is not None or call.direction != CallDirection.INBOUND:
        return None
    if not call.is_fallback:
        call.is_fallback = True
        session.flush()
    return call


def register_fallback_arrival(session: Session, arrival: InboundArrival, *, now: datetime | None = None,
                              gone_at: datetime | None = None) -> Call:
    """A call the ARI app could not register (the database was away), written once the database
    is back, as it arrived.

    Handed to the dialplan fallback (`gone_at` None): marked so (`hand_call_to_fallback`) and left
    open, as every call the fallback serves. Its end and outcome come from the fallback's CDR
    (`record_fallback_call`: answered, or missed with its item and voice message) or, with no CDR
    path, from what ARI shows of the caller's channel (`answer_fallback_call`, then `end_call` once
    it is gone: ari_app/fallback_watch.py and the sweep). No missed-call item before that: a
    resident a dispatcher is answering in the fallback must not get one (decision 0023).
    The caller hung up before the dialplan took the call (`gone_at`): the call ends then,
    abandoned, and joins the missed-call queue. Idempotent: a call already written (by the CDR
    reconcile, or an earlier try) is returned as it is."""
    [(call, _card)] = register_inbound_calls(session, [arrival], now=now)
    if call.ended_at is not None or call.answered_at is not None:
        return call
    if gone_at is not None:
        return end_call(session, org_id=call.organization_id, call_id=call.id, outcome=CallOutcome.ABANDONED,
                        at=gone_at)
    hand_call_to_fallback(session, channel_id=call.channel_id)
    return call


def answer_fallback_call(session: Session, *, channel_id: str, at: datetime,
                         dispatcher_endpoint: str | None = None) -> Call | None:
    """A dispatcher picked up the dialplan fallback's Dial() for the caller on `channel_id` (seen
    through ARI while the call lasts, when no CDR table tells it afterwards: ari_app/fallback_watch.py).
    Stores the answer as `record_fallback_call` would (the user whose phone `dispatcher_endpoint` is
    answered it; an open item of the same number closes). Idempotent; None when no live fallback
    call has that channel. Emits `call.answered` (and `missed_call.closed`)."""
    call = call_by_channel(session, channel_id)
    if call is None or not call.is_fallback or call.ended_at is not None:
        return None
    if call.answered_at is not None:
        return call
    call.answered_at = at
    call.dispatcher_endpoint = dispatcher_endpoint or call.dispatcher_endpoint
    by = dispatcher_of_endpoint(session, org_id=call.organization_id, endpoint=call.dispatcher_endpoint)
    call.answered_by_id = by.id if by is not None else call.answered_by_id
    call.wait_seconds = _seconds(call.started_at, at)
    events.emit(session, call.organization_id, events.CALL_ANSWERED,
                _payload(call, answered_by_id=call.answered_by_id, endpoint=call.dispatcher_endpoint,
                         wait_seconds=call.wait_seconds))
    _close_by_recall(session, call)
    return call


def mark_call_missed(
    session: Session, *, org_id: int, call_id: int, outcome: CallOutcome = CallOutcome.MISSED_TIMEOUT,
    at: datetime | None = None,
) -> MissedCall | None:
    """Nobody answered within the wait limit (or the caller gave up): the call joins the queue.

    Creates an item with `deadline = call start + 10 min`, or merges into the open item of the same
    number (count +1, the deadline stays that of the earliest call). Idempotent per call. The call
    itself may still be up (the caller is offered to leave a voice message). An anonymous caller
    cannot be called back: no item, None. Emits `missed_call.created` or `missed_call.updated`.
    """
    if outcome not in MISSED_OUTCOMES:
        raise ValidationFailed("исход не означает пропущенный звонок", field="outcome", value=str(outcome))
    call = get_call(session, org_ids=[org_id], call_id=call_id, lock=True)
    if call.direction != CallDirection.INBOUND:
        raise CallStateConflict("в очередь пропущенных попадают только входящие звонки", call_id=call.id)
    if call.answered_at is not None:
        raise CallStateConflict("звонок уже принят", call_id=call.id)
    return _mark_missed(session, call, outcome, at or utcnow())


def _mark_missed(session: Session, call: Call, outcome: CallOutcome, at: datetime) -> MissedCall | None:
    linked = session.scalar(
        select(MissedCall).join(MissedCallCall, MissedCallCall.missed_call_id == MissedCall.id)
        .where(MissedCallCall.call_id == call.id)
    )
    if call.outcome is None or (outcome == CallOutcome.VOICEMAIL and call.outcome in MISSED_OUTCOMES):
        call.outcome = outcome
    if call.wait_seconds is None:
        call.wait_seconds = _seconds(call.started_at, at)
    if linked is not None:
        return linked
    if call.phone is None:
        logger.warning("missed call %s (channel %s) has no callable number: not queued", call.id, call.channel_id)
        return None
    return _merge_into_queue(session, call)


def _open_item(session: Session, org_id: int, phone: str) -> MissedCall | None:
    return session.scalar(
        select(MissedCall).where(MissedCall.organization_id == org_id, MissedCall.phone == phone,
                                 MissedCall.status == MissedCallStatus.OPEN).with_for_update()
    )


def _merge_into_queue(session: Session, call: Call) -> MissedCall:
    assert call.phone is not None
    item = _open_item(session, call.organization_id, call.phone)
    if item is None:
        item = MissedCall(
            organization_id=call.organization_id, phone=call.phone, resident_id=call.resident_id,
            first_call_id=call.id, first_call_at=call.started_at, last_call_at=call.started_at, calls_count=1,
            deadline_at=missed_call_deadline(call.started_at), status=MissedCallStatus.OPEN, close_note="",
        )
        try:
            # The partial unique index (one open item per number) turns a concurrent miss from the
            # same caller into an IntegrityError here; we then merge into the item that won.
            with session.begin_nested():
                session.add(item)
                session.flush()
                session.add(MissedCallCall(organization_id=call.organization_id, call_id=call.id,
                                           missed_call_id=item.id))
                session.flush()
        except IntegrityError:
            winner = _open_item(session, call.organization_id, call.phone)
            if winner is None:
                raise
            return _merge(session, winner, call)
        events.emit(session, item.organization_id, events.MISSED_CALL_CREATED, _item_payload(item, "created"))
        return item
    return _merge(session, item, call)


def _merge(session: Session, item: MissedCall, call: Call) -> MissedCall:
    item.calls_count += 1
    if call.started_at < item.first_call_at:  # reconciled out of order: the earliest call sets the deadline
        item.first_call_id = call.id
        item.first_call_at = call.started_at
        item.deadline_at = missed_call_deadline(call.started_at)
    item.last_call_at = max(item.last_call_at, call.started_at)
    if item.resident_id is None:
        item.resident_id = call.resident_id
    session.add(MissedCallCall(organization_id=call.organization_id, call_id=call.id, missed_call_id=item.id))
    session.flush()
    events.emit(session, item.organization_id, events.MISSED_CALL_UPDATED, _item_payload(item, "merged"))
    return item


# --- recordings ----------------------------------------------------------------------------------


def _attach(
    session: Session, call: Call, *, kind: RecordingKind, path: str, fmt: str, duration_seconds: int | None,
    size_bytes: int | None, at: datetime,
) -> Recording:
    if not is_safe_relpath(path):
        raise ValidationFailed("путь записи должен быть относительным, внутри каталога записей", field="path",
                               value=path)
    rec = session.scalar(select(Recording).where(Recording.call_id == call.id, Recording.kind == kind))
    if rec is not None:
        if rec.path != path:
            raise ValidationFailed("у звонка уже есть запись с другим путём", field="path", value=path,
                                   existing=rec.path)
        rec.duration_seconds = duration_seconds if duration_seconds is not None else rec.duration_seconds
        rec.size_bytes = size_bytes if size_bytes is not None else rec.size_bytes
        return rec
    rec = Recording(organization_id=call.organization_id, call_id=call.id, kind=kind, path=path, format=fmt,
                    duration_seconds=duration_seconds, size_bytes=size_bytes, created_at=at)
    session.add(rec)
    session.flush()
    return rec


def attach_recording(
    session: Session, *, org_id: int, call_id: int, path: str, fmt: str = "wav", duration_seconds: int | None = None,
    size_bytes: int | None = None, at: datetime | None = None,
) -> Recording:
    """The conversation recording of a call (path relative to the recordings directory, see
    `models.recording.recording_relpath`). Idempotent per call; no event."""
    call = get_call(session, org_ids=[org_id], call_id=call_id)
    return _attach(session, call, kind=RecordingKind.CONVERSATION, path=path, fmt=fmt,
                   duration_seconds=duration_seconds, size_bytes=size_bytes, at=at or utcnow())


def attach_voice_message(
    session: Session, *, org_id: int, call_id: int, path: str, fmt: str = "wav", duration_seconds: int | None = None,
    size_bytes: int | None = None, at: datetime | None = None,
) -> Recording:
    """The caller left a voice message (T3): stored, shown on the queue item with the same
    10-minute deadline. Marks the call missed (`voicemail`) if it was not yet. Emits
    `missed_call.created`/`missed_call.updated`."""
    at = at or utcnow()
    call = get_call(session, org_ids=[org_id], call_id=call_id, lock=True)
    if call.direction != CallDirection.INBOUND or call.answered_at is not None:
        raise CallStateConflict("голосовое сообщение бывает только у непринятого входящего звонка", call_id=call.id)
    rec = _attach(session, call, kind=RecordingKind.VOICEMAIL, path=path, fmt=fmt,
                  duration_seconds=duration_seconds, size_bytes=size_bytes, at=at)
    item = _mark_missed(session, call, CallOutcome.VOICEMAIL, at)
    if item is not None and item.is_open and item.voice_message_id != rec.id:
        item.voice_message_id = rec.id
        session.flush()
        events.emit(session, item.organization_id, events.MISSED_CALL_UPDATED, _item_payload(item, "voice_message"))
    return rec


def log_recording_access(
    session: Session, *, org_ids: list[int] | set[int], recording_id: int, action: RecordingAction | str, by: User,
    ip: str | None = None, now: datetime | None = None,
) -> Recording:
    """Log a play or download (152-ФЗ) and return the recording to serve. Another organization's
    recording is not found; a purged one is gone (410)."""
    rec = session.scalar(
        select(Recording).where(Recording.id == recording_id, Recording.organization_id.in_(list(org_ids)))
    )
    if rec is None:
        raise RecordingNotFound("запись не найдена", recording_id=recording_id)
    if rec.deleted_at is not None:
        raise RecordingDeleted("запись удалена по сроку хранения", recording_id=recording_id,
                               deleted_at=rec.deleted_at.isoformat())
    try:
        act = RecordingAction(action)
    except ValueError:
        raise ValidationFailed("неизвестное действие с записью", field="action", value=str(action)) from None
    session.add(RecordingAccess(organization_id=rec.organization_id, recording_id=rec.id, user_id=by.id, action=act,
                                at=now or utcnow(), ip=ip[:45] if ip else None))
    session.flush()
    return rec


def recording_file(recordings_dir: Path, rec: Recording) -> Path:
    """The file of a recording; refuses a path that would leave the recordings directory."""
    root = recordings_dir.resolve()
    target = (root / rec.path).resolve()
    if not is_safe_relpath(rec.path) or not target.is_relative_to(root):
        raise ValidationFailed("путь записи вне каталога записей", recording_id=rec.id)
    return target


# --- tickets and legal hold ----------------------------------------------------------------------


def _ticket(session: Session, org_id: int, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None or ticket.organization_id != org_id:
        raise TicketNotFound("заявка не найдена", ticket_id=ticket_id)
    return ticket


def link_call_to_ticket(
    session: Session, *, org_id: int, call_id: int, ticket_id: int, by: User | None, now: datetime | None = None,
) -> CallTicket:
    """Link a call (and so its recording) to a ticket of the same organization. Idempotent; no event."""
    call = get_call(session, org_ids=[org_id], call_id=call_id)
    ticket = _ticket(session, org_id, ticket_id)
    link = session.get(CallTicket, (call.id, ticket.id))
    if link is None:
        link = CallTicket(organization_id=org_id, call_id=call.id, ticket_id=ticket.id, linked_at=now or utcnow(),
                          linked_by_id=by.id if by else None)
        session.add(link)
        session.flush()
    return link


def set_legal_hold(
    session: Session, *, org_id: int, ticket_id: int, reason: str, by: User | None, now: datetime | None = None,
) -> TicketLegalHold:
    """Keep every recording of the ticket's calls past the retention term (court, inspection):
    the purge (models/services/recordings.py) never takes them while the hold stands."""
    ticket = _ticket(session, org_id, ticket_id)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("укажите основание для запрета удаления записей", field="reason")
    hold = session.get(TicketLegalHold, ticket.id)
    if hold is None:
        hold = TicketLegalHold(organization_id=org_id, ticket_id=ticket.id, reason=reason, set_at=now or utcnow(),
                               set_by_id=by.id if by else None)
        session.add(hold)
    else:
        hold.reason = reason
    session.flush()
    return hold


def release_legal_hold(session: Session, *, org_id: int, ticket_id: int, by: User | None) -> None:
    ticket = _ticket(session, org_id, ticket_id)
    hold = session.get(TicketLegalHold, ticket.id)
    if hold is not None:
        logger.info("legal hold released: ticket %s by user %s", ticket.id, by.id if by else None)
        session.delete(hold)
        session.flush()


# --- fallback: calls the dialplan handled while the ARI app was down ------------------------------

CDR_DISPOSITIONS = {
    "ANSWERED": CallOutcome.ANSWERED,
    "NO ANSWER": CallOutcome.NO_ANSWER,
    "BUSY": CallOutcome.BUSY,
    "FAILED": CallOutcome.FAILED,
    "CONGESTION": CallOutcome.FAILED,
}


def record_fallback_call(
    session: Session, *, did: str, src: str | None, uniqueid: str, start: datetime, end: datetime,
    disposition: str, linkedid: str | None = None, answer: datetime | None = None,
    dispatcher_endpoint: str | None = None, recording_path: str | None = None,
    voicemail_path: str | None = None, recording_seconds: int | None = None, voicemail_seconds: int | None = None,
) -> Call:
    """A call the dialplan fallback handled, reconciled from Asterisk after an outage.

    One call per invocation: Asterisk writes a CDR per dialled dispatcher's phone (all with the
    caller's uniqueid), so the caller (ari_app/reconcile.py `FallbackCdrs`) merges them with the
    hangup handler's OpenadsFallbackEnd first: `start`/`end` span the whole call, `disposition` is
    ANSWERED only if a dispatcher answered (then `answer` is when, `dispatcher_endpoint` on which
    phone: the user whose phone it is, `dispatcher_of_endpoint`, is `answered_by`; an endpoint that
    is nobody's leaves it empty), and `voicemail_path` is the voice message left instead (outcome
    `voicemail`, linked to the missed-call item). Paths are relative to the recordings directory;
    `recording_seconds` and `voicemail_seconds` are the files' lengths as the caller read them
    (without it, a conversation counts from the answer to the end, a voice message has none).

    Idempotent on `uniqueid` (and `linkedid`): a call the app already completed is returned as is;
    a call the app registered but never finished (it died mid-call) is completed from the CDR.
    An unanswered call joins the missed-call queue as if it had been seen live; an answered one
    closes the caller's open item. Emits `call.ended` and the queue's events.
    """
    call = call_by_channel(session, uniqueid)
    if call is None and linkedid:
        call = session.scalar(
            select(Call).where(Call.linkedid == linkedid, Call.direction == CallDirection.INBOUND).order_by(Call.id)
        )
    if call is not None and call.ended_at is not None:
        return call
    outcome = CDR_DISPOSITIONS.get((disposition or "").strip().upper())
    if outcome is None:
        raise ValidationFailed("неизвестный исход звонка в CDR", field="disposition", value=disposition)
    if outcome == CallOutcome.ANSWERED and answer is None:
        answer = start
    if outcome != CallOutcome.ANSWERED:
        answer = None
        if voicemail_path:
            outcome = CallOutcome.VOICEMAIL
    if call is None:
        call = _insert_call(session, _call_from_cdr(session, did=did, src=src, uniqueid=uniqueid, linkedid=linkedid,
                                                    start=start, kind=CallKind.FALLBACK))
        if call.ended_at is not None:
            return call
    call.is_fallback = True
    if answer is not None and call.answered_at is None:
        call.answered_at = answer
        call.dispatcher_endpoint = dispatcher_endpoint or call.dispatcher_endpoint
        by = dispatcher_of_endpoint(session, org_id=call.organization_id, endpoint=call.dispatcher_endpoint)
        call.answered_by_id = by.id if by is not None else call.answered_by_id
        call.wait_seconds = _seconds(call.started_at, answer)
        _close_by_recall(session, call)
    if recording_path:
        if recording_seconds is None and answer is not None:
            recording_seconds = _seconds(answer, end)
        _attach(session, call, kind=RecordingKind.CONVERSATION, path=recording_path, fmt=_fmt(recording_path),
                duration_seconds=recording_seconds, size_bytes=None, at=end)
    call.ended_at = end
    if call.answered_at is not None:
        call.outcome = CallOutcome.ANSWERED
    else:
        item = _mark_missed(session, call, outcome, end)
        if voicemail_path:
            rec = _attach(session, call, kind=RecordingKind.VOICEMAIL, path=voicemail_path, fmt=_fmt(voicemail_path),
                          duration_seconds=voicemail_seconds, size_bytes=None, at=end)
            if item is not None and item.is_open:
                item.voice_message_id = rec.id
                session.flush()
                events.emit(session, item.organization_id, events.MISSED_CALL_UPDATED,
                            _item_payload(item, "voice_message"))
    events.emit(session, call.organization_id, events.CALL_ENDED,
                _payload(call, outcome=call.outcome.value if call.outcome else None,
                         duration_seconds=_seconds(call.started_at, end), is_fallback=True))
    return call


def _call_from_cdr(session: Session, *, did: str, src: str | None, uniqueid: str, linkedid: str | None,
                   start: datetime, kind: CallKind) -> Call:
    """A new inbound call known from Asterisk's CDR (not yet added): the organization by the
    hotline dialled, the resident when exactly one has the caller's number."""
    org = organization_for_did(session, did)
    phone = try_e164(src)
    card: CallerCard = caller_card(session, org_id=org.id, phone=phone)
    return Call(
        organization_id=org.id, direction=CallDirection.INBOUND, kind=kind, did=try_e164(did),
        phone=phone, phone_raw=(src or "")[:64], channel_id=uniqueid, linkedid=linkedid, started_at=start,
        resident_id=card.residents[0].id if len(card.residents) == 1 else None,
        is_fallback=kind == CallKind.FALLBACK,
    )


def record_unseen_call(
    session: Session, *, did: str, src: str | None, uniqueid: str, start: datetime, end: datetime,
    linkedid: str | None = None,
) -> Call:
    """A hotline call Asterisk handed to the ARI app (Stasis) that no OpenADS process ever wrote:
    `openads ari` was killed between the caller's StasisStart and its registration, and the caller
    hung up before the restarted app (or the watchdog) saw the channel. Only Asterisk's CDR knows
    it (ari_app/cdr_source.py). Written as it happened: inbound, from `start`, ended `abandoned` at
    `end` (nobody could have answered: the app never had it), in the missed-call queue so the
    resident is called back.

    Idempotent on `uniqueid` (the caller's channel id): a call registered by the app, or written
    earlier, is returned as it is. Emits `call.ended` and the queue's events; not `call.ringing`
    (the call is over: no console should ring for it)."""
    call = call_by_channel(session, uniqueid)
    if call is not None:
        return call
    new = _call_from_cdr(session, did=did, src=src, uniqueid=uniqueid, linkedid=linkedid, start=start,
                         kind=CallKind.INBOUND)
    call = _insert_call(session, new)
    if call is not new:
        return call
    return end_call(session, org_id=call.organization_id, call_id=call.id, outcome=CallOutcome.ABANDONED, at=end)


def _fmt(path: str) -> str:
    suffix = Path(path).suffix.lstrip(".").lower()
    return suffix[:10] or "wav"
