"""Ratings: stored from the robot or a dispatcher, 1–2 flagged, history and event, executors' averages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from models.errors import NotFound, TransitionNotAllowed, ValidationFailed
from models.outbox import DomainEvent
from models.rating import RatingAttemptOutcome, RatingCall, RatingCallStatus, RatingSource, TicketRating
from models.services import ratings
from models.ticket import Ticket, TicketHistory
from tests import factories as f

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # 12:00 in Moscow


def _done(s, world, executor=None, now=T0):
    return f.make_done_ticket(s, world.org_a, world.cats_a["other"], executor=executor or world.executor_a, now=now,
                              resident_id=world.resident_a.id)


def _robot_call(s, world, ticket):
    ratings.schedule_rating_call(s, ticket=ticket, now=T0)
    [claimed] = ratings.claim_due_rating_calls(s, now=T0, worker_id="w1")
    return claimed


def test_speech_answer_is_stored_with_transcript_audio_history_and_event(db, world) -> None:
    with db.write() as s:
        ticket = _done(s, world)
        claimed = _robot_call(s, world, ticket)
        audio = f"recordings/{world.org_a.id}/2026/03/rating-{claimed.attempt_id}.wav"
        ratings.record_rating_attempt(
            s, attempt_id=claimed.attempt_id, outcome=RatingAttemptOutcome.ANSWERED, value=5,
            transcript="ну пять", audio_path=audio, now=T0 + timedelta(minutes=1),
        )
        rating = s.scalar(select(TicketRating).where(TicketRating.ticket_id == ticket.id))
        assert (rating.value, rating.source, rating.transcript, rating.audio_path, rating.flagged_for_manager) == (
            5, RatingSource.SPEECH, "ну пять", audio, False)
        assert (rating.executor_id, rating.rating_call_id, rating.rated_at) == (
            world.executor_a.id, claimed.rating_call_id, T0 + timedelta(minutes=1))
        assert s.get(Ticket, ticket.id).rating == 5
        call = s.get(RatingCall, claimed.rating_call_id)
        assert (call.status, call.last_outcome, call.locked_by) == (
            RatingCallStatus.DONE, RatingAttemptOutcome.ANSWERED, None)
        history = s.scalars(select(TicketHistory).where(TicketHistory.ticket_id == ticket.id)
                            .order_by(TicketHistory.id)).all()[-1]
        assert (history.action, history.changes, history.reason, history.user_id) == (
            "rated", {"rating": [None, 5]}, "оценка 5 голосом", None)
        event = s.scalars(select(DomainEvent).order_by(DomainEvent.id.desc())).first()
        assert (event.name, event.payload) == ("ticket.changed", {
            "ticket_id": ticket.id, "number": ticket.number, "status": "done", "action": "rated",
            "executor_ids": [world.executor_a.id], "by": None, "fields": ["rating"], "rating": 5, "flagged": False})


def test_keypad_answer_is_a_dtmf_rating(db, world) -> None:
    with db.write() as s:
        ticket = _done(s, world)
        claimed = _robot_call(s, world, ticket)
        ratings.record_rating_attempt(s, attempt_id=claimed.attempt_id, outcome=RatingAttemptOutcome.SPEECH_ERROR,
                                      value=3, dtmf="3", error="speechkit 500", now=T0 + timedelta(minutes=1))
        rating = s.scalar(select(TicketRating).where(TicketRating.ticket_id == ticket.id))
        assert (rating.value, rating.source) == (3, RatingSource.DTMF)
        attempt = ratings.rating_attempts(s, org_ids=[world.org_a.id], ticket_id=ticket.id)[0]
        assert (attempt.outcome, attempt.dtmf, attempt.recognized_value, attempt.error) == (
            RatingAttemptOutcome.ANSWERED, "3", 3, "speechkit 500")


@pytest.mark.parametrize(("value", "flagged"), [(1, True), (2, True), (3, False), (4, False), (5, False)])
def test_ratings_one_and_two_flag_the_ticket_for_the_manager(db, world, value, flagged) -> None:
    with db.write() as s:
        ticket = _done(s, world)
        rating = ratings.record_rating(s, ticket=ticket, value=value, source=RatingSource.DISPATCHER,
                                       by=world.dispatcher_a, now=T0)
        assert rating.flagged_for_manager is flagged
        assert rating.rated_by_id == world.dispatcher_a.id


def test_dispatcher_rating_replaces_the_old_one_and_cancels_the_robot(db, world) -> None:
    with db.write() as s:
        ticket = _done(s, world)
        call = ratings.schedule_rating_call(s, ticket=ticket, now=T0)
        ratings.record_rating(s, ticket=ticket, value=2, source=RatingSource.DISPATCHER, by=world.dispatcher_a,
                              now=T0, transcript="житель позвонил сам")
        assert (call.status, call.cancel_reason) == (RatingCallStatus.CANCELLED, "оценка получена другим способом")
        ratings.record_rating(s, ticket=ticket, value=4, source=RatingSource.DISPATCHER, by=world.dispatcher_a,
                              now=T0 + timedelta(hours=1))
        rows = s.scalars(select(TicketRating).where(TicketRating.ticket_id == ticket.id)).all()
        assert [(r.value, r.flagged_for_manager) for r in rows] == [(4, False)]
        changes = [h.changes for h in s.scalars(select(TicketHistory).where(
            TicketHistory.ticket_id == ticket.id, TicketHistory.action == "rated").order_by(TicketHistory.id))]
        assert changes == [{"rating": [None, 2]}, {"rating": [2, 4]}]
        # Already rated for this completion: no new robot call.
        assert ratings.schedule_rating_call(s, ticket=ticket, now=T0 + timedelta(hours=2)) is None


def test_rating_rules_refuse_bad_values_and_open_tickets(db, world) -> None:
    with db.write() as s:
        ticket = _done(s, world)
        for bad in (0, 6):
            with pytest.raises(ValidationFailed):
                ratings.record_rating(s, ticket=ticket, value=bad, source=RatingSource.DISPATCHER, now=T0)
        open_ticket = f.make_ticket(s, world.org_a, world.cats_a["other"], now=T0)
        with pytest.raises(TransitionNotAllowed):
            ratings.record_rating(s, ticket=open_ticket, value=5, source=RatingSource.DISPATCHER, now=T0)


def test_a_late_rating_from_a_reclaimed_attempt_is_still_stored(db, world) -> None:
    with db.write() as s:
        ticket = _done(s, world)
        claimed = _robot_call(s, world, ticket)
        ratings.claim_due_rating_calls(s, now=T0 + timedelta(minutes=11), worker_id="w2")  # reclaim
        ratings.record_rating_attempt(s, attempt_id=claimed.attempt_id, outcome=RatingAttemptOutcome.ANSWERED,
                                      value=4, transcript="четыре", now=T0 + timedelta(minutes=12))
        assert s.scalar(select(TicketRating.value).where(TicketRating.ticket_id == ticket.id)) == 4
        call = s.get(RatingCall, claimed.rating_call_id)
        assert call.status == RatingCallStatus.DONE


def test_executor_averages_over_a_period(db, world) -> None:
    with db.write() as s:
        second = f.make_user(s, [world.org_a], f.Role.EXECUTOR, full_name="Андреев Андрей Андреевич")
        for executor, value, at in [
            (world.executor_a, 5, T0), (world.executor_a, 4, T0 + timedelta(days=1)),
            (world.executor_a, 1, T0 + timedelta(days=2)), (second, 2, T0),
            (world.executor_a, 1, T0 - timedelta(days=1)),  # before the period
            (second, 5, T0 + timedelta(days=7)),  # at the end: excluded
        ]:
            ticket = _done(s, world, executor=executor, now=at)
            ratings.record_rating(s, ticket=ticket, value=value, source=RatingSource.DISPATCHER, now=at)
        other = f.make_done_ticket(s, world.org_b, world.cats_b["other"], executor=world.executor_b, now=T0)
        ratings.record_rating(s, ticket=other, value=3, source=RatingSource.DISPATCHER, now=T0)
    period = (T0, T0 + timedelta(days=7))
    with db.read() as s:
        rows = ratings.executor_average_ratings(s, org_ids=[world.org_a.id], period=period)
        assert [(r.full_name, r.count, r.average, r.low_count) for r in rows] == [
            ("Андреев Андрей Андреевич", 1, 2.0, 1), ("Сидоров Семён Сергеевич", 3, 3.33, 1)]
        both = ratings.executor_average_ratings(s, org_ids=[world.org_a.id, world.org_b.id], period=period)
        assert [(r.full_name, r.average) for r in both][-1] == ("Сидоров Семён Сергеевич", 3.33)
        assert ("Волков Виктор Викторович", 3.0) in [(r.full_name, r.average) for r in both]


def test_rating_reads_follow_the_tenant_triplet(db, world) -> None:
    with db.write() as s:
        ticket = _done(s, world)
        ratings.record_rating(s, ticket=ticket, value=5, source=RatingSource.DISPATCHER, now=T0)
        ticket_id = ticket.id
    period = (T0 - timedelta(days=1), T0 + timedelta(days=1))
    with db.read() as s:
        assert ratings.get_ticket_rating(s, org_ids=[world.org_a.id], ticket_id=ticket_id).value == 5
        assert len(ratings.executor_average_ratings(s, org_ids=[world.org_a.id], period=period)) == 1
        assert ratings.get_ticket_rating(s, org_ids=[world.org_b.id], ticket_id=ticket_id) is None
        assert ratings.executor_average_ratings(s, org_ids=[world.org_b.id], period=period) == []
        assert ratings.rating_attempts(s, org_ids=[world.org_b.id], ticket_id=ticket_id) == []
        for read in (
            lambda: ratings.get_ticket_rating(s, org_ids=[], ticket_id=ticket_id),
            lambda: ratings.executor_average_ratings(s, org_ids=[], period=period),
            lambda: ratings.rating_attempts(s, org_ids=[], ticket_id=ticket_id),
        ):
            with pytest.raises(NotFound):
                read()


def test_confirmation_text_names_the_rating_in_words() -> None:
    assert ratings.confirmation_text(4) == "Спасибо, ваша оценка — четыре. До свидания!"
