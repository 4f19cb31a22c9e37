"""Residents: the caller lookup by phone (any spelling, matched in E.164) and one resident by id."""

from __future__ import annotations

from typing import Any

from flask import request
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

from models.errors import NotFound, ValidationFailed
from models.housing import Premise, Resident
from models.queries import open_tickets_of, residents_by_phone
from models.rules.phones import try_e164
from models.rules.ticket_states import STATUS_TITLES_RU
from web.api.v1 import bp
from web.api.v1 import common as c
from web.dbsession import session as db_session


def resident_json(session: Session, r: Resident) -> dict[str, Any]:
    premise = r.premise
    house = premise.house if premise else None
    tickets = open_tickets_of(
        session, [r.organization_id], premise_id=premise.id if premise else None, house_id=None
    ) if premise else []
    return {
        "id": r.id,
        "organization_id": r.organization_id,
        "full_name": r.full_name,
        "note": r.note or "",
        "email": r.email,
        "phones": [{"phone": p.phone, "label": p.label or ""} for p in r.phones],
        "premise": {"id": premise.id, "number": premise.number} if premise else None,
        "house": {"id": house.id, "address": house.address} if house else None,
        "account": r.account.number if r.account else None,
        "open_tickets": [
            {
                "id": t.id, "number": t.number, "status": t.status.value, "status_title": STATUS_TITLES_RU[t.status],
                "category": t.category.name, "registered_at": c.utc_iso(t.registered_at),
            }
            for t in tickets
        ],
    }


@bp.get("/residents")
def find_residents() -> Any:
    user = c.reader()
    raw = request.args.get("phone", "").strip()
    if not raw:
        raise ValidationFailed("укажите номер телефона: ?phone=", field="phone")
    if try_e164(raw) is None:
        raise ValidationFailed("некорректный номер телефона", field="phone", value=raw)
    ids = c.user_orgs(user)
    s = db_session()
    return {"items": [resident_json(s, r) for r in residents_by_phone(s, ids, raw)]}


@bp.get("/residents/<int:resident_id>")
def get_resident(resident_id: int) -> Any:
    user = c.reader()
    ids = c.user_orgs(user)
    s = db_session()
    resident = s.scalar(
        select(Resident).where(Resident.id == resident_id, Resident.organization_id.in_(ids))
        .options(selectinload(Resident.phones), joinedload(Resident.premise).joinedload(Premise.house),
                 joinedload(Resident.account))
    )
    if resident is None:
        raise NotFound("житель не найден", resident_id=resident_id)
    return resident_json(s, resident)
