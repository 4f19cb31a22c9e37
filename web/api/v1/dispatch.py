"""The dispatcher's map and the nearest free executor over the API (issue 15 C; decision 0044),
and a house's coordinates. The same reads and services as the panel's «Карта» and ticket card.

- `GET /dispatch/map`: the organization's open tickets with coordinates and urgency, and (staff
  only: personal data) its executors on duty with their last position and last-seen time.
- `GET /tickets/{id}/nearest-executors`: for an emergency, free executors by straight-line distance.
- `PATCH /houses/{id}/location`: a house's latitude and longitude (staff).
"""

from __future__ import annotations

from typing import Any

from flask import request
from pydantic import Field

from models import dispatch
from models.errors import NotFound
from models.housing import House as HouseRow
from models.queries import ticket_card
from models.rules.access import READERS, STAFF
from models.services import housing as housing_svc
from models.services.audit import Actor
from web.api.v1 import bp
from web.api.v1 import common as c
from web.api.v1.houses import house_json
from web.api.v1.schemas import Body, House, Out
from web.auth import require_user
from web.dbsession import session as db_session
from web.panel.dispatch import map_json


class MapTicket(Out):
    id: int
    number: str
    lat: float | None
    lon: float | None
    urgency: str = Field(description="emergency, overdue, due_soon, normal")
    urgency_title: str
    is_emergency: bool
    status: str
    status_title: str
    category: str
    address: str | None
    executor_id: int | None
    executor_name: str | None
    next_due_at: str | None
    next_due_local: str | None
    url: str


class MapExecutor(Out):
    user_id: int
    full_name: str
    state: str = Field(description="free (на смене), busy (занят аварийной заявкой)")
    state_title: str
    lat: float | None
    lon: float | None
    position_at: str | None
    last_seen_at: str | None
    last_seen_local: str | None
    open_tickets: int


class DispatchMap(Out):
    organization_id: int
    server_time: str
    tile_url: str | None = Field(description="Сервер подложки; null — карта без подложки (сетка)")
    tickets: list[MapTicket] = Field(description="Открытые заявки с координатами дома, срочные первыми")
    unplaced: list[MapTicket] = Field(description="Открытые заявки, у дома которых нет координат")
    executors: list[MapExecutor] = Field(description="Исполнители на смене (проверяющему — пусто)")
    positions_shown: bool


class NearestExecutor(Out):
    user_id: int
    full_name: str
    distance_m: float
    distance_text: str
    lat: float
    lon: float
    position_at: str | None
    last_seen_at: str | None


class NearestExecutorList(Out):
    ticket_id: int
    is_emergency: bool
    house_placed: bool = Field(description="false — у дома нет координат, подсказки нет")
    items: list[NearestExecutor]


class HouseLocation(Body):
    latitude: float | None = Field(ge=-90, le=90, description="null вместе с longitude — очистить")
    longitude: float | None = Field(ge=-180, le=180)


REQUEST_MODELS = (HouseLocation,)
RESPONSE_MODELS = (DispatchMap, NearestExecutorList)


@bp.get("/dispatch/map")
def dispatch_map() -> Any:
    user = require_user(READERS)
    org = c.org_for_create(user, request.args.get("organization_id", type=int))
    return map_json(org, with_executors=user.role in STAFF, now=c.now())


@bp.get("/tickets/<int:ticket_id>/nearest-executors")
def nearest_executors(ticket_id: int) -> Any:
    """Staff only (positions). Not an emergency, or a house without coordinates: no items."""
    user = require_user(STAFF)
    t = ticket_card(db_session(), c.user_orgs(user), ticket_id)
    placed = t.house is not None and t.house.latitude is not None and t.house.longitude is not None
    found = dispatch.nearest_free_executors(db_session(), org_id=t.organization_id, lat=t.house.latitude,
                                            lon=t.house.longitude) if (t.is_emergency and placed and t.house) else []
    return {"ticket_id": t.id, "is_emergency": t.is_emergency, "house_placed": placed, "items": [{
        "user_id": s.executor.user_id, "full_name": s.executor.full_name, "distance_m": round(s.distance_m, 1),
        "distance_text": s.distance_text, "lat": s.executor.lat, "lon": s.executor.lon,
        "position_at": c.utc_iso(s.executor.position_at), "last_seen_at": c.utc_iso(s.executor.last_seen_at),
    } for s in found]}


@bp.patch("/houses/<int:house_id>/location")
def house_location(house_id: int) -> Any:
    user = require_user(STAFF)
    row = db_session().get(HouseRow, house_id)
    if row is None or row.organization_id not in c.user_orgs(user):  # another organization's: 404 first
        raise NotFound("дом не найден", house_id=house_id)
    body = c.parse_body(HouseLocation)
    house = housing_svc.set_house_location(db_session(), org=c.organization(row.organization_id), house_id=house_id,
                                           latitude=body.latitude, longitude=body.longitude,
                                           by=Actor.of(user, "api"), now=c.now())
    return house_json(house)


_ = House  # the response schema of PATCH /houses/{id}/location
