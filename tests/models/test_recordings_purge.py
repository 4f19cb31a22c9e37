"""Recordings governance (issue 14 item 4, decision 0035): the retention purge in batches with its
purge log, legal hold, a purge killed midway, the retention minimum, and the logs' reads."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from models.db import Database
from models.errors import ValidationFailed
from models.organization import Organization
from models.recording import (
    PurgeRule,
    Recording,
    RecordingAccess,
    RecordingAction,
    RecordingPurge,
    recording_relpath,
)
from models.services import calls
from models.services import recordings as rec_svc
from tests import factories as f
from tests.conftest import World

NOW = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)


class Killed(Exception):
    """The worker dies between deleting the files and recording it."""


def _recorded(db: Database, org_id: int, recordings_dir: Path, *, age_days: float, body: bytes = b"RIFF....WAVEfmt ",
              ) -> tuple[int, int, Path]:
    started = NOW - timedelta(days=age_days)
    with db.write() as s:
        call = f.make_inbound_call(s, s.get(Organization, org_id), "+79160007777", at=started)
        path = recording_relpath(org_id, call.id, started)
        file = recordings_dir / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(body)
        rec = calls.attach_recording(s, org_id=org_id, call_id=call.id, path=path, size_bytes=len(body), at=started)
        return call.id, rec.id, file


def _log(db: Database) -> list[tuple[int, PurgeRule, int | None, int | None, str | None, bool]]:
    with db.read() as s:
        return [(p.recording_id, p.rule, p.retention_days, p.size_bytes, p.note, p.purged_at is not None)
                for p in s.scalars(select(RecordingPurge).order_by(RecordingPurge.recording_id))]


def _deleted(db: Database, rec_id: int) -> tuple[datetime | None, str | None]:
    with db.read() as s:
        rec = s.get(Recording, rec_id)
        assert rec is not None
        return rec.deleted_at, rec.deleted_reason


def _hold(db: Database, world: World, call_id: int) -> int:
    with db.write() as s:
        org = s.get(Organization, world.org_a.id)
        ticket = f.make_ticket(s, org, s.merge(world.cats_a["other"]), now=NOW)
        calls.link_call_to_ticket(s, org_id=org.id, call_id=call_id, ticket_id=ticket.id, by=None)
        calls.set_legal_hold(s, org_id=org.id, ticket_id=ticket.id, reason="запрос ГЖИ № 12", by=None)
        return int(ticket.id)


def test_purge_deletes_expired_files_per_organization_logs_each_and_keeps_held_ones(
    db: Database, world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    with db.write() as s:
        calls.update_telephony_settings(s, org=s.get(Organization, world.org_b.id), by=None,
                                        recording_retention_days=120)
    _c, old_a, old_a_file = _recorded(db, world.org_a.id, tmp_path, age_days=91, body=b"x" * 1000)
    _c, young_a, young_a_file = _recorded(db, world.org_a.id, tmp_path, age_days=89)
    held_call, held_a, held_a_file = _recorded(db, world.org_a.id, tmp_path, age_days=400)
    _c, old_b, old_b_file = _recorded(db, world.org_b.id, tmp_path, age_days=121)
    _c, young_b, young_b_file = _recorded(db, world.org_b.id, tmp_path, age_days=100)
    _c, gone_b, gone_b_file = _recorded(db, world.org_b.id, tmp_path, age_days=150)
    gone_b_file.unlink()  # someone removed it by hand
    ticket_id = _hold(db, world, held_call)

    with caplog.at_level(logging.INFO, logger="models.services.recordings"):
        assert rec_svc.purge_expired_recordings(db, now=NOW, recordings_dir=tmp_path, batch=2) == 3

    assert not old_a_file.exists() and not old_b_file.exists()
    assert young_a_file.exists() and young_b_file.exists() and held_a_file.exists()
    assert _deleted(db, old_a) == (NOW, "срок хранения 90 дн.")
    assert _deleted(db, old_b) == (NOW, "срок хранения 120 дн.")
    assert _deleted(db, gone_b) == (NOW, "срок хранения 120 дн.; файл уже отсутствовал")
    assert _deleted(db, young_a) == (None, None) and _deleted(db, held_a) == (None, None)
    assert _log(db) == sorted([
        (old_a, PurgeRule.RETENTION, 90, 1000, None, True),  # the size read from the file
        (old_b, PurgeRule.RETENTION, 120, 16, None, True),
        (gone_b, PurgeRule.RETENTION, 120, 16, "файл уже отсутствовал", True),
    ])
    assert sum("recording purged" in r.getMessage() for r in caplog.records) == 3
    # the next run has nothing to do; releasing the hold lets the old recording go
    assert rec_svc.purge_expired_recordings(db, now=NOW, recordings_dir=tmp_path) == 0
    with db.write() as s:
        calls.release_legal_hold(s, org_id=world.org_a.id, ticket_id=ticket_id, by=None)
    assert rec_svc.purge_expired_recordings(db, now=NOW, recordings_dir=tmp_path, org_ids=[world.org_a.id]) == 1
    assert not held_a_file.exists() and _deleted(db, held_a)[0] == NOW


def test_a_purge_killed_after_deleting_the_files_is_completed_by_the_next_run_with_one_log_row_each(
    db: Database, world: World, tmp_path: Path,
) -> None:
    made = [_recorded(db, world.org_a.id, tmp_path, age_days=100 + i) for i in range(3)]

    def die() -> None:
        raise Killed()

    with pytest.raises(Killed):
        rec_svc.purge_batch(db, org_id=world.org_a.id, now=NOW, recordings_dir=tmp_path, fail_after_delete=die)

    # the files are gone, nothing is marked purged yet: the intents are pending
    assert [file.exists() for _c, _r, file in made] == [False, False, False]
    assert [_deleted(db, rec_id) for _c, rec_id, _f in made] == [(None, None)] * 3
    assert [row[-1] for row in _log(db)] == [False, False, False]
    with db.read() as s:  # pending intents are not shown in the purge log
        assert rec_svc.purge_log(s, org_ids=[world.org_a.id], since=None, until=None) == []

    later = NOW + timedelta(hours=1)
    assert rec_svc.purge_expired_recordings(db, now=later, recordings_dir=tmp_path) == 3
    assert _log(db) == [(rec_id, PurgeRule.RETENTION, 90, 16, None, True) for _c, rec_id, _f in made]
    assert [_deleted(db, rec_id) for _c, rec_id, _f in made] == [(later, "срок хранения 90 дн.")] * 3
    assert rec_svc.purge_expired_recordings(db, now=later, recordings_dir=tmp_path) == 0
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(RecordingPurge)) == 3


def test_an_intent_whose_recording_was_put_under_legal_hold_before_the_delete_is_dropped_and_the_file_kept(
    db: Database, world: World, tmp_path: Path,
) -> None:
    call_id, rec_id, file = _recorded(db, world.org_a.id, tmp_path, age_days=100)
    with db.write() as s:  # a run killed right after writing its intent
        _days, recs = rec_svc.expired_recordings(s, org_id=world.org_a.id, now=NOW)
        rec_svc.plan_purges(s, recs, rule=PurgeRule.RETENTION, recordings_dir=tmp_path, now=NOW, days=90)
    _hold(db, world, call_id)

    assert rec_svc.purge_expired_recordings(db, now=NOW, recordings_dir=tmp_path) == 0
    assert file.exists() and _deleted(db, rec_id) == (None, None) and _log(db) == []


def test_a_file_that_cannot_be_deleted_keeps_its_recording_live_and_its_intent_pending(
    db: Database, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _c, rec_id, file = _recorded(db, world.org_a.id, tmp_path, age_days=100)
    original = Path.unlink

    def refuse(self: Path, missing_ok: bool = False) -> None:
        if self == file.resolve():
            raise PermissionError(13, "Permission denied")
        original(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", refuse)
    assert rec_svc.purge_expired_recordings(db, now=NOW, recordings_dir=tmp_path) == 0
    assert file.exists() and _deleted(db, rec_id) == (None, None) and [r[-1] for r in _log(db)] == [False]
    monkeypatch.setattr(Path, "unlink", original)
    assert rec_svc.purge_expired_recordings(db, now=NOW, recordings_dir=tmp_path) == 1
    assert not file.exists() and [r[-1] for r in _log(db)] == [True]


def test_retention_below_the_minimum_is_refused_in_russian_and_an_old_stored_value_counts_as_the_minimum(
    db: Database, world: World, tmp_path: Path,
) -> None:
    with db.write() as s:
        org = s.get(Organization, world.org_a.id)
        with pytest.raises(ValidationFailed) as err:
            calls.update_telephony_settings(s, org=org, by=None, recording_retention_days=30)
        assert "не менее 3 месяцев" in str(err.value.details) + err.value.message
        calls.update_telephony_settings(s, org=org, by=None, recording_retention_days=90)
    with db.write() as s:  # a value stored before the minimum existed
        s.execute(text("UPDATE telephony_settings SET recording_retention_days = 10 WHERE organization_id = :o"),
                  {"o": world.org_a.id})
    _c, young, young_file = _recorded(db, world.org_a.id, tmp_path, age_days=60)
    assert rec_svc.purge_expired_recordings(db, now=NOW, recordings_dir=tmp_path) == 0
    assert young_file.exists()


def test_the_logs_read_one_organization_within_the_dates(db: Database, world: World, tmp_path: Path) -> None:
    _c, rec_a, _fa = _recorded(db, world.org_a.id, tmp_path, age_days=100)
    _c, rec_b, _fb = _recorded(db, world.org_b.id, tmp_path, age_days=100)
    with db.write() as s:
        for org_id, rec_id, user, at in ((world.org_a.id, rec_a, world.dispatcher_a, NOW - timedelta(days=5)),
                                         (world.org_a.id, rec_a, world.manager_a, NOW - timedelta(days=1)),
                                         (world.org_b.id, rec_b, world.dispatcher_b, NOW - timedelta(days=1))):
            s.add(RecordingAccess(organization_id=org_id, recording_id=rec_id, user_id=user.id,
                                  action=RecordingAction.PLAY, at=at, ip="10.0.0.5"))
    rec_svc.purge_expired_recordings(db, now=NOW, recordings_dir=tmp_path)
    with db.read() as s:
        org_a = [world.org_a.id]
        rows = rec_svc.access_log(s, org_ids=org_a, since=NOW - timedelta(days=2), until=NOW)
        assert [(r.recording_id, r.user, r.action) for r in rows] == [
            (rec_a, "Орлова Ольга Олеговна", RecordingAction.PLAY)]
        assert len(rec_svc.access_log(s, org_ids=org_a, since=None, until=None)) == 2
        assert [p.recording_id for p in rec_svc.purge_log(s, org_ids=org_a, since=NOW, until=NOW + timedelta(days=1))] \
            == [rec_a]
        assert rec_svc.purge_log(s, org_ids=org_a, since=NOW + timedelta(days=1), until=None) == []


def test_a_recording_deleted_by_hand_is_logged_with_who_and_why_and_a_held_one_is_refused(
    db: Database, world: World, tmp_path: Path,
) -> None:
    _c, rec_id, file = _recorded(db, world.org_a.id, tmp_path, age_days=3)
    held_call, held_id, held_file = _recorded(db, world.org_a.id, tmp_path, age_days=3)
    _hold(db, world, held_call)
    with pytest.raises(ValidationFailed):
        rec_svc.purge_recording(db, org_ids=[world.org_a.id], recording_id=rec_id, reason=" ", recordings_dir=tmp_path)
    with pytest.raises(calls.RecordingNotFound):  # another organization's recording
        rec_svc.purge_recording(db, org_ids=[world.org_b.id], recording_id=rec_id, reason="запрос жителя",
                                recordings_dir=tmp_path)
    with pytest.raises(rec_svc.RecordingHeld):
        rec_svc.purge_recording(db, org_ids=[world.org_a.id], recording_id=held_id, reason="запрос жителя",
                                recordings_dir=tmp_path)
    assert file.exists() and held_file.exists() and _log(db) == []

    rec_svc.purge_recording(db, org_ids=[world.org_a.id], recording_id=rec_id, reason="заявление жителя № 5 (152-ФЗ)",
                            recordings_dir=tmp_path, by=world.manager_a, now=NOW)
    assert not file.exists()
    assert _deleted(db, rec_id) == (NOW, "удалена вручную; заявление жителя № 5 (152-ФЗ)")
    with db.read() as s:
        [row] = rec_svc.purge_log(s, org_ids=[world.org_a.id], since=None, until=None)
        assert (row.rule, row.by, row.note, row.retention_days) == (
            PurgeRule.MANUAL, "Орлова Ольга Олеговна", "заявление жителя № 5 (152-ФЗ)", None)
        assert rec_svc.purge_cells(row, {world.org_a.id: "Альфа"})[6] == "вручную"
    with pytest.raises(calls.RecordingDeleted):
        rec_svc.purge_recording(db, org_ids=[world.org_a.id], recording_id=rec_id, reason="ещё раз",
                                recordings_dir=tmp_path)
