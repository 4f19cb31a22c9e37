"""Background jobs (issue 12 item B4, decision 0030): the housing import in committed batches with a
checkpoint, resumed after a killed worker without duplicating rows, leases that fence a runner that
lost its job, retries from the checkpoint, the check that writes nothing, exports, recordings purges."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from bench.housing_file import write_housing_csv
from models.db import Database
from models.housing import Account, House, Premise, Resident, ResidentPhone
from models.job import Job, JobKind, JobStatus
from models.organization import Organization, Role
from models.outbox import DomainEvent
from models.services import housing_import as hi
from models.services import jobs as job_service
from models.services.jobs import LeaseLost, checkpoint_job, claim_job, enqueue_job
from openads.jobs import housing, runner
from openads.jobs.uploads import store_copy
from tests import factories as f
from tests.conftest import World


def _enqueue(db: Database, org_id: int, kind: JobKind, params: dict[str, Any], by: Any = None,
             total: int | None = None) -> int:
    with db.write() as s:
        return enqueue_job(s, org_id=org_id, kind=kind, params=params, by=by, total=total).id


def _job(db: Database, job_id: int) -> Job:
    with db.read() as s:
        job = s.get(Job, job_id)
        assert job is not None
        s.expunge(job)  # before the read session's rollback expires it
        return job


def _counts(db: Database, org_id: int) -> dict[str, int]:
    with db.read() as s:
        def n(model: Any) -> int:
            return s.scalar(select(func.count()).select_from(model).where(model.organization_id == org_id)) or 0

        return {"houses": n(House), "premises": n(Premise), "accounts": n(Account), "residents": n(Resident),
                "phones": n(ResidentPhone)}


def _run_all(db: Database, settings: Any, **kw: Any) -> int:
    return runner.run_pending(db, var_dir=settings.var_dir, recordings_dir=settings.recordings_dir, **kw)


@pytest.fixture
def import_file(tmp_path: Path, settings: Any) -> Iterator[tuple[str, int]]:
    rows = 450
    path = write_housing_csv(tmp_path / "fond.csv", rows)
    yield store_copy(Path(settings.var_dir), path), rows


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    # 45 rows a batch, whatever the machine's speed: ten batches for the 450-row file.
    monkeypatch.setattr(housing, "FIRST_BATCH", 45)
    monkeypatch.setattr(housing.BatchSizer, "took", lambda self, seconds, rows: None)
    monkeypatch.setattr(housing, "MIN_BATCH", 45)


def _import_params(name: str) -> dict[str, Any]:
    return {"file": name, "filename": "fond.csv"}


def _write_transactions(db: Database) -> list[str]:
    """Statements of the write engine that begin a write (COMMIT count on SQLite, UPDATE jobs ...)."""
    seen: list[str] = []
    event.listen(db.engine, "commit", lambda conn: seen.append("commit"))
    return seen


def test_import_job_commits_each_batch_with_its_checkpoint_and_deletes_the_upload(
        db: Database, world: World, settings: Any, import_file: tuple[str, int], small_batches: None) -> None:
    name, rows = import_file
    job_id = _enqueue(db, world.org_a.id, JobKind.HOUSING_IMPORT, _import_params(name), by=world.manager_a)
    before = _counts(db, world.org_a.id)
    checkpoints: list[tuple[int, int]] = []
    real = job_service.checkpoint_job

    def spy(session: Session, claim: Any, **kw: Any) -> None:
        real(session, claim, **kw)
        checkpoints.append((kw["done"], kw["state"]["last_row"]))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("openads.jobs.context.checkpoint_job", spy)
        assert _run_all(db, settings) == 1
    job = _job(db, job_id)
    assert job.status == JobStatus.DONE and job.error == ""
    assert checkpoints == [(45 * k, 45 * k + 1) for k in range(1, 11)]  # ten batches, file rows 2..451
    assert (job.progress_done, job.progress_total) == (rows, rows)
    assert job.result["rows_ok"] == rows and job.result["rows_failed"] == 0 and job.result["applied"] is True
    assert (job.result["houses_created"], job.result["residents_created"], job.result["phones_added"]) == (3, rows, rows)
    after = _counts(db, world.org_a.id)
    assert {k: after[k] - before[k] for k in after} == {"houses": 3, "premises": rows, "accounts": rows,
                                                        "residents": rows, "phones": rows}
    assert not (Path(settings.var_dir) / name).exists()  # residents' data is not kept once imported
    with db.read() as s:
        names = [n for n, p in s.execute(select(DomainEvent.name, DomainEvent.payload)
                                         .where(DomainEvent.name.like("job.%")).order_by(DomainEvent.id))
                 if p["job_id"] == job_id]
    assert names[0] == "job.progress" and names[-1] == "job.finished" and names.count("job.finished") == 1
    assert len(names) <= 2 + 3  # queued, finished, and progress at most twice a second (not ten batches)


def test_batches_stay_bounded_on_sqlite_however_fast_the_writes_are() -> None:
    sizer = housing.BatchSizer(housing.FIRST_BATCH, housing.TARGET_WRITE_SECONDS["sqlite"], housing.MIN_BATCH,
                               housing.MAX_BATCH["sqlite"])
    for _ in range(40):
        sizer.took(0.001, sizer.size())  # a very fast disk
    assert sizer.size() == 1000
    sizer.took(0.3, 1000)  # one slow write: the next batch shrinks at once, to what takes the target
    assert sizer.size() == int(1000 * housing.TARGET_WRITE_SECONDS["sqlite"] / 0.3)


def test_each_batch_inserts_with_one_executemany_per_table_and_logs_its_lock_hold(
        db: Database, world: World, settings: Any, import_file: tuple[str, int], small_batches: None,
        caplog: pytest.LogCaptureFixture) -> None:
    name, rows = import_file
    _enqueue(db, world.org_a.id, JobKind.HOUSING_IMPORT, _import_params(name))
    inserts: list[tuple[str, bool]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO") and "jobs" not in statement.split()[2]:
            inserts.append((statement.split()[2], executemany))

    event.listen(db.engine, "before_cursor_execute", seen)
    caplog.set_level("DEBUG", logger="openads.jobs.housing")
    try:
        assert _run_all(db, settings) == 1
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    held = [line for line in caplog.messages if "lock held" in line]
    assert len(held) == rows // 45  # one line per batch, with the time it held the lock
    residents = [many for table, many in inserts if table == "residents"]
    phones = [many for table, many in inserts if table == "resident_phones"]
    assert residents == phones == [True] * (rows // 45)  # one executemany per batch, not a row at a time


class Killed(BaseException):
    """Stands for SIGKILL: nothing in the runner catches it."""


def test_a_worker_killed_mid_import_is_resumed_after_its_lease_without_duplicating_rows(
        db: Database, world: World, settings: Any, import_file: tuple[str, int], small_batches: None,
        tmp_path: Path) -> None:
    name, rows = import_file
    job_id = _enqueue(db, world.org_a.id, JobKind.HOUSING_IMPORT, _import_params(name))
    before = _counts(db, world.org_a.id)
    writes = {"n": 0}
    real_write = hi.Importer.write

    def dying_write(self: hi.Importer, session: Session, batch: hi.Batch) -> None:
        writes["n"] += 1
        real_write(self, session, batch)
        if writes["n"] == 4:
            raise Killed()  # after the fourth batch's INSERTs, before its commit

    now = datetime.now(UTC)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hi.Importer, "write", dying_write)
        with pytest.raises(Killed):
            _run_all(db, settings, clock=lambda: now)
    job = _job(db, job_id)
    assert job.status == JobStatus.RUNNING and job.lease_until is not None and job.attempts == 1
    assert job.progress_done == 3 * 45 and job.state["last_row"] == 3 * 45 + 1  # the 4th batch rolled back
    assert _counts(db, world.org_a.id)["residents"] == before["residents"] + 3 * 45

    assert _run_all(db, settings, clock=lambda: now + timedelta(seconds=5)) == 0  # the lease still holds
    later = now + runner.LEASE + timedelta(seconds=1)
    assert _run_all(db, settings, clock=lambda: later) == 1
    job = _job(db, job_id)
    assert job.status == JobStatus.DONE and job.attempts == 2
    assert job.result["rows_total"] == rows and job.result["residents_created"] == rows
    after = _counts(db, world.org_a.id)
    assert {k: after[k] - before[k] for k in after} == {"houses": 3, "premises": rows, "accounts": rows,
                                                        "residents": rows, "phones": rows}
    # the same report as a clean run of the file gives
    clean = write_housing_csv(tmp_path / "again.csv", rows)
    with db.write() as s:
        org_b = s.get(Organization, world.org_b.id)
        assert org_b is not None
        report = hi.apply_import(s, org_b, hi.parse_housing_file(clean, clean.name))
    assert {k: v for k, v in job.result.items() if k in hi.COUNTERS} == {k: getattr(report, k) for k in hi.COUNTERS}


def test_no_garbage_collection_runs_while_a_batch_holds_the_write_lock(
        db: Database, world: World, settings: Any, import_file: tuple[str, int], small_batches: None) -> None:
    """A full collection of the importer's caches took 100 ms and more inside the lock (the bench's
    slowest batches, issue 12 item B4): the collector is off while a batch writes, on again after."""
    import gc

    name, rows = import_file
    _enqueue(db, world.org_a.id, JobKind.HOUSING_IMPORT, _import_params(name))
    collector: list[bool] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO RESIDENTS"):
            collector.append(gc.isenabled())

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        assert _run_all(db, settings) == 1
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert collector == [False] * (rows // 45)
    assert gc.isenabled()


def test_a_runner_that_lost_its_lease_cannot_write_its_batch(db: Database, world: World) -> None:
    job_id = _enqueue(db, world.org_a.id, JobKind.HOUSING_IMPORT, {"file": "imports/x.csv"})
    now = datetime.now(UTC)
    with db.write() as s:
        first = claim_job(s, token="first", lease=timedelta(seconds=30), now=now)
    assert first is not None and first.job_id == job_id
    with db.write() as s:
        assert claim_job(s, token="second", lease=timedelta(seconds=30), now=now + timedelta(seconds=10)) is None
    with db.write() as s:
        second = claim_job(s, token="second", lease=timedelta(seconds=30), now=now + timedelta(seconds=31))
    assert second is not None and second.attempts == 2
    houses = _counts(db, world.org_a.id)["houses"]
    with pytest.raises(LeaseLost), db.write() as s:
        f.make_house(s, world.org_a, address="г. Тула, ул. Чужая, д. 1")
        checkpoint_job(s, first, done=10, state={"last_row": 11}, lease=timedelta(seconds=30), now=now)
    assert _counts(db, world.org_a.id)["houses"] == houses  # the batch went with the failed checkpoint
    assert _job(db, job_id).lease_token == "second"


def test_a_job_cut_short_again_and_again_fails_instead_of_looping(db: Database, world: World) -> None:
    job_id = _enqueue(db, world.org_a.id, JobKind.HOUSING_IMPORT, {"file": "imports/x.csv"})
    now = datetime.now(UTC)
    for attempt in range(job_service.MAX_ATTEMPTS):
        with db.write() as s:
            assert claim_job(s, token=f"t{attempt}", lease=timedelta(seconds=1), now=now) is not None
        now += timedelta(seconds=2)
    with db.write() as s:
        assert claim_job(s, token="last", lease=timedelta(seconds=1), now=now) is None
    job = _job(db, job_id)
    assert job.status == JobStatus.FAILED and "прерывалось 8 раз" in job.error


def test_a_stopped_runner_gives_the_job_back_and_the_next_goes_on_at_once(
        db: Database, world: World, settings: Any, import_file: tuple[str, int], small_batches: None) -> None:
    name, rows = import_file
    job_id = _enqueue(db, world.org_a.id, JobKind.HOUSING_IMPORT, _import_params(name))
    stop = threading.Event()
    real_write = hi.Importer.write
    writes = {"n": 0}

    def write_then_stop(self: hi.Importer, session: Session, batch: hi.Batch) -> None:
        real_write(self, session, batch)
        writes["n"] += 1
        if writes["n"] == 2:
            stop.set()  # SIGTERM during the second batch: it still commits

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hi.Importer, "write", write_then_stop)
        _run_all(db, settings, stop=stop)
    job = _job(db, job_id)
    assert job.status == JobStatus.RUNNING and job.progress_done == 90
    assert _run_all(db, settings) == 1  # no need to wait for the lease
    job = _job(db, job_id)
    assert job.status == JobStatus.DONE and job.result["residents_created"] == rows


def test_a_batch_that_lost_a_race_is_planned_again_from_the_checkpoint(
        db: Database, world: World, settings: Any, import_file: tuple[str, int], small_batches: None) -> None:
    name, rows = import_file
    job_id = _enqueue(db, world.org_a.id, JobKind.HOUSING_IMPORT, _import_params(name))
    real_plan = hi.Importer.plan
    plans = {"n": 0}

    def plan_then_someone_adds_the_house(self: hi.Importer, session: Session, chunk: list[hi.RowData]) -> hi.Batch:
        batch = real_plan(self, session, chunk)
        plans["n"] += 1
        if plans["n"] == 5:  # the file's 2nd house starts in batch 5: a dispatcher adds it meanwhile
            with db.write() as s:
                f.make_house(s, world.org_a, address="г. Тула, ул. Импортная, д. 2")
        return batch

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hi.Importer, "plan", plan_then_someone_adds_the_house)
        mp.setattr(runner, "RETRY_FIRST", 0.01)
        assert _run_all(db, settings) == 1
    job = _job(db, job_id)
    assert job.status == JobStatus.DONE and job.attempts == 1
    assert (job.result["houses_created"], job.result["residents_created"]) == (2, rows)  # the house was found
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(House).where(
            House.address == "г. Тула, ул. Импортная, д. 2")) == 1


def test_check_job_writes_nothing_and_keeps_every_row_problem(db: Database, world: World, settings: Any,
                                                              tmp_path: Path) -> None:
    path = tmp_path / "fond.csv"
    path.write_text("Адрес;Квартира;Этаж;ФИО;Телефоны\n"
                    "г. Тула, ул. Новая, д. 1;1;2;Ким Анна;+79160000001\n"
                    "нет;2;второй;Ли Борис;12\n", encoding="utf-8")
    name = store_copy(Path(settings.var_dir), path)
    job_id = _enqueue(db, world.org_a.id, JobKind.HOUSING_CHECK, {"file": name, "filename": "fond.csv"})
    before = _counts(db, world.org_a.id)
    assert _run_all(db, settings) == 1
    job = _job(db, job_id)
    assert job.status == JobStatus.DONE and _counts(db, world.org_a.id) == before
    assert job.result["houses_created"] == 1 and job.result["rows_failed"] == 1
    assert job.result["errors"] == [[3, "адрес «нет» не распознан: нужны улица (или населённый пункт) и номер дома; "
                                        "этаж должен быть целым числом, получено «второй»; "
                                        "некорректный номер телефона «12»"]]
    assert (Path(settings.var_dir) / name).exists()  # kept for the import that may follow


def test_a_broken_workbook_fails_its_job_with_a_russian_message(db: Database, world: World, settings: Any,
                                                                 tmp_path: Path) -> None:
    bad = tmp_path / "fond.xlsx"
    bad.write_bytes(b"PK\x03\x04 not really a workbook")
    job_id = _enqueue(db, world.org_a.id, JobKind.HOUSING_IMPORT,
                      {"file": store_copy(Path(settings.var_dir), bad), "filename": "fond.xlsx"})
    assert _run_all(db, settings) == 1
    job = _job(db, job_id)
    assert job.status == JobStatus.FAILED
    assert job.error == "файл повреждён или не является книгой Excel (.xlsx); сохраните его заново как .xlsx или CSV"
    missing = _enqueue(db, world.org_a.id, JobKind.HOUSING_IMPORT, {"file": "imports/gone.csv", "filename": "a.csv"})
    assert _run_all(db, settings) == 1
    assert "загрузите его заново" in _job(db, missing).error
    escape = _enqueue(db, world.org_a.id, JobKind.HOUSING_IMPORT, {"file": "../../etc/passwd", "filename": "a.csv"})
    assert _run_all(db, settings) == 1
    assert _job(db, escape).error == "файл задания не найден"


def test_export_job_writes_a_private_file_with_what_its_requester_sees(db: Database, world: World,
                                                                       settings: Any) -> None:
    from tests.sheets import sheet_rows

    with db.write() as s:
        mine = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"], description="Моя протечка")
        f.make_ticket(s, world.org_a, world.cats_a["lighting"], description="Чужой свет")
        f.make_ticket(s, world.org_b, world.cats_b["lighting"], description="Секрет Беты")
        from models.services.tickets import assign_ticket
        assign_ticket(s, org=s.get(Organization, world.org_a.id), ticket_id=mine.id,  # type: ignore[arg-type]
                      executor_id=world.executor_a.id, by=None)
    job_id = _enqueue(db, world.org_a.id, JobKind.JOURNAL_EXPORT,
                      {"args": [], "org_ids": [world.org_a.id, world.org_b.id], "filename": "journal.xlsx"},
                      by=world.executor_a)
    assert _run_all(db, settings) == 1
    job = _job(db, job_id)
    assert job.status == JobStatus.DONE and job.result["rows"] == 1 and job.progress_total == 1
    path = Path(settings.var_dir) / job.result["file"]
    assert path.stat().st_mode & 0o777 == 0o640
    descriptions = [r for row in sheet_rows(path.read_bytes())[1:] for r in row]
    assert "Моя протечка" in descriptions and "Чужой свет" not in descriptions and "Секрет Беты" not in descriptions


def test_recordings_purge_is_queued_daily_where_due_and_runs_in_batches(db: Database, world: World,
                                                                         settings: Any,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from models.recording import Recording, recording_relpath
    from models.services import calls
    from openads.jobs import recordings

    monkeypatch.setattr(recordings, "BATCH", 2)
    now = datetime.now(UTC)
    rec_dir = Path(settings.recordings_dir)
    files = []
    with db.write() as s:
        for age in (100, 120, 130, 10):
            started = now - timedelta(days=age)
            call = f.make_inbound_call(s, s.get(Organization, world.org_a.id), "+79160007777", at=started)
            rel = recording_relpath(world.org_a.id, call.id, started)
            (rec_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (rec_dir / rel).write_bytes(b"RIFF")
            files.append(rec_dir / rel)
            calls.attach_recording(s, org_id=world.org_a.id, call_id=call.id, path=rel, size_bytes=4, at=started)
    assert recordings.schedule_purges(db, now) == 1  # org_b has nothing to purge: no job for it
    assert recordings.schedule_purges(db, now + timedelta(hours=1)) == 0  # once a day
    assert _run_all(db, settings) == 1
    with db.read() as s:
        job = s.scalars(select(Job).where(Job.kind == JobKind.RECORDINGS_PURGE)).one()
        assert job.organization_id == world.org_a.id and job.status == JobStatus.DONE
        assert job.result == {"purged": 3, "retention_days": 90}
        assert s.scalar(select(func.count()).select_from(Recording).where(Recording.deleted_at.is_not(None))) == 3
    assert [p.exists() for p in files] == [False, False, False, True]
    assert recordings.schedule_purges(db, now + timedelta(days=2)) == 0  # nothing left to purge


def test_old_job_files_are_deleted_but_not_an_upload_an_import_still_reads(db: Database, world: World,
                                                                           settings: Any, tmp_path: Path) -> None:
    var = Path(settings.var_dir)
    src = write_housing_csv(tmp_path / "a.csv", 3)
    old_upload, busy_upload = store_copy(var, src), store_copy(var, src)
    now = datetime.now(UTC)
    with db.write() as s:
        for name in (old_upload, busy_upload):
            job = enqueue_job(s, org_id=world.org_a.id, kind=JobKind.HOUSING_CHECK, params={"file": name}, by=None,
                              now=now - timedelta(days=10))
            job.status, job.finished_at = JobStatus.DONE, now - timedelta(days=9)
        enqueue_job(s, org_id=world.org_a.id, kind=JobKind.HOUSING_IMPORT, params={"file": busy_upload}, by=None)
    assert runner.prune_job_files(db, var, now) == 1
    assert not (var / old_upload).exists() and (var / busy_upload).exists()


def test_jobs_are_seen_by_their_organization_only_and_by_role(db: Database, world: World) -> None:
    mine = _enqueue(db, world.org_a.id, JobKind.JOURNAL_EXPORT, {}, by=world.dispatcher_a)
    managers = _enqueue(db, world.org_a.id, JobKind.HOUSING_IMPORT, {}, by=world.manager_a)
    other_org = _enqueue(db, world.org_b.id, JobKind.JOURNAL_EXPORT, {}, by=world.dispatcher_b)
    with db.read() as s:
        def ids(user: Any) -> list[int]:
            return [j.id for j in job_service.visible_jobs(s, s.merge(user, load=False))]

        assert ids(world.manager_a) == [managers, mine]  # a manager: every job of the organization
        assert ids(world.dispatcher_a) == [mine]  # others: their own
        assert ids(world.dispatcher_b) == [other_org]
        with db.write() as w:
            nobody = f.make_user(w, [], Role.ADMIN, login="nobody")
        assert ids(nobody) == []
        with pytest.raises(job_service.NotFound):
            job_service.visible_job(s, s.merge(world.manager_a, load=False), other_org)
