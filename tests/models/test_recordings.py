import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from models.errors import ValidationFailed
from models.recording import Recording, RecordingAccess, RecordingAction, recording_relpath
from models.services import calls
from tests import factories as f

NOW = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)


def _recorded_call(session, org, recordings_dir, *, age_days: float, phone="+79160007777"):
    started = NOW - timedelta(days=age_days)
    call = f.make_inbound_call(session, org, phone, at=started)
    path = recording_relpath(org.id, call.id, started)
    file = recordings_dir / path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_bytes(b"RIFF....WAVEfmt ")
    rec = calls.attach_recording(session, org_id=org.id, call_id=call.id, path=path, size_bytes=16, at=started)
    return call, rec, file


def test_recordings_are_stored_by_organization_year_and_month() -> None:
    assert recording_relpath(7, 1234, datetime(2026, 3, 2, 9, tzinfo=UTC)) == "7/2026/03/1234.wav"


def test_retention_deletes_old_files_per_organization_except_under_legal_hold(session, world, tmp_path, caplog) -> None:
    org_a, org_b = session.merge(world.org_a), session.merge(world.org_b)
    calls.update_telephony_settings(session, org=org_b, by=None, recording_retention_days=30)
    old_a, old_a_rec, old_a_file = _recorded_call(session, org_a, tmp_path, age_days=91)
    young_a, young_a_rec, young_a_file = _recorded_call(session, org_a, tmp_path, age_days=89)
    held_a, held_a_rec, held_a_file = _recorded_call(session, org_a, tmp_path, age_days=400)
    old_b, old_b_rec, old_b_file = _recorded_call(session, org_b, tmp_path, age_days=31)
    young_b, young_b_rec, young_b_file = _recorded_call(session, org_b, tmp_path, age_days=29)
    gone_b, gone_b_rec, gone_b_file = _recorded_call(session, org_b, tmp_path, age_days=45)
    gone_b_file.unlink()  # someone removed it by hand
    # the held call is linked to two tickets; one of them is under legal hold
    cat = session.merge(world.cats_a["other"])
    t1, t2 = f.make_ticket(session, org_a, cat, now=NOW), f.make_ticket(session, org_a, cat, now=NOW)
    calls.link_call_to_ticket(session, org_id=org_a.id, call_id=held_a.id, ticket_id=t1.id, by=None)
    calls.link_call_to_ticket(session, org_id=org_a.id, call_id=held_a.id, ticket_id=t2.id, by=None)
    with pytest.raises(ValidationFailed):
        calls.set_legal_hold(session, org_id=org_a.id, ticket_id=t2.id, reason=" ", by=None)
    calls.set_legal_hold(session, org_id=org_a.id, ticket_id=t2.id, reason="запрос ГЖИ № 12", by=None)
    # a ticket that is linked but not held does not protect anything
    calls.link_call_to_ticket(session, org_id=org_a.id, call_id=old_a.id, ticket_id=t1.id, by=None)

    with caplog.at_level(logging.INFO, logger="models.services.calls"):
        purged = calls.purge_expired_recordings(session, now=NOW, recordings_dir=tmp_path)

    assert sorted(r.id for r in purged) == sorted([old_a_rec.id, old_b_rec.id, gone_b_rec.id])
    assert not old_a_file.exists() and not old_b_file.exists()
    assert young_a_file.exists() and young_b_file.exists() and held_a_file.exists()
    assert (old_a_rec.deleted_at, old_a_rec.deleted_reason) == (NOW, "срок хранения 90 дн.")
    assert old_b_rec.deleted_reason == "срок хранения 30 дн."
    assert gone_b_rec.deleted_reason == "срок хранения 30 дн.; файл уже отсутствовал"
    assert young_a_rec.deleted_at is None and held_a_rec.deleted_at is None
    assert session.scalar(select(Recording).where(Recording.id == old_a_rec.id)) is not None  # the row stays
    assert sum("recording purged" in r.getMessage() for r in caplog.records) == 3
    # the next run has nothing to do; releasing the hold lets the old recording go
    assert calls.purge_expired_recordings(session, now=NOW, recordings_dir=tmp_path) == []
    calls.release_legal_hold(session, org_id=org_a.id, ticket_id=t2.id, by=None)
    assert [r.id for r in calls.purge_expired_recordings(session, now=NOW, recordings_dir=tmp_path)] == [held_a_rec.id]
    assert not held_a_file.exists()


def test_every_play_and_download_is_logged_and_scoped(session, world, tmp_path) -> None:
    org = session.merge(world.org_a)
    disp = session.merge(world.dispatcher_a)
    _call, rec, file = _recorded_call(session, org, tmp_path, age_days=1)
    served = calls.log_recording_access(session, org_ids=[org.id], recording_id=rec.id, action="play", by=disp,
                                        ip="10.0.0.5", now=NOW)
    assert served.id == rec.id and calls.recording_file(tmp_path, served) == file.resolve()
    calls.log_recording_access(session, org_ids=[org.id], recording_id=rec.id, action=RecordingAction.DOWNLOAD,
                               by=disp, now=NOW + timedelta(minutes=1))
    log = session.scalars(select(RecordingAccess).order_by(RecordingAccess.id)).all()
    assert [(a.user_id, a.action, a.at, a.ip) for a in log] == [
        (disp.id, RecordingAction.PLAY, NOW, "10.0.0.5"),
        (disp.id, RecordingAction.DOWNLOAD, NOW + timedelta(minutes=1), None),
    ]
    with pytest.raises(calls.RecordingNotFound):
        calls.log_recording_access(session, org_ids=[world.org_b.id], recording_id=rec.id, action="play", by=disp)
    with pytest.raises(ValidationFailed):
        calls.log_recording_access(session, org_ids=[org.id], recording_id=rec.id, action="delete", by=disp)
    calls.update_telephony_settings(session, org=org, by=None, recording_retention_days=1)
    calls.purge_expired_recordings(session, now=NOW + timedelta(days=2), recordings_dir=tmp_path)
    with pytest.raises(calls.RecordingDeleted):
        calls.log_recording_access(session, org_ids=[org.id], recording_id=rec.id, action="play", by=disp)
    assert len(session.scalars(select(RecordingAccess.id)).all()) == 2
