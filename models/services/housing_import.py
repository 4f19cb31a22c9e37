"""Housing stock import from CSV or XLSX: houses, premises, personal accounts, residents, phones.

One row is one resident of a premise; a row with the later columns empty adds just a house or a
premise. The columns and the rule of a well-formed row are in `models/rules/housing_rows.py`, the
file reading in `models/housing_file.py`. A row with any problem is reported with its number and
all of its problems, and nothing of it is imported; valid rows are applied.

Idempotent with respect to the data: houses match by ФИАС id or by address (whitespace and case
normalised), premises by (house, number), accounts by (organization, number), residents by (account
or premise, full name); phones are added when missing. Importing the same file again changes nothing.

Rows go in batches, each in two phases, so that a writer holds the database only while it writes
(issue 12 item B4: SQLite has one write lock for the whole file):

- `plan(session, rows)` reads only: validates the rows, matches them against what is known, loads
  the premises, accounts and residents of the houses the rows name (a few queries per batch, cached
  per house and evicted in bulk, so memory stays bounded for files of 100 000 rows and more), and
  decides what to insert and update;
- `write(session, batch)` writes that with a few Core statements in dependency order (ids allocated
  up front, executemany INSERTs and UPDATEs): milliseconds for hundreds of rows.

`preview_import` plans without writing; `apply_import` runs both phases in the caller's transaction.
The background job (openads/jobs/housing.py) plans in a read session and writes each batch in its own
short write transaction together with the job's checkpoint, so a killed worker resumes after the last
committed batch. A write that fails leaves the importer's caches ahead of the database: the caller
then drops the importer and builds a new one (`ImportState` restores the counts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session

from models.base import table_of, utcnow
from models.errors import ImportFailed
from models.housing import Account, House, Premise, Resident, ResidentPhone
from models.housing_file import HousingRows, estimate_data_rows, parse_housing_file
from models.organization import Organization
from models.rules.housing_rows import (
    DEFAULT_PREMISE_KIND,
    FIELD_TITLES_RU,
    CleanRow,
    RowData,
    RowInvalid,
    norm,
    validate_row,
)

__all__ = [
    "FIELD_TITLES_RU", "HousingRows", "ImportReport", "Importer", "RowData", "RowError", "apply_import",
    "estimate_data_rows", "parse_housing_file", "preview_import", "validate_row",
]

CHUNK_ROWS = 500
PROGRESS_EVERY = 1000
MAX_ERRORS_KEPT = 500
SAMPLE_ROWS = 10
MAX_HOUSE_CACHE = 200
IN_LIMIT = 900  # ids per IN (...) list: below SQLite's old 999 bound parameters


@dataclass
class RowError:
    row: int
    message: str  # every problem of the row, joined by «; »

    def __str__(self) -> str:
        return f"строка {self.row}: {self.message}"


COUNTERS = (
    "rows_total", "rows_ok", "rows_failed", "houses_created", "houses_updated", "premises_created",
    "premises_updated", "accounts_created", "accounts_updated", "residents_created", "residents_updated",
    "phones_added",
)


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
        return {**{name: getattr(self, name) for name in COUNTERS}, "errors": [str(e) for e in self.errors],
                "applied": self.applied}

    def to_state(self) -> dict[str, Any]:
        """Everything of the report as JSON values (a job's result and checkpoint)."""
        return {
            **{name: getattr(self, name) for name in COUNTERS},
            "errors": [[e.row, e.message] for e in self.errors],
            "sample": self.sample, "columns": self.columns, "ignored_columns": self.ignored_columns,
            "applied": self.applied,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ImportReport:
        report = cls()
        for name in COUNTERS:
            setattr(report, name, int(state.get(name) or 0))
        report.errors = [RowError(int(row), str(message)) for row, message in state.get("errors") or []]
        report.sample = [dict(r) for r in state.get("sample") or []]
        report.columns = list(state.get("columns") or [])
        report.ignored_columns = list(state.get("ignored_columns") or [])
        report.applied = bool(state.get("applied"))
        return report


# ---------------------------------------------------------------------------------------------
# What is known of the organization's housing stock (ids, or None for a row planned, not written)


@dataclass(eq=False)
class _HouseRec:
    id: int | None
    address: str
    fias_id: str | None
    latitude: float | None
    longitude: float | None


@dataclass(eq=False)
class _PremiseRec:
    id: int | None
    house: _HouseRec
    number: str
    kind: str
    entrance: str | None
    floor: str | None


@dataclass(eq=False)
class _AccountRec:
    id: int | None
    number: str
    premise_id: int | None
    premise: _PremiseRec | None = None


@dataclass(eq=False)
class _ResidentRec:
    id: int | None
    full_name: str
    email: str | None
    note: str
    phones: set[str]
    premise: _PremiseRec | None = None
    account_id: int | None = None
    account: _AccountRec | None = None


@dataclass
class Batch:
    """What one batch of rows inserts and updates, decided by `Importer.plan`."""

    rows: int = 0  # data rows of the file in this batch
    last_row: int = 0  # the file row number of its last row (a job's checkpoint)
    new_houses: list[_HouseRec] = field(default_factory=list)
    new_premises: list[_PremiseRec] = field(default_factory=list)
    new_accounts: list[_AccountRec] = field(default_factory=list)
    new_residents: list[_ResidentRec] = field(default_factory=list)
    new_phones: list[tuple[_ResidentRec, str]] = field(default_factory=list)
    house_changes: dict[_HouseRec, set[str]] = field(default_factory=dict)
    premise_changes: dict[_PremiseRec, set[str]] = field(default_factory=dict)
    resident_changes: dict[_ResidentRec, set[str]] = field(default_factory=dict)
    account_moves: dict[_AccountRec, None] = field(default_factory=dict)  # ordered set

    @property
    def writes(self) -> int:
        return (len(self.new_houses) + len(self.new_premises) + len(self.new_accounts) + len(self.new_residents)
                + len(self.new_phones) + len(self.house_changes) + len(self.premise_changes)
                + len(self.resident_changes) + len(self.account_moves))


class Importer:
    """The matching state of one import of one organization: plan batches, write them."""

    def __init__(self, session: Session, org_id: int, *, dry_run: bool = False,
                 report: ImportReport | None = None) -> None:
        self.org_id = org_id
        self.dry = dry_run
        self.report = report or ImportReport()
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
        self.resident_recs: dict[int, _ResidentRec] = {}  # db id → rec: one rec per row however found
        self._load_houses(session)

    # ---- loading (reads)

    def _load_houses(self, s: Session) -> None:
        rows = s.execute(
            select(House.id, House.address, House.fias_id, House.latitude, House.longitude)
            .where(House.organization_id == self.org_id)
        )
        for hid, address, fias, lat, lon in rows:
            rec = _HouseRec(hid, address, fias, lat, lon)
            self.houses_by_key.setdefault(norm(address), rec)
            if fias:
                self.houses_by_fias.setdefault(fias.lower(), rec)

    def _load_house_details(self, s: Session, recs: dict[int, _HouseRec]) -> None:
        """Premises, accounts, residents and phones of these houses: a few queries per batch."""
        if not recs:
            return
        house_ids = list(recs)
        self.loaded_houses.update(house_ids)
        premise_ids: list[int] = []
        for start in range(0, len(house_ids), IN_LIMIT):
            for pid, hid, number, kind, entrance, floor in s.execute(
                select(Premise.id, Premise.house_id, Premise.number, Premise.kind, Premise.entrance, Premise.floor)
                .where(Premise.house_id.in_(house_ids[start:start + IN_LIMIT]))
            ):
                house = recs[hid]
                prec = self.premise_recs.get(pid) or _PremiseRec(pid, house, number, kind, entrance, floor)
                self.premises.setdefault((id(house), norm(number)), prec)
                self.premise_recs[pid] = prec
                premise_ids.append(pid)
        for start in range(0, len(premise_ids), IN_LIMIT):
            part = premise_ids[start:start + IN_LIMIT]
            for aid, number, premise_id in s.execute(
                select(Account.id, Account.number, Account.premise_id).where(
                    Account.organization_id == self.org_id, Account.premise_id.in_(part))
            ):
                if number not in self.accounts:
                    arec = _AccountRec(aid, number, premise_id, self.premise_recs.get(premise_id))
                    self.accounts[number] = arec
                    self.account_recs[aid] = arec
            self._load_residents(s, Resident.premise_id.in_(part))

    def _load_residents(self, s: Session, condition: Any) -> None:
        found: dict[int, _ResidentRec] = {}
        for rid, name, email, note, premise_id, account_id in s.execute(
            select(Resident.id, Resident.full_name, Resident.email, Resident.note, Resident.premise_id,
                   Resident.account_id).where(Resident.organization_id == self.org_id, condition)
        ):
            rrec = self.resident_recs.get(rid)
            prec = self.premise_recs.get(premise_id) if premise_id else None
            if rrec is None:
                arec = self.account_recs.get(account_id) if account_id else None
                rrec = _ResidentRec(rid, name, email, note or "", set(), prec, account_id, arec)
                self.resident_recs[rid] = rrec
                found[rid] = rrec
            key = norm(rrec.full_name)
            if prec is not None:
                self.res_by_premise.setdefault((id(prec), key), rrec)
            if rrec.account is not None:
                self.res_by_account.setdefault((id(rrec.account), key), rrec)
        ids = list(found)
        for start in range(0, len(ids), IN_LIMIT):
            for rid, phone in s.execute(
                select(ResidentPhone.resident_id, ResidentPhone.phone)
                .where(ResidentPhone.resident_id.in_(ids[start:start + IN_LIMIT]))
            ):
                found[rid].phones.add(phone)

    def _load_accounts(self, s: Session, numbers: Iterable[str]) -> None:
        missing = [n for n in set(numbers) if n not in self.accounts]
        new_ids: list[int] = []
        for start in range(0, len(missing), IN_LIMIT):
            for aid, number, premise_id in s.execute(
                select(Account.id, Account.number, Account.premise_id).where(
                    Account.organization_id == self.org_id, Account.number.in_(missing[start:start + IN_LIMIT]))
            ):
                arec = _AccountRec(aid, number, premise_id, self.premise_recs.get(premise_id))
                self.accounts[number] = arec
                self.account_recs[aid] = arec
                new_ids.append(aid)
        for start in range(0, len(new_ids), IN_LIMIT):
            self._load_residents(s, Resident.account_id.in_(new_ids[start:start + IN_LIMIT]))

    # ---- planning one batch (reads only)

    def plan(self, s: Session, rows: list[RowData]) -> Batch:
        """Validate and match `rows`, loading what they need through `s`; count them in the report.
        Nothing is written: the returned batch says what `write` must do."""
        batch = Batch(rows=len(rows), last_row=rows[-1].row if rows else 0)
        clean: list[CleanRow] = []
        for data in rows:
            self.report.rows_total += 1
            if len(self.report.sample) < SAMPLE_ROWS:
                self.report.sample.append({"row": str(data.row), **data.values})
            try:
                clean.append(validate_row(data))
            except RowInvalid as exc:
                self._error(data.row, "; ".join(exc.problems))
        if not clean:
            return batch
        # Houses first, so that their premises and residents can be loaded in one go.
        to_load: dict[int, _HouseRec] = {}
        for row in clean:
            house = self._match_house(row)
            if house is not None and house.id is not None and house.id not in self.loaded_houses:
                to_load[house.id] = house
        self._load_house_details(s, to_load)
        self._load_accounts(s, (r.account for r in clean if r.account))
        for row in clean:
            try:
                self._plan_row(row, batch)
            except ValueError as exc:
                self._error(row.row, str(exc))
                continue
            self.report.rows_ok += 1
        return batch

    def _error(self, row: int, message: str) -> None:
        self.report.rows_failed += 1
        if len(self.report.errors) < MAX_ERRORS_KEPT:
            self.report.errors.append(RowError(row, message))

    def _match_house(self, row: CleanRow) -> _HouseRec | None:
        if row.fias_id and row.fias_id in self.houses_by_fias:
            return self.houses_by_fias[row.fias_id]
        return self.houses_by_key.get(row.address_key)

    def _plan_row(self, row: CleanRow, batch: Batch) -> None:
        house = self._plan_house(row, batch)
        if row.premise is None:
            return
        premise = self._plan_premise(house, row, batch)
        account = self._plan_account(premise, row, batch) if row.account else None
        if row.full_name:
            self._plan_resident(premise, account, row, batch)

    @staticmethod
    def _change(changes: dict[Any, set[str]], rec: Any, values: dict[str, Any]) -> None:
        """Set `values` on `rec`; a row already in the database gets an UPDATE of those columns
        (a row planned in this batch is inserted with its latest values anyway)."""
        for name, value in values.items():
            setattr(rec, name, value)
        if rec.id is not None:
            changes.setdefault(rec, set()).update(values)

    def _plan_house(self, row: CleanRow, batch: Batch) -> _HouseRec:
        rec = self._match_house(row)
        if rec is None:
            rec = _HouseRec(None, row.address, row.fias_id, row.latitude, row.longitude)
            batch.new_houses.append(rec)
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
        if rec.address != row.address and norm(rec.address) != row.address_key:
            # matched by ФИАС id: the file's address wins unless another house already has it
            if self.houses_by_key.get(row.address_key) is None:
                changes["address"] = row.address
        if changes:
            self._change(batch.house_changes, rec, changes)
            if "fias_id" in changes:
                self.houses_by_fias[row.fias_id] = rec  # type: ignore[index]
            if "address" in changes:
                self.houses_by_key[row.address_key] = rec
            self.report.houses_updated += 1
        return rec

    def _plan_premise(self, house: _HouseRec, row: CleanRow, batch: Batch) -> _PremiseRec:
        assert row.premise is not None
        key = (id(house), norm(row.premise))
        rec = self.premises.get(key)
        if rec is None:
            rec = _PremiseRec(None, house, row.premise, row.premise_kind or DEFAULT_PREMISE_KIND, row.entrance,
                              row.floor)
            batch.new_premises.append(rec)
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
            self._change(batch.premise_changes, rec, changes)
            self.report.premises_updated += 1
        return rec

    def _plan_account(self, premise: _PremiseRec, row: CleanRow, batch: Batch) -> _AccountRec:
        assert row.account is not None
        rec = self.accounts.get(row.account)
        if rec is None:
            rec = _AccountRec(None, row.account, premise.id, premise)
            batch.new_accounts.append(rec)
            self.accounts[row.account] = rec
            self.report.accounts_created += 1
            return rec
        same = rec.premise is premise if (rec.premise is not None or premise.id is None) else rec.premise_id == premise.id
        if not same:
            # the account moved to another premise (e.g. a data fix in the billing system)
            rec.premise, rec.premise_id = premise, premise.id
            if rec.id is not None:
                batch.account_moves[rec] = None
            self.report.accounts_updated += 1
        return rec

    def _plan_resident(self, premise: _PremiseRec, account: _AccountRec | None, row: CleanRow,
                       batch: Batch) -> None:
        assert row.full_name is not None
        name_key = norm(row.full_name)
        rec = None
        if account is not None:
            rec = self.res_by_account.get((id(account), name_key))
        if rec is None:
            rec = self.res_by_premise.get((id(premise), name_key))
        if rec is None:
            rec = _ResidentRec(None, row.full_name, row.email, row.note or "", set(row.phones), premise,
                               account.id if account is not None else None, account)
            batch.new_residents.append(rec)
            batch.new_phones.extend((rec, phone) for phone in row.phones)
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
        moved = account is not None and rec.account is not account and (
            account.id is None or rec.account_id != account.id)
        if moved:
            # the resident is now known under this personal account
            assert account is not None
            rec.account, rec.account_id = account, account.id
            self.res_by_account[(id(account), name_key)] = rec
            if rec.id is not None:
                batch.resident_changes.setdefault(rec, set()).add("account_id")
        if changes:
            self._change(batch.resident_changes, rec, changes)
        if changes or moved:
            self.report.residents_updated += 1
        for phone in row.phones:
            if phone in rec.phones:
                continue
            rec.phones.add(phone)
            batch.new_phones.append((rec, phone))
            self.report.phones_added += 1

    # ---- writing one batch

    def write(self, s: Session, batch: Batch) -> None:
        """Insert and update what `plan` decided, in dependency order, in `s`'s transaction.

        A few statements per kind of row (ids allocated first, then one INSERT executemany; UPDATEs as
        executemany), so a batch of hundreds of rows holds the write lock for milliseconds. Raises
        whatever the database raises (a unique constraint another writer beat us to): the caller
        rolls back and plans again with a new importer.
        """
        if self.dry:
            raise RuntimeError("a preview never writes")
        conn = s.connection()
        now = utcnow()
        org = self.org_id

        def insert_ids(table: Table, recs: list[Any], values: Callable[[Any], dict[str, Any]]) -> None:
            if not recs:
                return
            for rec, new_id in zip(recs, allocate_ids(conn, table, len(recs)), strict=True):
                rec.id = new_id
            conn.execute(insert(table), [{"id": r.id, **values(r)} for r in recs])

        houses, premises, accounts = table_of(House), table_of(Premise), table_of(Account)
        residents, phones = table_of(Resident), table_of(ResidentPhone)
        insert_ids(houses, batch.new_houses, lambda r: {
            "organization_id": org, "address": r.address, "fias_id": r.fias_id, "latitude": r.latitude,
            "longitude": r.longitude, "created_at": now})
        _update_many(conn, houses, batch.house_changes)
        insert_ids(premises, batch.new_premises, lambda r: {
            "organization_id": org, "house_id": r.house.id, "number": r.number, "kind": r.kind,
            "entrance": r.entrance, "floor": r.floor})
        for p in batch.new_premises:
            self.premise_recs[p.id] = p  # type: ignore[index]
        _update_many(conn, premises, batch.premise_changes)
        insert_ids(accounts, batch.new_accounts, lambda r: {
            "organization_id": org, "number": r.number, "premise_id": r.premise.id})
        for a in (*batch.new_accounts, *batch.account_moves):
            a.premise_id = a.premise.id if a.premise is not None else a.premise_id
            self.account_recs[a.id] = a  # type: ignore[index]
        if batch.account_moves:
            conn.execute(update(accounts).where(accounts.c.id == bindparam("_id"))
                         .values(premise_id=bindparam("_premise_id")),
                         [{"_id": a.id, "_premise_id": a.premise_id} for a in batch.account_moves])
        for r in batch.new_residents:
            r.account_id = r.account.id if r.account is not None else None
        insert_ids(residents, batch.new_residents, lambda r: {
            "organization_id": org, "full_name": r.full_name, "email": r.email, "note": r.note,
            "premise_id": r.premise.id if r.premise is not None else None, "account_id": r.account_id,
            "created_at": now})
        for r in batch.new_residents:
            self.resident_recs[r.id] = r  # type: ignore[index]
        for r, names in batch.resident_changes.items():
            if "account_id" in names:
                r.account_id = r.account.id if r.account is not None else r.account_id
        _update_many(conn, residents, batch.resident_changes)
        if batch.new_phones:
            conn.execute(insert(phones), [{"organization_id": org, "resident_id": r.id, "phone": p, "label": ""}
                                          for r, p in batch.new_phones])

    def written(self) -> None:
        """After the batch's commit: forget the houses' details when the cache has grown too big."""
        if len(self.loaded_houses) > MAX_HOUSE_CACHE or len(self.accounts) > 50_000:
            self.loaded_houses.clear()
            self.premises.clear()
            self.accounts.clear()
            self.res_by_premise.clear()
            self.res_by_account.clear()
            self.premise_recs.clear()
            self.account_recs.clear()
            self.resident_recs.clear()


def allocate_ids(conn: Any, table: Table, count: int) -> list[int]:
    """`count` new ids of `table` for rows the caller inserts with these ids.

    Ids are taken before the INSERT so that the rows of one batch go in with one executemany and
    their ids are known without RETURNING: SQLAlchemy inserts row by row when RETURNING must keep
    the order of the parameters on SQLite, whose RETURNING order is unspecified. PostgreSQL: the
    column's sequence. SQLite: after the largest id, which is what SQLite itself would give (the
    tables have no AUTOINCREMENT) and safe because the caller's transaction holds the write lock
    (`BEGIN IMMEDIATE`, decision 0002).
    """
    if count <= 0:
        return []
    if conn.dialect.name == "sqlite":
        top = conn.execute(select(func.max(table.c.id))).scalar() or 0
        return list(range(top + 1, top + 1 + count))
    return list(conn.execute(
        text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"),
        {"table": table.name, "n": count},
    ).scalars())


def _update_many(conn: Any, table: Table, changes: dict[Any, set[str]]) -> None:
    """UPDATE … WHERE id = ?, one executemany per set of changed columns."""
    groups: dict[tuple[str, ...], list[Any]] = {}
    for rec, names in changes.items():
        groups.setdefault(tuple(sorted(names)), []).append(rec)
    for columns, recs in groups.items():
        stmt = update(table).where(table.c.id == bindparam("_id")).values({n: bindparam(f"_{n}") for n in columns})
        conn.execute(stmt, [{"_id": r.id, **{f"_{n}": getattr(r, n) for n in columns}} for r in recs])


def batches(rows: Iterable[RowData], size: Callable[[], int]) -> Iterable[list[RowData]]:
    """`rows` in lists of `size()` rows (asked before each list, so a caller can adapt it)."""
    chunk: list[RowData] = []
    want = size()
    for data in rows:
        chunk.append(data)
        if len(chunk) >= want:
            yield chunk
            chunk = []
            want = size()
    if chunk:
        yield chunk


def _run(session: Session, org: Organization, rows: Iterable[RowData], dry_run: bool,
         progress: Callable[[int], None] | None) -> ImportReport:
    importer = Importer(session, org.id, dry_run=dry_run)
    if isinstance(rows, HousingRows):
        importer.report.columns = list(rows.columns)
        importer.report.ignored_columns = list(rows.ignored_columns)
    done = 0
    try:
        for chunk in batches(rows, lambda: CHUNK_ROWS):
            batch = importer.plan(session, chunk)
            if not dry_run:
                importer.write(session, batch)
                importer.written()
            done += len(chunk)
            if progress is not None and done % PROGRESS_EVERY < len(chunk):
                progress(done)
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

    For small files and tests: a large file goes through the background job instead, whose
    batches commit one by one. Rows with errors are skipped and listed in the report;
    `progress(rows_done)` is called every `PROGRESS_EVERY` rows and at the end.
    """
    return _run(session, org, rows, False, progress)
