"""Journal export to .xlsx (streamed at once, or as a background job) and housing stock import
(upload → a check job → confirm → an import job; web/panel/jobs.py shows them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Response, redirect, render_template, request, stream_with_context, url_for

from models.base import utcnow
from models.errors import NotFound
from models.export import MIMETYPE, iter_journal_xlsx
from models.job import JobKind
from models.organization import Role
from models.services.jobs import enqueue_job, visible_jobs
from openads.jobs import uploads
from web.auth import login_required
from web.dbsession import database
from web.dbsession import session as db_session
from web.journal_args import parse_journal_filter
from web.panel import bp
from web.panel.common import filter_args, filter_tz, my_orgs, org_by_id, scope_journal, settings, user

IMPORT_ROLES = (Role.ADMIN, Role.MANAGER)
ALLOWED_SUFFIXES = (".csv", ".xlsx")


@bp.get("/journal/export.xlsx")
@login_required()
def export_journal() -> Any:
    """The filtered journal (all pages) as a streamed .xlsx; scoped to the caller's organizations.
    For scripts and small sets: the panel's button queues a job instead (`export_journal_job`)."""
    orgs = my_orgs()
    ids = [o.id for o in orgs]
    if not ids:
        raise NotFound("нет доступных организаций")
    args = filter_args(request.args)
    f = scope_journal(parse_journal_filter(args, filter_tz(args, orgs)))
    if f.organization_id is not None and f.organization_id not in ids:
        raise NotFound("организация не найдена", organization_id=f.organization_id)
    now = utcnow()
    tz = filter_tz(args, orgs)
    filename = f"journal-{now.astimezone(tz).date().isoformat()}.xlsx"
    body = iter_journal_xlsx(database(), ids, f, now)  # each batch opens its own read session
    return Response(
        stream_with_context(body),
        mimetype=MIMETYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


def _import_form(orgs: list[Any], error: str | None = None, status: int = 200) -> Any:
    recent = [j for j in visible_jobs(db_session(), user(), limit=20)
              if j.kind in (JobKind.HOUSING_CHECK, JobKind.HOUSING_IMPORT)][:10]
    return render_template("exchange/import_form.html", orgs=orgs, error=error, recent=recent), status


@bp.route("/housing/import", methods=["GET", "POST"])
@login_required(IMPORT_ROLES)
def import_housing() -> Any:
    """GET: the upload form. POST: the file is stored and its check queued; the answer is at once a
    redirect to the job's page (progress, then what would change, and the button that imports)."""
    orgs = my_orgs()
    if request.method == "GET":
        return _import_form(orgs)
    upload = request.files.get("file")  # an oversized body raises 413 here (MAX_CONTENT_LENGTH)
    if upload is None or not upload.filename:
        return _import_form(orgs, "Выберите файл .csv или .xlsx.", 400)
    suffix = Path(upload.filename).suffix.lower()
    if suffix not in ALLOWED_SUFFIXES:
        return _import_form(orgs, f"Файл «{upload.filename}» не подходит: поддерживаются файлы .csv и .xlsx.", 400)
    org = org_by_id(request.form.get("organization_id"))
    name = uploads.store_upload(Path(settings().var_dir), suffix, upload.save)
    job = enqueue_job(db_session(), org_id=org.id, kind=JobKind.HOUSING_CHECK, by=user(),
                      params={"file": name, "filename": Path(upload.filename).name})
    return redirect(url_for("panel.job_page", job_id=job.id))


@bp.post("/journal/export")
@login_required()
def export_journal_job() -> Any:
    """The filtered journal (the form's filter arguments) exported in the background: a job,
    redirected to; its page offers the file when it is written."""
    orgs = my_orgs()
    ids = [o.id for o in orgs]
    if not ids:
        raise NotFound("нет доступных организаций")
    args = filter_args(request.form)
    tz = filter_tz(args, orgs)
    f = scope_journal(parse_journal_filter(args, tz))  # a bad filter is refused now, not in the worker
    if f.organization_id is not None and f.organization_id not in ids:
        raise NotFound("организация не найдена", organization_id=f.organization_id)
    covered = [f.organization_id] if f.organization_id is not None else sorted(ids)
    filename = f"journal-{utcnow().astimezone(tz).date().isoformat()}.xlsx"
    job = enqueue_job(db_session(), org_id=covered[0], kind=JobKind.JOURNAL_EXPORT, by=user(),
                      params={"args": [[k, v] for k, v in args.items(multi=True)], "org_ids": covered,
                              "filename": filename})
    return redirect(url_for("panel.job_page", job_id=job.id))
