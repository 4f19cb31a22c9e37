"""Journal export to .xlsx: opens in openpyxl, the right headers, values, time zones, filters, isolation."""

from __future__ import annotations

import io
import zipfile
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from models import export
from models.db import Database
from models.export import JOURNAL_COLUMNS, JOURNAL_COLUMNS_MULTI_ORG, iter_journal_xlsx, write_journal_xlsx
from models.queries import JournalFilter
from models.services.tickets import mark_localized
from models.ticket import Channel, TicketStatus
from tests import factories as f
from tests.sheets import sheet_rows as _sheet

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _export(db: Database, org_ids: list[int], flt: JournalFilter | None = None, now: datetime = NOW) -> list[dict[str, Any]]:
    rows = _sheet(b"".join(iter_journal_xlsx(db, org_ids, flt or JournalFilter(), now)))
    header = rows[0]
    return [dict(zip(header, r, strict=True)) for r in rows[1:]]


def _tickets(db: Database, world: Any) -> dict[str, Any]:
    with db.write() as s:
        t1 = f.make_ticket(
            s, world.org_a, world.cats_a["roof_leak"], by=world.dispatcher_a, now=NOW - timedelta(hours=3), registered_at=NOW - timedelta(hours=3),
            house_id=world.house_a.id, premise_id=world.premise_a.id, reporter_name="Леонидов Л. Л.",
            reporter_phone="8 916 123-45-67", description="Течь <стояка> & запах", channel=Channel.PHONE,
            is_emergency=False,
        )
        t2 = f.make_ticket(
            s, world.org_a, world.cats_a["lighting"], by=world.dispatcher_a,
            now=NOW - timedelta(hours=1), registered_at=NOW - timedelta(hours=1), description="Не горит свет",
            channel=Channel.PANEL, is_emergency=True,
        )
        tb = f.make_ticket(
            s, world.org_b, world.cats_b["lighting"], by=world.dispatcher_b,
            now=NOW - timedelta(hours=2), registered_at=NOW - timedelta(hours=2), description="Секрет Беты",
            house_id=world.house_b.id, reporter_phone="+79031112233",
        )
        return {"t1": (t1.id, t1.number, t1.registered_at, t1.due_at), "t2": (t2.id, t2.number),
                "tb": (tb.id, tb.number, tb.registered_at)}


def test_export_opens_in_openpyxl_with_headers_and_values(db: Database, world: Any) -> None:
    made = _tickets(db, world)
    rows = _sheet(b"".join(iter_journal_xlsx(db, [world.org_a.id], JournalFilter(), NOW)))
    assert rows[0] == JOURNAL_COLUMNS
    body = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    assert [r["№ заявки"] for r in body] == [made["t2"][1], made["t1"][1]]  # newest first
    t1 = body[1]
    assert t1["Адрес"] == world.house_a.address
    assert t1["Помещение"] == "кв. 30"
    assert t1["Заявитель"] == "Леонидов Л. Л."
    assert t1["Телефон"] == "+7 916 123-45-67"
    assert t1["Описание"] == "Течь <стояка> & запах"
    assert t1["Канал"] == "Телефон"
    assert t1["Аварийная"] == "нет"
    assert t1["Статус"] == "Новая"
    assert t1["Зарегистрировал"] == world.dispatcher_a.full_name
    assert t1["Исполнитель"] is None
    assert t1["Уведомление ОМСУ"] == "нет"
    assert t1["Оценка"] is None
    # Moscow (UTC+3): 09:00 UTC registered → 12:00 local, a real datetime cell
    assert t1["Дата и время регистрации"] == datetime(2026, 11, 25, 12, 0)
    due_local = made["t1"][3].astimezone(export.ZoneInfo("Europe/Moscow")).replace(tzinfo=None, microsecond=0)
    assert t1["Срок выполнения"] == due_local
    assert body[0]["Аварийная"] == "да"


def test_times_are_in_each_organizations_zone_and_org_column_when_several(db: Database, world: Any) -> None:
    made = _tickets(db, world)
    body = _export(db, [world.org_a.id, world.org_b.id])
    assert tuple(body[0]) == JOURNAL_COLUMNS_MULTI_ORG
    by_number = {(r["Организация"], r["№ заявки"]): r for r in body}
    beta = by_number[("Бета", made["tb"][1])]
    # Yekaterinburg is UTC+5: 10:00 UTC → 15:00 local
    assert beta["Дата и время регистрации"] == datetime(2026, 11, 25, 15, 0)
    assert beta["Телефон"] == "+7 903 111-22-33"
    alpha = by_number[("Альфа", made["t1"][1])]
    assert alpha["Дата и время регистрации"] == datetime(2026, 11, 25, 12, 0)


def test_another_organizations_tickets_never_appear(db: Database, world: Any) -> None:
    _tickets(db, world)
    body = _export(db, [world.org_a.id])
    assert body and all("Беты" not in r["Описание"] for r in body)
    # a filter naming an organization the caller does not belong to gives only the header
    rows = _sheet(b"".join(iter_journal_xlsx(db, [world.org_a.id], JournalFilter(organization_id=world.org_b.id), NOW)))
    assert rows == [JOURNAL_COLUMNS]


def test_filters_apply_and_limit_is_ignored(db: Database, world: Any) -> None:
    made = _tickets(db, world)
    only_emergency = _export(db, [world.org_a.id], JournalFilter(emergency=True))
    assert [r["№ заявки"] for r in only_emergency] == [made["t2"][1]]
    period = _export(db, [world.org_a.id], JournalFilter(registered_to=NOW - timedelta(hours=2)))
    assert [r["№ заявки"] for r in period] == [made["t1"][1]]
    assert len(_export(db, [world.org_a.id], JournalFilter(limit=1))) == 2
    assert _export(db, [world.org_a.id], JournalFilter(statuses=[TicketStatus.CLOSED])) == []


def test_keyset_batches_cover_every_row_once(db: Database, world: Any, monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setattr(export, "BATCH_SIZE", 3)
    monkeypatch.setattr(export, "CHUNK_BYTES", 200)
    cat = next(iter(world.cats_a.values()))
    same_moment = NOW - timedelta(days=1)
    with db.write() as s:
        numbers = [
            f.make_ticket(s, world.org_a, cat, now=NOW, registered_at=same_moment if i < 4 else NOW - timedelta(minutes=i),
                          description=f"заявка {i}").number
            for i in range(10)
        ]
    out = tmp_path / "j.xlsx"
    assert write_journal_xlsx(db, [world.org_a.id], JournalFilter(), NOW, out) == 10
    rows = _sheet(out.read_bytes())
    assert sorted(r[0] for r in rows[1:]) == sorted(numbers)
    assert not (tmp_path / "j.xlsx.part").exists()


def test_deadline_state_localized_rating_and_notification(db: Database, world: Any) -> None:
    cat = world.cats_a["emergency_cold_water"]
    reg = NOW - timedelta(hours=5)
    with db.write() as s:
        t = f.make_ticket(s, world.org_a, cat, now=reg, registered_at=reg, description="Прорыв трубы")
        mark_localized(s, org=world.org_a, ticket_id=t.id, by=None, at=reg + timedelta(minutes=50), now=NOW)
        t.municipality_notified_at = reg + timedelta(minutes=2)
        t.rating = 4
    (row,) = _export(db, [world.org_a.id])
    assert row["Локализована"] == datetime(2026, 11, 25, 10, 50)  # 07:50 UTC → 10:50 Moscow
    assert row["Уведомление ОМСУ"] == datetime(2026, 11, 25, 10, 2)
    assert row["Просрочена"] == "да"  # localised after the 30-minute deadline
    assert row["Оценка"] == 4
    assert row["Аварийная"] == "да"


def test_control_characters_are_dropped_and_xml_stays_valid(db: Database, world: Any) -> None:
    cat = next(iter(world.cats_a.values()))
    with db.write() as s:
        f.make_ticket(s, world.org_a, cat, now=NOW, description="строка\x01 с \x0bуправляющими\nсимволами")
    (row,) = _export(db, [world.org_a.id])
    assert row["Описание"] == "строка с управляющими\nсимволами"


def test_workbook_parts_frozen_header_autofilter(db: Database, world: Any) -> None:
    _tickets(db, world)
    data = b"".join(iter_journal_xlsx(db, [world.org_a.id], JournalFilter(), NOW))
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None
        names = set(z.namelist())
        assert {"[Content_Types].xml", "xl/workbook.xml", "xl/worksheets/sheet1.xml", "xl/styles.xml"} <= names
    wb = load_workbook(io.BytesIO(data))
    ws = wb.active
    assert ws is not None
    assert ws.title == "Журнал"
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == f"A1:{export._col_letter(len(JOURNAL_COLUMNS) - 1)}3"
    assert ws["A1"].font.b
    assert ws["B2"].is_date and ws["B2"].number_format == "dd.mm.yyyy hh:mm"
    assert ws.column_dimensions["D"].width == 40
    wb.close()


def test_empty_export_is_a_valid_workbook(db: Database, world: Any) -> None:
    assert _sheet(b"".join(iter_journal_xlsx(db, [world.org_a.id], JournalFilter(), NOW))) == [JOURNAL_COLUMNS]


def test_phone_for_humans() -> None:
    assert export.phone_for_humans("+79161234567") == "+7 916 123-45-67"
    assert export.phone_for_humans(None) == ""
    assert export.phone_for_humans("+442079460018").startswith("+44 ")


def test_export_journal_cmd_writes_file_and_ignores_paging(db: Database, world: Any, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from openads.commands.exchange import export_journal_cmd

    _tickets(db, world)
    out = tmp_path / "cli.xlsx"
    args = {"emergency": "0", "limit": "1", "cursor": "garbage", "status": ["new"]}
    assert export_journal_cmd(db, [world.org_a.id], args, out) == 0
    assert "Выгружено заявок: 1" in capsys.readouterr().out
    rows = _sheet(out.read_bytes())
    assert [r[JOURNAL_COLUMNS.index("Описание")] for r in rows[1:]] == ["Течь <стояка> & запах"]


@pytest.mark.parametrize(("zone", "moments"), [
    # Berlin switches to summer time at 01:00 UTC on the hour; Lord Howe moves by half an hour at
    # 15:30 UTC, inside a UTC hour (the per-hour offset cache must resolve that hour per second).
    ("Europe/Berlin", [datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC), datetime(2026, 3, 29, 1, 0, 0, tzinfo=UTC),
                       datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 1, 30, tzinfo=UTC)]),
    ("Australia/Lord_Howe", [datetime(2026, 10, 3, 15, 10, tzinfo=UTC), datetime(2026, 10, 3, 15, 29, 59, tzinfo=UTC),
                             datetime(2026, 10, 3, 15, 30, tzinfo=UTC), datetime(2026, 10, 3, 15, 50, tzinfo=UTC)]),
])
def test_times_stay_exact_across_dst_transitions(db: Database, world: Any, zone: str,
                                                 moments: list[datetime]) -> None:
    tz = export.ZoneInfo(zone)
    offsets = {m.astimezone(tz).utcoffset() for m in moments}
    assert len(offsets) == 2  # the moments really straddle a transition
    cat = next(iter(world.cats_a.values()))
    with db.write() as s:
        s.get(type(world.org_a), world.org_a.id).timezone = zone
        for m in moments:
            f.make_ticket(s, world.org_a, cat, now=m, registered_at=m, description=m.isoformat())
    body = _export(db, [world.org_a.id], now=datetime(2026, 12, 1, tzinfo=UTC))
    got = {r["Описание"]: r["Дата и время регистрации"] for r in body}
    assert got == {m.isoformat(): m.astimezone(tz).replace(tzinfo=None) for m in moments}


def test_keyset_batches_respect_the_period(db: Database, world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # After the first batch the keyset replaces `registered_to` as the upper bound: nothing
    # newer than the period may slip in, nothing inside it may be lost.
    monkeypatch.setattr(export, "BATCH_SIZE", 2)
    cat = next(iter(world.cats_a.values()))
    with db.write() as s:
        made = {i: f.make_ticket(s, world.org_a, cat, now=NOW, registered_at=NOW - timedelta(hours=i),
                                 description=f"заявка {i}").number for i in range(9)}
    period = JournalFilter(registered_from=NOW - timedelta(hours=6, minutes=30),
                           registered_to=NOW - timedelta(hours=1, minutes=30))
    body = _export(db, [world.org_a.id], period)
    assert [r["№ заявки"] for r in body] == [made[i] for i in range(2, 7)]


def test_zlib_writes_the_same_workbook_when_isal_is_missing(db: Database, world: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _tickets(db, world)
    with_isal = _export(db, [world.org_a.id])
    monkeypatch.setattr(export, "_deflate", zlib)
    assert _export(db, [world.org_a.id]) == with_isal


def test_text_longer_than_excel_allows_is_cut_with_a_visible_marker(db: Database, world: Any) -> None:
    """Issue 13 item 3: one stored 40 000-character description must not make the workbook unopenable."""
    from sqlalchemy import update

    from models.ticket import Ticket

    with db.write() as s:
        t = f.make_ticket(s, world.org_a, world.cats_a["lighting"], by=world.dispatcher_a, now=NOW,
                          registered_at=NOW - timedelta(hours=1), description="Не горит свет")
        s.execute(update(Ticket).where(Ticket.id == t.id).values(
            # the applicant's name is a VARCHAR(200) column: long only where the engine allows it (SQLite)
            description="ж" * 40_000 + "\x01\x1f", reporter_name="Иванов\x07 " + "я" * (40_000 if db.is_sqlite else 150)))
    (row,) = _export(db, [world.org_a.id])
    assert len(row["Описание"]) == export.EXCEL_CELL_MAX
    assert row["Описание"].endswith(export.TRUNCATED_MARKER)
    assert len(row["Заявитель"]) <= export.EXCEL_CELL_MAX and row["Заявитель"].startswith("Иванов я")


def test_excel_text_counts_utf16_units_and_strips_controls() -> None:
    assert export.excel_text("a\x00b\x0bc\td") == "abc\td"
    astral = "😀" * 20_000  # 40 000 UTF-16 units
    cut = export.excel_text(astral)
    assert len(cut.encode("utf-16-le")) // 2 <= export.EXCEL_CELL_MAX and cut.endswith(export.TRUNCATED_MARKER)
