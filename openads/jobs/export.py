"""Export jobs: the filtered ticket journal, or the filtered calls journal, to an .xlsx file under
the var dir (decision 0004's streamed writer, read in batches of read sessions), downloaded from
the job's page.

The filter is the journal's query-string arguments as the user sent them, read again in the
worker for the organizations the user still belongs to, and narrowed as their role narrows the
journal (an executor: their own tickets), so a job never exports more than its requester sees now.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from models import access
from models.errors import DomainError
from models.export import count_journal, write_journal_xlsx
from models.export_calls import write_calls_xlsx
from models.organization import Organization, Role, User
from models.rules import access as rules_access
from openads.jobs.context import EXPORTS, JobContext, JobFailed


def _requester_orgs(ctx: JobContext, s: Session, refused: str,
                    roles: frozenset[Role] | None = None) -> tuple[User | None, list[tuple[int, str]]]:
    """The requester (None for a job nobody requested) and the job's organizations they still belong
    to, as (id, time zone); refused while they are gone, or their role is no longer in `roles`."""
    org_ids = [int(i) for i in ctx.params.get("org_ids") or [ctx.claim.organization_id]]
    user = None
    if ctx.claim.requested_by_id is not None:
        user = s.get(User, ctx.claim.requested_by_id)
        if user is None or not user.is_active or (roles is not None and user.role not in roles):
            raise JobFailed(refused)
        allowed = set(user.organization_ids)
        org_ids = [i for i in org_ids if i in allowed]
    orgs = [(o.id, o.timezone) for o in (s.get(Organization, i) for i in org_ids) if o is not None]
    if not orgs:
        raise JobFailed("нет доступа ни к одной из организаций выгрузки")
    return user, orgs


def _filter_args(params: dict[str, Any]) -> MultiDict[str, str]:
    """The journal's query-string arguments as the user sent them, without the page's own."""
    args: MultiDict[str, str] = MultiDict([(str(k), str(v)) for k, v in params.get("args") or []])
    args.pop("limit", None)
    args.pop("cursor", None)
    return args


def export(ctx: JobContext) -> tuple[dict[str, Any], int]:
    from web.journal_args import parse_journal_filter

    params = ctx.params
    with ctx.db.read() as s:
        user, orgs = _requester_orgs(ctx, s, "пользователь, заказавший выгрузку, больше не работает в системе")
        try:
            f = parse_journal_filter(_filter_args(params), ZoneInfo(orgs[0][1]))
        except DomainError as exc:
            raise JobFailed(exc.message) from exc
        if user is not None:
            f = access.scope_journal(user, f)
    ids = [oid for oid, _tz in orgs]
    now = ctx.clock()
    total = count_journal(ctx.db, ids, f, now)
    ctx.progress(0, total, force=True)
    name = f"{EXPORTS}/journal-{ctx.claim.job_id}.xlsx"
    path = ctx.output_dir(EXPORTS) / f"journal-{ctx.claim.job_id}.xlsx"

    def progress(rows: int) -> None:
        ctx.check_stop()
        ctx.progress(rows, max(total, rows))

    rows = write_journal_xlsx(ctx.db, ids, f, now, path, progress=progress)
    filename = str(params.get("filename") or f"journal-{ctx.claim.job_id}.xlsx")
    return {"file": name, "filename": filename, "rows": rows, "size": path.stat().st_size}, rows


def export_calls(ctx: JobContext) -> tuple[dict[str, Any], int]:
    """The calls journal's filter (its query-string arguments) for the organizations the requester
    still belongs to, and only while their role still reads call records."""
    from web.panel.calls import parse_call_filter

    params = ctx.params
    with ctx.db.read() as s:
        _user, orgs = _requester_orgs(ctx, s, "пользователь, заказавший выгрузку, больше не может её получить",
                                      rules_access.CALL_RECORDS)
    try:
        f = parse_call_filter(_filter_args(params), ZoneInfo(orgs[0][1]))
    except DomainError as exc:
        raise JobFailed(exc.message) from exc
    ids = [oid for oid, _tz in orgs]
    ctx.progress(0, None, force=True)
    name = f"{EXPORTS}/calls-{ctx.claim.job_id}.xlsx"
    path = ctx.output_dir(EXPORTS) / f"calls-{ctx.claim.job_id}.xlsx"

    def progress(rows: int) -> None:
        ctx.check_stop()
        ctx.progress(rows, None)

    rows = write_calls_xlsx(ctx.db, ids, f, ctx.clock(), path, progress=progress)
    filename = str(params.get("filename") or f"calls-{ctx.claim.job_id}.xlsx")
    return {"file": name, "filename": filename, "rows": rows, "size": path.stat().st_size}, rows
