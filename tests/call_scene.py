"""A scripted day of calls of organization A (Europe/Moscow, UTC+3) on 10 March 2026, for the
call-handling evidence tests (ПП 416 T1–T3; issue 14 item 3). Times below are UTC.

- 07:00 a call answered after 3 minutes (in time); 07:10 a call answered after 7 minutes (late);
- 08:00 a missed call called back, the resident answering after 6 minutes (in time);
- 09:00 a missed call called back, the resident answering after 14 minutes (late by 4:00);
- 10:00 a missed call never called back;
- 11:00 a call leaving a voice message received 11:01, reviewed 4 minutes later (11:05), the
  resident called back at 11:09 (in time);
- 12:00 a call leaving a voice message received 12:01, reviewed 25 minutes later (12:26, late),
  the resident called back at 12:09:30 (in time).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from models.call import CallOutcome
from models.missed_call import MissedCallCall
from models.services import calls as calls_svc
from models.services.callbacks import record_callback_result, start_callback
from models.services.voice_messages import mark_voice_message_reviewed
from tests import factories as f

DAY = "2026-03-10"
NOW = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)  # the day is over: every deadline has passed


def u(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 3, 10, hour, minute, second, tzinfo=UTC)


@dataclass
class Scene:
    answered_3: int  # call ids
    answered_7: int
    m_cb6: int  # missed-call item ids
    m_cb14: int
    m_never: int
    v_4: int
    v_25: int
    cb6_call: int  # callback call ids
    cb14_call: int
    rec_4: int  # voice message recording ids
    rec_25: int
    rec_4_call: int
    rec_25_call: int


def build_call_day(s: Session, world: Any) -> Scene:
    org = s.merge(world.org_a)
    disp = s.merge(world.dispatcher_a)

    def answered(phone: str, at: datetime, after: timedelta) -> int:
        call = f.make_inbound_call(s, org, phone, at=at)
        calls_svc.mark_call_answered(s, org_id=org.id, call_id=call.id, by=disp, at=at + after)
        calls_svc.end_call(s, org_id=org.id, call_id=call.id, at=at + after + timedelta(minutes=2))
        return int(call.id)

    def callback(item_id: int, answered_at: datetime) -> int:
        attempt = start_callback(s, org_id=org.id, missed_call_id=item_id, by=disp,
                                 now=answered_at - timedelta(seconds=20))
        record_callback_result(s, org_id=org.id, attempt_id=attempt.id, resident_answered=True, at=answered_at)
        calls_svc.end_call(s, org_id=org.id, call_id=attempt.call_id, at=answered_at + timedelta(minutes=1))
        return int(attempt.call_id)

    def voice(phone: str, at: datetime, received: datetime) -> tuple[int, int, int]:
        call = f.make_inbound_call(s, org, phone, at=at)
        rec = calls_svc.attach_voice_message(s, org_id=org.id, call_id=call.id, path=f"{org.id}/vm/{call.id}.wav",
                                             at=received)
        calls_svc.end_call(s, org_id=org.id, call_id=call.id, outcome=CallOutcome.VOICEMAIL,
                           at=received + timedelta(seconds=5))
        item = s.get(MissedCallCall, call.id)
        return int(item.missed_call_id), int(rec.id), int(call.id)

    a3 = answered("+79160000001", u(7, 0), timedelta(minutes=3))
    a7 = answered("+79160000002", u(7, 10), timedelta(minutes=7))
    m1 = f.make_missed_call(s, org, "+79160000011", at=u(8, 0), waited_seconds=30)
    cb6 = callback(m1.id, u(8, 6))
    m2 = f.make_missed_call(s, org, "+79160000012", at=u(9, 0), waited_seconds=30)
    cb14 = callback(m2.id, u(9, 14))
    m3 = f.make_missed_call(s, org, "+79160000013", at=u(10, 0), waited_seconds=30)
    v4, rec4, rec4_call = voice("+79160000014", u(11, 0), u(11, 1))
    mark_voice_message_reviewed(s, org_id=org.id, recording_id=rec4, by=disp, now=u(11, 5))
    callback(v4, u(11, 9))
    v25, rec25, rec25_call = voice("+79160000015", u(12, 0), u(12, 1))
    mark_voice_message_reviewed(s, org_id=org.id, recording_id=rec25, by=disp, now=u(12, 26))
    callback(v25, u(12, 9, 30))
    s.flush()
    return Scene(a3, a7, m1.id, m2.id, m3.id, v4, v25, cb6, cb14, rec4, rec25, rec4_call, rec25_call)
