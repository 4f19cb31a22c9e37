"""The work behind `openads export-journal` and `openads import-housing` (argparse is in exchange_cli.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from werkzeug.datastructures import MultiDict

from models.base import utcnow
from models.db import Database
from models.errors import NotFound
from models.export import write_journal_xlsx
from models.organization import Organization
from models.services.housing_import import ImportReport, apply_import, parse_housing_file, preview_import


def _org_zones(db: Database, org_ids: Sequence[int]) -> list[tuple[int, str]]:
    """(id, time zone) of each organization, in the given order; NotFound for an unknown id."""
    with db.read() as s:
        orgs = [s.get(Organization, i) for i in org_ids]
        found = [(o.id, o.timezone) for o in orgs if o is not None]
    missing = [i for i, o in zip(org_ids, orgs, strict=True) if o is None]
    if missing or not found:
        raise NotFound(f"организация не найдена: {', '.join(map(str, missing))}")
    return found


def export_journal_cmd(db: Database, org_ids: Sequence[int], args: Mapping[str, Any], out_path: str | Path) -> int:
    """Export the journal of `org_ids` to `out_path` (.xlsx); returns the exit code (0).

    `args` holds the journal's query-string arguments as in web/journal_args.py (status,
    registered_from, registered_to, house_id, category_id, executor_id, emergency, overdue, q, ...),
    values as strings (lists allowed for status). Dates are read in the first organization's zone.
    The whole filtered set is exported (any `limit`/`cursor` is ignored). Raises NotFound for an
    unknown organization and ValidationFailed for a bad argument.
    """
    from web.journal_args import parse_journal_filter

    orgs = _org_zones(db, list(org_ids))
    multi: MultiDict[str, str] = MultiDict()
    for key, value in args.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            if item not in (None, ""):
                multi.add(key, str(item))
    multi.pop("limit", None)
    multi.pop("cursor", None)
    f = parse_journal_filter(multi, ZoneInfo(orgs[0][1]))
    rows = write_journal_xlsx(db, [oid for oid, _tz in orgs], f, utcnow(), out_path)
    print(f"Выгружено заявок: {rows} → {out_path}")
    return 0


def report_text(report: ImportReport) -> str:
    """The import report for a terminal, in Russian."""
    head = "Загружено" if report.applied else "Проверка (ничего не записано)"
    lines = [
        f"{head}: строк {report.rows_total}, без ошибок {report.rows_ok}, с ошибками {report.rows_failed}",
        f"  дома: новых {report.houses_created}, изменено {report.houses_updated}",
        f"  помещения: новых {report.premises_created}, изменено {report.premises_updated}",
        f"  лицевые счета: новых {report.accounts_created}, изменено {report.accounts_updated}",
        f"  жители: новых {report.residents_created}, изменено {report.residents_updated}",
        f"  телефоны: добавлено {report.phones_added}",
    ]
    if report.ignored_columns:
        lines.append("  не распознаны столбцы: " + ", ".join(report.ignored_columns))
    for error in report.errors:
        lines.append(f"  {error}")
    if report.errors_truncated:
        lines.append(f"  … и ещё {report.rows_failed - len(report.errors)} строк с ошибками")
    return "\n".join(lines)


def import_housing_cmd(db: Database, org_id: int, path: str | Path, dry_run: bool = False,
                       progress: Callable[..., Any] | None = None) -> int:
    """Import the housing stock file `path` (.csv/.xlsx) into organization `org_id`.

    `dry_run`: only check and count (read transaction, nothing written). Otherwise one write
    transaction: valid rows are applied and committed together, rows with errors skipped. A file
    that cannot be read at all (broken .xlsx, no «Адрес» column) raises ImportFailed and writes
    nothing. `progress` is called with a Russian text such as «обработано строк: 5000».
    Prints the report; returns the exit code: 0 when every row was fine, 2 when some rows had
    errors (the other rows were still applied).
    """
    path = Path(path)

    def tick(done: int) -> None:
        if progress is not None:
            progress(f"обработано строк: {done}")

    if dry_run:
        with db.read() as s:
            org = s.get(Organization, org_id)
            if org is None:
                raise NotFound(f"организация не найдена: {org_id}")
            report = preview_import(s, org, parse_housing_file(path, path.name))
    else:
        with db.write() as s:
            org = s.get(Organization, org_id)
            if org is None:
                raise NotFound(f"организация не найдена: {org_id}")
            report = apply_import(s, org, parse_housing_file(path, path.name), progress=tick)
    print(report_text(report))
    return 2 if report.rows_failed else 0
