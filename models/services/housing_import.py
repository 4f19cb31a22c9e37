"""Housing stock import from CSV or XLSX: houses, premises, personal accounts, residents, phones.

One row is one resident of a premise; a row with the later columns empty adds just a house or a
premise. Columns are recognised by their Russian headers (case-insensitive) or English aliases:
Адрес (required), ФИАС, Широта, Долгота, Помещение/Квартира, Тип помещения, Подъезд, Этаж,
Лицевой счёт, ФИО, Телефоны (several, separated by «,» or «;»), E-mail, Примечание.

`preview_import` counts what would change and lists per-row errors without writing; `apply_import`
writes in the caller's transaction. Both are idempotent with respect to the data: houses match by
ФИАС id or by address (whitespace and case normalised), premises by (house, number), accounts by
(organization, number), residents by (account or premise, full name); phones are added when
missing. Rows with errors are skipped and reported with their row number; valid rows are applied.

Files are read as a stream and rows are processed in chunks with per-chunk batch lookups and
per-house caches, so memory stays bounded for files of 100 000 rows and more.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models.errors import ImportFailed
from models.housing import Account, House, Premise, Resident, ResidentPhone
from models.organization import Organization
from models.rules.phones import InvalidPhone, to_e164

CHUNK_ROWS = 500
PROGRESS_EVERY = 1000
MAX_ERRORS_KEPT = 500
SAMPLE_ROWS = 10
MAX_HOUSE_CACHE = 200

# field name → accepted headers (compared after `_header_key`).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "address": ("адрес", "адрес дома", "address"),
    "fias_id": ("фиас", "гар", "фиас/гар", "код фиас", "guid", "fias", "fias_id", "fias id"),
    "latitude": ("широта", "latitude", "lat"),
    "longitude": ("долгота", "longitude", "lon", "lng"),
    "premise": ("помещение", "квартира", "кв", "кв.", "номер помещения", "№ помещения", "premise", "apartment", "flat"),
    "premise_kind": ("тип помещения", "тип", "premise type", "premise_type", "kind"),
    "entrance": ("подъезд", "entrance"),
    "floor": ("этаж", "floor"),
    "account": ("лицевой счет", "лицевой счёт", "лс", "л/с", "account", "account number"),
    "full_name": ("фио", "ф.и.о.", "житель", "собственник", "full name", "full_name", "name", "resident"),
    "phones": ("телефоны", "телефон", "phones", "phone"),
    "email": ("e-mail", "email", "эл. почта", "электронная почта", "почта"),
    "note": ("примечание", "заметка", "note", "notes", "comment"),
}
FIELD_TITLES_RU = {
    "address": "Адрес", "fias_id": "ФИАС", "latitude": "Широта", "longitude": "Долгота", "premise": "Помещение",
    "premise_kind": "Тип помещения", "entrance": "Подъезд", "floor": "Этаж", "account": "Лицевой счёт",
    "full_name": "ФИО", "phones": "Телефоны", "email": "E-mail", "note": "Примечание",
}
MAX_LENGTHS = {
    "address": 300, "premise": 20, "premise_kind": 20, "entrance": 10, "floor": 10, "account": 40,
    "full_name": 200, "email": 254, "note": 2000,
}
DEFAULT_PREMISE_KIND = "кв."


def _header_key(raw: object) -> str:
    return " ".join(str(raw or "").replace("ё", "е").replace("Ё", "Е").split()).lower().strip(" :*")


_HEADER_MAP = {_header_key(alias): name for name, aliases in COLUMN_ALIASES.items() for alias in aliases}


def _norm(text: str) -> str:
    """Matching key: whitespace collapsed, case folded, ё → е."""
    return " ".join(text.split()).casefold().replace("ё", "е")


@dataclass
class RowData:
    """One data row as read from the file: raw text values keyed by field name."""

    row: int  # the row's number in the file, the header being row 1
    values: dict[str, str]

    def get(self, name: str) -> str:
        return self.values.get(name, "")


@dataclass
class RowError:
    row: int
    message: str

    def __str__(self) -> str:
        return f"строка {self.row}: {self.message}"


@dataclass
class ImportReport:
    rows_total: int = 0
    rows_ok: int = 0
    rows_failed: int = 0
    houses_created: int = 0
    houses_updated: int = 0
    premises_created: int = 0
    premises_updated: int = 0
    accounts_created: int = 0
    accounts_updated: int = 0
    residents_created: int = 0
    residents_updated: int = 0
    phones_added: int = 0
    errors: list[RowError] = field(default_factory=list)
    sample: list[dict[str, str]] = field(default_factory=list)  # the first rows as read
    columns: list[str] = field(default_factory=list)  # recognised fields, in file order
    ignored_columns: list[str] = field(default_factory=list)
    applied: bool = False

    @property
    def errors_truncated(self) -> bool:
        return self.rows_failed > len(self.errors)

    @property
    def changes(self) -> int:
        return (self.houses_created + self.houses_updated + self.premises_created + self.premises_updated
                + self.accounts_created + self.accounts_updated + self.residents_created
                + self.residents_updated + self.phones_added)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows_total": self.rows_total, "rows_ok": self.rows_ok, "rows_failed": self.rows_failed,
            "houses_created": self.houses_created, "houses_updated": self.houses_updated,
            "premises_created": self.premises_created, "premises_updated": self.premises_updated,
            "accounts_created": self.accounts_created, "accounts_updated": self.accounts_updated,
            "residents_created": self.residents_created, "residents_updated": self.residents_updated,
            "phones_added": self.phones_added, "errors": [str(e) for e in self.errors], "applied": self.applied,
        }


class HousingRows:
    """An iterator of `RowData` plus what the header told: recognised and ignored columns."""

    def __init__(self, rows: Iterator[RowData], columns: list[str], ignored: list[str],
                 close: Callable[[], None] | None = None) -> None:
        self._rows = rows
        self.columns = columns
        self.ignored_columns = ignored
        self._close = close

    def __iter__(self) -> Iterator[RowData]:
        return self

    def __next__(self) -> RowData:
        return next(self._rows)

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None


# ---------------------------------------------------------------------------------------------
# Reading files


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _mapping(header: list[object]) -> tuple[list[tuple[int, str]], list[str], list[str]]:
    """Column positions of known fields; fails without the «Адрес» column."""
    positions: list[tuple[int, str]] = []
    seen: set[str] = set()
    ignored: list[str] = []
    for i, raw in enumerate(header):
        name = _HEADER_MAP.get(_header_key(raw))
        if name is None or name in seen:
            if _cell_text(raw):
                ignored.append(_cell_text(raw))
            continue
        seen.add(name)
        positions.append((i, name))
    if "address" not in seen:
        found = ", ".join(f"«{_cell_text(h)}»" for h in header if _cell_text(h)) or "нет заголовков"
        raise ImportFailed(f"в первой строке файла нет столбца «Адрес» (найдено: {found})")
    return positions, [name for _i, name in positions], ignored


def _rows_from(table: Iterator[Any], close: Callable[[], None] | None) -> HousingRows:
    """`table`: an iterator of row sequences; the first non-empty one is the header."""
    header: list[object] | None = None
    header_row = 0
    for raw in table:
        header_row += 1
        if any(_cell_text(v) for v in raw):
            header = list(raw)
            break
    if header is None:
        if close:
            close()
        raise ImportFailed("файл пуст: нет строки заголовков")
    try:
        positions, columns, ignored = _mapping(header)
    except ImportFailed:
        if close:
            close()
        raise

    def gen() -> Iterator[RowData]:
        n = header_row
        try:
            for raw in table:
                n += 1
                values = {}
                width = len(raw)
                for i, name in positions:
                    if i < width:
                        text = _cell_text(raw[i])
                        if text:
                            values[name] = text
                if values:
                    yield RowData(n, values)
        finally:
            if close:
                close()

    return HousingRows(gen(), columns, ignored, close)


def _open_binary(source: str | Path | IO[bytes]) -> tuple[IO[bytes], bool]:
    if hasattr(source, "read"):
        return source, False  # type: ignore[return-value]
    try:
        return open(source, "rb"), True  # noqa: SIM115
    except OSError as exc:
        raise ImportFailed(f"не удалось открыть файл: {exc.strerror or exc}") from exc


def _detect_encoding(sample: bytes) -> str:
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        return "cp1251"


def _detect_delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (";", ",", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ";"


def _csv_rows(source: str | Path | IO[bytes]) -> HousingRows:
    binary, owned = _open_binary(source)
    try:
        if not hasattr(binary, "peek"):
            binary = io.BufferedReader(binary)  # type: ignore[type-var]
        sample = binary.peek(64 * 1024)[: 64 * 1024]
        if b"\x00" in sample[:4096]:
            raise ImportFailed("файл не похож на текстовый CSV (двоичные данные); сохраните его как CSV или XLSX")
        encoding = _detect_encoding(sample)
        first_line = sample.decode(encoding, errors="replace").splitlines()[0] if sample else ""
        text = io.TextIOWrapper(binary, encoding=encoding, newline="")
    except BaseException:
        if owned:
            binary.close()
        raise
    delimiter = _detect_delimiter(first_line.lstrip("\ufeff"))
    reader = csv.reader(text, delimiter=delimiter)

    def safe() -> Iterator[list[str]]:
        try:
            yield from reader
        except UnicodeDecodeError as exc:
            raise ImportFailed("не удалось прочитать файл: кодировка не UTF-8 и не Windows-1251") from exc
        except csv.Error as exc:
            raise ImportFailed(f"ошибка разбора CSV в строке {reader.line_num}: {exc}") from exc

    def close() -> None:
        if owned:
            text.close()
        else:
            text.detach()  # leave the caller's stream open

    return _rows_from(safe(), close)


def _xlsx_rows(source: str | Path | IO[bytes]) -> HousingRows:
    import warnings

    from openpyxl import load_workbook

    broken = "файл повреждён или не является книгой Excel (.xlsx); сохраните его заново как .xlsx или CSV"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about styles/extensions it does not know
            wb = load_workbook(source, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
        raise ImportFailed(broken) from exc
    except Exception as exc:  # openpyxl raises assorted errors on malformed parts
        raise ImportFailed(broken) from exc
    try:
        ws = wb.worksheets[0] if wb.worksheets else None
    except Exception as exc:
        wb.close()
        raise ImportFailed(broken) from exc
    if ws is None:
        wb.close()
        raise ImportFailed("в книге нет листов")

    def table() -> Iterator[Any]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield from ws.iter_rows(values_only=True)
        except ImportFailed:
            raise
        except Exception as exc:
            raise ImportFailed(broken) from exc

    return _rows_from(table(), wb.close)


def parse_housing_file(source: str | Path | IO[bytes], filename: str) -> HousingRows:
    """Open a CSV (delimiter «;», «,» or tab; UTF-8 or Windows-1251) or an XLSX (first sheet).

    The header is read and checked at once (a broken or headerless file raises ImportFailed
    before anything is written); data rows are then read lazily. Close the result when done
    (iterating to the end closes it too).
    """
    suffix = Path(filename or "").suffix.lower()
    if suffix in (".csv", ".txt"):
        return _csv_rows(source)
    if suffix in (".xlsx", ".xlsm"):
        return _xlsx_rows(source)
    if suffix == ".xls":
        raise ImportFailed("формат .xls (Excel 97–2003) не поддерживается: сохраните файл как .xlsx или CSV")
    raise ImportFailed("поддерживаются файлы .csv и .xlsx")


# ---------------------------------------------------------------------------------------------
# Validation


_FIAS_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE_SPLIT = re.compile(r"[;,]")


@dataclass
class CleanRow:
    row: int
    address: str
    address_key: str
    fias_id: str | None
    latitude: float | None
    longitude: float | None
    premise: str | None
    premise_kind: str | None
    entrance: str | None
    floor: str | None
    account: str | None
    full_name: str | None
    phones: list[str]
    email: str | None
    note: str | None


def _coordinate(raw: str, title: str, low: float, high: float) -> float | None:
    if not raw:
        return None
    try:
        value = float(raw.replace(",", ".").replace(" ", ""))
    except ValueError:
        raise ValueError(f"{title} должна быть числом, получено «{raw}»") from None
    if not low <= value <= high:
        raise ValueError(f"{title} вне диапазона {low:g}…{high:g}: «{raw}»")
    return value


def validate_row(data: RowData) -> CleanRow:
    """Typed values of one row, or ValueError with a Russian message (the first problem found)."""
    v = data.get
    for name, limit in MAX_LENGTHS.items():
        if len(v(name)) > limit:
            raise ValueError(f"поле «{FIELD_TITLES_RU[name]}» длиннее {limit} символов")
    address = " ".join(v("address").split())
    if not address:
        raise ValueError("не указан адрес")
    fias = v("fias_id") or None
    if fias is not None:
        if not _FIAS_RE.match(fias):
            raise ValueError(f"некорректный код ФИАС «{fias}»")
        fias = str(uuid.UUID(fias))
    latitude = _coordinate(v("latitude"), "широта", -90, 90)
    longitude = _coordinate(v("longitude"), "долгота", -180, 180)
    premise = " ".join(v("premise").split()) or None
    account = " ".join(v("account").split()) or None
    full_name = " ".join(v("full_name").split()) or None
    phones_raw = [p.strip() for p in _PHONE_SPLIT.split(v("phones")) if p.strip()]
    email = v("email") or None
    note = v("note") or None
    if email is not None and not _EMAIL_RE.match(email):
        raise ValueError(f"некорректный e-mail «{email}»")
    phones: list[str] = []
    for raw in phones_raw:
        try:
            e164 = to_e164(raw)
        except InvalidPhone:
            raise ValueError(f"некорректный номер телефона «{raw}»") from None
        if e164 not in phones:
            phones.append(e164)
    if premise is None:
        for name in ("account", "full_name", "phones", "email", "note", "entrance", "floor", "premise_kind"):
            if v(name):
                raise ValueError(f"«{FIELD_TITLES_RU[name]}» указано, но не указано помещение")
    if full_name is None:
        for name in ("phones", "email", "note"):
            if v(name):
                raise ValueError(f"«{FIELD_TITLES_RU[name]}» указано, но не указано ФИО жителя")
    return CleanRow(
        row=data.row, address=address, address_key=_norm(address), fias_id=fias, latitude=latitude,
        longitude=longitude, premise=premise, premise_kind=" ".join(v("premise_kind").split()) or None,
        entrance=v("entrance") or None, floor=v("floor") or None, account=account, full_name=full_name,
        phones=phones, email=email, note=note,
    )


# ---------------------------------------------------------------------------------------------
# Matching and writing


@dataclass(eq=False)
class _HouseRec:
    id: int | None
    address: str
    fias_id: str | None
    latitude: float | None
    longitude: float | None
    obj: House | None = None


@dataclass(eq=False)
class _PremiseRec:
    id: int | None
    house: _HouseRec
    number: str
    kind: str
    entrance: str | None
    floor: str | None
    obj: Premise | None = None


@dataclass(eq=False)
class _AccountRec:
    id: int | None
    number: str
    premise_id: int | None
    premise: _PremiseRec | None = None
    obj: Account | None = None


@dataclass(eq=False)
class _ResidentRec:
    id: int | None
    full_name: str
    email: str | None
    note: str
    phones: set[str]
    account_id: int | None = None
    account: _AccountRec | None = None
    obj: Resident | None = None


class _Importer:
    """Shared by preview (dry: nothing written, new rows only counted) and apply."""

    def __init__(self, session: Session, org: Organization, dry_run: bool) -> None:
        self.s = session
        self.org_id = org.id
        self.dry = dry_run
        self.report = ImportReport()
        self.houses_by_key: dict[str, _HouseRec] = {}
        self.houses_by_fias: dict[str, _HouseRec] = {}
        # Per-house caches (premises and their residents), loaded on first use, evicted in bulk.
        self.loaded_houses: set[int] = set()
        self.premises: dict[tuple[int, str], _PremiseRec] = {}  # (id(house rec), number key)
        self.accounts: dict[str, _AccountRec] = {}
        self.res_by_premise: dict[tuple[int, str], _ResidentRec] = {}  # (id(premise rec), name key)
        self.res_by_account: dict[tuple[int, str], _ResidentRec] = {}  # (id(account rec), name key)
        self.premise_recs: dict[int, _PremiseRec] = {}  # db id → rec, for loaded houses
        self.account_recs: dict[int, _AccountRec] = {}  # db id → rec
        self.pending: list[Any] = []
        self._load_houses()

    # ---- loading

    def _load_houses(self) -> None:
        rows = self.s.execute(
            select(House.id, House.address, House.fias_id, House.latitude, House.longitude)
            .where(House.organization_id == self.org_id)
        )
        for hid, address, fias, lat, lon in rows:
            rec = _HouseRec(hid, address, fias, lat, lon)
            self.houses_by_key.setdefault(_norm(address), rec)
            if fias:
                self.houses_by_fias.setdefault(fias.lower(), rec)

    def _load_house_details(self, house_ids: list[int], recs: dict[int, _HouseRec]) -> None:
        """Premises, accounts, residents and phones of these houses: a few queries per chunk."""
        if not house_ids:
            return
        self.loaded_houses.update(house_ids)
        premise_ids: list[int] = []
        for pid, hid, number, kind, entrance, floor in self.s.execute(
            select(Premise.id, Premise.house_id, Premise.number, Premise.kind, Premise.entrance, Premise.floor)
            .where(Premise.house_id.in_(house_ids))
        ):
            house = recs[hid]
            prec = _PremiseRec(pid, house, number, kind, entrance, floor)
            self.premises.setdefault((id(house), _norm(number)), prec)
            self.premise_recs[pid] = prec
            premise_ids.append(pid)
        for start in range(0, len(premise_ids), 900):
            part = premise_ids[start:start + 900]
            for aid, number, premise_id in self.s.execute(
                select(Account.id, Account.number, Account.premise_id).where(
                    Account.organization_id == self.org_id, Account.premise_id.in_(part))
            ):
                if number not in self.accounts:
                    arec = _AccountRec(aid, number, premise_id, self.premise_recs.get(premise_id))
                    self.accounts[number] = arec
                    self.account_recs[aid] = arec
            self._load_residents(Resident.premise_id.in_(part))

    def _load_residents(self, condition: Any) -> None:
        found: dict[int, _ResidentRec] = {}
        for rid, name, email, note, premise_id, account_id in self.s.execute(
            select(Resident.id, Resident.full_name, Resident.email, Resident.note, Resident.premise_id,
                   Resident.account_id).where(Resident.organization_id == self.org_id, condition)
        ):
            arec = self.account_recs.get(account_id) if account_id else None
            rrec = _ResidentRec(rid, name, email, note or "", set(), account_id, arec)
            found[rid] = rrec
            key = _norm(name)
            prec = self.premise_recs.get(premise_id) if premise_id else None
            if prec is not None:
                self.res_by_premise.setdefault((id(prec), key), rrec)
            if arec is not None:
                self.res_by_account.setdefault((id(arec), key), rrec)
        ids = list(found)
        for start in range(0, len(ids), 900):
            for rid, phone in self.s.execute(
                select(ResidentPhone.resident_id, ResidentPhone.phone)
                .where(ResidentPhone.resident_id.in_(ids[start:start + 900]))
            ):
                found[rid].phones.add(phone)

    def _load_accounts(self, numbers: Iterable[str]) -> None:
        missing = [n for n in set(numbers) if n not in self.accounts]
        new_ids: list[int] = []
        for start in range(0, len(missing), 900):
            for aid, number, premise_id in self.s.execute(
                select(Account.id, Account.number, Account.premise_id).where(
                    Account.organization_id == self.org_id, Account.number.in_(missing[start:start + 900]))
            ):
                arec = _AccountRec(aid, number, premise_id, self.premise_recs.get(premise_id))
                self.accounts[number] = arec
                self.account_recs[aid] = arec
                new_ids.append(aid)
        for start in range(0, len(new_ids), 900):
            self._load_residents(Resident.account_id.in_(new_ids[start:start + 900]))

    # ---- one chunk of rows

    def chunk(self, rows: list[RowData]) -> None:
        clean: list[CleanRow] = []
        for data in rows:
            self.report.rows_total += 1
            if len(self.report.sample) < SAMPLE_ROWS:
                self.report.sample.append({"row": str(data.row), **data.values})
            try:
                clean.append(validate_row(data))
            except ValueError as exc:
                self._error(data.row, str(exc))
        if not clean:
            return
        # Houses first, so that their premises and residents can be loaded in one go.
        to_load: dict[int, _HouseRec] = {}
        for row in clean:
            house = self._match_house(row)
            if house is not None and house.id is not None and house.id not in self.loaded_houses:
                to_load[house.id] = house
        self._load_house_details(list(to_load), to_load)
        self._load_accounts(r.account for r in clean if r.account)
        for row in clean:
            try:
                with self.s.no_autoflush:
                    self._apply_row(row)
            except ValueError as exc:
                self._error(row.row, str(exc))
                continue
            self.report.rows_ok += 1
        self._flush()

    def _error(self, row: int, message: str) -> None:
        self.report.rows_failed += 1
        if len(self.report.errors) < MAX_ERRORS_KEPT:
            self.report.errors.append(RowError(row, message))

    def _flush(self) -> None:
        if self.dry:
            return
        self.s.flush()
        for rec in self.pending:
            rec.id = rec.obj.id
            if isinstance(rec, _PremiseRec):
                self.premise_recs[rec.id] = rec
            elif isinstance(rec, _AccountRec):
                self.account_recs[rec.id] = rec
                rec.premise_id = rec.premise.id if rec.premise is not None else rec.premise_id
            rec.obj = None
        self.pending.clear()
        if len(self.loaded_houses) > MAX_HOUSE_CACHE or len(self.accounts) > 50_000:
            self._evict()

    def _evict(self) -> None:
        self.loaded_houses.clear()
        self.premises.clear()
        self.accounts.clear()
        self.res_by_premise.clear()
        self.res_by_account.clear()
        self.premise_recs.clear()
        self.account_recs.clear()

    def _match_house(self, row: CleanRow) -> _HouseRec | None:
        if row.fias_id and row.fias_id in self.houses_by_fias:
            return self.houses_by_fias[row.fias_id]
        return self.houses_by_key.get(row.address_key)

    def _apply_row(self, row: CleanRow) -> None:
        house = self._upsert_house(row)
        if row.premise is None:
            return
        premise = self._upsert_premise(house, row)
        account = self._upsert_account(premise, row) if row.account else None
        if row.full_name:
            self._upsert_resident(premise, account, row)

    def _upsert_house(self, row: CleanRow) -> _HouseRec:
        rec = self._match_house(row)
        if rec is None:
            rec = _HouseRec(None, row.address, row.fias_id, row.latitude, row.longitude)
            if not self.dry:
                rec.obj = House(organization_id=self.org_id, address=row.address, fias_id=row.fias_id,
                                latitude=row.latitude, longitude=row.longitude)
                self.s.add(rec.obj)
                self.pending.append(rec)
            self.houses_by_key[row.address_key] = rec
            if row.fias_id:
                self.houses_by_fias[row.fias_id] = rec
            self.report.houses_created += 1
            return rec
        changes: dict[str, Any] = {}
        if row.fias_id and (rec.fias_id or "").lower() != row.fias_id:
            other = self.houses_by_fias.get(row.fias_id)
            if other is not None and other is not rec:
                raise ValueError(f"код ФИАС {row.fias_id} уже указан у дома «{other.address}»")
            changes["fias_id"] = row.fias_id
        if row.latitude is not None and rec.latitude != row.latitude:
            changes["latitude"] = row.latitude
        if row.longitude is not None and rec.longitude != row.longitude:
            changes["longitude"] = row.longitude
        if rec.address != row.address and _norm(rec.address) != row.address_key:
            # matched by ФИАС id: the file's address wins unless another house already has it
            other = self.houses_by_key.get(row.address_key)
            if other is None:
                changes["address"] = row.address
        if changes:
            self._update(rec, House, changes)
            if "fias_id" in changes:
                self.houses_by_fias[row.fias_id] = rec  # type: ignore[index]
            if "address" in changes:
                self.houses_by_key[row.address_key] = rec
            self.report.houses_updated += 1
        return rec

    def _upsert_premise(self, house: _HouseRec, row: CleanRow) -> _PremiseRec:
        assert row.premise is not None
        key = (id(house), _norm(row.premise))
        rec = self.premises.get(key)
        if rec is None:
            rec = _PremiseRec(None, house, row.premise, row.premise_kind or DEFAULT_PREMISE_KIND, row.entrance,
                              row.floor)
            if not self.dry:
                rec.obj = Premise(organization_id=self.org_id, number=rec.number, kind=rec.kind,
                                  entrance=rec.entrance, floor=rec.floor)
                if house.obj is not None:
                    rec.obj.house = house.obj
                else:
                    rec.obj.house_id = house.id  # type: ignore[assignment]
                self.s.add(rec.obj)
                self.pending.append(rec)
            self.premises[key] = rec
            self.report.premises_created += 1
            return rec
        changes: dict[str, Any] = {}
        if row.premise_kind and rec.kind != row.premise_kind:
            changes["kind"] = row.premise_kind
        if row.entrance and rec.entrance != row.entrance:
            changes["entrance"] = row.entrance
        if row.floor and rec.floor != row.floor:
            changes["floor"] = row.floor
        if changes:
            self._update(rec, Premise, changes)
            self.report.premises_updated += 1
        return rec

    def _upsert_account(self, premise: _PremiseRec, row: CleanRow) -> _AccountRec:
        assert row.account is not None
        rec = self.accounts.get(row.account)
        if rec is None:
            rec = _AccountRec(None, row.account, premise.id, premise)
            if not self.dry:
                rec.obj = Account(organization_id=self.org_id, number=row.account)
                self._link_premise(rec.obj, premise)
                self.s.add(rec.obj)
                self.pending.append(rec)
            self.accounts[row.account] = rec
            self.report.accounts_created += 1
            return rec
        same = rec.premise is premise if (rec.premise is not None or premise.id is None) else rec.premise_id == premise.id
        if not same:
            # the account moved to another premise (e.g. a data fix in the billing system)
            if not self.dry:
                if rec.id is None or premise.id is None:
                    obj = rec.obj if rec.obj is not None else self.s.get(Account, rec.id)
                    self._link_premise(obj, premise)
                else:
                    self.s.execute(update(Account).where(Account.id == rec.id).values(premise_id=premise.id))
            rec.premise, rec.premise_id = premise, premise.id
            self.report.accounts_updated += 1
        return rec

    @staticmethod
    def _link_premise(obj: Any, premise: _PremiseRec) -> None:
        if premise.obj is not None:
            obj.premise = premise.obj
        else:
            obj.premise_id = premise.id

    def _upsert_resident(self, premise: _PremiseRec, account: _AccountRec | None, row: CleanRow) -> None:
        assert row.full_name is not None
        name_key = _norm(row.full_name)
        rec = None
        if account is not None:
            rec = self.res_by_account.get((id(account), name_key))
        if rec is None:
            rec = self.res_by_premise.get((id(premise), name_key))
        if rec is None:
            rec = _ResidentRec(None, row.full_name, row.email, row.note or "", set(row.phones),
                               account.id if account is not None else None, account)
            if not self.dry:
                obj = Resident(organization_id=self.org_id, full_name=row.full_name, email=row.email,
                               note=row.note or "")
                self._link_premise(obj, premise)
                if account is not None:
                    if account.obj is not None:
                        obj.account = account.obj
                    else:
                        obj.account_id = account.id
                for phone in row.phones:
                    obj.phones.append(ResidentPhone(organization_id=self.org_id, phone=phone))
                rec.obj = obj
                self.s.add(obj)
                self.pending.append(rec)
            self.res_by_premise[(id(premise), name_key)] = rec
            if account is not None:
                self.res_by_account[(id(account), name_key)] = rec
            self.report.residents_created += 1
            self.report.phones_added += len(row.phones)
            return
        changes: dict[str, Any] = {}
        if row.email and rec.email != row.email:
            changes["email"] = row.email
        if row.note and rec.note != row.note:
            changes["note"] = row.note
        if account is not None and rec.account is not account and (
            account.id is None or rec.account_id != account.id
        ):
            # the resident is now known under this personal account
            if not self.dry:
                resident = rec.obj if rec.obj is not None else self.s.get(Resident, rec.id)
                assert resident is not None
                if account.obj is not None:
                    resident.account = account.obj
                else:
                    resident.account_id = account.id
            rec.account, rec.account_id = account, account.id
            self.res_by_account[(id(account), name_key)] = rec
            changes.setdefault("account_id", account.id)
        if changes:
            self._update(rec, Resident, {k: v for k, v in changes.items() if k != "account_id"})
            self.report.residents_updated += 1
        for phone in row.phones:
            if phone in rec.phones:
                continue
            rec.phones.add(phone)
            self.report.phones_added += 1
            if self.dry:
                continue
            if rec.obj is not None:
                rec.obj.phones.append(ResidentPhone(organization_id=self.org_id, phone=phone))
            else:
                self.s.add(ResidentPhone(organization_id=self.org_id, resident_id=rec.id, phone=phone))

    def _update(self, rec: Any, model: type, changes: dict[str, Any]) -> None:
        if not changes:
            return
        for name, value in changes.items():
            setattr(rec, name, value)
        if self.dry:
            return
        if rec.obj is not None:
            for name, value in changes.items():
                setattr(rec.obj, name, value)
        else:
            self.s.execute(update(model).where(model.id == rec.id).values(**changes))  # type: ignore[attr-defined]


def _run(session: Session, org: Organization, rows: Iterable[RowData], dry_run: bool,
         progress: Callable[[int], None] | None) -> ImportReport:
    importer = _Importer(session, org, dry_run)
    if isinstance(rows, HousingRows):
        importer.report.columns = list(rows.columns)
        importer.report.ignored_columns = list(rows.ignored_columns)
    chunk: list[RowData] = []
    done = 0
    try:
        for data in rows:
            chunk.append(data)
            if len(chunk) >= CHUNK_ROWS:
                importer.chunk(chunk)
                done += len(chunk)
                chunk = []
                if progress is not None and done % PROGRESS_EVERY < CHUNK_ROWS:
                    progress(done)
        if chunk:
            importer.chunk(chunk)
            done += len(chunk)
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()
    if progress is not None:
        progress(done)
    if importer.report.rows_total == 0:
        raise ImportFailed("в файле нет строк с данными")
    importer.report.applied = not dry_run
    return importer.report


def preview_import(session: Session, org: Organization, rows: Iterable[RowData]) -> ImportReport:
    """What `apply_import` would do, without writing anything: counts, row errors, the first rows."""
    return _run(session, org, rows, True, None)


def apply_import(session: Session, org: Organization, rows: Iterable[RowData],
                 progress: Callable[[int], None] | None = None) -> ImportReport:
    """Create or update the housing stock from `rows` in the caller's transaction (never commits).

    Idempotent: importing the same file again changes nothing. Rows with errors are skipped and
    listed in the report; `progress(rows_done)` is called every `PROGRESS_EVERY` rows and at the end.
    """
    return _run(session, org, rows, False, progress)
