"""Issue 13 item 8: a fresh demo has a past week of calls, callbacks on time and late, voice
messages and ratings, so the calls journal, the compliance page and the ratings page are not empty."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from models.base import utcnow
from models.call import Call, CallOutcome, CallTicket
from models.missed_call import CallbackAttempt, MissedCall
from models.rating import TicketRating
from models.recording import Recording, RecordingKind
from models.ticket import Ticket
from openads.demo import load_demo


def test_demo_seeds_a_week_of_calls_callbacks_voice_messages_and_ratings(db, tmp_path) -> None:
    now = utcnow()
    summary = load_demo(db, now=now, tickets=600, recordings_dir=tmp_path)
    assert summary is not None
    print(f"\ndemo load (600 tickets) on {db.engine.dialect.name}: {summary.seconds:.1f} s, "
          f"{summary.calls} calls, {summary.missed_calls} missed, {summary.ratings} ratings")
    week_ago = now - timedelta(days=7)
    with db.read() as s:
        def n(*where):  # type: ignore[no-untyped-def]
            return s.scalar(select(func.count()).select_from(Call).where(*where)) or 0

        assert n(Call.outcome == CallOutcome.ANSWERED, Call.started_at >= week_ago) >= 50
        assert n(Call.outcome == CallOutcome.MISSED_TIMEOUT) >= 5
        assert n(Call.outcome == CallOutcome.VOICEMAIL) >= 1
        assert n(Call.started_at > now) == 0
        # every missed call of the week was called back; some within 10 minutes, some late
        items = s.scalars(select(MissedCall)).all()
        assert items and all(not i.is_open for i in items)
        answered_at = {a.missed_call_id: a.resident_answered_at for a in s.scalars(
            select(CallbackAttempt).where(CallbackAttempt.resident_answered.is_(True)))}
        on_time = [i for i in items if answered_at.get(i.id) and answered_at[i.id] - i.first_call_at <= timedelta(minutes=10)]
        late = [i for i in items if answered_at.get(i.id) and answered_at[i.id] - i.first_call_at > timedelta(minutes=10)]
        assert on_time and late
        voice = s.scalars(select(Recording).where(Recording.kind == RecordingKind.VOICEMAIL)).all()
        assert voice and all((tmp_path / r.path).exists() for r in voice)
        assert all(r.reviewed_at is not None and r.reviewed_by_id is not None for r in voice)  # listened to (T3)
        # phone tickets of the week carry their call; ratings exist, some low ones for the manager
        assert s.scalar(select(func.count()).select_from(CallTicket)) or 0 >= 10
        ratings = s.scalars(select(TicketRating)).all()
        assert len(ratings) >= 10 and any(r.value <= 2 for r in ratings)
        assert all(s.get(Ticket, r.ticket_id).rating == r.value for r in ratings[:20])  # type: ignore[union-attr]
