"""The demo's past week of telephony (issue 13 item 8): answered calls linked to the phone tickets
they produced, missed calls called back on time and late, voice messages, and ratings of the
tickets done — so the calls journal, the compliance page and the ratings page show what they are for.

Everything goes through the services ARI and the panel use (`models.services.calls`, `callbacks`,
`ratings`), with past times, so the rows are the ones real calls leave. Voice messages get a short
generated WAV (a tone) when a recordings directory is given, so their players play.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from models.call import Call, CallOutcome
from models.db import Database
from models.organization import Organization, User
from models.rating import RatingSource
from models.recording import RecordingKind, recording_relpath
from models.services import callbacks as callback_services
from models.services import calls as call_services
from models.services import ratings as rating_services
from models.services import voice_messages as voice_services
from models.ticket import Channel, Ticket
from models.ticket import TicketStatus as S

DAYS = 7
CALLS_PER_DAY = 14  # per organization, besides the calls behind the week's phone tickets
SETTLED_BEFORE = timedelta(hours=1)  # nothing of the seeded week is still open when the demo starts
CALLBACK_LIMIT = timedelta(minutes=10)
TRANSCRIPTS = {5: "пять, всё отлично", 4: "четыре", 3: "три, долго ждали", 2: "два", 1: "один, так и не сделали"}


@dataclass
class CallWeek:
    answered: int = 0
    missed: int = 0
    called_back_on_time: int = 0
    called_back_late: int = 0
    voice_messages: int = 0
    ratings: int = 0


def _tone_wav(seconds: float = 1.5, rate: int = 8000) -> bytes:
    """A quiet 440 Hz tone, 8 kHz 16-bit mono: what the demo's voice messages play."""
    n = int(seconds * rate)
    frames = b"".join(struct.pack("<h", int(3000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(n))
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(frames), b"WAVE", b"fmt ", 16, 1, 1, rate,
                         rate * 2, 2, 16, b"data", len(frames))
    return header + frames


def _moment(rng: random.Random, day: datetime) -> datetime:
    # daytime-weighted: most calls 08:00–22:00 local (the day starts at local midnight in UTC)
    hour = rng.choices(range(24), weights=[1, 1, 1, 1, 1, 1, 2, 4, 6, 7, 7, 6, 6, 6, 6, 6, 6, 7, 8, 8, 7, 5, 3, 2])[0]
    return day + timedelta(hours=hour, minutes=rng.randrange(60), seconds=rng.randrange(60))


def seed_call_week(db: Database, rng: random.Random, org_ids: Sequence[int], dispatchers: dict[int, list[int]],
                   callers: dict[int, list[str]], now: datetime, recordings_dir: Path | None = None) -> CallWeek:
    week = CallWeek()
    start = now - timedelta(days=DAYS)
    wav = _tone_wav() if recordings_dir is not None else b""
    serial = 0

    def channel() -> str:
        nonlocal serial
        serial += 1
        return f"demo-week-{serial}"

    with db.write() as s:
        for org_id in org_ids:
            org = s.get(Organization, org_id)
            assert org is not None
            did = org.hotline_numbers.split(",")[0]
            staff = [u for u in (s.get(User, i) for i in dispatchers[org_id]) if u is not None]
            phones = callers[org_id]

            # 1. the calls behind the week's phone tickets: answered, linked, so the card shows them
            tickets = s.scalars(select(Ticket).where(
                Ticket.organization_id == org_id, Ticket.channel == Channel.PHONE,
                Ticket.registered_at >= start, Ticket.registered_at < now - SETTLED_BEFORE,
                Ticket.reporter_phone.is_not(None)).order_by(Ticket.registered_at)).all()
            for t in tickets:
                at = t.registered_at - timedelta(seconds=rng.randrange(90, 300))
                call = call_services.register_inbound_call(s, did=did, caller=t.reporter_phone, channel_id=channel(),
                                                           started_at=at, now=at)
                by = s.get(User, t.registered_by_id) if t.registered_by_id else rng.choice(staff)
                answered = at + timedelta(seconds=rng.randrange(3, 40))
                call_services.mark_call_answered(s, org_id=org_id, call_id=call.id, by=by, at=answered)
                call_services.end_call(s, org_id=org_id, call_id=call.id,
                                       at=t.registered_at + timedelta(seconds=rng.randrange(10, 120)))
                call_services.link_call_to_ticket(s, org_id=org_id, call_id=call.id, ticket_id=t.id, by=by)
                week.answered += 1

            # 2. other calls of the week: questions answered at once, and missed ones
            for day_index in range(DAYS):
                day = (start + timedelta(days=day_index)).replace(hour=0, minute=0, second=0, microsecond=0)
                for _ in range(CALLS_PER_DAY):
                    at = _moment(rng, day)
                    if not start <= at < now - SETTLED_BEFORE:
                        continue
                    caller = rng.choice(phones)
                    kind = rng.choices(("answered", "missed", "voice"), weights=(70, 22, 8))[0]
                    call = call_services.register_inbound_call(s, did=did, caller=caller, channel_id=channel(),
                                                               started_at=at, now=at)
                    if kind == "answered":
                        call_services.mark_call_answered(s, org_id=org_id, call_id=call.id, by=rng.choice(staff),
                                                         at=at + timedelta(seconds=rng.randrange(3, 45)))
                        call_services.end_call(s, org_id=org_id, call_id=call.id,
                                               at=at + timedelta(seconds=rng.randrange(60, 240)))
                        week.answered += 1
                        continue
                    wait = timedelta(seconds=60)
                    if kind == "voice":
                        path = None
                        if recordings_dir is not None:
                            rel = recording_relpath(org_id, call.id, at, RecordingKind.VOICEMAIL)
                            target = recordings_dir / rel
                            target.parent.mkdir(parents=True, exist_ok=True)
                            target.write_bytes(wav)
                            path = rel
                        received = at + wait + timedelta(seconds=20)
                        rec = call_services.attach_voice_message(
                            s, org_id=org_id, call_id=call.id, path=path or f"{org_id}/demo/{call.id}.voicemail.wav",
                            duration_seconds=rng.randrange(8, 40), size_bytes=len(wav) or None, at=received)
                        # listened to by a dispatcher, mostly within the 10 minutes (ПП 416), now and then late
                        listened = received + timedelta(minutes=rng.randrange(12, 40) if rng.random() < 0.2
                                                        else rng.randrange(1, 9))
                        voice_services.mark_voice_message_reviewed(s, org_id=org_id, recording_id=rec.id,
                                                                   by=rng.choice(staff), now=min(listened, now))
                        week.voice_messages += 1
                    else:
                        call_services.mark_call_missed(s, org_id=org_id, call_id=call.id, at=at + wait)
                    call_services.end_call(s, org_id=org_id, call_id=call.id, at=at + wait + timedelta(seconds=45))
                    week.missed += 1
                    _call_back(s, rng, org_id, call, staff, at, week)

            # 3. ratings of the week's done tickets: what the robot heard, some low for the manager
            done = s.scalars(select(Ticket).where(
                Ticket.organization_id == org_id, Ticket.status.in_((S.DONE, S.CLOSED)),
                Ticket.resolved_at >= start, Ticket.resolved_at < now - SETTLED_BEFORE,
                Ticket.rating.is_(None))).all()
            for t in done:
                if rng.random() > 0.6:
                    continue
                value = rng.choices((5, 4, 3, 2, 1), weights=(55, 22, 10, 7, 6))[0]
                if week.ratings % 6 == 2:  # every sixth a low one, whatever the draw: the manager has some to see
                    value = rng.choice((1, 2))
                assert t.resolved_at is not None
                rated = min(t.resolved_at + timedelta(hours=rng.randrange(1, 20)), now - SETTLED_BEFORE)
                rating_services.record_rating(
                    s, ticket=t, value=value, source=rng.choice((RatingSource.SPEECH, RatingSource.DTMF)),
                    transcript=TRANSCRIPTS[value], now=rated)
                week.ratings += 1
    return week


def _call_back(s: Any, rng: random.Random, org_id: int, call: Call, staff: list[User], at: datetime,
               week: CallWeek) -> None:
    """A dispatcher calls back: mostly within the 10 minutes, sometimes late, now and then twice."""
    item = call_services.get_missed_call(s, org_ids=[org_id], missed_call_id=_item_id(s, call))
    if not item.is_open:
        return
    late = rng.random() < 0.25
    delay = timedelta(minutes=rng.randrange(12, 45)) if late else timedelta(minutes=rng.randrange(2, 9))
    when = at + delay
    by = rng.choice(staff)
    if rng.random() < 0.2:  # the first try: no answer
        attempt = callback_services.start_callback(s, org_id=org_id, missed_call_id=item.id, by=by, now=when)
        callback_services.record_callback_result(s, org_id=org_id, attempt_id=attempt.id, resident_answered=False,
                                                 outcome=CallOutcome.NO_ANSWER, at=when + timedelta(seconds=30))
        when += timedelta(minutes=rng.randrange(3, 15))
        late = late or when - at > CALLBACK_LIMIT
    attempt = callback_services.start_callback(s, org_id=org_id, missed_call_id=item.id, by=by, now=when)
    answered = when + timedelta(seconds=rng.randrange(5, 25))
    callback_services.record_callback_result(s, org_id=org_id, attempt_id=attempt.id, resident_answered=True,
                                             at=answered)
    call_services.end_call(s, org_id=org_id, call_id=attempt.call_id, at=answered + timedelta(seconds=90))
    if late:
        week.called_back_late += 1
    else:
        week.called_back_on_time += 1


def _item_id(s: Any, call: Call) -> int:
    from models.missed_call import MissedCallCall

    link = s.get(MissedCallCall, call.id)
    assert link is not None, "an unanswered inbound call is in the missed-call queue"
    return int(link.missed_call_id)


__all__ = ["CallWeek", "seed_call_week"]
