"""`openads recordings`: the retention purge now (the worker runs it daily), and deleting one
recording by hand with a reason; both write the purge log (decision 0035)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from openads.commands import UsageError, database, positive_int, settings


def register(sub: Any) -> None:
    p = sub.add_parser("recordings", help="записи разговоров: удаление по сроку хранения, удаление вручную")
    rs = p.add_subparsers(title="действия", metavar="ДЕЙСТВИЕ", required=True)
    purge = rs.add_parser("purge", help="удалить записи старше срока хранения сейчас (кроме заявок с запретом удаления)")
    purge.add_argument("--org", type=positive_int, metavar="ID", help="только эта организация (без него — все)")
    purge.set_defaults(handler=run_purge)
    delete = rs.add_parser("delete", help="удалить одну запись вручную (с причиной, в журнал удаления)")
    delete.add_argument("recording_id", type=positive_int, metavar="ЗАПИСЬ")
    delete.add_argument("--org", type=positive_int, metavar="ID", required=True, help="организация записи")
    delete.add_argument("--reason", required=True, metavar="ТЕКСТ", help="причина удаления")
    delete.set_defaults(handler=run_delete)


def run_purge(args: argparse.Namespace) -> int:
    from models.services.recordings import purge_expired_recordings

    cfg = settings()
    db = database(cfg.database_url)
    try:
        purged = purge_expired_recordings(db, recordings_dir=Path(cfg.recordings_dir),
                                          org_ids=[args.org] if args.org else None)
    finally:
        db.dispose()
    print(f"Удалено записей по сроку хранения: {purged}")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    from models.errors import DomainError
    from models.services.recordings import purge_recording

    cfg = settings()
    db = database(cfg.database_url)
    try:
        purge_id = purge_recording(db, org_ids=[args.org], recording_id=args.recording_id, reason=args.reason,
                                   recordings_dir=Path(cfg.recordings_dir))
    except DomainError as exc:
        raise UsageError(exc.message) from None
    finally:
        db.dispose()
    print(f"Запись {args.recording_id} удалена; строка журнала удаления {purge_id}")
    return 0
