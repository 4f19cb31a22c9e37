"""`openads audit`: the audit log of settings changes (models/services/audit.py), newest first."""

from __future__ import annotations

import argparse
import sys
from typing import Any
from zoneinfo import ZoneInfo

from openads.commands import UsageError, positive_int
from openads.commands.org import _org, _session


def register(sub: Any) -> None:
    p = sub.add_parser("audit", help="журнал изменений настроек (кто, когда, что, было, стало)")
    p.add_argument("--org", type=positive_int, metavar="ID", help="только эта организация (без него — все записи)")
    p.add_argument("--object", metavar="ВИД", help="только этот вид объекта: organization, category, robot_settings, "
                                                   "telephony_settings, ...")
    p.add_argument("--object-id", type=positive_int, metavar="ID", help="только этот объект")
    p.add_argument("--limit", type=positive_int, default=50, help="сколько записей (по умолчанию 50)")
    p.set_defaults(handler=run_audit)
    verbs = p.add_subparsers(dest="audit_verb", metavar="verify")
    v = verbs.add_parser("verify", help="проверить цепочки хешей истории заявок, звонков и сообщений "
                                         "(не изменены ли задним числом)")
    v.add_argument("--org", type=positive_int, metavar="ID", help="только эта организация (без него — все)")
    v.set_defaults(handler=run_verify)


def run_audit(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from models.audit import AuditEntry
    from models.organization import Organization
    from models.rules.audit import field_title, object_title

    if args.limit > 10_000:
        raise UsageError("--limit: не больше 10000")
    with _session(False) as s:
        stmt = select(AuditEntry)
        if args.org is not None:
            stmt = stmt.where(AuditEntry.organization_id == _org(s, args.org).id)
        if args.object:
            stmt = stmt.where(AuditEntry.object_type == args.object)
        if args.object_id:
            stmt = stmt.where(AuditEntry.object_id == args.object_id)
        rows = s.scalars(stmt.order_by(AuditEntry.id.desc()).limit(args.limit)).all()
        zones = {oid: tz for oid, tz in s.execute(select(Organization.id, Organization.timezone))}
        if not rows:
            print("Записей нет.")
        for e in rows:
            tz = zones.get(e.organization_id or 0, "UTC")
            at = e.at.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")
            what = object_title(e.object_type) + (f" «{e.object_label}»" if e.object_label else "")
            old = e.old_value if e.old_value is not None else "—"
            new = e.new_value if e.new_value is not None else "—"
            print(f"{at} ({tz})\t{e.actor_name}\t{what}\t{field_title(e.object_type, e.field)}: {old} → {new}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    """Recompute each organization's chains (the ticket history, models/chain.py; the sealed calls
    and messages, models/seals.py): the head when intact, the first broken link otherwise (exit 1)."""
    from sqlalchemy import select

    from models import seals
    from models.organization import Organization

    broken = 0
    with _session(False) as s:
        if args.org is not None:
            org = _org(s, args.org)
            orgs = [(org.id, org.name)]
        else:
            orgs = list(s.execute(select(Organization.id, Organization.name).order_by(Organization.id)))
        if not orgs:
            print("Организаций нет.")
        for org_id, name in orgs:
            reports = seals.verify_all(s.connection(), org_id)
            for report in reports:
                print(f"Организация {org_id} «{name}»: {describe(report)}")
            broken += not all(r.intact for r in reports)
    if broken:
        print(f"Цепочка нарушена в организациях: {broken}.", file=sys.stderr)
        return 1
    return 0


_CHAINS = {  # chain -> (its name, what its entries are, what a broken entry is)
    "ticket_history": ("цепочка истории заявок", "записей", "запись истории"),
    "calls": ("цепочка звонков", "печатей", "звонок"),
    "notices": ("цепочка сообщений", "печатей", "сообщение"),
}


def describe(report: Any) -> str:
    """One chain of one organization verified, in Russian (the CLI; the API gives the fields)."""
    title, entries, entry = _CHAINS[report.chain]
    if report.intact:
        return f"{title} цела, {entries} {report.rows}, последний хеш {report.last_hash}"
    if report.broken_at is None:
        where = f"конец цепочки (голова № {report.broken_seq})"
    elif report.broken_seq is None:
        where = f"{entry} id {report.broken_at}"
    else:
        where = f"{entry} id {report.broken_at} (№ {report.broken_seq} в цепочке)"
    return (f"ЦЕПОЧКА НАРУШЕНА — {title}: {where}: {report.problem}; ожидался хеш {report.expected or '—'}, "
            f"записан {report.stored or '—'}; последняя верная запись № {report.last_seq}")
