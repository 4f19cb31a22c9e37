"""Incidents (аварии) through the API, as on the panel's «Аварии» page: list, register, mark
localised and liquidated (the municipality's notices and the follow-up inspection ticket follow, as
from the panel), and tell the house's residents (regulations Q4). For a monitoring system or a
city's dispatch integration that opens accidents itself (regulations T6). Staff write; an inspector
reads; another organization's incident is 404."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from flask import request
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from models.errors import ValidationFailed
from models.rules.text_limits import max_length
from models.rules.utilities import UTILITY_TITLES_RU, utility_title
from models.services import incidents as svc
from models.services.tickets import tz_of
from models.ticket import Incident
from web.api.v1 import bp
from web.api.v1 import common as c
from web.api.v1.schemas import Body, Out
from web.dbsession import session as db_session
from web.inputs import Id, Moment, optional_int
from web.journal_args import MAX_LIMIT

UtilityCode = Literal[("", *UTILITY_TITLES_RU)]  # type: ignore[valid-type]


class IncidentCreate(Body):
    organization_id: Id | None = Field(None, description="Обязательна, если пользователь обслуживает несколько "
                                                         "организаций")
    house_id: Id
    title: str = Field(min_length=1, max_length=max_length("incident_title"), description="Что случилось")
    utility: UtilityCode = Field("", description="Ресурс: " + ", ".join(UTILITY_TITLES_RU) + "; пусто — не указан")
    announcement: str = Field("", max_length=max_length("incident_announcement"),
                              description="Что сообщать звонящим (и жителям в оповещении)")
    started_at: Moment | None = Field(None, description="Начало; по умолчанию — сейчас; не в будущем")
    expected_end_at: Moment | None = Field(None, description="Ожидаемое окончание")


class IncidentMark(Body):
    at: Moment | None = Field(None, description="Когда; по умолчанию — сейчас (от начала аварии до текущего момента)")


class ResidentsNotice(Body):
    event: Literal["incident", "restored"] = Field(
        description="incident — об аварии (пока она идёт), restored — об устранении (после ликвидации)")


class IncidentOut(Out):
    id: int
    organization_id: int
    house_id: int
    address: str
    title: str
    utility: str
    utility_title: str
    announcement: str
    started_at: datetime
    localized_at: datetime | None
    liquidated_at: datetime | None
    expected_end_at: datetime | None
    active: bool
    follow_up_ticket_id: int | None = Field(
        description="Заявка «Внеочередной осмотр общего имущества после аварии», созданная при ликвидации")


class IncidentList(Out):
    items: list[IncidentOut]


class ResidentsNoticeOut(Out):
    queued: int = Field(description="Сообщений поставлено в очередь сейчас")
    already: int = Field(description="Жителей, оповещённых раньше (повторно не оповещаются)")
    unreachable: int = Field(description="Без мобильного телефона и эл. почты или отказавшихся от уведомлений")


REQUEST_MODELS = (IncidentCreate, IncidentMark, ResidentsNotice)
RESPONSE_MODELS = (IncidentOut, IncidentList, ResidentsNoticeOut)


def _follow_ups(incident_ids: list[int]) -> dict[int, int]:
    return {i: t.id for i, t in svc.follow_up_tickets(db_session(), incident_ids).items()}


def incident_json(i: Incident, follow_ups: dict[int, int]) -> dict[str, Any]:
    return {
        "id": i.id, "organization_id": i.organization_id, "house_id": i.house_id, "address": i.house.address,
        "title": i.title, "utility": i.utility, "utility_title": utility_title(i.utility),
        "announcement": i.announcement, "started_at": c.utc_iso(i.started_at),
        "localized_at": c.utc_iso(i.localized_at), "liquidated_at": c.utc_iso(i.liquidated_at),
        "expected_end_at": c.utc_iso(i.expected_end_at), "active": i.active,
        "follow_up_ticket_id": follow_ups.get(i.id),
    }


def _one(incident: Incident, status: int = 200) -> tuple[dict[str, Any], int]:
    return incident_json(incident, _follow_ups([incident.id])), status


@bp.get("/incidents")
def list_incidents() -> Any:
    user = c.reader()
    ids = c.user_orgs(user)
    organization_id = optional_int(request.args.get("organization_id"), "organization_id")
    if organization_id is not None:
        ids = [i for i in ids if i == organization_id]
    limit = optional_int(request.args.get("limit"), "limit")
    limit = 100 if limit is None else limit
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit должен быть от 1 до {MAX_LIMIT}", field="limit", value=limit)
    active = (request.args.get("active") or "").strip().lower()
    if active not in ("", "true", "false"):
        raise ValidationFailed("active: true или false", field="active", value=active[:10])
    stmt = select(Incident).where(Incident.organization_id.in_(ids or [-1])).options(joinedload(Incident.house))
    if active:
        stmt = stmt.where(Incident.liquidated_at.is_(None) if active == "true" else Incident.liquidated_at.is_not(None))
    rows = list(db_session().scalars(stmt.order_by(Incident.started_at.desc(), Incident.id.desc()).limit(limit)))
    follow_ups = _follow_ups([i.id for i in rows])
    return {"items": [incident_json(i, follow_ups) for i in rows]}


@bp.get("/incidents/<int:incident_id>")
def get_incident(incident_id: int) -> Any:
    user = c.reader()
    return _one(svc.get_incident(db_session(), org_ids=c.user_orgs(user), incident_id=incident_id))


@bp.post("/incidents")
def create_incident() -> Any:
    user = c.staff()
    body = c.parse_body(IncidentCreate)
    org = c.org_for_create(user, body.organization_id)
    tz = tz_of(org)
    incident = svc.create_incident(
        db_session(), org=org, house_id=body.house_id, title=body.title, utility=body.utility,
        announcement=body.announcement, started_at=c.aware(body.started_at, tz),
        expected_end_at=c.aware(body.expected_end_at, tz), by=user, now=c.now())
    return _one(incident, 201)


def _mark(incident_id: int, action: str) -> tuple[dict[str, Any], int]:
    user = c.staff()
    incident = svc.get_incident(db_session(), org_ids=c.user_orgs(user), incident_id=incident_id)
    org = c.organization(incident.organization_id)
    body = c.parse_body(IncidentMark, optional=True)
    at = c.aware(body.at, tz_of(org))
    if action == "localize":
        incident = svc.localize_incident(db_session(), org=org, incident_id=incident.id, at=at, now=c.now())
    else:
        incident = svc.liquidate_incident(db_session(), org=org, incident_id=incident.id, at=at, now=c.now(), by=user)
    return _one(incident)


@bp.post("/incidents/<int:incident_id>/localize")
def localize_incident(incident_id: int) -> Any:
    return _mark(incident_id, "localize")


@bp.post("/incidents/<int:incident_id>/liquidate")
def liquidate_incident(incident_id: int) -> Any:
    return _mark(incident_id, "liquidate")


@bp.post("/incidents/<int:incident_id>/notify-residents")
def notify_incident_residents(incident_id: int) -> Any:
    user = c.staff()
    incident = svc.get_incident(db_session(), org_ids=c.user_orgs(user), incident_id=incident_id)
    body = c.parse_body(ResidentsNotice)
    result = svc.notify_residents(db_session(), org=c.organization(incident.organization_id),
                                  incident_id=incident.id, event=body.event, now=c.now())
    return {"queued": result.queued, "already": result.already, "unreachable": result.unreachable}
