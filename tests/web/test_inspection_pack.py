"""The inspection pack (issue 14 item 2, decision 0038): a scripted day — an emergency localised
and done on time, an emergency localised late, a blockage left overdue with the staff's reason,
notices to the municipality and to residents, ratings and rating calls without a rating, a
recording played and purged — built into the ZIP by the job runner, then opened and checked field
by field: the journal's xlsx read back, the PDFs' text extracted back (Cyrillic), the manifest's
hashes, the chain head against `openads audit verify`. The inspector requests and downloads their
organization's pack and gets 404 for another's; the command line writes the same pack."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from pypdf import PdfReader
from sqlalchemy import select, update

from models import chain
from models.job import Job, JobKind, JobStatus
from models.organization import Organization
from models.outbox import MessageStatus, OutboxAttempt, OutboxMessage
from models.rating import RatingAttempt, RatingAttemptOutcome, RatingCall, RatingCallStatus, RatingSource
from models.recording import RecordingAction
from models.services import calls as calls_svc
from models.services import inspection
from models.services import recordings as rec_svc
from models.services.notifications import NotificationEvent, notify_resident
from models.services.ratings import record_rating
from models.services.tickets import mark_localized, record_municipality_notified, transition_ticket
from models.ticket import TicketStatus
from openads.jobs import runner
from tests import factories as f
from tests.web.helpers import check_error
from tests.web.test_panel_calls import make_recording

MSK = ZoneInfo("Europe/Moscow")
TODAY = datetime.now(MSK).date()
DAY = TODAY - timedelta(days=10)
NOW = datetime.now(UTC)


def at(hh: int, mm: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, time(hh, mm), MSK).astimezone(UTC)


def run_jobs(db: Any, settings: Any) -> int:
    return runner.run_pending(db, var_dir=Path(settings.var_dir), recordings_dir=Path(settings.recordings_dir),
                              stop=threading.Event())


@pytest.fixture
def day(db, world, settings) -> dict[str, Any]:
    """The scripted day in organization A (and one ticket of B, one of A outside the period)."""
    out: dict[str, Any] = {}
    with db.write() as s:
        org = s.get(Organization, world.org_a.id)
        cats = world.cats_a
        # 1. An emergency at 07:00, localised at 07:20, done at 09:00, rated 5 by the dispatcher.
        t1 = f.make_ticket(s, org, cats["emergency_cold_water"], by=world.dispatcher_a, now=at(7),
                           house_id=world.house_a.id, premise_id=world.premise_a.id, resident_id=world.resident_a.id,
                           reporter_name="Леонидов Леонид Леонидович", reporter_phone="+79161234567",
                           description="Прорыв трубы ХВС в подвале, заливает", executor_id=world.executor_a.id)
        mark_localized(s, org=org, ticket_id=t1.id, by=world.executor_a, at=at(7, 20), now=at(7, 20))
        transition_ticket(s, org=org, ticket_id=t1.id, to=TicketStatus.DONE, by=world.executor_a, now=at(9))
        record_rating(s, ticket=s.merge(t1), value=5, source=RatingSource.DISPATCHER, by=world.dispatcher_a,
                      now=at(10))
        # 2. An emergency at 11:00 localised at 11:50 (30 minutes allowed), done with a reason.
        t2 = f.make_ticket(s, org, cats["emergency_hot_water"], by=world.dispatcher_a, now=at(11),
                           house_id=world.house_a.id, description="Течь ГВС на лестнице",
                           executor_id=world.executor_a.id)
        mark_localized(s, org=org, ticket_id=t2.id, by=world.executor_a, at=at(11, 50), now=at(11, 50))
        transition_ticket(s, org=org, ticket_id=t2.id, to=TicketStatus.DONE, by=world.executor_a, now=at(14),
                          reason="нет доступа в подвал до 11:45, ключ у председателя")
        # 3. A blockage at 12:00 (2 hours), taken into work with a reason and never done: overdue.
        t3 = f.make_ticket(s, org, cats["sewer_blockage"], by=world.dispatcher_a, now=at(12),
                           house_id=world.house_a.id, description="Засор стояка", executor_id=world.executor_a.id)
        transition_ticket(s, org=org, ticket_id=t3.id, to=TicketStatus.IN_PROGRESS, by=world.executor_a,
                          now=at(12, 30), reason="ждём трос, будет завтра")
        # Outside the period, and another organization's ticket.
        f.make_ticket(s, org, cats["roof_leak"], by=world.dispatcher_a, now=at(12, day=DAY - timedelta(days=3)),
                      house_id=world.house_a.id, description="Старая протечка")
        f.make_ticket(s, s.get(Organization, world.org_b.id), world.cats_b["roof_leak"], by=world.dispatcher_b,
                      now=at(12), house_id=world.house_b.id, description="Протечка у соседей Бета")
        # A rating call that ended without a rating, with its attempt.
        call = RatingCall(organization_id=org.id, ticket_id=t2.id, phone="+79161234567", planned_at=at(15),
                          attempts=1, status=RatingCallStatus.CANCELLED, cancel_reason="житель отказался от звонков",
                          created_at=at(14), finished_at=at(15, 5))
        s.add(call)
        s.flush()
        s.add(RatingAttempt(organization_id=org.id, rating_call_id=call.id, ticket_id=t2.id, number=1,
                            started_at=at(15), ended_at=at(15, 1), outcome=RatingAttemptOutcome.NO_ANSWER))
        # The resident told (what the event consumer does), the SMS delivered (what the outbox worker records).
        notify_resident(s, ticket=s.merge(t1), event=NotificationEvent.REGISTERED, now=at(7))
        s.execute(update(OutboxMessage).where(OutboxMessage.ticket_id == t1.id,
                                              OutboxMessage.purpose.startswith("resident_"))
                  .values(status=MessageStatus.SENT, sent_at=at(7, 1), provider_message_id="smsc-77",
                          delivery_status="delivered", delivery_checked_at=at(7, 5)))
        # The municipality's first notice sent at 07:02 (what the outbox worker records).
        notice = s.scalar(select(OutboxMessage).where(OutboxMessage.ticket_id == t1.id,
                                                      OutboxMessage.purpose == "municipality_emergency"))
        notice.status, notice.sent_at, notice.attempts = MessageStatus.SENT, at(7, 2), 1
        s.add(OutboxAttempt(message_id=notice.id, at=at(7, 2), ok=True, detail="250 2.0.0 принято"))
        record_municipality_notified(s, ticket_id=t1.id, at=at(7, 2), recipient=notice.recipient)
        _call, rec = make_recording(s, org, Path(settings.recordings_dir), at=at(7))
        calls_svc.log_recording_access(s, org_ids=[org.id], recording_id=rec.id, action=RecordingAction.PLAY,
                                       by=world.manager_a, ip="10.1.2.3", now=at(16))
        out.update(t1=t1.number, t2=t2.number, t3=t3.number, rec=rec.id)
    rec_svc.purge_recording(db, org_ids=[world.org_a.id], recording_id=out["rec"], reason="ошибочная запись",
                            recordings_dir=Path(settings.recordings_dir), by=world.manager_a, now=NOW)
    return out


def fetch(client: Any, url: str, **kw: Any) -> tuple[int, bytes, str]:
    """(status, body, mimetype) of a GET, the response closed (a file response holds its file open)."""
    resp = client.get(url, **kw)
    try:
        return resp.status_code, resp.data, resp.mimetype
    finally:
        resp.close()


def open_pack(data: bytes) -> zipfile.ZipFile:
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert zf.testzip() is None
    return zf


def pdf_text(zf: zipfile.ZipFile, name: str) -> str:
    reader = PdfReader(io.BytesIO(zf.read(name)))
    return "\n".join(page.extract_text() or "" for page in reader.pages)


def xlsx_rows(zf: zipfile.ZipFile, name: str) -> list[list[Any]]:
    wb = openpyxl.load_workbook(io.BytesIO(zf.read(name)), read_only=True)
    return [list(r) for r in wb.worksheets[0].iter_rows(values_only=True)]


def build(db: Any, settings: Any, org_id: int, tmp: Path) -> tuple[bytes, dict[str, Any]]:
    path = tmp / "pack.zip"
    result = inspection.build_pack(db, org_id=org_id, day_from=DAY, day_to=TODAY, now=NOW, path=path)
    return path.read_bytes(), result


def test_the_pack_holds_every_register_field_by_field(db, world, day, settings, tmp_path) -> None:
    data, result = build(db, settings, world.org_a.id, tmp_path)
    zf = open_pack(data)
    names = zf.namelist()
    assert names[-2:] == ["manifest.txt", "manifest.json"] and inspection.COVER in names
    assert result["tickets"] == 3

    # The journal's xlsx: the existing export's columns, the period's three tickets only.
    rows = xlsx_rows(zf, "01-журнал-заявок.xlsx")
    header, body = rows[0], rows[1:]
    assert header[:4] == ["№ заявки", "Дата и время регистрации", "Канал", "Адрес"]
    by_number = {r[0]: dict(zip(header, r, strict=True)) for r in body}
    assert set(by_number) == {day["t1"], day["t2"], day["t3"]}
    first = by_number[day["t1"]]
    assert first["Адрес"] == "г. Москва, ул. Ленина, д. 10" and first["Категория"] == "Авария ХВС (течь, прорыв)"
    assert first["Заявитель"] == "Леонидов Леонид Леонидович" and first["Зарегистрировал"] == "Смирнова Анна Петровна"
    assert first["Исполнитель"] == "Сидоров Семён Сергеевич" and first["Аварийная"] == "да"
    assert first["Локализована"] == datetime(DAY.year, DAY.month, DAY.day, 7, 20)
    assert by_number[day["t3"]]["Просрочена"] == "да" and first["Просрочена"] == "нет"

    # The journal's PDF: Cyrillic text extracted back, with the marks and who made them.
    text = pdf_text(zf, "01-журнал-заявок.pdf")
    flat = " ".join(text.split())
    assert "Журнал учёта заявок" in flat and "УК «Альфа»" in flat
    for needle in ("г. Москва, ул. Ленина, д. 10", "Авария ХВС (течь, прорыв)", "Леонидов Леонид",
                   "Прорыв трубы ХВС в подвале", "Смирнова Анна Петровна", day["t1"], day["t3"],
                   f"{DAY:%d.%m.%Y} 07:20, Сидоров Семён Сергеевич", f"{DAY:%d.%m.%Y} 09:00, Сидоров Семён Сергеевич",
                   "+7 916 123-45-67", f"ОМСУ уведомлено {DAY:%d.%m.%Y} 07:02", "оценка 5", "телефон"):
        assert needle in flat, needle
    assert "Старая протечка" not in flat and "Бета" not in flat

    # Breaches: t2's late localisation and t3's overdue repair, with the staff's reasons.
    rows = xlsx_rows(zf, "02-нарушения-сроков.xlsx")
    breaches = {(r[0], r[4]): r for r in rows[1:]}
    assert set(breaches) == {(day["t2"], "локализация позже срока"), (day["t3"], "выполнение позже срока")}
    late = breaches[(day["t2"], "локализация позже срока")]
    assert late[5] == datetime(DAY.year, DAY.month, DAY.day, 11, 30)
    assert late[6] == datetime(DAY.year, DAY.month, DAY.day, 11, 50)
    assert "нет доступа в подвал до 11:45" in late[8]
    overdue = breaches[(day["t3"], "выполнение позже срока")]
    assert overdue[6] == "не выполнена" and "ждём трос" in overdue[8]
    assert "ждём трос" in " ".join(pdf_text(zf, "02-нарушения-сроков.pdf").split())

    # Municipality notices: start and end of both emergencies, full text, recipient.
    rows = xlsx_rows(zf, "03-уведомления-омсу.xlsx")
    notices = [r for r in rows[1:]]
    assert {(r[0], r[2]) for r in notices} >= {(day["t1"], "о начале аварии"), (day["t1"], "о ликвидации")}
    start = next(r for r in notices if r[0] == day["t1"] and r[2] == "о начале аварии")
    with db.read() as s:
        message = s.scalar(select(OutboxMessage).where(OutboxMessage.purpose == "municipality_emergency")
                           .order_by(OutboxMessage.id))
        assert start[3] == message.recipient and start[5] == message.body and "Ленина" in message.body
    assert start[6] == datetime(DAY.year, DAY.month, DAY.day, 7, 2)
    assert start[7].startswith("отправлено; попыток: 1") and f"{DAY:%d.%m.%Y} 07:02 успешно: 250 2.0.0 принято" in start[7]
    done_notice = next(r for r in notices if r[0] == day["t1"] and r[2] == "о ликвидации")
    assert done_notice[7].startswith("ожидает отправки")

    # Resident notifications: channel, text and the delivery report.
    rows = xlsx_rows(zf, "04-уведомления-жителей.xlsx")
    sms = [r for r in rows[1:] if r[0] == day["t1"] and r[7] == "отправлено"]
    assert sms and sms[0][3] == "SMS" and sms[0][4] == "+79161234567" and day["t1"] in sms[0][5]
    assert sms[0][8].startswith("доставлено") and "smsc-77" in sms[0][8]

    # Ratings, attempts, and the call that ended without a rating with its reason.
    ratings = xlsx_rows(zf, "05-оценки.xlsx")[1:]
    assert [(r[0], r[1], r[4]) for r in ratings] == [(day["t1"], 5, "Смирнова Анна Петровна")]
    attempts = xlsx_rows(zf, "06-попытки-оценки.xlsx")[1:]
    assert [(r[0], r[1], r[4]) for r in attempts] == [(day["t2"], 1, "Нет ответа")]
    none = xlsx_rows(zf, "07-оценка-не-получена.xlsx")[1:]
    assert [(r[0], r[1], r[4]) for r in none] == [(day["t2"], "отменён", "житель отказался от звонков")]

    # Recording access and purge logs.
    access = xlsx_rows(zf, "08-доступ-к-записям.xlsx")[1:]
    assert [(r[1], r[3], r[4], r[5]) for r in access] == [(day["rec"], "Орлова Ольга Олеговна", "прослушивание",
                                                           "10.1.2.3")]
    purges = xlsx_rows(zf, "09-удаление-записей.xlsx")[1:]
    assert len(purges) == 1 and purges[0][1] == day["rec"] and purges[0][5] == "вручную"

    # The manifest: every other file's SHA-256 and size, in both forms and on the cover.
    listed = {}
    for line in zf.read("manifest.txt").decode().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    assert set(listed) == set(names) - {"manifest.txt", "manifest.json"}
    for name, digest in listed.items():
        assert hashlib.sha256(zf.read(name)).hexdigest() == digest, name
    meta = json.loads(zf.read("manifest.json"))
    assert {m["name"]: m["sha256"] for m in meta["files"]} == listed
    assert meta["organization"]["name"] == "УК «Альфа»" and meta["period"] == {
        "from": DAY.isoformat(), "to": TODAY.isoformat(), "timezone": "Europe/Moscow"}
    cover = " ".join(pdf_text(zf, inspection.COVER).split())
    assert "УК «Альфа»" in cover and f"{DAY:%d.%m.%Y} — {TODAY:%d.%m.%Y}" in cover
    for name, digest in listed.items():
        if name != inspection.COVER:
            assert digest in cover.replace(" ", "") or digest in cover, name

    # The chain head on the cover is the one `openads audit verify` reports.
    with db.read() as s:
        report = chain.verify(s.connection(), world.org_a.id)
    assert report.intact and meta["chain"]["head_hash"] == report.last_hash
    assert meta["chain"]["head_seq"] == report.last_seq and report.last_hash in cover.replace(" ", "")


def test_the_chain_head_matches_the_command_line_verify(db, world, day, settings, tmp_path, capsys,
                                                        database_url, monkeypatch) -> None:
    from openads.cli import main

    _data, result = build(db, settings, world.org_a.id, tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["audit", "verify", "--org", str(world.org_a.id)]) == 0
    assert f"последний хеш {result['chain']['head_hash']}" in capsys.readouterr().out


def test_the_inspector_requests_and_downloads_the_own_pack_and_not_another(db, world, day, inspector, settings,
                                                                             login_as, app, token_for) -> None:
    client = login_as(inspector)
    page = client.get("/reports/inspection")
    assert page.status_code == 200 and 'id="inspection-form"' in page.get_data(as_text=True)
    resp = client.post("/reports/inspection", data={"from": DAY.isoformat(), "to": TODAY.isoformat()})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    with db.read() as s:
        job = s.scalar(select(Job).where(Job.kind == JobKind.INSPECTION_PACK))
        assert job.organization_id == world.org_a.id and job.requested_by_id == inspector.id
        s.expunge(job)
    assert run_jobs(db, settings) >= 1
    page = client.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert 'id="job-download"' in page
    code, data, mimetype = fetch(client, f"/reports/inspection/{job.id}.zip")
    assert code == 200 and mimetype == "application/zip"
    zf = open_pack(data)
    assert "01-журнал-заявок.pdf" in zf.namelist()
    with db.read() as s:
        done = s.get(Job, job.id)
        assert done.status == JobStatus.DONE
        logged = done.result["downloads"]
        assert [(d["user_id"], d["via"]) for d in logged] == [(inspector.id, "панель")]

    # Organization B's pack: not found for A's inspector, in the panel and the API.
    with db.write() as s:
        other = inspection.request_pack(s, org_id=world.org_b.id, day_from=DAY, day_to=TODAY, by=None, now=NOW)
        s.flush()
        s.expunge(other)
    run_jobs(db, settings)
    assert client.get(f"/reports/inspection/{other.id}.zip").status_code == 404
    assert client.get(f"/jobs/{other.id}").status_code == 404
    headers = token_for(inspector, "read")
    api = app.test_client()
    check_error(api.get(f"/api/v1/inspection-packs/{other.id}/file", headers=headers), 404, "not-found")
    check_error(api.get(f"/api/v1/inspection-packs/{other.id}", headers=headers), 404, "not-found")
    resp = client.post("/reports/inspection", data={"organization_id": str(world.org_b.id), "from": DAY.isoformat(),
                                                    "to": TODAY.isoformat()})
    with db.read() as s:
        assert s.scalar(select(Job.id).where(Job.organization_id == world.org_b.id, Job.requested_by_id
                                             == inspector.id)) is None
    # A manager of A sees the inspector's pack; a dispatcher cannot request one.
    assert fetch(login_as(world.manager_a), f"/reports/inspection/{job.id}.zip")[0] == 200
    assert login_as(world.dispatcher_a).post("/reports/inspection", data={"from": DAY.isoformat(),
                                                                          "to": TODAY.isoformat()}).status_code == 403


def test_a_bad_period_is_told_in_russian_and_the_form_kept(db, world, inspector, login_as) -> None:
    client = login_as(inspector)
    resp = client.post("/reports/inspection", data={"from": "2026-05-10", "to": "2026-05-01"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "начало периода позже конца" in page and 'value="2026-05-10"' in page
    resp = client.post("/reports/inspection", data={"from": "10.05", "to": "2026-05-01"})
    assert resp.status_code == 400 and "дата" in resp.get_data(as_text=True)
    with db.read() as s:
        assert s.scalar(select(Job.id)) is None


def test_the_api_starts_the_job_reports_it_and_gives_the_zip(db, world, day, inspector, settings, app,
                                                             token_for) -> None:
    headers = token_for(inspector, "read")
    api = app.test_client()
    resp = api.post("/api/v1/inspection-packs", json={"organization_id": world.org_a.id, "from": DAY.isoformat(),
                                                      "to": TODAY.isoformat()}, headers=headers)
    assert resp.status_code == 202, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "queued" and body["file_url"] is None
    check_error(api.post("/api/v1/inspection-packs", json={"organization_id": world.org_b.id,
                                                           "from": DAY.isoformat(), "to": TODAY.isoformat()},
                         headers=headers), 404, "not-found")
    check_error(api.post("/api/v1/inspection-packs", json={"organization_id": world.org_a.id, "from": "2026-13-01",
                                                           "to": TODAY.isoformat()}, headers=headers), 400)
    run_jobs(db, settings)
    status = api.get(f"/api/v1/inspection-packs/{body['job_id']}", headers=headers).get_json()
    assert status["status"] == "done" and status["file_url"].endswith("/file")
    with db.read() as s:
        report = chain.verify(s.connection(), world.org_a.id)
    assert status["chain_head_hash"] == report.last_hash
    code, data, _mimetype = fetch(api, status["file_url"], headers=headers)
    assert code == 200 and hashlib.sha256(data).hexdigest() == status["sha256"]
    assert "manifest.json" in open_pack(data).namelist()


def test_the_command_line_writes_the_pack(db, world, day, settings, tmp_path, database_url, monkeypatch,
                                          capsys) -> None:
    from openads.cli import main

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("OPENADS_VAR_DIR", str(settings.var_dir))
    out = tmp_path / "pack.zip"
    code = main(["report", "inspection", "--org", str(world.org_a.id), "--from", DAY.isoformat(), "--to",
                 TODAY.isoformat(), "--out", str(out), "--quiet"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "Пакет для проверки записан" in printed.out
    zf = open_pack(out.read_bytes())
    assert hashlib.sha256(out.read_bytes()).hexdigest() in printed.out
    flat = " ".join(pdf_text(zf, "01-журнал-заявок.pdf").split())
    assert "Авария ХВС (течь, прорыв)" in flat and "г. Москва, ул. Ленина, д. 10" in flat
    with db.read() as s:
        job = s.scalar(select(Job).where(Job.kind == JobKind.INSPECTION_PACK))
        assert job.requested_by_id is None and job.result["downloads"][0]["via"] == "командная строка"
    assert main(["report", "inspection", "--org", str(world.org_a.id), "--from", "2026-05-10", "--to",
                 "2026-05-01"]) == 2
    assert "начало периода позже конца" in capsys.readouterr().err


def test_without_a_cyrillic_font_the_job_fails_with_what_to_install(db, world, settings, monkeypatch,
                                                                       tmp_path) -> None:
    """No DejaVu: the PDF would show empty boxes, so the job fails and says which package to install."""
    from models import pdf_tables

    monkeypatch.setattr(pdf_tables, "FONT_DIRS", (str(tmp_path / "none"),))
    monkeypatch.setenv("OPENADS_PDF_FONT_DIR", str(tmp_path))
    with pytest.raises(pdf_tables.FontMissing, match="fonts-dejavu-core"):
        pdf_tables.font_dir()
    monkeypatch.setattr(pdf_tables.pdfmetrics, "getRegisteredFontNames", lambda: [])
    with db.write() as s:
        job = inspection.request_pack(s, org_id=world.org_a.id, day_from=DAY, day_to=TODAY, by=None, now=NOW)
        job_id = job.id
    run_jobs(db, settings)
    with db.read() as s:
        failed = s.get(Job, job_id)
        assert failed.status == JobStatus.FAILED and "fonts-dejavu-core" in failed.error
    assert not list((Path(settings.var_dir) / "exports").glob("*.zip*"))


def test_a_long_journal_is_printed_in_volumes(db, world, day, settings, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(inspection, "VOLUME_ROWS", 2)
    data, result = build(db, settings, world.org_a.id, tmp_path)
    zf = open_pack(data)
    volumes = sorted(n for n in zf.namelist() if n.startswith("01-журнал-заявок") and n.endswith(".pdf"))
    assert volumes == ["01-журнал-заявок-том-01.pdf", "01-журнал-заявок-том-02.pdf"]
    first, second = (" ".join(pdf_text(zf, n).split()) for n in volumes)
    assert "том 1" in first and day["t1"] in first and day["t2"] in first and day["t3"] not in first
    assert "том 2" in second and day["t3"] in second and "записи с 3-й" in second
    assert {f["name"] for f in result["files"]} >= set(volumes)


def test_the_calls_registers_give_each_day_and_each_breach_with_its_times(db, world, settings, tmp_path) -> None:
    """The scripted day of calls (tests/call_scene.py): the per-day register and the breaches with
    their actual times, in Excel and in the PDF, from the same figures as the compliance page."""
    from tests.call_scene import NOW as CALLS_NOW
    from tests.call_scene import build_call_day

    with db.write() as s:
        build_call_day(s, world)
    path = tmp_path / "calls.zip"
    inspection.build_pack(db, org_id=world.org_a.id, day_from=date(2026, 3, 10), day_to=date(2026, 3, 10),
                          now=CALLS_NOW, path=path)
    zf = open_pack(path.read_bytes())
    [header, row] = xlsx_rows(zf, "10-звонки-по-дням.xlsx")
    assert dict(zip(header, row, strict=True)) == {
        "День": "10.03.2026", "Звонков": 7, "Принято": 2, "Принято за 5 мин": 1, "Доля за 5 мин, %": "14.3",
        "Пропущено (номеров)": 5, "Перезвон за 10 мин": 3, "Житель позвонил сам за 10 мин": 0,
        "Перезвон позже срока": 1, "Не перезвонили": 1, "Ожидают перезвона": 0, "Попыток перезвона": 4,
        "Голосовых сообщений": 2, "Из них не прослушаны за 10 мин": 1,
    }
    header, *breaches = xlsx_rows(zf, "11-нарушения-по-звонкам.xlsx")
    assert [(b[0], b[1], b[5]) for b in breaches] == [
        ("Ответ позже 5 минут", "+7 916 000-00-02", 2), ("Перезвон позже 10 минут", "+7 916 000-00-12", 4),
        ("Не перезвонили", "+7 916 000-00-13", None), ("Голосовое сообщение не прослушано за 10 минут",
                                                       "+7 916 000-00-15", 15)]
    # Times in the organization's zone (Moscow, UTC+3): the late callback's call 12:00, deadline 12:10.
    late = breaches[1]
    assert (late[2], late[3]) == (datetime(2026, 3, 10, 12, 0), datetime(2026, 3, 10, 12, 10))
    assert breaches[2][4] == "не было"
    text = " ".join(pdf_text(zf, "11-нарушения-по-звонкам.pdf").split())
    assert "Перезвон позже 10 минут" in text and "Не перезвонили" in text
    manifest = zf.read("manifest.txt").decode()
    assert "10-звонки-по-дням.xlsx" in manifest and "11-нарушения-по-звонкам.pdf" in manifest


def test_the_pack_holds_the_interruptions_of_each_month_the_period_touches(db, world, settings, tmp_path) -> None:
    with db.write() as s:
        house = s.merge(world.house_a)
        f.make_incident(s, house, title="Прорыв ГВС", utility="hot_water", started_at=at(8), liquidated_at=at(14))
        f.make_incident(s, s.merge(world.house_b), utility="gas", started_at=at(8), liquidated_at=at(20))  # Бета
    zf = open_pack(build(db, settings, world.org_a.id, tmp_path)[0])
    rows = xlsx_rows(zf, "12-перерывы-в-подаче-услуг.xlsx")
    assert rows[0][:4] == ["Месяц", "Дом", "Ресурс", "Перерывы (местное время)"]
    assert [r[1:3] + r[4:6] + r[7:] for r in rows[1:]] == [
        ["г. Москва, ул. Ленина, д. 10", "ГВС", 6, 6, 1, 0, 0, "превышение"]]
    assert rows[1][3] == f"{DAY:%d.%m} 08:00–14:00"
    text = " ".join(pdf_text(zf, "12-перерывы-в-подаче-услуг.pdf").split())
    assert "Перерывы в подаче коммунальных услуг" in text and "8 ч в месяц, 4 ч единовременно" in text
    assert "6,00" in text and "Газ" not in text


def test_the_municipality_register_holds_the_incidents_notices_too(db, world, settings, tmp_path) -> None:
    from models.services import incidents as incident_svc

    with db.write() as s:
        org = s.get(Organization, world.org_a.id)
        inc = incident_svc.create_incident(s, org=org, house_id=world.house_a.id, title="Прорыв стояка ГВС",
                                           utility="hot_water", started_at=at(8), by=None, now=at(8))
        incident_svc.liquidate_incident(s, org=org, incident_id=inc.id, at=at(13), now=at(13))
    rows = xlsx_rows(open_pack(build(db, settings, world.org_a.id, tmp_path)[0]), "03-уведомления-омсу.xlsx")
    kinds = [r[2] for r in rows[1:] if "Прорыв стояка ГВС" in (r[5] or "")]
    assert kinds == ["авария в доме: начало", "авария в доме: ликвидирована"]
