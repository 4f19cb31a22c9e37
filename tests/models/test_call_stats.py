"""Call-handling evidence per day (models/call_stats.py) on the scripted day of tests/call_scene.py:
every counter and every breach, field by field; the rules' edges; the voice message review service."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from models.call_stats import CallBreach, CallCounts, daily_call_stats
from models.errors import NotFound, ValidationFailed
from models.missed_call import MissedCall, MissedCallCall
from models.outbox import DomainEvent as Event
from models.queries_calls import MissedFilter, MissedStatusFilter, missed_calls_list
from models.recording import Recording
from models.rules.call_evidence import (
    BreachKind,
    MissedOutcome,
    answered_in_time,
    missed_outcome,
    voice_review_breach,
)
from models.services import calls as calls_svc
from models.services.callbacks import record_callback_result, start_callback
from models.services.voice_messages import mark_voice_message_reviewed
from tests import factories as f
from tests.call_scene import NOW, build_call_day, u


def test_the_rules_count_the_deadline_itself_as_in_time() -> None:
    t0 = datetime(2026, 3, 10, 7, 0, tzinfo=UTC)
    assert answered_in_time(t0, t0 + timedelta(minutes=5)) is True
    assert answered_in_time(t0, t0 + timedelta(minutes=5, seconds=1)) is False
    assert answered_in_time(t0, None) is False
    deadline = t0 + timedelta(minutes=10)
    assert missed_outcome(deadline, deadline, is_open=False, now=t0) == MissedOutcome.IN_TIME
    assert missed_outcome(deadline, deadline + timedelta(seconds=1), is_open=False, now=t0) == MissedOutcome.LATE
    assert missed_outcome(deadline, None, is_open=True, now=deadline) == MissedOutcome.PENDING
    assert missed_outcome(deadline, None, is_open=True, now=deadline + timedelta(seconds=1)) == MissedOutcome.NOT_REACHED
    assert missed_outcome(deadline, None, is_open=False, now=t0) == MissedOutcome.NOT_REACHED  # closed by hand
    assert voice_review_breach(t0, t0 + timedelta(minutes=10), t0) is False
    assert voice_review_breach(t0, None, t0 + timedelta(minutes=10)) is False
    assert voice_review_breach(t0, None, t0 + timedelta(minutes=10, seconds=1)) is True


def test_daily_stats_of_the_scripted_day_field_by_field(session, world) -> None:
    scene = build_call_day(session, world)
    disp = world.dispatcher_a.id
    stats = daily_call_stats(session, org_id=world.org_a.id, start=date(2026, 3, 9), end=date(2026, 3, 11), now=NOW)
    assert (stats.organization_id, stats.timezone, stats.start, stats.end) == (
        world.org_a.id, "Europe/Moscow", date(2026, 3, 9), date(2026, 3, 11))
    assert [d.day for d in stats.days] == [date(2026, 3, 9), date(2026, 3, 10), date(2026, 3, 11)]
    empty = CallCounts()
    assert stats.days[0].counts == empty and stats.days[2].counts == empty
    day = stats.days[1]
    assert day.organization_id == world.org_a.id
    assert day.counts == CallCounts(
        calls=7, answered=2, answered_in_5min=1, missed=5, callback_in_time=3, recall_in_time=0, called_back_late=1,
        not_called_back=1, awaiting_callback=0, attempts=4, voice_messages=2, voice_messages_reviewed_late=1,
    )
    assert day.answered_late == 1
    assert day.answered_in_5min_share == pytest.approx(1 / 7)
    assert day.called_back_in_time == 3 and day.callback_share == pytest.approx(3 / 5)
    assert stats.totals == day.counts
    assert stats.breaches == [
        CallBreach(BreachKind.LATE_ANSWER, world.org_a.id, date(2026, 3, 10), "+79160000002", u(7, 10), u(7, 15),
                   u(7, 17), user_id=disp, call_id=scene.answered_7),
        CallBreach(BreachKind.LATE_CALLBACK, world.org_a.id, date(2026, 3, 10), "+79160000012", u(9, 0), u(9, 10),
                   u(9, 14), user_id=disp, call_id=scene.cb14_call, missed_call_id=scene.m_cb14),
        CallBreach(BreachKind.NOT_CALLED_BACK, world.org_a.id, date(2026, 3, 10), "+79160000013", u(10, 0),
                   u(10, 10), None, missed_call_id=scene.m_never),
        CallBreach(BreachKind.LATE_VOICE_REVIEW, world.org_a.id, date(2026, 3, 10), "+79160000015", u(12, 1),
                   u(12, 11), u(12, 26), user_id=disp, call_id=scene.rec_25_call, missed_call_id=scene.v_25,
                   recording_id=scene.rec_25),
    ]
    assert [b.late_seconds for b in stats.breaches] == [120, 240, None, 900]


def test_an_open_item_is_awaiting_until_its_deadline_then_a_breach(session, world) -> None:
    org = session.merge(world.org_a)
    f.make_missed_call(session, org, "+79160000021", at=u(20, 55), waited_seconds=30)  # 23:55 MSK
    before = daily_call_stats(session, org_id=org.id, start=date(2026, 3, 10), end=date(2026, 3, 10), now=u(21, 0))
    assert (before.days[0].awaiting_callback, before.days[0].not_called_back, before.breaches) == (1, 0, [])
    after = daily_call_stats(session, org_id=org.id, start=date(2026, 3, 10), end=date(2026, 3, 10), now=u(21, 6))
    assert (after.days[0].awaiting_callback, after.days[0].not_called_back) == (0, 1)
    assert [(b.kind, b.deadline_at, b.actual_at) for b in after.breaches] == [
        (BreachKind.NOT_CALLED_BACK, u(21, 5), None)]


def test_a_resident_calling_again_late_is_a_late_callback_with_the_answer_time(session, world) -> None:
    org = session.merge(world.org_a)
    item = f.make_missed_call(session, org, "+79160000022", at=u(8, 0), waited_seconds=30)
    again = f.make_inbound_call(session, org, "+79160000022", at=u(8, 11))
    calls_svc.mark_call_answered(session, org_id=org.id, call_id=again.id, by=session.merge(world.dispatcher_a),
                                 at=u(8, 11, 30))
    stats = daily_call_stats(session, org_id=org.id, start=date(2026, 3, 10), end=date(2026, 3, 10), now=NOW)
    assert (stats.days[0].called_back_late, stats.days[0].recall_in_time) == (1, 0)
    late = [b for b in stats.breaches if b.kind == BreachKind.LATE_CALLBACK]
    assert [(b.missed_call_id, b.actual_at, b.call_id, b.user_id) for b in late] == [
        (item.id, u(8, 11, 30), again.id, world.dispatcher_a.id)]
    assert session.get(MissedCall, item.id).evidence(NOW).outcome == MissedOutcome.LATE


def test_stats_are_per_organization_and_refuse_an_unknown_one(session, world) -> None:
    build_call_day(session, world)
    theirs = daily_call_stats(session, org_id=world.org_b.id, start=date(2026, 3, 10), end=date(2026, 3, 10), now=NOW)
    assert theirs.days[0].counts == CallCounts() and theirs.breaches == []
    with pytest.raises(NotFound):
        daily_call_stats(session, org_id=987654, start=date(2026, 3, 10), end=date(2026, 3, 10))


def test_item_evidence_matches_the_stats(session, world) -> None:
    scene = build_call_day(session, world)
    got = {i: (session.get(MissedCall, i).evidence(NOW).outcome, session.get(MissedCall, i).reached_at)
           for i in (scene.m_cb6, scene.m_cb14, scene.m_never)}
    assert got == {scene.m_cb6: (MissedOutcome.IN_TIME, u(8, 6)), scene.m_cb14: (MissedOutcome.LATE, u(9, 14)),
                   scene.m_never: (MissedOutcome.NOT_REACHED, None)}
    assert session.get(MissedCall, scene.m_cb14).evidence(NOW).late_seconds == 240


def test_marking_a_voice_message_reviewed_keeps_the_first_review_and_emits_an_event(session, world) -> None:
    org = session.merge(world.org_a)
    call = f.make_inbound_call(session, org, "+79160000031", at=u(14, 0))
    rec = calls_svc.attach_voice_message(session, org_id=org.id, call_id=call.id, path=f"{org.id}/vm/x.wav",
                                         at=u(14, 1))
    disp, other = session.merge(world.dispatcher_a), session.merge(world.manager_a)
    mark_voice_message_reviewed(session, org_id=org.id, recording_id=rec.id, by=disp, now=u(14, 20))
    mark_voice_message_reviewed(session, org_id=org.id, recording_id=rec.id, by=other, now=u(14, 30))
    fresh = session.get(Recording, rec.id)
    assert (fresh.reviewed_at, fresh.reviewed_by_id, fresh.review_breach(NOW)) == (u(14, 20), disp.id, True)
    events = [e.payload for e in session.query(Event).filter(Event.organization_id == org.id)
              if e.payload.get("action") == "voice_message_reviewed"]
    assert len(events) == 1 and events[0]["recording_id"] == rec.id and events[0]["in_time"] is False
    with pytest.raises(NotFound):
        mark_voice_message_reviewed(session, org_id=world.org_b.id, recording_id=rec.id,
                                    by=session.merge(world.dispatcher_b))
    conversation = calls_svc.attach_recording(session, org_id=org.id, call_id=call.id, path=f"{org.id}/c/x.wav")
    with pytest.raises(ValidationFailed):
        mark_voice_message_reviewed(session, org_id=org.id, recording_id=conversation.id, by=disp)


def test_the_breach_filter_agrees_with_the_rules_at_the_edges(session, world) -> None:
    """`missed_calls_list(breach_only)` (SQL) against `evidence` / `review_breach` (Python): a voice
    message reviewed exactly 10 minutes after receipt is in time, a second later is not; an item
    reached exactly at its deadline is in time."""
    org, disp = session.merge(world.org_a), session.merge(world.dispatcher_a)
    ids = {}
    for n, review_after in ((1, timedelta(minutes=10)), (2, timedelta(minutes=10, seconds=1))):
        call = f.make_inbound_call(session, org, f"+7916000009{n}", at=u(15, n))
        rec = calls_svc.attach_voice_message(session, org_id=org.id, call_id=call.id, path=f"{org.id}/vm/e{n}.wav",
                                             at=u(15, n, 30))
        mark_voice_message_reviewed(session, org_id=org.id, recording_id=rec.id, by=disp, now=u(15, n, 30) + review_after)
        ids[n] = session.get(MissedCallCall, call.id).missed_call_id
        attempt = start_callback(session, org_id=org.id, missed_call_id=ids[n], by=disp, now=u(15, n, 40))
        record_callback_result(session, org_id=org.id, attempt_id=attempt.id, resident_answered=True,
                               at=u(15, n + 10))  # exactly at the deadline
    session.flush()
    found = missed_calls_list(session, org_ids=[org.id], now=NOW,
                              f=MissedFilter(status=MissedStatusFilter.ALL, breach_only=True))
    assert [i.id for i in found] == [ids[2]]
    assert [session.get(MissedCall, i).evidence(NOW).outcome for i in ids.values()] == [MissedOutcome.IN_TIME] * 2
