from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from models.errors import ValidationFailed
from models.recording import RecordingAccess, RecordingAction, recording_relpath
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
    rec.deleted_at, rec.deleted_reason = NOW, "срок хранения 90 дн."  # the purge: tests/models/test_recordings_purge.py
    session.flush()
    with pytest.raises(calls.RecordingDeleted):
        calls.log_recording_access(session, org_ids=[org.id], recording_id=rec.id, action="play", by=disp)
    assert len(session.scalars(select(RecordingAccess.id)).all()) == 2
