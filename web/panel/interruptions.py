"""«Отчёты → Перерывы в подаче услуг» (regulations D5): one month's interruptions of utilities per
house against the allowed limits of ПП 354 Appendix 1 (the organization's own where it set them),
with the hours over and the fee reduction they cost; the same table as an .xlsx. For managers,
administrators and inspectors of the organization (models/interruption_report.py)."""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, render_template, request
from werkzeug.datastructures import MultiDict

from models import interruption_report as report_model
from models.base import utcnow
from models.errors import ValidationFailed
from models.export import MIMETYPE, iter_tables_xlsx
from models.interruption_report import stretch_text
from models.organization import Organization
from models.rules import access
from models.rules.interruptions import (
    FEE_PERCENT_PER_HOUR,
    format_limit,
    hours_text,
    local_month,
    month_title,
    percent_text,
    recent_months,
)
from models.rules.utilities import utility_title
from web.auth import login_required, org_ids
from web.dbsession import session as db_session
from web.inputs import month_arg
from web.panel import bp
from web.panel.common import my_orgs
from web.panel.ratings import chosen_org_ids


def interruptions_scope(args: MultiDict[str, str], ids: list[int]) -> tuple[list[int], date]:
    """(organizations, the month's first day): `organization_id` narrows to one of the caller's
    organizations (another one is "not found"); `month` is ГГГГ-ММ, by default the current month of
    that organization (else of the first one)."""
    ids = chosen_org_ids(args, ids)
    month = month_arg(args.get("month"), "month")
    if month is None:
        month = local_month(utcnow(), _zone(ids))
    return ids, month


def _zone(ids: list[int]) -> ZoneInfo:
    """The time zone of the first of the organizations (Moscow for none)."""
    org = db_session().get(Organization, ids[0]) if ids else None
    return ZoneInfo(org.timezone if org else "Europe/Moscow")


def _scope() -> tuple[list[int], date, str | None]:
    try:
        return (*interruptions_scope(request.args, org_ids()), None)
    except ValidationFailed as exc:
        return (*interruptions_scope(MultiDict(), org_ids()), exc.message)


@bp.get("/reports/interruptions")
@login_required(access.ANALYTICS)
def interruptions_report() -> Any:
    orgs = my_orgs()
    ids, month, error = _scope()
    report = report_model.month_report(db_session(), org_ids=ids, month=month, now=utcnow())
    query = {"organization_id": request.args.get("organization_id", ""), "month": f"{month:%Y-%m}"}
    zones = {o.id: ZoneInfo(o.timezone) for o in orgs}
    months = recent_months(local_month(utcnow(), _zone(ids)))
    if month not in months:  # a month typed into the address: offered as chosen
        months.append(month)
    return render_template(
        "reports/interruptions.html", orgs=orgs, chosen_org=query["organization_id"], month=month, query=query,
        report=report, zones=zones, utility_title=utility_title, stretch_text=stretch_text, format_limit=format_limit,
        fee_per_hour=percent_text(FEE_PERCENT_PER_HOUR), error=error, several=len(orgs) > 1,
        months=sorted(months, reverse=True), month_title=month_title, hours_text=hours_text,
        percent_text=percent_text,
    ), 400 if error else 200


@bp.get("/reports/interruptions.xlsx")
@login_required(access.ANALYTICS)
def interruptions_xlsx() -> Any:
    ids, month = interruptions_scope(request.args, org_ids())
    now = utcnow()
    report = report_model.month_report(db_session(), org_ids=ids, month=month, now=now)
    zones = {o.id: ZoneInfo(o.timezone) for o in my_orgs()}
    table = report_model.xlsx_table(report, zones)
    body = b"".join(iter_tables_xlsx([table], tz=None, now=now))
    filename = f"interruptions-{month:%Y-%m}.xlsx"
    return Response(body, mimetype=MIMETYPE, headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                                      "Cache-Control": "no-store"})
