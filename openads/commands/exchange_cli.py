"""`openads import-housing`, `openads export-journal` and `openads export-calls`: the argparse side.

The work itself is in `openads.commands.exchange` (`import_housing_cmd`, `export_journal_cmd`,
`export_calls_cmd`),
imported lazily so the other commands start without openpyxl.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from openads.commands import UsageError, database, positive_int, settings

STATUSES = ("new", "assigned", "in_progress", "done", "closed", "cancelled", "rejected")
BOOL_CHOICES = ("1", "0")
JOURNAL_FILTERS = (
    # (option, key of the journal's query-string arguments, help)
    ("--house", "house_id", "id дома"),
    ("--category", "category_id", "id категории"),
    ("--executor", "executor_id", "id исполнителя"),
    ("--from", "registered_from", "зарегистрированы с (ГГГГ-ММ-ДД, время организации)"),
    ("--to", "registered_to", "зарегистрированы по (ГГГГ-ММ-ДД включительно)"),
    ("--incident-started-from", "incident_started_from", "начало аварии с"),
    ("--incident-started-to", "incident_started_to", "начало аварии по"),
    ("--incident-liquidated-from", "incident_liquidated_from", "устранение аварии с"),
    ("--incident-liquidated-to", "incident_liquidated_to", "устранение аварии по"),
    ("--q", "q", "поиск: номер заявки, телефон или текст"),
)


def register(sub: Any) -> None:
    imp = sub.add_parser("import-housing", help="загрузить жилой фонд из CSV/XLSX (дома, помещения, ЛС, жители); "
                                                "фоновое задание, выполняемое здесь же частями")
    imp.add_argument("path", type=Path, help="файл .csv или .xlsx")
    imp.add_argument("--org", required=True, type=positive_int, metavar="ID", help="id организации")
    imp.add_argument("--dry-run", action="store_true", help="только проверить и показать, что изменится")
    imp.add_argument("--quiet", action="store_true", help="не показывать ход загрузки")
    imp.set_defaults(handler=run_import)

    exp = sub.add_parser("export-journal", help="выгрузить журнал заявок в .xlsx (с фильтрами журнала)")
    exp.add_argument("--org", required=True, action="append", type=positive_int, metavar="ID",
                     help="id организации (можно несколько раз)")
    exp.add_argument("--out", "-o", required=True, type=Path, help="файл .xlsx, куда записать журнал")
    exp.add_argument("--status", action="append", choices=STATUSES, default=[], help="статус (можно несколько раз)")
    exp.add_argument("--emergency", choices=BOOL_CHOICES, help="1 — только аварийные, 0 — только неаварийные")
    exp.add_argument("--overdue", choices=BOOL_CHOICES, help="1 — только просроченные, 0 — только в срок")
    for option, key, text in JOURNAL_FILTERS:
        exp.add_argument(option, dest=key, metavar="ЗНАЧЕНИЕ", help=text)
    exp.set_defaults(handler=run_export)

    calls = sub.add_parser("export-calls", help="выгрузить журнал звонков в .xlsx (с фильтрами журнала звонков и "
                                                "отметками о соблюдении сроков ПП 416)")
    calls.add_argument("--org", required=True, action="append", type=positive_int, metavar="ID",
                       help="id организации (можно несколько раз)")
    calls.add_argument("--out", "-o", required=True, type=Path, help="файл .xlsx, куда записать журнал звонков")
    calls.add_argument("--from", dest="from_", metavar="ГГГГ-ММ-ДД", help="звонки с этого дня (время организации)")
    calls.add_argument("--to", metavar="ГГГГ-ММ-ДД", help="звонки по этот день включительно")
    calls.add_argument("--direction", choices=("inbound", "outbound"), help="направление")
    calls.add_argument("--outcome", action="append", default=[], metavar="ИСХОД",
                       help="исход (можно несколько раз): missed — все пропущенные, answered, voicemail, ...")
    calls.add_argument("--phone", metavar="НОМЕР", help="номер жителя")
    calls.set_defaults(handler=run_export_calls)


def _progress(quiet: bool) -> Any:
    def progress(*values: Any, **named: Any) -> None:
        if quiet:
            return
        ints = [v for v in values if isinstance(v, int)]
        if len(ints) >= 2:
            text = f"обработано строк: {ints[0]} из {ints[1]}"
        else:
            text = " ".join(str(v) for v in (*values, *named.values()))
        print(f"\r{text}", end="", file=sys.stderr, flush=True)

    return progress


def _finish(result: Any) -> int:
    if isinstance(result, bool):
        return 0 if result else 1
    if isinstance(result, int):
        return result
    if result is not None:
        print(result)
    return 0


def run_import(args: argparse.Namespace) -> int:
    if not args.path.is_file():
        raise UsageError(f"файл не найден: {args.path}")
    if args.path.suffix.lower() not in (".csv", ".xlsx"):
        raise UsageError(f"ожидается файл .csv или .xlsx, получено {args.path.name!r}")
    from openads.commands.exchange import import_housing_cmd

    app_settings = settings()
    db = database(app_settings.database_url)
    try:
        result = import_housing_cmd(db, args.org, args.path, args.dry_run, _progress(args.quiet),
                                    var_dir=app_settings.var_dir)
    finally:
        db.dispose()
        if not args.quiet:
            print(file=sys.stderr)
    return _finish(result)


def journal_args(args: argparse.Namespace) -> dict[str, str]:
    """The journal's query-string arguments (web/journal_args.py names) from the options."""
    values: dict[str, str] = {}
    if args.status:
        values["status"] = ",".join(dict.fromkeys(args.status))
    for name in ("emergency", "overdue"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    for _option, key, _text in JOURNAL_FILTERS:
        raw = getattr(args, key)
        if raw not in (None, ""):
            values[key] = str(raw).strip()
    return values


def run_export(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.suffix.lower() != ".xlsx":
        raise UsageError(f"--out: ожидается имя файла .xlsx, получено {out.name!r}")
    if not out.parent.exists():
        raise UsageError(f"--out: нет каталога {out.parent}")
    from openads.commands.exchange import export_journal_cmd

    db = database(settings().database_url)
    try:
        result = export_journal_cmd(db, list(dict.fromkeys(args.org)), journal_args(args), out)
    finally:
        db.dispose()
    return _finish(result)


def run_export_calls(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.suffix.lower() != ".xlsx":
        raise UsageError(f"--out: ожидается имя файла .xlsx, получено {out.name!r}")
    if not out.parent.exists():
        raise UsageError(f"--out: нет каталога {out.parent}")
    from openads.commands.exchange import export_calls_cmd

    values: dict[str, Any] = {"from": args.from_, "to": args.to, "direction": args.direction,
                              "outcome": list(args.outcome), "phone": args.phone}
    db = database(settings().database_url)
    try:
        result = export_calls_cmd(db, list(dict.fromkeys(args.org)), values, out)
    finally:
        db.dispose()
    return _finish(result)
