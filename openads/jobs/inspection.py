"""Inspection pack jobs (issue 14 item 2, decision 0038): the ZIP of registers for a period, built
by models/services/inspection.py `build_pack` in bounded read batches, written under the var dir's
exports (deleted with the other job files after `runner.FILE_RETENTION`), downloaded from the job's
page, the API or written out by `openads report inspection`."""

from __future__ import annotations

from datetime import date
from typing import Any

from models.organization import User
from models.pdf_tables import FontMissing
from models.services.inspection import build_pack
from openads.jobs.context import EXPORTS, JobContext, JobFailed


def pack(ctx: JobContext) -> tuple[dict[str, Any], int]:
    params = ctx.params
    try:
        day_from, day_to = date.fromisoformat(str(params["from"])), date.fromisoformat(str(params["to"]))
    except (KeyError, ValueError) as exc:
        raise JobFailed("в задании нет периода пакета") from exc
    requested_by = "командная строка"
    if ctx.claim.requested_by_id is not None:
        with ctx.db.read() as s:
            user = s.get(User, ctx.claim.requested_by_id)
            if user is None or not user.is_active or ctx.claim.organization_id not in user.organization_ids:
                raise JobFailed("пользователь, заказавший пакет, больше не работает в этой организации")
            requested_by = f"{user.full_name or user.login} ({user.role.value})"
    name = f"inspection-{ctx.claim.job_id}.zip"
    path = ctx.output_dir(EXPORTS) / name

    def progress(done: int, total: int) -> None:
        ctx.check_stop()
        ctx.progress(done, total)

    try:
        result = build_pack(ctx.db, org_id=ctx.claim.organization_id, day_from=day_from, day_to=day_to,
                            now=ctx.clock(), path=path, requested_by=requested_by, progress=progress)
    except FontMissing as exc:
        raise JobFailed(str(exc)) from exc
    filename = str(params.get("filename") or name)
    return {**result, "file": f"{EXPORTS}/{name}", "filename": filename}, int(result["tickets"])
