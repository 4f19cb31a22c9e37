"""«Отчёты → Записи разговоров»: who played or downloaded recordings, and which recordings were
purged and by which rule (issue 14 item 4, decision 0035), for managers, administrators and
inspectors, by period, each log exportable to .xlsx."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, render_template, request
from werkzeug.datastructures import MultiDict

from models.base import utcnow
from models.errors import NotFound, ValidationFailed
from models.export import MIMETYPE, iter_table_xlsx
from models.rules import access
from models.services import recordings as rec_svc
from web.auth import login_required, org_ids
from web.dbsession import session as db_session
from web.panel import bp
from web.panel.common import my_orgs
from web.panel.ratings import rating_scope

PAGE_ROWS = 500
EXPORT_ROWS = 100_000
LOGS = {"access": "Доступ к записям", "purges": "Удаление записей"}


def _scope(args: MultiDict[str, str]) -> tuple[list[int], Any, Any, tuple[Any, Any], str | None]:
    try:
        return (*rating_scope(args, org_ids(), utcnow()), None)
    except ValidationFailed as exc:
        return (*rating_scope(MultiDict(), org_ids(), utcnow()), exc.message)


@bp.get("/reports/recordings")
@login_required(access.RECORDING_LOGS)
def recording_logs() -> Any:
    """Both logs for a period (local days of the chosen organization, last 30 days by default)."""
    orgs = my_orgs()
    ids, day_from, day_to, period, error = _scope(request.args)
    s = db_session()
    accesses = rec_svc.access_log(s, org_ids=ids, since=period[0], until=period[1], limit=PAGE_ROWS)
    purges = rec_svc.purge_log(s, org_ids=ids, since=period[0], until=period[1], limit=PAGE_ROWS)
    retention = {o.id: rec_svc.retention_days(s, o.id) for o in orgs if o.id in ids}
    query = {"organization_id": request.args.get("organization_id", ""), "from": day_from.isoformat(),
             "to": day_to.isoformat()}
    return render_template(
        "reports/recordings.html", orgs=orgs, org_map={o.id: o for o in orgs}, accesses=accesses, purges=purges,
        retention=retention, day_from=day_from, day_to=day_to, chosen_org=query["organization_id"], query=query,
        action_titles=rec_svc.ACTION_TITLES_RU, rule_titles=rec_svc.RULE_TITLES_RU, page_rows=PAGE_ROWS,
        error=error,
    ), 400 if error else 200


@bp.get("/reports/recordings.xlsx")
@login_required(access.RECORDING_LOGS)
def recording_logs_xlsx() -> Any:
    """One log (`log`: access or purges) for the period as .xlsx (times in the organization's zone)."""
    log = request.args.get("log", "")
    if log not in LOGS:
        raise NotFound("нет такого журнала", log=log)
    ids, day_from, day_to, period = rating_scope(request.args, org_ids(), utcnow())
    orgs = {o.id: o for o in my_orgs()}
    names = {oid: o.short_name for oid, o in orgs.items()}
    tz = ZoneInfo(orgs[ids[0]].timezone if ids[0] in orgs else "Europe/Moscow")
    s = db_session()
    if log == "access":
        columns = rec_svc.ACCESS_COLUMNS
        rows = [rec_svc.access_cells(r, names)
                for r in rec_svc.access_log(s, org_ids=ids, since=period[0], until=period[1], limit=EXPORT_ROWS)]
    else:
        columns = rec_svc.PURGE_COLUMNS
        rows = [rec_svc.purge_cells(r, names)
                for r in rec_svc.purge_log(s, org_ids=ids, since=period[0], until=period[1], limit=EXPORT_ROWS)]
    filename = f"recordings-{log}-{day_from.isoformat()}-{day_to.isoformat()}.xlsx"
    body = b"".join(iter_table_xlsx(LOGS[log], columns, rows, tz=tz, now=utcnow()))
    return Response(body, mimetype=MIMETYPE, headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                                      "Cache-Control": "no-store"})
