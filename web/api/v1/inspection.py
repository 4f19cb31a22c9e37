"""The inspection pack through the API (issue 14 item 2, decision 0038): POST queues the job (read
scope: the pack only reads; an inspector may), GET tells its progress, GET …/file gives the ZIP
(logged). Administrators, managers and inspectors of the organization; another organization's
pack is 404."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from flask import request, send_file
from pydantic import Field

from models.base import utcnow
from models.job import Job
from models.rules.access import Scope
from models.services import inspection
from web.api.v1 import bp
from web.api.v1 import common as c
from web.api.v1.schemas import Body, Out
from web.auth import api_scope, read_only_request, require_user
from web.dbsession import database
from web.dbsession import session as db_session


class InspectionPackCreate(Body):
    organization_id: int = Field(ge=1, le=2**31 - 1, description="Организация")
    date_from: date = Field(alias="from", description="Первый день периода (местный день организации)")
    date_to: date = Field(alias="to", description="Последний день периода включительно")


class InspectionPackOut(Out):
    job_id: int
    organization_id: int
    status: str = Field(description="queued, running, done, failed")
    period_from: str
    period_to: str
    done: int = Field(description="Сколько обработано (заявки периода и разделы)")
    total: int | None
    created_at: datetime
    finished_at: datetime | None
    error: str = Field(description="Почему не удалось (по-русски)")
    file_url: str | None = Field(description="Адрес ZIP, когда пакет готов")
    size: int | None
    sha256: str | None = Field(description="SHA-256 архива")
    chain_head_hash: str | None = Field(description="Голова цепочки хешей истории заявок на момент формирования")


REQUEST_MODELS = (InspectionPackCreate,)
RESPONSE_MODELS = (InspectionPackOut,)


def pack_json(job: Job) -> dict[str, Any]:
    result = job.result or {}
    ready = job.status.value == "done" and bool(result.get("file")) and not result.get("file_deleted")
    return {"job_id": job.id, "organization_id": job.organization_id, "status": job.status.value,
            "period_from": str(job.params.get("from", "")), "period_to": str(job.params.get("to", "")),
            "done": job.progress_done, "total": job.progress_total, "created_at": c.utc_iso(job.created_at),
            "finished_at": c.utc_iso(job.finished_at), "error": job.error,
            "file_url": f"/api/v1/inspection-packs/{job.id}/file" if ready else None,
            "size": result.get("size") if ready else None, "sha256": result.get("sha256") if ready else None,
            "chain_head_hash": (result.get("chain") or {}).get("head_hash")}


@bp.post("/inspection-packs")
@api_scope(Scope.READ)
@read_only_request
def inspection_pack_create() -> Any:
    user = require_user(inspection.ROLES)
    body = c.parse_body(InspectionPackCreate)
    job = inspection.request_pack(db_session(), org_id=body.organization_id, day_from=body.date_from,
                                  day_to=body.date_to, by=user, now=c.now())
    return pack_json(job), 202


@bp.get("/inspection-packs/<int:pack_id>")
def inspection_pack_status(pack_id: int) -> Any:
    user = require_user(inspection.ROLES)
    return pack_json(inspection.pack_job(db_session(), user, pack_id))


@bp.get("/inspection-packs/<int:pack_id>/file")
def inspection_pack_download(pack_id: int) -> Any:
    user = require_user(inspection.ROLES)
    from web.panel.common import settings

    with database().write() as ws:
        job = inspection.pack_job(ws, user, pack_id)
        path = inspection.pack_file(Path(settings().var_dir), job)
        inspection.record_download(ws, job, user=user, via="API", ip=request.remote_addr, now=utcnow())
        name = str(job.result.get("filename") or path.name)
    response = send_file(path, mimetype="application/zip", as_attachment=True, download_name=name, max_age=0)
    response.headers["Cache-Control"] = "no-store"
    return response
