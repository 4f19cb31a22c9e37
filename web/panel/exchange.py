"""Journal export to .xlsx and housing stock import (upload → preview → confirm → result)."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

from flask import Response, render_template, request, stream_with_context

from models.base import utcnow
from models.errors import ImportFailed, NotFound, ValidationFailed
from models.export import MIMETYPE, iter_journal_xlsx
from models.files import open_private, private_dir, write_private
from models.organization import Role
from models.services.housing_import import FIELD_TITLES_RU, apply_import, parse_housing_file, preview_import
from web.auth import login_required
from web.dbsession import database
from web.dbsession import session as db_session
from web.journal_args import parse_journal_filter
from web.panel import bp
from web.panel.common import filter_args, filter_tz, my_orgs, org_by_id, scope_journal, settings, user

IMPORT_ROLES = (Role.ADMIN, Role.MANAGER)
ALLOWED_SUFFIXES = (".csv", ".xlsx")
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


@bp.get("/journal/export.xlsx")
@login_required()
def export_journal() -> Any:
    """The filtered journal (all pages) as a streamed .xlsx; scoped to the caller's organizations."""
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


def _imports_dir() -> Path:
    return private_dir(Path(settings().var_dir) / "imports")


def _stored(token: str) -> tuple[Path, dict[str, Any]]:
    """The uploaded file kept between preview and confirmation; only its uploader may use it."""
    if not TOKEN_RE.match(token or ""):
        raise NotFound("загрузка не найдена или устарела: загрузите файл заново")
    meta_path = _imports_dir() / f"{token}.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NotFound("загрузка не найдена или устарела: загрузите файл заново") from exc
    data = _imports_dir() / f"{token}{meta.get('suffix', '')}"
    if meta.get("user_id") != user().id or not data.is_file():
        raise NotFound("загрузка не найдена или устарела: загрузите файл заново")
    return data, meta


def _discard(token: str, meta: dict[str, Any]) -> None:
    for path in (_imports_dir() / f"{token}{meta.get('suffix', '')}", _imports_dir() / f"{token}.json"):
        path.unlink(missing_ok=True)


def _save_upload() -> tuple[str, Path, dict[str, Any]]:
    upload = request.files.get("file")  # an oversized body raises 413 here (MAX_CONTENT_LENGTH)
    if upload is None or not upload.filename:
        raise ValidationFailed("выберите файл .csv или .xlsx", field="file")
    suffix = Path(upload.filename).suffix.lower()
    if suffix not in ALLOWED_SUFFIXES:
        raise ImportFailed("поддерживаются файлы .csv и .xlsx", filename=upload.filename)
    org = org_by_id(request.form.get("organization_id"))
    token = secrets.token_urlsafe(24)
    path = _imports_dir() / f"{token}{suffix}"
    with open_private(path) as out:  # residents' names and phones: 0640 like the database
        upload.save(out)
    meta = {"user_id": user().id, "organization_id": org.id, "filename": upload.filename, "suffix": suffix}
    write_private(_imports_dir() / f"{token}.json", json.dumps(meta, ensure_ascii=False).encode())
    return token, path, meta


@bp.route("/housing/import", methods=["GET", "POST"])
@login_required(IMPORT_ROLES)
def import_housing() -> Any:
    """GET: the upload form. POST with a file: preview (nothing written). POST with `token`: apply."""
    orgs = my_orgs()
    if request.method == "GET":
        return render_template("exchange/import_form.html", orgs=orgs)
    session = db_session()
    token = (request.form.get("token") or "").strip()
    if token:
        path, meta = _stored(token)
        org = org_by_id(meta["organization_id"])
        if request.form.get("action") == "cancel":
            _discard(token, meta)
            return render_template("exchange/import_form.html", orgs=orgs, cancelled=True)
        report = apply_import(session, org, parse_housing_file(path, meta["filename"]))
        session.flush()
        _discard(token, meta)
        return render_template("exchange/import_result.html", report=report, org=org, filename=meta["filename"])
    token, path, meta = _save_upload()
    org = org_by_id(meta["organization_id"])
    try:
        report = preview_import(session, org, parse_housing_file(path, meta["filename"]))
    except ImportFailed:
        _discard(token, meta)
        raise
    session.rollback()  # a preview never writes
    return render_template("exchange/import_preview.html", report=report, org=org, token=token,
                           filename=meta["filename"], field_titles=FIELD_TITLES_RU)

