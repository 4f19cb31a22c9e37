"""«Задания»: background jobs in the panel (decision 0030).

A long operation (a housing file's check and import, a journal export) is queued by its form, which
answers at once with a redirect here; `openads worker` runs it. The job's page shows a progress bar
updated live by the event stream (`job.progress`, `job.finished`; a poll of `/jobs/<id>/progress`
is the floor), then the result: the import's counts and every row's problems with row numbers, a
failure's Russian message, the export's download. The user may leave and come back: the list holds
their jobs (an admin's or manager's: every job of their organizations).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, send_file, url_for
from sqlalchemy import select

from models.base import utcnow
from models.errors import NotFound, ValidationFailed
from models.export import MIMETYPE
from models.job import EXPORT_KINDS, Job, JobKind, JobStatus
from models.organization import Role, User
from models.rules import access
from models.rules.housing_rows import FIELD_TITLES_RU
from models.services.housing_import import ImportReport
from models.services.jobs import enqueue_job, update_result, visible_job, visible_jobs
from openads.jobs import uploads
from web import sse  # web.sse imports web.panel: the module, not its names, at import time
from web.auth import login_required
from web.dbsession import session as db_session
from web.panel import bp
from web.panel.common import my_orgs, settings, user

IMPORT_ROLES = (Role.ADMIN, Role.MANAGER)
# A job queued longer than this without a runner picking it up: the page says the worker may be down.
WAITING_HINT_SECONDS = 30
REPORT_KINDS = (JobKind.HOUSING_CHECK, JobKind.HOUSING_IMPORT)


def _job(job_id: int) -> Job:
    return visible_job(db_session(), user(), job_id)


@bp.get("/jobs")
@login_required()
def jobs_list() -> Any:
    s = db_session()
    jobs = visible_jobs(s, user())
    return render_template("jobs/list.html", jobs=jobs, requesters=_requesters(jobs), orgs=_orgs())


def _orgs() -> dict[int, Any]:
    return {o.id: o for o in my_orgs()}


def _requesters(jobs: list[Job]) -> dict[int, str]:
    ids = {j.requested_by_id for j in jobs if j.requested_by_id is not None}
    if not ids:
        return {}
    return {uid: name for uid, name in db_session().execute(select(User.id, User.full_name).where(User.id.in_(ids)))}


def _report(job: Job) -> ImportReport | None:
    if job.kind not in REPORT_KINDS or not job.result:
        return None
    return ImportReport.from_state(job.result)


def progress_data(job: Job) -> dict[str, Any]:
    return {"job_id": job.id, "status": str(job.status), "done": job.progress_done, "total": job.progress_total,
            "percent": job.percent, "finished": job.finished, "error": job.error}


@bp.get("/jobs/<int:job_id>")
@login_required()
def job_page(job_id: int) -> Any:
    job = _job(job_id)
    s = db_session()
    waiting = None
    if job.status == JobStatus.QUEUED:
        waiting = (utcnow() - job.created_at).total_seconds() > WAITING_HINT_SECONDS
    applied_job = None
    if job.kind == JobKind.HOUSING_CHECK and job.result.get("applied_job_id"):
        try:
            applied_job = visible_job(s, user(), int(job.result["applied_job_id"]))
        except NotFound:
            applied_job = None
    return render_template(
        "jobs/job.html", job=job, report=_report(job), field_titles=FIELD_TITLES_RU, waiting=waiting,
        requesters=_requesters([job]), orgs=_orgs(), applied_job=applied_job, may_import=user().role in IMPORT_ROLES,
        last_event_id=sse.current_max_id(s, user().organization_ids),
    )


@bp.get("/jobs/<int:job_id>/progress")
@login_required()
def job_progress(job_id: int) -> Any:
    response = jsonify(progress_data(_job(job_id)))
    response.headers["Cache-Control"] = "no-store"
    return response


def _check_for_import(job_id: int) -> Job:
    job = _job(job_id)
    if job.kind != JobKind.HOUSING_CHECK:
        raise NotFound("задание не найдено", job_id=job_id)
    if user().role not in IMPORT_ROLES:
        abort(403)
    return job


@bp.post("/jobs/<int:job_id>/apply")
@login_required(IMPORT_ROLES)
def job_apply(job_id: int) -> Any:
    """Import the file a finished check read: a new job, redirected to."""
    check = _check_for_import(job_id)
    s = db_session()
    if check.result.get("applied_job_id"):
        return redirect(url_for("panel.job_page", job_id=int(check.result["applied_job_id"])))
    if check.status != JobStatus.DONE or check.result.get("discarded") or check.result.get("file_deleted"):
        raise ValidationFailed("этот файл больше не хранится: загрузите его заново", job_id=job_id)
    if not int(check.result.get("rows_ok") or 0):
        raise ValidationFailed("в файле нет строк без ошибок: загружать нечего", job_id=job_id)
    job = enqueue_job(
        s, org_id=check.organization_id, kind=JobKind.HOUSING_IMPORT, by=user(),
        params={"file": check.params.get("file"), "filename": check.params.get("filename"), "check_job_id": check.id},
        total=int(check.result.get("rows_total") or 0) or None,
    )
    update_result(s, check, applied_job_id=job.id)
    return redirect(url_for("panel.job_page", job_id=job.id))


@bp.post("/jobs/<int:job_id>/discard")
@login_required(IMPORT_ROLES)
def job_discard(job_id: int) -> Any:
    """Do not import a checked file: the upload is deleted now."""
    check = _check_for_import(job_id)
    if check.result.get("applied_job_id"):
        raise ValidationFailed("файл уже загружается: отменить нельзя", job_id=job_id)
    if check.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        raise ValidationFailed("файл ещё проверяется: дождитесь окончания проверки", job_id=job_id)
    uploads.remove(Path(settings().var_dir), str(check.params.get("file") or ""))
    update_result(db_session(), check, discarded=True)
    flash("Загрузка отменена, ничего не изменено.", "ok")
    return redirect(url_for("panel.import_housing"))


@bp.get("/jobs/<int:job_id>/file")
@login_required()
def job_file(job_id: int) -> Any:
    """An export's file: for those who see the job and every organization it covers."""
    job = _job(job_id)
    if job.kind not in EXPORT_KINDS or job.status != JobStatus.DONE or not job.result.get("file"):
        raise NotFound("файл не найден", job_id=job_id)
    if job.kind == JobKind.CALLS_EXPORT and user().role not in access.CALL_RECORDS:
        raise NotFound("файл не найден", job_id=job_id)  # calls carry residents' data: staff and inspectors
    covered = {int(i) for i in job.params.get("org_ids") or [job.organization_id]}
    if not covered <= set(user().organization_ids):
        raise NotFound("файл не найден", job_id=job_id)
    root = Path(settings().var_dir).resolve()
    path = (root / str(job.result["file"])).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFound("файл выгрузки удалён по сроку хранения: выгрузите журнал заново", job_id=job_id)
    response = send_file(path, mimetype=MIMETYPE, as_attachment=True,
                         download_name=str(job.result.get("filename") or path.name), max_age=0)
    response.headers["Cache-Control"] = "no-store"
    return response
