"""The work behind `openads export-journal`, `openads export-calls` and `openads import-housing`
(argparse is in exchange_cli.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from werkzeug.datastructures import MultiDict

from models.base import utcnow
from models.db import Database
from models.errors import ImportFailed, NotFound
from models.export import write_journal_xlsx
from models.export_calls import write_calls_xlsx
from models.job import Job, JobKind, JobStatus
from models.organization import Organization
from models.services.housing_import import ImportReport, parse_housing_file
from models.services.jobs import claim_job, enqueue_job
from openads.commands import run_job_here
from openads.jobs import uploads


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
    f = parse_journal_filter(_multi(args), ZoneInfo(orgs[0][1]))
    rows = write_journal_xlsx(db, [oid for oid, _tz in orgs], f, utcnow(), out_path)
    print(f"Выгружено заявок: {rows} → {out_path}")
    return 0


def export_calls_cmd(db: Database, org_ids: Sequence[int], args: Mapping[str, Any], out_path: str | Path) -> int:
    """Export the calls journal of `org_ids` to `out_path` (.xlsx), with each call's ПП 416
    evidence (models/export_calls.py); returns the exit code (0). `args`: the calls journal's
    query-string arguments (from, to, direction, outcome, phone), read in the first organization's
    zone. Raises NotFound for an unknown organization and ValidationFailed for a bad argument."""
    from web.panel.calls import parse_call_filter

    orgs = _org_zones(db, list(org_ids))
    f = parse_call_filter(_multi(args), ZoneInfo(orgs[0][1]))
    rows = write_calls_xlsx(db, [oid for oid, _tz in orgs], f, utcnow(), out_path)
    print(f"Выгружено звонков: {rows} → {out_path}")
    return 0


def _multi(args: Mapping[str, Any]) -> MultiDict[str, str]:
    multi: MultiDict[str, str] = MultiDict()
    for key, value in args.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            if item not in (None, ""):
                multi.add(key, str(item))
    multi.pop("limit", None)
    multi.pop("cursor", None)
    return multi


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
                       progress: Callable[..., Any] | None = None, *, var_dir: Path | None = None) -> int:
    """Import the housing stock file `path` (.csv/.xlsx) into organization `org_id`.

    The same background job the panel queues (decision 0030), run here at once: the file is copied
    under the var dir, a job is queued and claimed by this process in one transaction, and its
    batches commit one by one (each holds the write lock for tens of milliseconds, so the panel
    and the worker go on meanwhile). The job is in «Задания»; if this process is stopped (Ctrl+C)
    the job is given back and `openads worker` finishes it, skipping what was committed.

    `dry_run`: only check and count (the check job: nothing written). A file that cannot be read
    at all (broken .xlsx, no «Адрес» column) raises ImportFailed before anything is queued.
    `progress` is called with a Russian text such as «обработано строк: 5000 из 160000».
    Prints the report; returns the exit code: 0 when every row was fine, 2 when some rows had
    errors (the other rows were still applied).
    """
    from openads.config import load_settings
    from openads.jobs import runner
    from openads.jobs.uploads import store_copy

    path = Path(path)
    var = Path(var_dir) if var_dir is not None else load_settings().var_dir
    with db.read() as s:
        if s.get(Organization, org_id) is None:
            raise NotFound(f"организация не найдена: {org_id}")
    rows = parse_housing_file(path, path.name)  # a broken file or a missing column: ImportFailed now
    rows.close()
    kind = JobKind.HOUSING_CHECK if dry_run else JobKind.HOUSING_IMPORT
    name = store_copy(var, path)
    token = runner.new_token()
    with db.write() as s:
        job = enqueue_job(s, org_id=org_id, kind=kind, params={"file": name, "filename": path.name}, by=None)
        claim = claim_job(s, token=token, lease=runner.LEASE, job_id=job.id)
    assert claim is not None

    def tick(done: int, total: int | None) -> None:
        if progress is not None:
            progress(f"обработано строк: {done}" + (f" из {total}" if total and total != done else ""))

    # A housing job reads no recordings: the var dir stands in for their directory.
    status = run_job_here(db, claim, var_dir=var, recordings_dir=var, on_progress=tick)
    with db.read() as s:
        done = s.get(Job, claim.job_id)
        assert done is not None
        error, result = done.error, dict(done.result or {})
    if status == JobStatus.FAILED:
        if dry_run:
            uploads.remove(var, name)
        raise ImportFailed(error)
    if dry_run:
        uploads.remove(var, name)  # nothing follows a check from the command line
    report = ImportReport.from_state(result)
    report.applied = not dry_run
    print(report_text(report))
    return 2 if report.rows_failed else 0
