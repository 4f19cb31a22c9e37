"""The caller's organizations, their ticket categories and executors (the pickers of a client)."""

from __future__ import annotations

from typing import Any

from flask import request

from models.queries import categories, executor_org_ids, executors, organizations
from web.api.v1 import bp
from web.api.v1 import common as c
from web.auth import require_user
from web.dbsession import session as db_session
from web.inputs import optional_int


def _scope(ids: list[int]) -> list[int]:
    """The user's organizations, narrowed by ?organization_id= (another organization: nothing)."""
    wanted = optional_int(request.args.get("organization_id"), "organization_id")
    return ids if wanted is None else [i for i in ids if i == wanted]


@bp.get("/organizations")
def list_organizations() -> Any:
    user = require_user()
    return {
        "items": [
            {"id": o.id, "name": o.name, "short_name": o.short_name, "kind": o.kind, "timezone": o.timezone,
             "hotline_numbers": o.hotlines}
            for o in organizations(db_session(), c.user_orgs(user))
        ]
    }


@bp.get("/categories")
def list_categories() -> Any:
    user = require_user()
    ids = _scope(c.user_orgs(user))
    if not ids:
        return {"items": []}
    return {
        "items": [
            {
                "id": cat.id, "organization_id": cat.organization_id, "code": cat.code, "name": cat.name,
                "is_emergency": cat.is_emergency, "localize_minutes": cat.localize_minutes,
                "resolve_minutes": cat.resolve_minutes,
                "window_start": cat.window_start.strftime("%H:%M") if cat.window_start else None,
                "window_end": cat.window_end.strftime("%H:%M") if cat.window_end else None,
            }
            for cat in categories(db_session(), ids)
        ]
    }


@bp.get("/executors")
def list_executors() -> Any:
    user = c.reader()
    ids = _scope(c.user_orgs(user))
    if not ids:
        return {"items": []}
    s = db_session()
    people = executors(s, ids)
    orgs = executor_org_ids(s, [u.id for u in people])
    return {
        "items": [
            {"id": u.id, "full_name": u.full_name, "organization_ids": sorted(orgs.get(u.id, set()) & set(ids))}
            for u in people
        ]
    }
