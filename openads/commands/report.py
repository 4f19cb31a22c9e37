"""`openads report inspection --org ID --from ГГГГ-ММ-ДД --to ГГГГ-ММ-ДД [--out файл.zip]`: the
inspection pack (issue 14 item 2, decision 0038) built here and now, as the same background job the
panel and the API queue (claimed by this process in the transaction that queues it, so no worker
takes it; listed in «Задания» as the system's), then copied to `--out` (the download is logged)."""

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


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="отчёты: пакет документов для проверки ГЖИ")
    kinds = p.add_subparsers(dest="report_kind", metavar="inspection")
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
