"""«Отчёты → Пакет для проверки ГЖИ» (issue 14 item 2, decision 0038): a period and an organization,
one button; the pack is built as a background job (its page shows the progress) and downloaded
from there by users of the organization who read reports. The request is a POST that an inspector
may make (`read_only_request`): it queues a job that only reads. Every download is logged."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import redirect, render_template, request, send_file, url_for

from models.base import utcnow
from models.errors import NotFound, ValidationFailed
from models.services import inspection
from web.auth import login_required, read_only_request
from web.dbsession import database
from web.dbsession import session as db_session
from web.inputs import day_arg, optional_int
from web.panel import bp
from web.panel.common import my_orgs, settings, user

ZIP = "application/zip"


def _form(values: dict[str, str], error: str | None = None, status: int = 200) -> Any:
    orgs = my_orgs()
    if not values.get("from") or not values.get("to"):
        tz = ZoneInfo(orgs[0].timezone if orgs else "Europe/Moscow")
        today = utcnow().astimezone(tz).date()
        first = today.replace(day=1)
        previous_end = first - timedelta(days=1)
        values = {"from": previous_end.replace(day=1).isoformat(), "to": previous_end.isoformat(), **{
            k: v for k, v in values.items() if v}}
    return render_template("reports/inspection.html", orgs=orgs, values=values, error=error), status


@bp.get("/reports/inspection")
@login_required(inspection.ROLES)
def inspection_pack() -> Any:
    return _form({})


@bp.post("/reports/inspection")
@login_required(inspection.ROLES)
@read_only_request
def inspection_pack_request() -> Any:
    """Queue the pack; an inspector may (it changes nothing but adds the job)."""
    values = {k: (request.form.get(k) or "").strip() for k in ("organization_id", "from", "to")}
    orgs = my_orgs()
    if not orgs:
        raise NotFound("нет доступных организаций")
    try:
        org_id = optional_int(values["organization_id"], "organization_id") if len(orgs) > 1 else orgs[0].id
        if org_id is None:
            raise ValidationFailed("выберите организацию", field="organization_id")
        job = inspection.request_pack(db_session(), org_id=org_id, day_from=day_arg(values["from"], "from"),
                                      day_to=day_arg(values["to"], "to"), by=user(), now=utcnow())
    except ValidationFailed as exc:
        return _form(values, exc.message, 400)
    return redirect(url_for("panel.job_page", job_id=job.id))


@bp.get("/reports/inspection/<int:pack_id>.zip")
@login_required(inspection.ROLES)
def inspection_pack_file(pack_id: int) -> Any:
    """The finished pack, for users of its organization who read reports; the download is logged
    (in its own write transaction: the request's GET session only reads)."""
    var_dir = Path(settings().var_dir)
    with database().write() as ws:
        job = inspection.pack_job(ws, user(), pack_id)
        path = inspection.pack_file(var_dir, job)
        inspection.record_download(ws, job, user=user(), via="панель", ip=request.remote_addr, now=utcnow())
        name = str(job.result.get("filename") or path.name)
    response = send_file(path, mimetype=ZIP, as_attachment=True, download_name=name, max_age=0)
    response.headers["Cache-Control"] = "no-store"
    return response
