"""Houses: address search (paged) and the house card with premises and per-house notes.
An executor sees only the houses of the tickets assigned to them (`models.access`)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from typing import Any

from flask import request
from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session, selectinload

from models import access
from models.base import INT_MAX
from models.errors import ValidationFailed
from models.housing import House
from models.queries import contains
from web.api.v1 import bp
from web.api.v1 import common as c
from web.auth import require_user
from web.dbsession import session as db_session
from web.inputs import optional_int
from web.journal_args import MAX_LIMIT


def house_json(h: House) -> dict[str, Any]:
    return {
        "id": h.id, "organization_id": h.organization_id, "address": h.address, "fias_id": h.fias_id,
        "latitude": h.latitude, "longitude": h.longitude,
    }


def _encode(h: House) -> str:
    return base64.urlsafe_b64encode(json.dumps([h.address, h.id]).encode()).decode().rstrip("=")


def _decode(raw: str) -> tuple[str, int]:
    try:
        address, hid = json.loads(base64.urlsafe_b64decode((raw + "=" * (-len(raw) % 4)).encode()))
        address, hid = str(address), int(hid)
    except Exception as exc:
        raise ValidationFailed("неверный курсор страницы", field="cursor") from exc
    if not 0 < hid <= INT_MAX:  # no house has it: the query must not get it either
        raise ValidationFailed("неверный курсор страницы", field="cursor")
    return address, hid


def houses_page(session: Session, org_ids: Iterable[int], *, q: str, organization_id: int | None,
                after: tuple[str, int] | None, limit: int,
                where: Sequence[ColumnElement[bool]] = ()) -> list[House]:
    """Houses of `org_ids` by address words, ordered by (address, id), rows strictly after `after`;
    `where` narrows further (`models.access`)."""
    ids = list(org_ids)
    if organization_id is not None:
        ids = [i for i in ids if i == organization_id]
    if not ids:
        return []
    stmt = select(House).where(House.organization_id.in_(ids), *where)
    for word in q.split():
        stmt = stmt.where(House.address.ilike(contains(word), escape="\\"))
    if after is not None:
        address, hid = after
        stmt = stmt.where(or_(House.address > address, and_(House.address == address, House.id > hid)))
    return list(session.scalars(stmt.order_by(House.address, House.id).limit(limit)))


@bp.get("/houses")
def list_houses() -> Any:
    user = require_user()
    limit = optional_int(request.args.get("limit"), "limit")
    limit = 50 if limit is None else limit
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit должен быть от 1 до {MAX_LIMIT}", field="limit", value=limit)
    cursor = request.args.get("cursor", "").strip()
    organization_id = optional_int(request.args.get("organization_id"), "organization_id")
    rows = houses_page(
        db_session(), c.user_orgs(user), q=request.args.get("q", "").strip()[:200],
        organization_id=organization_id, after=_decode(cursor) if cursor else None, limit=limit + 1,
        where=access.house_conditions(user),
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [house_json(h) for h in rows], "next_cursor": _encode(rows[-1]) if more else None}


@bp.get("/houses/<int:house_id>")
def get_house(house_id: int) -> Any:
    user = require_user()
    house = access.visible_house(db_session(), user, house_id,
                                 options=(selectinload(House.premises), selectinload(House.notes)))
    out = house_json(house)
    out["premises"] = [
        {"id": p.id, "number": p.number, "kind": p.kind, "entrance": p.entrance, "floor": p.floor}
        for p in house.premises
    ]
    out["notes"] = [{"id": n.id, "text": n.text, "created_at": c.utc_iso(n.created_at)} for n in house.notes]
    return out
