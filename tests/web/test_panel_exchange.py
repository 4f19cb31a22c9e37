"""Panel: journal export (streamed .xlsx, tenant isolation) and housing import (upload → preview → apply)."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from models.export import JOURNAL_COLUMNS, JOURNAL_COLUMNS_MULTI_ORG
from models.housing import House, Resident
from tests import factories as f
from tests.sheets import sheet_rows as _sheet

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = (
    "Адрес;Квартира;Лицевой счёт;ФИО;Телефоны\n"
    "г. Москва, ул. Новая, д. 1;1;77001;Новиков Николай;+7 916 700-00-01\n"
    "г. Москва, ул. Новая, д. 1;2;77002;Новикова Нина;не телефон\n"
    "г. Москва, ул. Новая, д. 2;;;;\n"
)


def _tickets(db: Any, world: Any) -> tuple[str, str]:
    with db.write() as s:
        ta = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"], description="Протечка Альфы",
                           house_id=world.house_a.id, reporter_phone="+79161234567")
        f.make_ticket(s, world.org_a, world.cats_a["lighting"], description="Свет Альфы", is_emergency=False)
        tb = f.make_ticket(s, world.org_b, world.cats_b["roof_leak"], description="Секрет Беты")
    return ta.number, tb.number


def test_export_streams_own_journal_with_filters(db: Any, world: Any, login_as: Any) -> None:
    number_a, _number_b = _tickets(db, world)
    client = login_as(world.dispatcher_a)
    resp = client.get("/journal/export.xlsx?limit=1")
    assert resp.status_code == 200
    assert resp.mimetype == XLSX
    assert re.match(r'attachment; filename="journal-\d{4}-\d{2}-\d{2}\.xlsx"', resp.headers["Content-Disposition"])
    rows = _sheet(resp.get_data())
    assert rows[0] == JOURNAL_COLUMNS
    descriptions = [r[JOURNAL_COLUMNS.index("Описание")] for r in rows[1:]]
    assert sorted(descriptions) == ["Протечка Альфы", "Свет Альфы"]  # limit is for pages, not the export
    assert "Секрет Беты" not in descriptions
    rows = _sheet(client.get("/journal/export.xlsx?q=Протечка").get_data())
    assert [r[0] for r in rows[1:]] == [number_a]


def test_export_of_another_organizations_filter_is_404(db: Any, world: Any, login_as: Any) -> None:
    _tickets(db, world)
    client = login_as(world.dispatcher_a)
    resp = client.get(f"/journal/export.xlsx?organization_id={world.org_b.id}")
    assert resp.status_code == 404
    assert "Секрет Беты".encode() not in resp.get_data()


def test_export_for_centre_dispatcher_has_organization_column(db: Any, world: Any, login_as: Any) -> None:
    _tickets(db, world)
    client = login_as(world.centre_dispatcher)
    rows = _sheet(client.get("/journal/export.xlsx").get_data())
    assert rows[0] == JOURNAL_COLUMNS_MULTI_ORG
    assert {r[0] for r in rows[1:]} == {"Альфа", "Бета"}
    rows = _sheet(client.get(f"/journal/export.xlsx?organization_id={world.org_b.id}").get_data())
    assert rows[0] == JOURNAL_COLUMNS and [r[JOURNAL_COLUMNS.index("Описание")] for r in rows[1:]] == ["Секрет Беты"]


def test_export_requires_login_and_valid_filters(db: Any, world: Any, client: Any, login_as: Any) -> None:
    resp = client.get("/journal/export.xlsx")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    client = login_as(world.dispatcher_a)
    assert client.get("/journal/export.xlsx?registered_from=вчера").status_code == 400


def _count(db: Any, model: Any, org_id: int) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(model).where(model.organization_id == org_id)) or 0


def _upload(client: Any, org_id: int, content: bytes, filename: str = "fond.csv") -> Any:
    return client.post("/housing/import", data={"organization_id": str(org_id), "file": (io.BytesIO(content), filename)},
                       content_type="multipart/form-data")


def _run_jobs(db: Any, settings: Any) -> int:
    from openads.jobs import runner

    return runner.run_pending(db, var_dir=Path(settings.var_dir), recordings_dir=Path(settings.recordings_dir))


def _job_id(resp: Any) -> int:
    assert resp.status_code == 302, resp.get_data(as_text=True)
    found = re.fullmatch(r"/jobs/(\d+)", resp.headers["Location"])
    assert found, resp.headers["Location"]
    return int(found.group(1))


def _uploads(settings: Any) -> list[Path]:
    folder = Path(settings.var_dir) / "imports"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_import_upload_answers_at_once_then_check_then_apply_in_the_background(
        db: Any, world: Any, login_as: Any, settings: Any) -> None:
    client = login_as(world.manager_a)
    assert client.get("/housing/import").status_code == 200
    houses_before = _count(db, House, world.org_a.id)
    check_id = _job_id(_upload(client, world.org_a.id, CSV.encode("utf-8")))
    assert _count(db, House, world.org_a.id) == houses_before and len(_uploads(settings)) == 1
    html = client.get(f"/jobs/{check_id}").get_data(as_text=True)
    assert "в очереди" in html and 'id="job-bar"' in html and "Страницу можно закрыть" in html
    assert client.get(f"/jobs/{check_id}/progress").get_json()["status"] == "queued"

    assert _run_jobs(db, settings) == 1
    html = client.get(f"/jobs/{check_id}").get_data(as_text=True)
    assert 'id="houses-created">2<' in html and 'id="residents-created">1<' in html
    assert "строка 3: некорректный номер телефона «не телефон»" in html
    assert 'id="job-bar"' not in html and "Загрузить 2 строк без ошибок" in html
    assert _count(db, House, world.org_a.id) == houses_before  # a check writes nothing

    import_id = _job_id(client.post(f"/jobs/{check_id}/apply"))
    assert _job_id(client.post(f"/jobs/{check_id}/apply")) == import_id  # a second click: the same job
    assert f'id="applied-job">задание № {import_id}' in client.get(f"/jobs/{check_id}").get_data(as_text=True)
    assert _run_jobs(db, settings) == 1
    html = client.get(f"/jobs/{import_id}").get_data(as_text=True)
    assert "Импорт выполнен" in html and 'id="houses-created">2<' in html
    assert "строка 3: некорректный номер телефона «не телефон»" in html
    assert client.get(f"/jobs/{import_id}/progress").get_json() == {
        "job_id": import_id, "status": "done", "done": 3, "total": 3, "percent": 100, "finished": True, "error": ""}
    assert _count(db, House, world.org_a.id) == houses_before + 2
    with db.read() as s:
        assert s.scalar(select(Resident.full_name).where(Resident.full_name == "Новиков Николай"))
        assert s.scalar(select(func.count()).select_from(Resident).where(Resident.full_name == "Новикова Нина")) == 0
    assert _uploads(settings) == []  # imported: the residents' file is not kept
    listing = client.get("/jobs").get_data(as_text=True)
    assert f'href="/jobs/{import_id}"' in listing and f'href="/jobs/{check_id}"' in listing


def test_a_checked_file_can_be_discarded(db: Any, world: Any, login_as: Any, settings: Any) -> None:
    client = login_as(world.manager_a)
    check_id = _job_id(_upload(client, world.org_a.id, CSV.encode()))
    assert client.post(f"/jobs/{check_id}/discard").status_code == 400  # still being checked
    _run_jobs(db, settings)
    resp = client.post(f"/jobs/{check_id}/discard")
    assert resp.status_code == 302 and resp.headers["Location"] == "/housing/import"
    assert "Загрузка отменена, ничего не изменено." in client.get("/housing/import").get_data(as_text=True)
    assert _uploads(settings) == []
    assert client.post(f"/jobs/{check_id}/apply").status_code == 400
    assert "больше не хранится" in client.get(f"/jobs/{check_id}").get_data(as_text=True)


def test_import_jobs_of_another_organization_or_user_are_404(db: Any, world: Any, login_as: Any,
                                                               settings: Any) -> None:
    with db.write() as s:
        admin_b = f.make_user(s, [world.org_b], f.Role.ADMIN, login="admin_b")
    client = login_as(world.manager_a)
    check_id = _job_id(_upload(client, world.org_a.id, CSV.encode()))
    _run_jobs(db, settings)
    client = login_as(admin_b)
    for path in (f"/jobs/{check_id}", f"/jobs/{check_id}/progress", f"/jobs/{check_id}/file"):
        assert client.get(path).status_code == 404, path
    assert client.post(f"/jobs/{check_id}/apply").status_code == 404
    assert client.post(f"/jobs/{check_id}/discard").status_code == 404
    assert f'href="/jobs/{check_id}"' not in client.get("/jobs").get_data(as_text=True)
    client = login_as(world.dispatcher_a)  # same organization, but neither their job nor their role
    assert client.get(f"/jobs/{check_id}").status_code == 404
    assert client.post(f"/jobs/{check_id}/apply").status_code == 403
    houses = _count(db, House, world.org_a.id)
    assert _run_jobs(db, settings) == 0 and _count(db, House, world.org_a.id) == houses
    assert client.get("/jobs/999999").status_code == 404


def test_import_into_another_organization_is_404(db: Any, world: Any, login_as: Any, settings: Any) -> None:
    client = login_as(world.manager_a)
    houses_b = _count(db, House, world.org_b.id)
    assert _upload(client, world.org_b.id, CSV.encode()).status_code == 404
    assert _count(db, House, world.org_b.id) == houses_b
    assert _uploads(settings) == []


def test_import_needs_admin_or_manager(db: Any, world: Any, login_as: Any) -> None:
    client = login_as(world.dispatcher_a)
    assert client.get("/housing/import").status_code == 403
    assert _upload(client, world.org_a.id, CSV.encode()).status_code == 403


def test_import_bad_inputs_are_explained_on_the_form_or_the_job_page(db: Any, world: Any, login_as: Any, app: Any,
                                                                      settings: Any) -> None:
    client = login_as(world.manager_a)
    houses = _count(db, House, world.org_a.id)
    resp = client.post("/housing/import", data={"organization_id": str(world.org_a.id)},
                       content_type="multipart/form-data")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400 and 'id="import-form"' in html and "Выберите файл .csv или .xlsx." in html
    assert "400:" not in html  # the form again, not a bare error page
    resp = _upload(client, world.org_a.id, b"%PDF-1.4", "fond.pdf")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400 and 'id="import-form"' in html and "поддерживаются файлы .csv и .xlsx" in html
    assert _uploads(settings) == []

    broken = _job_id(_upload(client, world.org_a.id, b"PK\x03\x04garbage", "fond.xlsx"))
    no_address = _job_id(_upload(client, world.org_a.id, "ФИО;Телефон\nА;1\n".encode(), "fond.csv"))
    assert _run_jobs(db, settings) == 2
    html = client.get(f"/jobs/{broken}").get_data(as_text=True)
    assert 'id="job-error">Задание не выполнено: файл повреждён или не является книгой Excel (.xlsx)' in html
    assert "Загрузить файл заново" in html
    html = client.get(f"/jobs/{no_address}").get_data(as_text=True)
    assert "в первой строке файла нет столбца «Адрес» (найдено: «ФИО», «Телефон»)" in html
    assert _uploads(settings) == []  # a rejected upload is not kept
    app.config["MAX_CONTENT_LENGTH"] = 1024
    resp = _upload(client, world.org_a.id, b"x" * 4096, "big.csv")
    assert resp.status_code == 413
    page = resp.get_data(as_text=True)  # a Russian page saying the limit, not a bare 413
    assert "Файл слишком большой" in page and "Можно загрузить файл размером не более" in page
    assert "Request Entity Too Large" not in page
    assert _count(db, House, world.org_a.id) == houses


def test_a_job_waiting_long_for_the_worker_says_so(db: Any, world: Any, login_as: Any) -> None:
    from datetime import timedelta

    from models.base import utcnow
    from models.job import Job

    client = login_as(world.manager_a)
    check_id = _job_id(_upload(client, world.org_a.id, CSV.encode()))
    assert 'id="job-waiting"' not in client.get(f"/jobs/{check_id}").get_data(as_text=True)
    with db.write() as s:
        job = s.get(Job, check_id)
        job.created_at = utcnow() - timedelta(minutes=2)
    assert "openads worker" in client.get(f"/jobs/{check_id}").get_data(as_text=True)


def test_export_job_from_the_panel_then_download(db: Any, world: Any, login_as: Any, settings: Any) -> None:
    number_a, _number_b = _tickets(db, world)
    client = login_as(world.dispatcher_a)
    job_id = _job_id(client.post("/journal/export", data={"q": "Протечка"}))
    html = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "Выгрузка журнала в Excel" in html and 'id="job-download"' not in html
    assert client.get(f"/jobs/{job_id}/file").status_code == 404  # not written yet
    assert _run_jobs(db, settings) == 1
    html = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "Выгружено заявок: <strong>1</strong>" in html and 'id="job-download"' in html
    resp = client.get(f"/jobs/{job_id}/file")
    assert resp.status_code == 200 and resp.mimetype == XLSX
    assert re.match(r'attachment; filename=journal-\d{4}-\d{2}-\d{2}\.xlsx', resp.headers["Content-Disposition"])
    rows = _sheet(resp.get_data())
    resp.close()
    assert rows[0] == JOURNAL_COLUMNS and [r[0] for r in rows[1:]] == [number_a]
    assert client.post("/journal/export", data={"registered_from": "вчера"}).status_code == 400
    assert client.post("/journal/export", data={"organization_id": str(world.org_b.id)}).status_code == 404


def test_export_job_of_two_organizations_is_downloaded_only_by_who_sees_both(db: Any, world: Any, login_as: Any,
                                                                             settings: Any) -> None:
    _tickets(db, world)
    job_id = _job_id(login_as(world.centre_dispatcher).post("/journal/export", data={}))
    _run_jobs(db, settings)
    client = login_as(world.centre_dispatcher)
    resp = client.get(f"/jobs/{job_id}/file")
    rows = _sheet(resp.get_data())
    resp.close()
    assert rows[0] == JOURNAL_COLUMNS_MULTI_ORG and {r[0] for r in rows[1:]} == {"Альфа", "Бета"}
    with db.write() as s:
        admin_a = f.make_user(s, [world.org_a], f.Role.ADMIN, login="admin_a")
    client = login_as(admin_a)  # sees the job (organization Альфа) but not Бета's tickets
    assert client.get(f"/jobs/{job_id}").status_code == 200
    assert client.get(f"/jobs/{job_id}/file").status_code == 404
    assert login_as(world.dispatcher_b).get(f"/jobs/{job_id}").status_code == 404


def test_the_web_server_module_imports_first_in_a_fresh_process() -> None:
    """`openads web` loads web.asgi before anything else (web.sse, then the panel's views that use it)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", "import web.asgi"], cwd=root, capture_output=True, text=True,
                          env={**__import__("os").environ, "PYTHONPATH": str(root)}, timeout=120)
    assert done.returncode == 0, done.stderr
