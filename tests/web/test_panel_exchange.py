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


def test_import_preview_then_apply(db: Any, world: Any, login_as: Any, settings: Any) -> None:
    client = login_as(world.manager_a)
    assert client.get("/housing/import").status_code == 200
    houses_before = _count(db, House, world.org_a.id)
    resp = _upload(client, world.org_a.id, CSV.encode("utf-8"))
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert 'id="houses-created">2<' in html and 'id="residents-created">1<' in html
    assert "строка 3: некорректный номер телефона «не телефон»" in html
    assert _count(db, House, world.org_a.id) == houses_before  # preview wrote nothing
    token = re.search(r'name="token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    assert list((Path(settings.var_dir) / "imports").glob(f"{token}*"))

    resp = client.post("/housing/import", data={"token": token, "action": "apply"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert "выполнен" in resp.get_data(as_text=True)
    assert _count(db, House, world.org_a.id) == houses_before + 2
    with db.read() as s:
        assert s.scalar(select(Resident.full_name).where(Resident.full_name == "Новиков Николай"))
        assert s.scalar(select(func.count()).select_from(Resident).where(Resident.full_name == "Новикова Нина")) == 0
    assert not list((Path(settings.var_dir) / "imports").glob(f"{token}*"))
    # the token is single-use
    assert client.post("/housing/import", data={"token": token, "action": "apply"}).status_code == 404


def test_import_token_of_another_user_is_404(db: Any, world: Any, login_as: Any) -> None:
    with db.write() as s:
        admin_b = f.make_user(s, [world.org_b], f.Role.ADMIN, login="admin_b")
    client = login_as(world.manager_a)
    html = _upload(client, world.org_a.id, CSV.encode()).get_data(as_text=True)
    token = re.search(r'name="token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    client = login_as(admin_b)
    assert client.post("/housing/import", data={"token": token, "action": "apply"}).status_code == 404
    assert client.post("/housing/import", data={"token": "../../etc/passwd", "action": "apply"}).status_code == 404


def test_import_into_another_organization_is_404(db: Any, world: Any, login_as: Any) -> None:
    client = login_as(world.manager_a)
    houses_b = _count(db, House, world.org_b.id)
    assert _upload(client, world.org_b.id, CSV.encode()).status_code == 404
    assert _count(db, House, world.org_b.id) == houses_b


def test_import_needs_admin_or_manager(db: Any, world: Any, login_as: Any) -> None:
    client = login_as(world.dispatcher_a)
    assert client.get("/housing/import").status_code == 403
    assert _upload(client, world.org_a.id, CSV.encode()).status_code == 403


def test_import_bad_inputs(db: Any, world: Any, login_as: Any, app: Any, settings: Any) -> None:
    client = login_as(world.manager_a)
    houses = _count(db, House, world.org_a.id)
    resp = _upload(client, world.org_a.id, b"PK\x03\x04garbage", "fond.xlsx")
    assert resp.status_code == 400
    assert "повреждён" in resp.get_data(as_text=True)
    assert not list((Path(settings.var_dir) / "imports").glob("*.xlsx"))  # a rejected upload is not kept
    resp = _upload(client, world.org_a.id, b"%PDF-1.4", "fond.pdf")
    assert resp.status_code == 400 and ".csv и .xlsx" in resp.get_data(as_text=True)
    resp = _upload(client, world.org_a.id, "ФИО;Телефон\nА;1\n".encode(), "fond.csv")
    assert resp.status_code == 400 and "Адрес" in resp.get_data(as_text=True)
    app.config["MAX_CONTENT_LENGTH"] = 1024
    resp = _upload(client, world.org_a.id, b"x" * 4096, "big.csv")
    assert resp.status_code == 413
    assert _count(db, House, world.org_a.id) == houses
