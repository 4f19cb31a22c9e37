from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from models.call import Call, CallKind, CallOutcome
from models.call_stats import daily_call_stats_of
from models.errors import NotFound, ValidationFailed
from models.missed_call import CallbackAttempt, CloseReason, MissedCall, MissedCallCall, MissedCallStatus
from models.outbox import DomainEvent
from models.queries_calls import auto_callback_candidates, missed_count, missed_queue
from models.recording import RecordingKind
from models.rules.deadlines import missed_call_deadline
from models.services import callbacks, calls
from tests import factories as f

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PHONE = "+79165550001"


def _events(session, name):
    return [e.payload for e in session.scalars(select(DomainEvent).where(DomainEvent.name == name).order_by(DomainEvent.id))]


def test_when_caller_hangs_up_in_queue_then_missed_call_with_10_min_deadline(session, world) -> None:
    org = session.merge(world.org_a)
    started = T0 + timedelta(seconds=37, microseconds=250_000)
    call = f.make_inbound_call(session, org, "8 916 555-00-01", at=started)
    calls.end_call(session, org_id=org.id, call_id=call.id, at=started + timedelta(seconds=95))
    item = session.scalar(select(MissedCall))
    assert call.outcome == CallOutcome.ABANDONED and call.wait_seconds == 95
    assert (item.phone, item.status, item.calls_count) == (PHONE, MissedCallStatus.OPEN, 1)
    assert item.first_call_id == call.id and item.first_call_at == started
    assert item.deadline_at == started + timedelta(minutes=10) == missed_call_deadline(started)
    assert _events(session, "missed_call.created") == [{
        "missed_call_id": item.id, "phone": PHONE, "status": "open",
        "deadline_at": "2026-03-02T09:10:37.250000+00:00", "calls_count": 1, "voice_message_id": None,
        "action": "created",
    }]


def test_repeated_calls_from_one_number_merge_into_one_open_item(session, world) -> None:
    org = session.merge(world.org_a)
    first = f.make_missed_call(session, org, PHONE, at=T0)
    second = f.make_missed_call(session, org, "89165550001", at=T0 + timedelta(minutes=3))
    third = f.make_missed_call(session, org, PHONE, at=T0 + timedelta(minutes=7))
    other = f.make_missed_call(session, org, "+79165550002", at=T0 + timedelta(minutes=1))
    assert first.id == second.id == third.id != other.id
    assert first.calls_count == 3 and first.last_call_at == T0 + timedelta(minutes=7)
    assert first.deadline_at == T0 + timedelta(minutes=10)  # the earliest call's deadline holds
    assert len(session.scalars(select(MissedCallCall.call_id).where(MissedCallCall.missed_call_id == first.id)).all()) == 3
    assert [e["calls_count"] for e in _events(session, "missed_call.updated")] == [2, 3]
    # the same number in another organization is another queue
    other_org = f.make_missed_call(session, session.merge(world.org_b), PHONE, at=T0)
    assert other_org.id != first.id and other_org.organization_id == world.org_b.id


def test_marking_the_same_call_missed_twice_counts_it_once(session, world) -> None:
    org = session.merge(world.org_a)
    call = f.make_inbound_call(session, org, PHONE, at=T0)
    one = calls.mark_call_missed(session, org_id=org.id, call_id=call.id, at=T0 + timedelta(minutes=2))
    two = calls.mark_call_missed(session, org_id=org.id, call_id=call.id, at=T0 + timedelta(minutes=2))
    calls.end_call(session, org_id=org.id, call_id=call.id, at=T0 + timedelta(minutes=2))
    assert one.id == two.id and one.calls_count == 1
    with pytest.raises(ValidationFailed):
        calls.mark_call_missed(session, org_id=org.id, call_id=call.id, outcome=CallOutcome.ANSWERED)


def test_an_anonymous_caller_cannot_be_called_back_so_no_item(session, world) -> None:
    org = session.merge(world.org_a)
    call = f.make_inbound_call(session, org, "anonymous", at=T0)
    assert calls.mark_call_missed(session, org_id=org.id, call_id=call.id, at=T0 + timedelta(minutes=2)) is None
    assert call.outcome == CallOutcome.MISSED_TIMEOUT
    assert session.scalar(select(MissedCall.id)) is None


def test_an_unanswered_callback_is_logged_and_leaves_the_item_open(session, world) -> None:
    org = session.merge(world.org_a)
    disp = session.merge(world.dispatcher_a)
    item = f.make_missed_call(session, org, PHONE, at=T0)
    attempt = callbacks.start_callback(session, org_id=org.id, missed_call_id=item.id, by=disp,
                                       endpoint="PJSIP/disp1", now=T0 + timedelta(minutes=3))
    call = session.get(Call, attempt.call_id)
    assert (call.kind, call.direction.value, call.phone, call.initiated_by_id) == (CallKind.CALLBACK, "outbound",
                                                                                   PHONE, disp.id)
    assert call.channel_id.startswith("openads-cb-")
    callbacks.record_callback_result(session, org_id=org.id, attempt_id=attempt.id, resident_answered=False,
                                     outcome=CallOutcome.BUSY, at=T0 + timedelta(minutes=3, seconds=20))
    assert item.status == MissedCallStatus.OPEN
    assert (attempt.outcome, attempt.resident_answered, attempt.ended_at) == (
        CallOutcome.BUSY, False, T0 + timedelta(minutes=3, seconds=20))
    assert call.outcome == CallOutcome.BUSY and call.ended_at == attempt.ended_at
    assert [e["action"] for e in _events(session, "missed_call.updated")] == ["callback_started", "callback_failed"]
    assert _events(session, "missed_call.updated")[-1]["attempts"] == 1
    # a callback call that ends without any result also counts as failed
    second = callbacks.start_callback(session, org_id=org.id, missed_call_id=item.id, by=disp,
                                      now=T0 + timedelta(minutes=5))
    calls.end_call(session, org_id=org.id, call_id=second.call_id, at=T0 + timedelta(minutes=6))
    assert (second.outcome, second.resident_answered) == (CallOutcome.NO_ANSWER, False)
    assert item.status == MissedCallStatus.OPEN and len(session.scalars(select(CallbackAttempt.id)).all()) == 2


def test_an_answered_callback_closes_the_item(session, world) -> None:
    org = session.merge(world.org_a)
    disp = session.merge(world.dispatcher_a)
    item = f.make_missed_call(session, org, PHONE, at=T0)
    attempt = callbacks.start_callback(session, org_id=org.id, missed_call_id=item.id, by=disp,
                                       channel_id="cb-1", now=T0 + timedelta(minutes=2))
    # a replayed click with the same channel id is the same attempt
    assert callbacks.start_callback(session, org_id=org.id, missed_call_id=item.id, by=disp, channel_id="cb-1").id == attempt.id
    with pytest.raises(callbacks.CallbackInProgress):
        callbacks.start_callback(session, org_id=org.id, missed_call_id=item.id, by=disp)
    answered_at = T0 + timedelta(minutes=2, seconds=25)
    callbacks.record_callback_result(session, org_id=org.id, attempt_id=attempt.id, resident_answered=True,
                                     at=answered_at)
    assert (item.status, item.close_reason, item.closed_at) == (MissedCallStatus.CLOSED,
                                                                CloseReason.RESIDENT_ANSWERED, answered_at)
    assert (item.closed_by_id, item.closing_call_id) == (disp.id, attempt.call_id)
    assert attempt.resident_answered and attempt.resident_answered_at == answered_at
    closed = _events(session, "missed_call.closed")
    assert [(e["reason"], e["in_time"]) for e in closed] == [("resident_answered", True)]
    calls.end_call(session, org_id=org.id, call_id=attempt.call_id, at=T0 + timedelta(minutes=4))
    assert session.get(Call, attempt.call_id).outcome == CallOutcome.ANSWERED
    assert attempt.ended_at == T0 + timedelta(minutes=4)
    with pytest.raises(calls.MissedCallClosed):
        callbacks.start_callback(session, org_id=org.id, missed_call_id=item.id, by=disp)


def test_answering_the_outbound_callback_call_also_closes_the_item(session, world) -> None:
    org = session.merge(world.org_a)
    item = f.make_missed_call(session, org, PHONE, at=T0)
    attempt = callbacks.start_callback(session, org_id=org.id, missed_call_id=item.id, by=None,
                                       now=T0 + timedelta(minutes=1))
    assert session.get(Call, attempt.call_id).kind == CallKind.AUTO_CALLBACK and attempt.dispatcher_id is None
    calls.mark_call_answered(session, org_id=org.id, call_id=attempt.call_id, by=None, at=T0 + timedelta(minutes=1, seconds=9))
    assert item.close_reason == CloseReason.RESIDENT_ANSWERED and attempt.resident_answered


def test_when_the_resident_calls_again_and_is_answered_then_the_item_closes(session, world) -> None:
    org = session.merge(world.org_a)
    disp = session.merge(world.dispatcher_a)
    item = f.make_missed_call(session, org, PHONE, at=T0)
    again = f.make_inbound_call(session, org, PHONE, at=T0 + timedelta(minutes=4))
    assert item.status == MissedCallStatus.OPEN  # ringing is not reaching anyone
    calls.mark_call_answered(session, org_id=org.id, call_id=again.id, by=disp, at=T0 + timedelta(minutes=4, seconds=30))
    assert (item.status, item.close_reason, item.closing_call_id, item.closed_by_id) == (
        MissedCallStatus.CLOSED, CloseReason.CALLED_AGAIN_ANSWERED, again.id, disp.id)
    # the next miss from that number opens a new item
    new = f.make_missed_call(session, org, PHONE, at=T0 + timedelta(hours=1))
    assert new.id != item.id and new.status == MissedCallStatus.OPEN


def test_a_dispatcher_closes_an_item_only_with_a_reason(session, world) -> None:
    org = session.merge(world.org_a)
    disp = session.merge(world.dispatcher_a)
    item = f.make_missed_call(session, org, PHONE, at=T0)
    for blank in ("", "   "):
        with pytest.raises(ValidationFailed) as exc:
            callbacks.close_missed_call(session, org_id=org.id, missed_call_id=item.id, reason=blank, by=disp)
        assert exc.value.details == {"field": "reason"}
    assert item.status == MissedCallStatus.OPEN
    with pytest.raises(NotFound):
        callbacks.close_missed_call(session, org_id=world.org_b.id, missed_call_id=item.id, reason="x", by=disp)
    callbacks.close_missed_call(session, org_id=org.id, missed_call_id=item.id, reason=" житель пришёл в офис ",
                                by=disp, now=T0 + timedelta(minutes=20))
    assert (item.status, item.close_reason, item.close_note, item.closed_by_id) == (
        MissedCallStatus.CLOSED, CloseReason.MANUAL, "житель пришёл в офис", disp.id)
    assert _events(session, "missed_call.closed")[-1]["in_time"] is False
    with pytest.raises(calls.MissedCallClosed):
        callbacks.close_missed_call(session, org_id=org.id, missed_call_id=item.id, reason="ещё раз", by=disp)


def test_a_voice_message_is_shown_on_the_item_with_the_same_deadline(session, world) -> None:
    org = session.merge(world.org_a)
    call = f.make_inbound_call(session, org, PHONE, at=T0)
    calls.mark_call_missed(session, org_id=org.id, call_id=call.id, at=T0 + timedelta(minutes=2))
    path = f"{org.id}/2026/03/{call.id}.voicemail.wav"
    rec = calls.attach_voice_message(session, org_id=org.id, call_id=call.id, path=path, duration_seconds=14,
                                     at=T0 + timedelta(minutes=2, seconds=20))
    calls.end_call(session, org_id=org.id, call_id=call.id, at=T0 + timedelta(minutes=2, seconds=21))
    item = session.scalar(select(MissedCall))
    assert (rec.kind, rec.path, rec.call_id) == (RecordingKind.VOICEMAIL, path, call.id)
    assert item.voice_message_id == rec.id and item.deadline_at == T0 + timedelta(minutes=10)
    assert call.outcome == CallOutcome.VOICEMAIL
    assert _events(session, "missed_call.updated")[-1]["action"] == "voice_message"
    answered = f.make_inbound_call(session, org, "+79165550009", at=T0)
    calls.mark_call_answered(session, org_id=org.id, call_id=answered.id, by=None)
    with pytest.raises(calls.CallStateConflict):
        calls.attach_voice_message(session, org_id=org.id, call_id=answered.id, path="x/vm.wav")


def test_missed_queue_is_sorted_by_deadline_and_scoped(session, world) -> None:
    org_a, org_b = session.merge(world.org_a), session.merge(world.org_b)
    late = f.make_missed_call(session, org_a, "+79165550011", at=T0 + timedelta(minutes=5))
    early = f.make_missed_call(session, org_a, "+79165550012", at=T0)
    closed = f.make_missed_call(session, org_a, "+79165550013", at=T0 - timedelta(minutes=1))
    callbacks.close_missed_call(session, org_id=org_a.id, missed_call_id=closed.id, reason="ошибка",
                                by=session.merge(world.dispatcher_a))
    theirs = f.make_missed_call(session, org_b, "+79165550014", at=T0 + timedelta(minutes=1))
    assert [i.id for i in missed_queue(session, org_ids=[org_a.id])] == [early.id, late.id]
    assert [i.id for i in missed_queue(session, org_ids=[org_a.id, org_b.id])] == [early.id, theirs.id, late.id]
    assert [i.id for i in missed_queue(session, org_ids=[org_b.id])] == [theirs.id]
    assert missed_count(session, org_ids=[org_a.id]) == 2
    with pytest.raises(NotFound):
        missed_queue(session, org_ids=[])
    assert early.is_overdue(T0 + timedelta(minutes=10, seconds=1)) and not early.is_overdue(T0 + timedelta(minutes=10))


def test_auto_callback_picks_items_of_organizations_with_the_switch_on(session, world) -> None:
    org_a, org_b = session.merge(world.org_a), session.merge(world.org_b)
    calls.update_telephony_settings(session, org=org_a, by=None, auto_callback=True)
    a = f.make_missed_call(session, org_a, "+79165550021", at=T0)
    b = f.make_missed_call(session, org_b, "+79165550022", at=T0)
    assert [i.id for i in auto_callback_candidates(session, org_ids=[org_a.id, org_b.id])] == [a.id]
    callbacks.start_callback(session, org_id=org_a.id, missed_call_id=a.id, by=None)
    assert auto_callback_candidates(session, org_ids=[org_a.id, org_b.id]) == []
    assert b.status == MissedCallStatus.OPEN


def _item(session, org, phone, at):
    return f.make_missed_call(session, org, phone, at=at)


def _callback(session, org, item, *, answered_after, failed_first=False):
    if failed_first:
        failed = callbacks.start_callback(session, org_id=org.id, missed_call_id=item.id, by=None,
                                          now=item.first_call_at + timedelta(minutes=1))
        callbacks.record_callback_result(session, org_id=org.id, attempt_id=failed.id, resident_answered=False,
                                         at=item.first_call_at + timedelta(minutes=2))
    attempt = callbacks.start_callback(session, org_id=org.id, missed_call_id=item.id, by=None,
                                       now=item.first_call_at + answered_after - timedelta(seconds=20))
    callbacks.record_callback_result(session, org_id=org.id, attempt_id=attempt.id, resident_answered=True,
                                     at=item.first_call_at + answered_after)


def test_compliance_per_organization_and_local_day_across_time_zones(session, world) -> None:
    org_a = session.merge(world.org_a)  # Europe/Moscow, UTC+3
    org_b = session.merge(world.org_b)  # Asia/Yekaterinburg, UTC+5
    # org_a, local 2 March: reached by callback in 5 min; called again and answered in 3 min; only a failed attempt
    i1 = _item(session, org_a, "+79165550031", datetime(2026, 3, 2, 20, 30, tzinfo=UTC))  # 23:30 MSK
    _callback(session, org_a, i1, answered_after=timedelta(minutes=5))
    i2 = _item(session, org_a, "+79165550032", datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    recall = f.make_inbound_call(session, org_a, "+79165550032", at=datetime(2026, 3, 2, 10, 2, tzinfo=UTC))
    calls.mark_call_answered(session, org_id=org_a.id, call_id=recall.id, by=None,
                             at=datetime(2026, 3, 2, 10, 3, tzinfo=UTC))
    i3 = _item(session, org_a, "+79165550033", datetime(2026, 3, 2, 11, 0, tzinfo=UTC))
    failed = callbacks.start_callback(session, org_id=org_a.id, missed_call_id=i3.id, by=None,
                                      now=datetime(2026, 3, 2, 11, 4, tzinfo=UTC))
    callbacks.record_callback_result(session, org_id=org_a.id, attempt_id=failed.id, resident_answered=False)
    callbacks.close_missed_call(session, org_id=org_a.id, missed_call_id=i3.id, reason="номер не отвечает",
                                by=session.merge(world.dispatcher_a))
    # org_a, local 3 March (00:30 MSK): a failed attempt, then reached after 15 minutes: late
    i4 = _item(session, org_a, "+79165550034", datetime(2026, 3, 2, 21, 30, tzinfo=UTC))
    _callback(session, org_a, i4, answered_after=timedelta(minutes=15), failed_first=True)
    # exactly at the deadline still counts
    i5 = _item(session, org_a, "+79165550035", datetime(2026, 3, 2, 22, 0, tzinfo=UTC))  # 01:00 MSK 3 March
    _callback(session, org_a, i5, answered_after=timedelta(minutes=10))
    # org_b: 20:30 UTC is already 01:30 on 3 March in Yekaterinburg
    j1 = _item(session, org_b, "+79165550031", datetime(2026, 3, 2, 20, 30, tzinfo=UTC))
    _callback(session, org_b, j1, answered_after=timedelta(minutes=9))
    # outside the range
    _item(session, org_a, "+79165550036", datetime(2026, 3, 4, 21, 0, tzinfo=UTC))
    session.flush()

    now = datetime(2026, 3, 5, tzinfo=UTC)
    rows = [d for st in daily_call_stats_of(session, org_ids=[org_a.id, org_b.id], start=date(2026, 3, 2),
                                            end=date(2026, 3, 3), now=now) for d in st.days]
    got = {(r.organization_id, r.day): (r.missed, r.callback_in_time, r.recall_in_time, r.attempts, r.callback_share,
                                        r.called_back_late, r.not_called_back) for r in rows}
    assert got == {
        (org_a.id, date(2026, 3, 2)): (3, 1, 1, 2, 2 / 3, 0, 1),
        (org_a.id, date(2026, 3, 3)): (2, 1, 0, 3, 0.5, 1, 0),
        (org_b.id, date(2026, 3, 2)): (0, 0, 0, 0, None, 0, 0),
        (org_b.id, date(2026, 3, 3)): (1, 1, 0, 1, 1.0, 0, 0),
    }
    # tenant scoping
    assert {st.organization_id for st in daily_call_stats_of(session, org_ids=[org_b.id], start=date(2026, 3, 2),
                                                             end=date(2026, 3, 3), now=now)} == {org_b.id}
    with pytest.raises(NotFound):
        daily_call_stats_of(session, org_ids=[], start=date(2026, 3, 2), end=date(2026, 3, 3))
    assert i2.close_reason == CloseReason.CALLED_AGAIN_ANSWERED


def test_the_database_keeps_one_open_item_per_number(session, world) -> None:
    from sqlalchemy.exc import IntegrityError

    org = session.merge(world.org_a)
    item = f.make_missed_call(session, org, PHONE, at=T0)
    twin = MissedCall(organization_id=org.id, phone=PHONE, first_call_id=item.first_call_id, first_call_at=T0,
                      last_call_at=T0, calls_count=1, deadline_at=T0, status=MissedCallStatus.OPEN, close_note="")
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(twin)
        session.flush()
    twin_closed = MissedCall(organization_id=org.id, phone=PHONE, first_call_id=item.first_call_id, first_call_at=T0,
                             last_call_at=T0, calls_count=1, deadline_at=T0, status=MissedCallStatus.CLOSED,
                             close_note="")
    session.add(twin_closed)
    session.flush()  # closed items of the same number are history: any number of them
