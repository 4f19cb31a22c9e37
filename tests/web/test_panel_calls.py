"""Calls journal, recordings (play and download, every access logged, Range), the missed-call queue's
actions (callback, close with a reason), "create resident" from a card, the compliance page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from models.base import utcnow
from models.call import Call, CallKind, CallOutcome
from models.housing import Resident
from models.missed_call import CallbackAttempt, CloseReason, MissedCall, MissedCallStatus
from models.outbox import DomainEvent
from models.recording import RecordingAccess, RecordingAction, recording_relpath
from models.services import calls as calls_svc
from tests import factories as f

AUDIO = bytes(range(256)) * 40  # 10 240 bytes standing in for a WAV file


def make_recording(s: Any, org: Any, recordings_dir: Path, caller: str = "+79161234567", *,
                   at: datetime | None = None) -> tuple[Any, Any]:
    """An answered, ended inbound call with its conversation recording on disk."""
    at = at or utcnow() - timedelta(minutes=5)
    call = f.make_inbound_call(s, org, caller, at=at)
    calls_svc.end_call(s, org_id=org.id, call_id=call.id, outcome=CallOutcome.ABANDONED, at=at + timedelta(seconds=30))
    rel = recording_relpath(org.id, call.id, at)
    path = recordings_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(AUDIO)
    rec = calls_svc.attach_recording(s, org_id=org.id, call_id=call.id, path=rel, duration_seconds=30,
                                     size_bytes=len(AUDIO))
    return call, rec


def access_rows(db: Any) -> list[tuple[int, int, str]]:
    with db.read() as s:
        return [(a.recording_id, a.user_id, a.action.value) for a in s.scalars(select(RecordingAccess)
                                                                              .order_by(RecordingAccess.id))]


def test_recording_play_streams_with_range_and_logs_user_and_time(app, db, world, login_as, settings) -> None:
    with db.write() as s:
        _, rec = make_recording(s, s.merge(world.org_a), settings.recordings_dir)
    client = login_as(world.dispatcher_a)
    before = utcnow()
    resp = client.get(f"/recordings/{rec.id}", headers={"Range": "bytes=100-199"}, buffered=True)
    assert resp.status_code == 206
    assert resp.headers["Content-Range"] == f"bytes 100-199/{len(AUDIO)}"
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert resp.headers["Content-Type"] == "audio/wav"
    assert resp.data == AUDIO[100:200]
    full = client.get(f"/recordings/{rec.id}", buffered=True)
    assert full.status_code == 200 and full.data == AUDIO
    assert "attachment" not in full.headers.get("Content-Disposition", "")
    assert access_rows(db) == [(rec.id, world.dispatcher_a.id, "play")] * 2
    with db.read() as s:
        at = s.scalars(select(RecordingAccess.at)).all()
    assert all(before <= a <= utcnow() for a in at)


def test_recording_download_is_an_attachment_and_logged(app, db, world, login_as, settings) -> None:
    with db.write() as s:
        call, rec = make_recording(s, s.merge(world.org_a), settings.recordings_dir)
    client = login_as(world.manager_a)
    resp = client.get(f"/recordings/{rec.id}/download", buffered=True)
    assert resp.status_code == 200 and resp.data == AUDIO
    assert resp.headers["Content-Disposition"] == f"attachment; filename=zapis-{call.id}-conversation.wav"
    assert access_rows(db) == [(rec.id, world.manager_a.id, RecordingAction.DOWNLOAD.value)]


def test_another_organizations_recording_is_not_found_and_not_logged(app, db, world, login_as, settings) -> None:
    with db.write() as s:
        _, rec_b = make_recording(s, s.merge(world.org_b), settings.recordings_dir, "+79031112233")
    client = login_as(world.dispatcher_a)
    assert client.get(f"/recordings/{rec_b.id}").status_code == 404
    assert client.get(f"/recordings/{rec_b.id}/download").status_code == 404
    assert client.get("/recordings/999999").status_code == 404
    assert access_rows(db) == []


def test_missing_recording_file_is_404_and_the_log_is_rolled_back(app, db, world, login_as, settings) -> None:
    with db.write() as s:
        _, rec = make_recording(s, s.merge(world.org_a), settings.recordings_dir)
    (settings.recordings_dir / rec.path).unlink()
    assert login_as(world.dispatcher_a).get(f"/recordings/{rec.id}").status_code == 404
    assert access_rows(db) == []


def test_calls_journal_filters_and_keyset_pages(db, world, login_as, settings) -> None:
    t0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    with db.write() as s:
        org_a = s.merge(world.org_a)
        ids = []
        for i in range(5):
            call = f.make_inbound_call(s, org_a, f"+7916000000{i}", at=t0 + timedelta(minutes=i))
            if i % 2 == 0:
                calls_svc.mark_call_answered(s, org_id=org_a.id, call_id=call.id, by=s.merge(world.dispatcher_a),
                                             at=call.started_at + timedelta(seconds=10))
            calls_svc.end_call(s, org_id=org_a.id, call_id=call.id, at=call.started_at + timedelta(minutes=1))
            ids.append(call.id)
        f.make_inbound_call(s, s.merge(world.org_b), "+79031112233", at=t0)
    client = login_as(world.dispatcher_a)

    def listed(url: str) -> tuple[list[int], str | None]:
        resp = client.get(url)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        html = resp.get_data(as_text=True)
        more = re.search(r'href="([^"]+)" id="calls-more"', html)
        return [int(x) for x in re.findall(r'id="call-row-(\d+)"', html)], more.group(1).replace("&amp;", "&") if more else None

    assert listed("/calls")[0] == ids[::-1]  # newest first, only org_a
    assert listed("/calls?outcome=answered")[0] == [ids[4], ids[2], ids[0]]
    assert listed("/calls?outcome=missed")[0] == [ids[3], ids[1]]
    assert listed("/calls?phone=8 916 000-00-03")[0] == [ids[3]]
    assert listed("/calls?direction=outbound")[0] == []
    assert listed(f"/calls?organization_id={world.org_b.id}")[0] == []
    assert listed("/calls?from=2026-03-10&to=2026-03-10")[0] == ids[::-1]
    assert listed("/calls?from=2026-03-11")[0] == []
    page1, more = listed("/calls?limit=2&outcome=answered")
    assert page1 == [ids[4], ids[2]] and more and "outcome=answered" in more
    page2, more2 = listed(more)
    assert page2 == [ids[0]] and more2 is None
    assert client.get("/calls?direction=sideways").status_code == 400


def test_call_card_shows_recording_player_download_and_linked_tickets(db, world, login_as, settings) -> None:
    with db.write() as s:
        org_a = s.merge(world.org_a)
        call, rec = make_recording(s, org_a, settings.recordings_dir)
        ticket = f.make_ticket(s, org_a, s.merge(world.cats_a["other"]))
        calls_svc.link_call_to_ticket(s, org_id=org_a.id, call_id=call.id, ticket_id=ticket.id, by=None)
    client = login_as(world.dispatcher_a)
    html = client.get(f"/calls/{call.id}").get_data(as_text=True)
    assert f'<audio controls preload="none" src="/recordings/{rec.id}">' in html
    assert f'href="/recordings/{rec.id}/download"' in html
    assert ticket.number in html
    assert access_rows(db) == []  # showing the player is not an access
    listing = client.get("/calls").get_data(as_text=True)
    assert f'src="/recordings/{rec.id}"' in listing and ticket.number in listing


def test_manual_close_needs_a_reason(db, world, login_as) -> None:
    with db.write() as s:
        item = f.make_missed_call(s, s.merge(world.org_a), "+79165550000")
    client = login_as(world.dispatcher_a)
    with db.read() as s:
        events_before = s.scalar(select(func.count()).select_from(DomainEvent))
    resp = client.post(f"/missed-calls/{item.id}/close", data={"reason": "   "})
    assert resp.status_code == 400
    assert "укажите причину закрытия" in resp.get_data(as_text=True)
    with db.read() as s:
        assert s.get(MissedCall, item.id).status == MissedCallStatus.OPEN
        assert s.scalar(select(func.count()).select_from(DomainEvent)) == events_before
    resp = client.post(f"/missed-calls/{item.id}/close", data={"reason": "житель пришёл в офис"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/"
    with db.read() as s:
        closed = s.get(MissedCall, item.id)
        assert (closed.status, closed.close_reason, closed.close_note, closed.closed_by_id) == (
            MissedCallStatus.CLOSED, CloseReason.MANUAL, "житель пришёл в офис", world.dispatcher_a.id)
    again = client.post(f"/missed-calls/{item.id}/close", data={"reason": "ещё раз"})
    assert again.status_code == 409 and "уже закрыт" in again.get_data(as_text=True)


def test_callback_button_records_the_request_for_the_ari_app(db, world, login_as) -> None:
    with db.write() as s:
        item = f.make_missed_call(s, s.merge(world.org_a), "+79165550000")
        calls_svc.assign_dispatcher_phone(s, org=s.merge(world.org_a), endpoint="PJSIP/disp1",
                                          user_id=world.dispatcher_a.id, by=None)
    client = login_as(world.dispatcher_a)
    resp = client.post(f"/missed-calls/{item.id}/callback", data={"next": "/missed-calls"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/missed-calls"
    with db.read() as s:
        attempt = s.scalars(select(CallbackAttempt)).one()
        call = s.get(Call, attempt.call_id)
        assert (attempt.missed_call_id, attempt.dispatcher_id, attempt.outcome) == (item.id, world.dispatcher_a.id, None)
        assert (call.kind, call.phone, call.initiated_by_id, call.dispatcher_endpoint) == (
            CallKind.CALLBACK, "+79165550000", world.dispatcher_a.id, "PJSIP/disp1")
        ringing = s.scalars(select(DomainEvent).where(DomainEvent.name == "call.ringing")
                            .order_by(DomainEvent.id.desc())).first()
        assert ringing.payload["call_id"] == call.id and ringing.payload["missed_call_id"] == item.id
    second = client.post(f"/missed-calls/{item.id}/callback")
    assert second.status_code == 409 and "уже идёт обратный вызов" in second.get_data(as_text=True)


def test_queue_shows_voice_message_player(db, world, login_as, settings) -> None:
    with db.write() as s:
        org_a = s.merge(world.org_a)
        call = f.make_inbound_call(s, org_a, "+79165550000")
        rec = calls_svc.attach_voice_message(s, org_id=org_a.id, call_id=call.id, path=f"{org_a.id}/vm/{call.id}.wav")
    html = login_as(world.dispatcher_a).get("/missed-calls").get_data(as_text=True)
    assert "Голосовое сообщение" in html
    assert f'src="/recordings/{rec.id}"' in html


def test_create_resident_from_unknown_caller_then_ticket_form_is_prefilled(db, world, login_as) -> None:
    with db.write() as s:
        call = f.make_inbound_call(s, s.merge(world.org_a), "+79990001122")
    client = login_as(world.dispatcher_a)
    assert "Новый житель по звонку" in client.get(f"/calls/{call.id}/resident").get_data(as_text=True)
    bad = client.post(f"/calls/{call.id}/resident", data={"full_name": "Новиков Н. Н.", "house_id": world.house_a.id,
                                                          "premise": "999"})
    assert bad.status_code == 400 and "нет помещения «999»" in bad.get_data(as_text=True)
    resp = client.post(f"/calls/{call.id}/resident", data={
        "full_name": "Новиков Никита Николаевич", "house_id": world.house_a.id, "premise": "30", "note": "инвалид"})
    assert resp.status_code == 302
    with db.read() as s:
        resident = s.scalars(select(Resident).where(Resident.full_name == "Новиков Никита Николаевич")).one()
        assert [p.phone for p in resident.phones] == ["+79990001122"]
        assert (resident.organization_id, resident.premise_id, resident.note) == (
            world.org_a.id, world.premise_a.id, "инвалид")
        resident_id = resident.id
    location = resp.headers["Location"]
    assert location.startswith("/tickets/new?") and f"call_id={call.id}" in location
    assert f"resident_id={resident_id}" in location and f"premise_id={world.premise_a.id}" in location


def test_compliance_page_for_managers_only(db, world, login_as) -> None:
    day = datetime(2026, 3, 10, 7, 0, tzinfo=UTC)
    with db.write() as s:
        org_a = s.merge(world.org_a)
        item = f.make_missed_call(s, org_a, "+79165550000", at=day, waited_seconds=30)
        from models.services.callbacks import record_callback_result, start_callback
        attempt = start_callback(s, org_id=org_a.id, missed_call_id=item.id, by=s.merge(world.dispatcher_a),
                                 now=day + timedelta(minutes=2))
        record_callback_result(s, org_id=org_a.id, attempt_id=attempt.id, resident_answered=True,
                               at=day + timedelta(minutes=3))
        f.make_missed_call(s, org_a, "+79165551111", at=day + timedelta(hours=1), waited_seconds=30)
    assert login_as(world.dispatcher_a).get("/calls/compliance").status_code == 403
    html = login_as(world.manager_a).get("/calls/compliance?from=2026-03-10&to=2026-03-10").get_data(as_text=True)
    row = html.split('data-day="2026-03-10"')[1].split("</tr>")[0]
    cells = dict(re.findall(r'<td class="num-cell" data-col="(\w+)">(\d+)</td>', row))
    assert cells == {"calls": "2", "answered": "0", "answered_in_5min": "0", "missed": "2", "callback_in_time": "1",
                     "recall_in_time": "0", "called_back_late": "0", "not_called_back": "1", "attempts": "1",
                     "voice_messages": "0", "voice_messages_reviewed_late": "0"}
    assert "50 %" in row.split('class="share callback-share"')[1] and "нарушение" in row
