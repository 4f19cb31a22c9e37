"""`openads report inspection --org ID --from ГГГГ-ММ-ДД --to ГГГГ-ММ-ДД [--out файл.zip]`: the
inspection pack (issue 14 item 2, decision 0038) built here and now, as the same background job the
panel and the API queue (claimed by this process in the transaction that queues it, so no worker
takes it; listed in «Задания» as the system's), then copied to `--out` (the download is logged).

`openads report interruptions --org ID [--month ГГГГ-ММ] [--out файл.xlsx]`: the month's
interruptions of utilities per house against ПП 354 Appendix 1 (regulations D5), printed, or written
as the panel's .xlsx."""

from __future__ import annotations

import argparse
import shutil
import sys
from datetime import date
from pathlib import Path
from typing import Any

from openads.commands import CommandError, UsageError, database, positive_int, run_job_here, settings


def _day(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"ожидается дата ГГГГ-ММ-ДД, получено «{raw}»") from None


def _month(raw: str) -> date:
    try:
        if len(raw) != 7:
            raise ValueError
        return date.fromisoformat(raw + "-01")
    except ValueError:
        raise argparse.ArgumentTypeError(f"ожидается месяц ГГГГ-ММ, получено «{raw}»") from None


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="отчёты: пакет документов для проверки ГЖИ")
    kinds = p.add_subparsers(dest="report_kind", metavar="inspection|interruptions")
    ins = kinds.add_parser("inspection", help="пакет для проверки ГЖИ за период (ZIP: журнал в Excel и PDF, "
                                              "нарушения, уведомления, оценки, журналы записей, контрольные суммы)")
    ins.add_argument("--org", required=True, type=positive_int, metavar="ID", help="id организации")
    ins.add_argument("--from", dest="day_from", required=True, type=_day, metavar="ГГГГ-ММ-ДД",
                     help="первый день периода (местный день организации)")
    ins.add_argument("--to", dest="day_to", required=True, type=_day, metavar="ГГГГ-ММ-ДД",
                     help="последний день периода включительно")
    ins.add_argument("--out", metavar="ФАЙЛ", help="куда записать ZIP (по умолчанию inspection-ORG-FROM-TO.zip "
                                                   "в текущем каталоге)")
    ins.add_argument("--quiet", action="store_true", help="не показывать ход работы")
    ins.set_defaults(handler=run_inspection)
    intr = kinds.add_parser("interruptions", help="перерывы в подаче коммунальных услуг за месяц по домам против "
                                                  "допустимых (приложение 1 к ПП № 354): сверх нормы и снижение платы")
    intr.add_argument("--org", required=True, type=positive_int, metavar="ID", help="id организации")
    intr.add_argument("--month", type=_month, metavar="ГГГГ-ММ", help="месяц (по умолчанию текущий месяц организации)")
    intr.add_argument("--out", metavar="ФАЙЛ", help="записать отчёт в Excel (.xlsx) вместо вывода на экран")
    intr.set_defaults(handler=run_interruptions)


def run_inspection(args: argparse.Namespace) -> int:
    from models.base import utcnow
    from models.job import Job, JobStatus
    from models.services import inspection
    from models.services.jobs import claim_job
    from openads.jobs import runner

    cfg = settings()
    var = Path(cfg.var_dir)
    db = database(cfg.database_url)
    try:
        token = runner.new_token()
        with db.write() as s:
            job = inspection.request_pack(s, org_id=args.org, day_from=args.day_from, day_to=args.day_to, by=None,
                                          now=utcnow())
            claim = claim_job(s, token=token, lease=runner.LEASE, job_id=job.id)
        assert claim is not None
        out = Path(args.out or str(job.params["filename"]))
        if out.exists() and out.is_dir():
            raise UsageError(f"--out: «{out}» — каталог, укажите имя файла")

        def tick(done: int, total: int | None) -> None:
            if not args.quiet:
                print(f"\rобработано: {done}" + (f" из {total}" if total else ""), end="", file=sys.stderr,
                      flush=True)

        try:
            status = run_job_here(db, claim, var_dir=var, recordings_dir=Path(cfg.recordings_dir), on_progress=tick)
        finally:
            if not args.quiet:
                print(file=sys.stderr)
        with db.write() as s:
            done = s.get(Job, claim.job_id)
            assert done is not None
            if status == JobStatus.FAILED:
                raise CommandError(f"пакет не сформирован: {done.error}")
            path = inspection.pack_file(var, done)
            shutil.copyfile(path, out)
            inspection.record_download(s, done, user=None, via="командная строка", ip=None, now=utcnow())
            result = dict(done.result)
    finally:
        db.dispose()
    chain = result.get("chain") or {}
    print(f"Пакет для проверки записан: {out} ({result.get('size')} байт, SHA-256 {result.get('sha256')})\n"
          f"заявок за период: {result.get('tickets')}; файлов: {len(result.get('files') or []) + 2}; "
          f"голова цепочки истории: № {chain.get('head_seq')} {chain.get('head_hash')}")
    return 0


def run_interruptions(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    from models.base import utcnow
    from models.export import iter_tables_xlsx
    from models.interruption_report import month_report, stretch_text, verdict, xlsx_table
    from models.organization import Organization
    from models.rules.interruptions import format_limit, hours_text, local_month, month_title, percent_text
    from models.rules.utilities import utility_title

    db = database(settings().database_url)
    try:
        with db.read() as s:
            org = s.get(Organization, args.org)
            if org is None:
                raise UsageError(f"нет организации с id {args.org}")
            tz, now = ZoneInfo(org.timezone), utcnow()
            month = args.month or local_month(now, tz)
            report = month_report(s, org_ids=[org.id], month=month, now=now)
            name = org.short_name
    finally:
        db.dispose()
    if args.out:
        out = Path(args.out)
        if out.is_dir():
            raise UsageError(f"--out: «{out}» — каталог, укажите имя файла")
        out.write_bytes(b"".join(iter_tables_xlsx([xlsx_table(report, {args.org: tz})], tz=None, now=now)))
        print(f"Отчёт записан: {out} (строк: {len(report.rows)}, с превышением: {report.breaches})")
        return 0
    print(f"{name}: перерывы в подаче коммунальных услуг, {month_title(month)}; строк: {len(report.rows)}, "
          f"с превышением: {report.breaches}")
    for r in report.rows:
        led = r.ledger
        print(f"\n{r.address} — {utility_title(led.utility)}: {verdict(led)}")
        print(f"  перерывы: {'; '.join(stretch_text(st, tz) for st in led.stretches)}")
        print(f"  всего за месяц {hours_text(led.total_hours)}, самый долгий {hours_text(led.longest_hours)} "
              f"(допустимо: {format_limit(led.limit)})")
        print(f"  сверх нормы {hours_text(led.hours_over)}, снижение платы {percent_text(led.fee_reduction_percent)}")
    return 0
