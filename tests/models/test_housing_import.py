"""Housing stock import: CSV/XLSX, preview without writes, idempotent re-import, row errors, bad files."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.db import Database
from models.errors import ImportFailed
from models.housing import Account, House, Premise, Resident, ResidentPhone
from models.organization import Organization
from models.services import housing_import as hi
from models.services.housing_import import apply_import, parse_housing_file, preview_import

HEADER = ["Адрес", "ФИАС", "Широта", "Долгота", "Квартира", "Тип помещения", "Подъезд", "Этаж", "Лицевой счёт",
          "ФИО", "Телефоны", "E-mail", "Примечание"]
ROWS = [
    ["г. Москва, ул. Садовая, д. 1", "0c5b2444-70a0-4932-980c-b4dc0d3f02b5", "55,75", "37.61", "1", "", "1", "1",
     "1000001", "Иванов Иван Иванович", "8 (916) 111-22-33; +7 903 444-55-66", "ivanov@example.org", "ключи у соседа"],
    ["г. Москва, ул. Садовая, д. 1", "", "", "", "1", "", "", "", "1000001", "Иванова Мария Петровна",
     "+79165550000", "", ""],
    ["г.  Москва,  ул. Садовая, д. 1", "", "", "", "2", "кв.", "1", "1", "1000002", "Петров Пётр Петрович",
     "89161234500", "", ""],
    ["г. Москва, ул. Садовая, д. 3", "", "", "", "", "", "", "", "", "", "", "", ""],
    ["г. Москва, ул. Садовая, д. 3", "", "", "", "пом. 1", "нежилое", "", "", "", "", "", "", ""],
]


def _csv(rows: list[list[str]], header: list[str] = HEADER, delimiter: str = ";") -> str:
    lines = [delimiter.join(header)]
    for r in rows:
        lines.append(delimiter.join(f'"{v}"' if delimiter in v else v for v in r))
    return "\n".join(lines) + "\n"


def _write_csv(tmp_path: Path, rows: list[list[str]], encoding: str = "utf-8-sig", delimiter: str = ";",
               name: str = "houses.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(_csv(rows, delimiter=delimiter).encode(encoding))
    return path


def _write_xlsx(tmp_path: Path, rows: list[list[Any]], name: str = "houses.xlsx") -> Path:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(HEADER)
    for r in rows:
        ws.append(r)
    path = tmp_path / name
    wb.save(path)
    return path


def _counts(s: Session, org: Organization) -> dict[str, int]:
    def n(model: Any) -> int:
        return s.scalar(select(func.count()).select_from(model).where(model.organization_id == org.id)) or 0

    return {"houses": n(House), "premises": n(Premise), "accounts": n(Account), "residents": n(Resident),
            "phones": n(ResidentPhone)}


def _apply(db: Database, org: Organization, path: Path) -> hi.ImportReport:
    with db.write() as s:
        return apply_import(s, s.get(Organization, org.id), parse_housing_file(path, path.name))  # type: ignore[arg-type]


def test_csv_happy_path_preview_then_apply(db: Database, world: Any, tmp_path: Path) -> None:
    path = _write_csv(tmp_path, ROWS)
    with db.read() as s:
        before = _counts(s, world.org_a)
        preview = preview_import(s, world.org_a, parse_housing_file(path, path.name))
        assert _counts(s, world.org_a) == before  # the preview writes nothing
    assert (preview.houses_created, preview.premises_created, preview.accounts_created,
            preview.residents_created, preview.phones_added) == (2, 3, 2, 3, 4)
    assert preview.rows_total == 5 and preview.rows_failed == 0 and not preview.errors
    assert preview.sample[0]["address"] == "г. Москва, ул. Садовая, д. 1" and preview.sample[0]["row"] == "2"

    report = _apply(db, world.org_a, path)
    assert report.as_dict() | {"applied": False} == preview.as_dict()
    with db.read() as s:
        assert _counts(s, world.org_a) == {k: before[k] + d for k, d in
                                           {"houses": 2, "premises": 3, "accounts": 2, "residents": 3, "phones": 4}.items()}
        house = s.scalar(select(House).where(House.address == "г. Москва, ул. Садовая, д. 1"))
        assert house is not None and house.organization_id == world.org_a.id
        assert house.fias_id == "0c5b2444-70a0-4932-980c-b4dc0d3f02b5"
        assert house.latitude == pytest.approx(55.75) and house.longitude == pytest.approx(37.61)
        ivanov = s.scalar(select(Resident).where(Resident.full_name == "Иванов Иван Иванович"))
        assert ivanov is not None
        assert sorted(p.phone for p in ivanov.phones) == ["+79034445566", "+79161112233"]
        assert ivanov.email == "ivanov@example.org" and ivanov.note == "ключи у соседа"
        assert ivanov.account is not None and ivanov.account.number == "1000001"
        assert ivanov.premise is not None and ivanov.premise.number == "1" and ivanov.premise.kind == "кв."
        office = s.scalar(select(Premise).where(Premise.number == "пом. 1"))
        assert office is not None and office.kind == "нежилое"
        # the other organization is untouched
        assert _counts(s, world.org_b)["houses"] == 1


def test_reimport_is_idempotent_and_updates_changed_fields(db: Database, world: Any, tmp_path: Path) -> None:
    path = _write_csv(tmp_path, ROWS)
    _apply(db, world.org_a, path)
    with db.read() as s:
        after_first = _counts(s, world.org_a)
    again = _apply(db, world.org_a, path)
    assert again.changes == 0 and again.rows_ok == 5
    with db.read() as s:
        assert _counts(s, world.org_a) == after_first

    changed = [list(r) for r in ROWS]
    changed[0][2] = "55.8"  # latitude
    changed[0][6] = "2"  # entrance
    changed[0][10] = "+79161112233, +79990001122"  # one known phone, one new
    changed[0][11] = "new@example.org"
    changed[2][0] = "Г. МОСКВА, УЛ. САДОВАЯ, Д. 1"  # the same house, other case and spacing
    path2 = _write_csv(tmp_path, changed, name="v2.csv")
    report = _apply(db, world.org_a, path2)
    assert (report.houses_created, report.houses_updated) == (0, 1)
    assert (report.premises_created, report.premises_updated) == (0, 1)
    assert (report.residents_created, report.residents_updated, report.phones_added) == (0, 1, 1)
    with db.read() as s:
        counts = _counts(s, world.org_a)
        assert counts == after_first | {"phones": after_first["phones"] + 1}
        ivanov = s.scalar(select(Resident).where(Resident.full_name == "Иванов Иван Иванович"))
        assert ivanov is not None and ivanov.email == "new@example.org"
        assert ivanov.premise is not None and ivanov.premise.entrance == "2"
        assert ivanov.premise.house.latitude == pytest.approx(55.8)


def test_existing_house_matched_by_fias_and_by_address(db: Database, world: Any, tmp_path: Path) -> None:
    rows = [[world.house_a.address.upper(), "", "", "", "30", "", "", "", "", world.resident_a.full_name,
             "+79161234567", "", ""]]
    report = _apply(db, world.org_a, _write_csv(tmp_path, rows))
    assert (report.houses_created, report.premises_created, report.residents_created, report.phones_added) == (0, 0, 0, 0)


def test_row_errors_are_reported_with_row_numbers_and_valid_rows_applied(db: Database, world: Any,
                                                                          tmp_path: Path) -> None:
    rows = [
        ROWS[0],
        ["г. Москва, ул. Садовая, д. 5", "", "север", "", "", "", "", "", "", "", "", "", ""],  # row 3
        ["", "", "", "", "7", "", "", "", "", "Без Адреса", "", "", ""],  # row 4
        ["г. Москва, ул. Садовая, д. 5", "", "", "", "3", "", "", "", "", "Сидоров С.", "12", "", ""],  # row 5
        ["г. Москва, ул. Садовая, д. 5", "", "", "", "", "", "", "", "", "Сидоров С.", "", "", ""],  # row 6
        ["г. Москва, ул. Садовая, д. 5", "", "", "", "4", "", "", "", "", "", "", "нет-почты", ""],  # row 7
        ["г. Москва, ул. Садовая, д. 6", "не-гуид", "", "", "", "", "", "", "", "", "", "", ""],  # row 8
        ["г. Москва, ул. Садовая, д. 7", "", "", "", "1", "", "", "", "", "Верный Житель", "+79160000099", "", ""],
    ]
    path = _write_csv(tmp_path, rows)
    report = _apply(db, world.org_a, path)
    messages = [str(e) for e in report.errors]
    assert [e.row for e in report.errors] == [3, 4, 5, 6, 7, 8]
    assert messages[0] == "строка 3: широта должна быть числом, получено «север»"
    assert messages[1] == "строка 4: не указан адрес"
    assert messages[2] == "строка 5: некорректный номер телефона «12»"
    assert "помещение" in messages[3]
    assert "эл. почты" in messages[4]
    assert "ФИАС" in messages[5]
    assert report.rows_ok == 2 and report.rows_failed == 6
    with db.read() as s:
        addresses = set(s.scalars(select(House.address).where(House.organization_id == world.org_a.id)))
        assert "г. Москва, ул. Садовая, д. 7" in addresses and "г. Москва, ул. Садовая, д. 1" in addresses
        assert "г. Москва, ул. Садовая, д. 5" not in addresses and "г. Москва, ул. Садовая, д. 6" not in addresses
        assert s.scalar(select(Resident).where(Resident.full_name == "Верный Житель")) is not None


def test_xlsx_happy_path_with_numbers_and_wrong_types(db: Database, world: Any, tmp_path: Path) -> None:
    rows: list[list[Any]] = [
        ["г. Казань, ул. Баумана, д. 2", None, 55.79, 49.12, 12, None, 2, 3, 5550001, "Гарипов Р. Р.", 79161230000,
         None, None],
        ["г. Казань, ул. Баумана, д. 2", None, "широта", None, 13, None, None, None, None, None, None, None, None],
    ]
    path = _write_xlsx(tmp_path, rows)
    report = _apply(db, world.org_a, path)
    assert report.rows_ok == 1 and [e.row for e in report.errors] == [3]
    assert "широта должна быть числом" in report.errors[0].message
    with db.read() as s:
        r = s.scalar(select(Resident).where(Resident.full_name == "Гарипов Р. Р."))
        assert r is not None and r.premise is not None and r.premise.number == "12" and r.premise.floor == "3"
        assert r.account is not None and r.account.number == "5550001"
        assert [p.phone for p in r.phones] == ["+79161230000"]
    again = _apply(db, world.org_a, path)
    assert again.changes == 0


def test_cp1251_csv_with_comma_delimiter(db: Database, world: Any, tmp_path: Path) -> None:
    rows = [["г. Пермь, ул. Ленина, д. 9", "", "", "", "5", "", "", "", "", "Ёлкина Алёна", "+7 912 000-11-22", "", ""]]
    path = _write_csv(tmp_path, rows, encoding="cp1251", delimiter=",")
    report = _apply(db, world.org_a, path)
    assert report.rows_ok == 1 and report.residents_created == 1
    with db.read() as s:
        assert s.scalar(select(Resident.full_name).where(Resident.full_name == "Ёлкина Алёна")) == "Ёлкина Алёна"


def test_english_headers_and_resident_only_update(db: Database, world: Any, tmp_path: Path) -> None:
    path = tmp_path / "en.csv"
    path.write_text("address,apartment,name,phones\n\"Moscow, Lenina 1\",1,John Smith,+79160001111\n",
                    encoding="utf-8")
    report = _apply(db, world.org_a, path)
    assert (report.houses_created, report.premises_created, report.residents_created) == (1, 1, 1)


def test_broken_xlsx_gives_clear_error_and_writes_nothing(db: Database, world: Any, tmp_path: Path) -> None:
    bad = tmp_path / "broken.xlsx"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip")
    with db.read() as s:
        before = _counts(s, world.org_a)
    with pytest.raises(ImportFailed) as exc:
        _apply(db, world.org_a, bad)
    assert "повреждён" in exc.value.message
    not_zip = tmp_path / "text.xlsx"
    not_zip.write_text("Адрес;ФИО\n")
    with pytest.raises(ImportFailed):
        parse_housing_file(not_zip, not_zip.name)
    with db.read() as s:
        assert _counts(s, world.org_a) == before


def test_bad_files(tmp_path: Path) -> None:
    no_address = tmp_path / "a.csv"
    no_address.write_text("ФИО;Телефон\nИванов;+79160000000\n", encoding="utf-8")
    with pytest.raises(ImportFailed, match="Адрес"):
        parse_housing_file(no_address, no_address.name)
    empty = tmp_path / "e.csv"
    empty.write_bytes(b"")
    with pytest.raises(ImportFailed, match="пуст"):
        parse_housing_file(empty, empty.name)
    with pytest.raises(ImportFailed, match=".csv и .xlsx"):
        parse_housing_file(io.BytesIO(b"x"), "data.pdf")
    with pytest.raises(ImportFailed, match=".xls"):
        parse_housing_file(io.BytesIO(b"x"), "old.xls")


def test_header_only_file_is_an_error(db: Database, world: Any, tmp_path: Path) -> None:
    path = _write_csv(tmp_path, [])
    with db.read() as s, pytest.raises(ImportFailed, match="нет строк"):
        preview_import(s, world.org_a, parse_housing_file(path, path.name))


def test_large_file_progress_and_chunking(db: Database, world: Any, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hi, "CHUNK_ROWS", 7)
    monkeypatch.setattr(hi, "PROGRESS_EVERY", 14)
    monkeypatch.setattr(hi, "MAX_HOUSE_CACHE", 2)  # forces cache eviction between chunks
    rows = []
    for h in range(6):
        for apt in range(1, 9):
            rows.append([f"г. Тула, ул. Мира, д. {h}", "", "", "", str(apt), "", "", "", f"ЛС-{h}-{apt}",
                         f"Житель {h}-{apt}", f"+7916{h:03d}{apt:04d}", "", ""])
    path = _write_csv(tmp_path, rows)
    seen: list[int] = []
    with db.write() as s:
        report = apply_import(s, s.get(Organization, world.org_a.id), parse_housing_file(path, path.name),  # type: ignore[arg-type]
                              progress=seen.append)
    assert seen[-1] == 48 and 14 in seen and 28 in seen
    assert (report.houses_created, report.premises_created, report.accounts_created, report.residents_created,
            report.phones_added) == (6, 48, 48, 48, 48)
    again = _apply(db, world.org_a, path)
    assert again.changes == 0 and again.rows_ok == 48


def test_import_housing_cmd_dry_run_and_apply(db: Database, world: Any, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from models.job import Job, JobKind, JobStatus
    from openads.commands.exchange import import_housing_cmd

    var = tmp_path / "var"
    sample = Path(__file__).resolve().parents[2] / "docs" / "samples" / "housing-sample.csv"
    with db.read() as s:
        before = _counts(s, world.org_a)
    assert import_housing_cmd(db, world.org_a.id, sample, dry_run=True, var_dir=var) == 0
    assert "ничего не записано" in capsys.readouterr().out
    with db.read() as s:
        assert _counts(s, world.org_a) == before
    ticks: list[str] = []
    assert import_housing_cmd(db, world.org_a.id, sample, dry_run=False, progress=ticks.append, var_dir=var) == 0
    assert ticks[-1] == "обработано строк: 10"
    with db.read() as s:
        assert _counts(s, world.org_a)["houses"] == before["houses"] + 2
        # the command line ran the same jobs the panel lists, as «система»
        jobs = s.execute(select(Job.kind, Job.status, Job.requested_by_id).order_by(Job.id)).all()
        assert jobs == [(JobKind.HOUSING_CHECK, JobStatus.DONE, None), (JobKind.HOUSING_IMPORT, JobStatus.DONE, None)]
    assert not list((var / "imports").iterdir())  # no copy of the residents' file is left behind
    bad = _write_csv(tmp_path, [["г. Омск, ул. Мира, д. 1", "", "x", "", "", "", "", "", "", "", "", "", ""]])
    assert import_housing_cmd(db, world.org_a.id, bad, var_dir=var) == 2
    assert "строка 2: широта должна быть числом" in capsys.readouterr().out
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 no workbook")
    with pytest.raises(ImportFailed, match="повреждён"):
        import_housing_cmd(db, world.org_a.id, broken, var_dir=var)


def test_every_problem_of_a_row_is_reported_and_the_row_not_imported(db: Database, world: Any,
                                                                       tmp_path: Path) -> None:
    rows = [
        # row 2: no recognisable address, latitude out of range, floor and entrance not numbers
        ["-", "", "95", "37.6", "1", "", "второй", "цоколь", "", "Ким Анна", "", "", ""],
        # row 3: a number for an address, a longitude that is no number, a bad phone
        ["12", "", "55.7", "восток", "2", "", "1", "1", "", "Ли Борис", "12", "", ""],
        # row 4: letters but no house number
        ["ул. Садовая", "", "", "", "3", "", "", "", "", "", "", "", ""],
        # row 5: floor and entrance out of range
        ["г. Москва, ул. Садовая, д. 9", "", "", "", "4", "", "0", "300", "", "", "", "", ""],
        # row 6: well formed
        ["г. Москва, ул. Садовая, д. 9", "", "55.7", "37.6", "5", "", "2", "-1", "", "Юн Вера", "", "", ""],
    ]
    report = _apply(db, world.org_a, _write_csv(tmp_path, rows))
    errors = {e.row: e.message for e in report.errors}
    assert errors[2] == ("адрес «-» не распознан: нужны улица (или населённый пункт) и номер дома; "
                         "широта вне диапазона -90…90: «95»; подъезд должен быть целым числом, получено «второй»; "
                         "этаж должен быть целым числом, получено «цоколь»")
    assert errors[3] == ("адрес «12» не распознан: нужны улица (или населённый пункт) и номер дома; "
                         "долгота должна быть числом, получено «восток»; некорректный номер телефона «12»")
    assert errors[4].startswith("адрес «ул. Садовая» не распознан")
    assert errors[5] == "подъезд вне диапазона 1…200: «0»; этаж вне диапазона -5…200: «300»"
    assert sorted(errors) == [2, 3, 4, 5] and report.rows_ok == 1 and report.rows_failed == 4
    with db.read() as s:
        premises = s.execute(select(Premise.number, Premise.entrance, Premise.floor).join(House)
                             .where(House.address == "г. Москва, ул. Садовая, д. 9")).all()
        assert premises == [("5", "2", "-1")]  # row 5 added nothing, not even its house's premise 4
        assert s.scalar(select(func.count()).select_from(Resident).where(
            Resident.full_name.in_(["Ким Анна", "Ли Борис"]))) == 0
        assert s.scalar(select(func.count()).select_from(House).where(
            House.address.in_(["-", "12", "ул. Садовая"]))) == 0


def test_an_old_or_password_protected_workbook_gives_a_clear_error(tmp_path: Path) -> None:
    ole = tmp_path / "protected.xlsx"
    ole.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600))
    with pytest.raises(ImportFailed, match="Excel 97–2003 или защищён паролем"):
        parse_housing_file(ole, ole.name)
    not_a_book = tmp_path / "archive.xlsx"
    with __import__("zipfile").ZipFile(not_a_book, "w") as zf:
        zf.writestr("readme.txt", "не книга")
    with pytest.raises(ImportFailed, match="повреждён или не является книгой Excel"):
        parse_housing_file(not_a_book, not_a_book.name)


def test_a_batch_is_written_with_a_few_statements_whatever_its_size(db: Database, world: Any) -> None:
    from sqlalchemy import event

    rows = [hi.RowData(n + 2, {"address": f"г. Тула, ул. Мира, д. {n // 50}", "premise": str(n % 50 + 1),
                               "account": f"ЛС-{n}", "full_name": f"Житель {n}", "phones": f"+7916{n:07d}"})
            for n in range(300)]
    with db.write() as s:
        importer = hi.Importer(s, world.org_a.id)
        batch = importer.plan(s, rows)
        statements: list[str] = []
        listener = lambda *a: statements.append(a[2])  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            importer.write(s, batch)
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
    assert len(statements) <= 10, statements  # 4 id allocations + 5 inserts, however many rows
    with db.read() as s:
        assert _counts(s, world.org_a)["phones"] == 300 + 1  # and the world resident's phone
        assert s.scalar(select(func.count()).select_from(Resident).where(
            Resident.full_name.like("Житель %"), Resident.account_id.is_not(None), Resident.premise_id.is_not(None))) == 300
