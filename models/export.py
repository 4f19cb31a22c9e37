"""The electronic journal as an .xlsx workbook, streamed with bounded memory.

No spreadsheet library writes here: XlsxWriter/openpyxl need ~16-20 s for 100 000 rows. The
SpreadsheetML parts are written directly (inline strings, numeric dates with a date style, a
bold frozen header with an autofilter) and zipped on the fly by `stream_zip`. Tickets are read
in keyset batches, each in its own short read session, selecting plain columns (no ORM objects).
Times are shown in each ticket's organization time zone, as Excel serial numbers.
"""

from __future__ import annotations

import functools
import re
import stat
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, Connection, Integer, String, TypeDecorator, cast, func, select, type_coerce
from stream_zip import ZIP_32, stream_zip

from models.db import Database
from models.housing import House, Premise
from models.organization import Organization, User
from models.queries import JournalFilter, journal_select
from models.rules.phones import display
from models.rules.ticket_states import STATUS_TITLES_RU
from models.ticket import Category, Channel, Ticket

BATCH_SIZE = 2000
CHUNK_BYTES = 64 * 1024
SHEET_NAME = "Журнал"
MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

CHANNEL_TITLES_RU: dict[Channel, str] = {
    Channel.PHONE: "Телефон",
    Channel.PANEL: "Панель диспетчера",
    Channel.RESIDENT_WEB: "Личный кабинет",
    Channel.API: "API",
    Channel.EXTERNAL: "Внешняя система",
}

# (header, width in characters, kind): kind "s" text, "d" date-time, "n" number.
_ORG_COLUMN = ("Организация", 24, "s")
_COLUMNS: tuple[tuple[str, int, str], ...] = (
    ("№ заявки", 13, "s"),
    ("Дата и время регистрации", 17, "d"),
    ("Канал", 14, "s"),
    ("Адрес", 40, "s"),
    ("Помещение", 11, "s"),
    ("Заявитель", 24, "s"),
    ("Телефон", 17, "s"),
    ("Категория", 28, "s"),
    ("Описание", 50, "s"),
    ("Аварийная", 10, "s"),
    ("Статус", 12, "s"),
    ("Зарегистрировал", 22, "s"),
    ("Исполнитель", 22, "s"),
    ("Срок локализации", 17, "d"),
    ("Срок выполнения", 17, "d"),
    ("Локализована", 17, "d"),
    ("Выполнена", 17, "d"),
    ("Закрыта", 17, "d"),
    ("Просрочена", 11, "s"),
    ("Уведомление ОМСУ", 17, "d"),
    ("Оценка", 8, "n"),
)
JOURNAL_COLUMNS: tuple[str, ...] = tuple(c[0] for c in _COLUMNS)
JOURNAL_COLUMNS_MULTI_ORG: tuple[str, ...] = (_ORG_COLUMN[0], *JOURNAL_COLUMNS)

# ---------------------------------------------------------------------------------------------
# XML helpers

# Characters XML 1.0 forbids (controls other than tab, newline, carriage return) are dropped.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_NEEDS_ESCAPE = re.compile("[&<>\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_text(value: str) -> str:
    """Escape text for an XML element; drops characters XML cannot carry."""
    if _NEEDS_ESCAPE.search(value) is None:
        return value
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _CONTROL.sub("", value)


_EMPTY = "<c/>"
_STR_OPEN = '<c t="inlineStr"><is><t>'
_STR_CLOSE = "</t></is></c>"
_DATE_OPEN = '<c s="1"><v>'
_NUM_OPEN = "<c><v>"
_NUM_CLOSE = "</v></c>"


def _s(value: str | None) -> str:
    """An inline-string cell: for values that rarely repeat (descriptions, names of reporters)."""
    if not value:
        return _EMPTY
    return _STR_OPEN + xml_text(value) + _STR_CLOSE


class _SharedStrings:
    """The shared-strings table for values that repeat (addresses, categories, people, yes/no).

    Only values coming from the organizations' own reference rows go here, so its size is bounded
    by the housing stock and staff, not by the number of exported tickets.
    """

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def cell(self, value: str | None) -> str:
        value = (value or "").strip()
        if not value:
            return _EMPTY
        i = self.index.get(value)
        if i is None:
            i = self.index[value] = len(self.index)
        return f'<c t="s"><v>{i}</v></c>'

    def xml(self) -> Iterator[bytes]:
        yield (_XML_DECL + f'<sst xmlns="{_NS_MAIN}" uniqueCount="{len(self.index)}">').encode()
        parts: list[str] = []
        for text in self.index:  # insertion order == index order
            parts.append(f"<si><t>{xml_text(text)}</t></si>")
            if len(parts) >= 2000:
                yield "".join(parts).encode()
                parts.clear()
        parts.append("</sst>")
        yield "".join(parts).encode()


def _col_letter(index: int) -> str:
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


_XML_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_NS_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"

_CONTENT_TYPES = (
    _XML_DECL
    + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/sharedStrings.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
    '<Override PartName="/xl/styles.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    _XML_DECL
    + '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/>'
    "</Relationships>"
)
_WORKBOOK_RELS = (
    _XML_DECL
    + '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    'Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" '
    'Target="styles.xml"/>'
    '<Relationship Id="rId3" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" '
    'Target="sharedStrings.xml"/>'
    "</Relationships>"
)
# cellXfs: 0 default, 1 date-time, 2 bold header.
_STYLES = (
    _XML_DECL
    + f'<styleSheet xmlns="{_NS_MAIN}">'
    '<numFmts count="1"><numFmt numFmtId="164" formatCode="dd.mm.yyyy hh:mm"/></numFmts>'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="3">'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    "</cellXfs>"
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)


def _workbook_xml(last_col: str, last_row: int) -> str:
    ref = f"'{SHEET_NAME}'!$A$1:${last_col}${max(last_row, 1)}"
    return (
        _XML_DECL
        + f'<workbook xmlns="{_NS_MAIN}" xmlns:r="{_NS_REL}">'
        f'<sheets><sheet name="{SHEET_NAME}" sheetId="1" r:id="rId1"/></sheets>'
        f'<definedNames><definedName name="_xlnm._FilterDatabase" localSheetId="0" hidden="1">{ref}'
        "</definedName></definedNames></workbook>"
    )


def _sheet_head(columns: Sequence[tuple[str, int, str]]) -> str:
    cols = "".join(
        f'<col min="{i}" max="{i}" width="{width}" customWidth="1"/>' for i, (_h, width, _k) in enumerate(columns, 1)
    )
    header = "".join(f'<c s="2" t="inlineStr"><is><t>{xml_text(h)}</t></is></c>' for h, _w, _k in columns)
    return (
        _XML_DECL
        + f'<worksheet xmlns="{_NS_MAIN}" xmlns:r="{_NS_REL}">'
        '<sheetViews><sheetView workbookViewId="0">'
        '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
        '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>'
        "</sheetView></sheetViews>"
        '<sheetFormatPr defaultRowHeight="15"/>'
        f"<cols>{cols}</cols>"
        f'<sheetData><row r="1">{header}</row>'
    )


# ---------------------------------------------------------------------------------------------
# Reading: plain columns, timestamps as integer epoch seconds computed by the database (no
# datetime objects per cell); names of houses, premises, categories and users looked up by id
# once per batch and cached as finished cells.


def _epoch(column: Any, is_sqlite: bool) -> Any:
    """Seconds since 1970 of a naive-UTC timestamp column, as an integer (NULL stays NULL)."""
    if is_sqlite:
        return cast(func.strftime("%s", column), Integer)
    return cast(func.floor(func.extract("epoch", column)), BigInteger)


class _Raw(TypeDecorator[Any]):
    """The driver's value as is: SQLite gives text, PostgreSQL a naive datetime."""

    impl = String
    cache_ok = True


def _as_utc(raw: str | datetime) -> datetime:
    moment = datetime.fromisoformat(raw) if isinstance(raw, str) else raw
    return moment.replace(tzinfo=UTC)


def _select_columns(is_sqlite: bool) -> tuple[Any, ...]:
    e = functools.partial(_epoch, is_sqlite=is_sqlite)
    return (
        Ticket.id,  # 0
        type_coerce(Ticket.registered_at, _Raw()),  # 1: keyset, raw (no per-row conversion)
        Ticket.organization_id,  # 2
        Ticket.number,  # 3
        e(Ticket.registered_at),  # 4
        type_coerce(Ticket.channel, String),  # 5
        Ticket.house_id,  # 6
        Ticket.premise_id,  # 7
        Ticket.reporter_name,  # 8
        Ticket.reporter_phone,  # 9
        Ticket.category_id,  # 10
        Ticket.description,  # 11
        Ticket.is_emergency,  # 12
        type_coerce(Ticket.status, String),  # 13
        Ticket.registered_by_id,  # 14
        Ticket.executor_id,  # 15
        e(Ticket.localize_due_at),  # 16
        e(Ticket.due_at),  # 17
        e(Ticket.localized_at),  # 18
        e(Ticket.resolved_at),  # 19
        e(Ticket.closed_at),  # 20
        e(Ticket.next_due_at),  # 21
        e(Ticket.municipality_notified_at),  # 22
        Ticket.rating,  # 23
    )


def _batches(db: Database, org_ids: Sequence[int], f: JournalFilter, now: datetime,
             lookups: _Lookups) -> Iterator[Sequence[Any]]:
    """Rows of the filtered journal, newest first, `BATCH_SIZE` at a time, one read session each."""
    f = replace(f, before=None)
    columns = _select_columns(db.is_sqlite)
    while True:
        stmt = (
            journal_select(org_ids, f, now)
            .with_only_columns(*columns, maintain_column_froms=False)
            .select_from(Ticket)
            .limit(BATCH_SIZE)
        )
        if f.before is not None:
            # Redundant with the keyset condition, but lets SQLite seek the index instead of
            # rescanning it from the newest row for every batch.
            stmt = stmt.where(Ticket.registered_at <= f.before[0])
        with db.read() as session:
            conn = session.connection()
            rows = conn.execute(stmt).all()
            lookups.load(conn, rows)
        if not rows:
            return
        yield rows
        if len(rows) < BATCH_SIZE:
            return
        last = rows[-1]
        f = replace(f, before=(_as_utc(last[1]), last[0]))


class _Lookups:
    """id → finished cell XML for houses, premises, categories and users, filled per batch."""

    def __init__(self, strings: _SharedStrings) -> None:
        self.s = strings.cell
        self.houses: dict[int | None, str] = {None: _EMPTY}
        self.premises: dict[int | None, str] = {None: _EMPTY}
        self.categories: dict[int | None, str] = {None: _EMPTY}
        self.users: dict[int | None, str] = {None: _EMPTY}

    @staticmethod
    def _missing(rows: Sequence[Any], index: int, cache: dict[int | None, str]) -> list[int]:
        return list({r[index] for r in rows} - cache.keys())

    def load(self, conn: Connection, rows: Sequence[Any]) -> None:
        if not rows:
            return
        ids = self._missing(rows, 6, self.houses)
        if ids:
            for hid, address in conn.execute(select(House.id, House.address).where(House.id.in_(ids))):
                self.houses[hid] = self.s(address)
        ids = self._missing(rows, 7, self.premises)
        if ids:
            for pid, kind, number in conn.execute(
                select(Premise.id, Premise.kind, Premise.number).where(Premise.id.in_(ids))
            ):
                self.premises[pid] = self.s(f"{kind} {number}")
        ids = self._missing(rows, 10, self.categories)
        if ids:
            for cid, name in conn.execute(select(Category.id, Category.name).where(Category.id.in_(ids))):
                self.categories[cid] = self.s(name)
        ids = list(({r[14] for r in rows} | {r[15] for r in rows}) - self.users.keys())
        if ids:
            for uid, full_name in conn.execute(select(User.id, User.full_name).where(User.id.in_(ids))):
                self.users[uid] = self.s(full_name)


def _exported_orgs(db: Database, org_ids: Sequence[int], f: JournalFilter) -> dict[int, tuple[str, str]]:
    ids = [i for i in org_ids if f.organization_id is None or i == f.organization_id]
    if not ids:
        return {}
    with db.read() as session:
        rows = session.execute(
            select(Organization.id, Organization.short_name, Organization.timezone).where(Organization.id.in_(ids))
        ).all()
    return {oid: (name, tz) for oid, name, tz in rows}


# ---------------------------------------------------------------------------------------------
# Rows → XML


_EPOCH_OFFSET_DAYS = 25569  # 1970-01-01 as an Excel (1900 system) serial


def _date_cells(tz: ZoneInfo) -> Callable[[int | None], str]:
    """Epoch seconds (UTC) → a date cell in `tz`; the zone's offset cached per hour."""
    offsets: dict[int, int] = {}

    def cell(ts: int | None) -> str:
        if ts is None:
            return _EMPTY
        hour = ts // 3600
        offset = offsets.get(hour)
        if offset is None:
            delta = datetime.fromtimestamp(hour * 3600, tz).utcoffset()
            offset = offsets[hour] = int(delta.total_seconds()) if delta is not None else 0
        return _DATE_OPEN + repr((ts + offset) / 86400 + _EPOCH_OFFSET_DAYS) + _NUM_CLOSE

    return cell


def phone_for_humans(e164: str | None) -> str:
    """`+79161234567` → `+7 916 123-45-67`; a fast path for Russian numbers."""
    if not e164:
        return ""
    if len(e164) == 12 and e164.startswith("+7"):
        return f"+7 {e164[2:5]} {e164[5:8]}-{e164[8:10]}-{e164[10:12]}"
    return display(e164)


def _rows_xml(
    batches: Iterable[Sequence[Any]], lookups: _Lookups, orgs: dict[int, tuple[str, str]], multi_org: bool,
    now: datetime, counter: list[int],
) -> Iterator[bytes]:
    """The sheet's data rows as UTF-8 chunks of about `CHUNK_BYTES`."""
    dates = {oid: _date_cells(ZoneInfo(tz)) for oid, (_name, tz) in orgs.items()}
    shared = lookups.s
    org_cells = {oid: shared(name) for oid, (name, _tz) in orgs.items()} if multi_org else {}
    channel_cells = {ch.value: shared(title) for ch, title in CHANNEL_TITLES_RU.items()}
    status_cells = {st.value: shared(title) for st, title in STATUS_TITLES_RU.items()}
    yes, no = shared("да"), shared("нет")
    reporter_cells: dict[str, str] = {}
    houses, premises, categories, users = lookups.houses, lookups.premises, lookups.categories, lookups.users
    now_ts = int(now.timestamp())
    n = counter[0] + 1  # the header is row 1
    parts: list[str] = []
    size = 0
    for rows in batches:
        for (
            _tid, _reg, org_id, number, registered, channel, house_id, premise_id, reporter, phone, category_id,
            description, emergency, status, registrar_id, executor_id, localize_due, due, localized, resolved,
            closed, next_due, notified, rating,
        ) in rows:
            d = dates[org_id]
            n += 1
            rep = reporter_cells.get(reporter)
            if rep is None:
                rep = _s(reporter.strip())
                if len(reporter_cells) < 10000:
                    reporter_cells[reporter] = rep
            late = (
                (next_due is not None and next_due < now_ts)
                or (localize_due is not None and localized is not None and localized > localize_due)
                or (resolved is not None and due is not None and resolved > due)
            )
            row = (
                f'<row r="{n}">{org_cells.get(org_id, "")}<c t="inlineStr"><is><t>{number}</t></is></c>'
                f"{d(registered)}{channel_cells.get(channel, _EMPTY)}{houses.get(house_id, _EMPTY)}"
                f"{premises.get(premise_id, _EMPTY)}{rep}{_phone_cell(phone)}"
                f"{categories.get(category_id, _EMPTY)}{_s(description.strip())}{yes if emergency else no}"
                f"{status_cells.get(status, _EMPTY)}{users.get(registrar_id, _EMPTY)}"
                f"{users.get(executor_id, _EMPTY)}{_EMPTY if localize_due is None else d(localize_due)}{d(due)}"
                f"{_EMPTY if localized is None else d(localized)}{_EMPTY if resolved is None else d(resolved)}"
                f"{_EMPTY if closed is None else d(closed)}"
                f"{yes if late else no}{d(notified) if notified is not None else no}"
                f"{_EMPTY if rating is None else _NUM_OPEN + str(rating) + _NUM_CLOSE}</row>"
            )
            parts.append(row)
            size += len(row)
            if size >= CHUNK_BYTES:
                yield "".join(parts).encode()
                parts.clear()
                size = 0
        counter[0] = n - 1
    if parts:
        yield "".join(parts).encode()


def _phone_cell(phone: str | None) -> str:
    if not phone:
        return _EMPTY
    if len(phone) == 12 and phone.startswith("+7") and phone[1:].isdigit():
        return f'<c t="inlineStr"><is><t>+7 {phone[2:5]} {phone[5:8]}-{phone[8:10]}-{phone[10:12]}</t></is></c>'
    return _s(display(phone))



def _fast_deflate() -> Any:
    # Level 1: the sheet is very repetitive, so it still compresses ~10x, several times faster than 9.
    return zlib.compressobj(wbits=-zlib.MAX_WBITS, level=1)


def _journal_zip(
    db: Database, org_ids: Sequence[int], f: JournalFilter, now: datetime, counter: list[int]
) -> Iterator[bytes]:
    orgs = _exported_orgs(db, org_ids, f)
    multi_org = len(orgs) > 1
    columns = (_ORG_COLUMN, *_COLUMNS) if multi_org else _COLUMNS
    last_col = _col_letter(len(columns) - 1)
    modified = now.astimezone(UTC).replace(tzinfo=None)

    strings = _SharedStrings()

    def sheet() -> Iterator[bytes]:
        yield _sheet_head(columns).encode()
        if orgs:
            lookups = _Lookups(strings)
            batches = _batches(db, list(orgs), f, now, lookups)
            yield from _rows_xml(batches, lookups, orgs, multi_org, now, counter)
        yield f'</sheetData><autoFilter ref="A1:{last_col}{counter[0] + 1}"/></worksheet>'.encode()

    def workbook() -> Iterator[bytes]:
        # Written after the sheet, so the filter range knows the row count.
        yield _workbook_xml(last_col, counter[0] + 1).encode()

    def const(text: str) -> Callable[[], Iterator[bytes]]:
        def gen() -> Iterator[bytes]:
            yield text.encode()

        return gen

    mode = stat.S_IFREG | 0o600
    members = (
        ("[Content_Types].xml", modified, mode, ZIP_32, const(_CONTENT_TYPES)()),
        ("_rels/.rels", modified, mode, ZIP_32, const(_ROOT_RELS)()),
        ("xl/_rels/workbook.xml.rels", modified, mode, ZIP_32, const(_WORKBOOK_RELS)()),
        ("xl/styles.xml", modified, mode, ZIP_32, const(_STYLES)()),
        ("xl/worksheets/sheet1.xml", modified, mode, ZIP_32, sheet()),
        ("xl/workbook.xml", modified, mode, ZIP_32, workbook()),
        ("xl/sharedStrings.xml", modified, mode, ZIP_32, strings.xml()),
    )
    yield from stream_zip(members, get_compressobj=_fast_deflate, extended_timestamps=False)


def journal_columns(org_count: int) -> tuple[str, ...]:
    """The header row: an «Организация» column leads when several organizations are exported."""
    return JOURNAL_COLUMNS_MULTI_ORG if org_count > 1 else JOURNAL_COLUMNS


def iter_journal_xlsx(db: Database, org_ids: Iterable[int], f: JournalFilter, now: datetime) -> Iterator[bytes]:
    """The filtered journal (all of it: `f.limit` and `f.before` are ignored) as .xlsx bytes.

    Scoped to `org_ids`; `f.organization_id` outside them gives a workbook with only the header.
    Each batch of tickets is read in its own short read session, so a slow client never holds
    a transaction open, and memory stays bounded whatever the row count.
    """
    return _journal_zip(db, list(org_ids), f, now, [0])


def write_journal_xlsx(db: Database, org_ids: Iterable[int], f: JournalFilter, now: datetime,
                       path: str | Path) -> int:
    """Write the export to `path` (atomically: a temporary file renamed at the end); returns the row count."""
    counter = [0]
    target = Path(path)
    tmp = target.with_name(target.name + ".part")
    try:
        with open(tmp, "wb") as out:
            for chunk in _journal_zip(db, list(org_ids), f, now, counter):
                out.write(chunk)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return counter[0]


__all__ = [
    "CHANNEL_TITLES_RU", "JOURNAL_COLUMNS", "JOURNAL_COLUMNS_MULTI_ORG", "MIMETYPE",
    "iter_journal_xlsx", "journal_columns", "phone_for_humans", "write_journal_xlsx", "xml_text",
]
