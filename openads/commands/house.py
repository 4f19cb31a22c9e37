"""`openads house location ...`: a house's coordinates (the dispatcher's map and the nearest free
executor, decision 0044) — show, set, clear — through the same service as the ticket card and
`PATCH /api/v1/houses/{id}/location` (models/services/housing.py `set_house_location`): the same
range checks and Russian messages; every change is in the audit log (object «Дом»), by
«командная строка»."""

from __future__ import annotations

import argparse
from typing import Any

from openads.commands import UsageError, positive_int
from openads.commands.org import _org, _session, field_errors

OPTIONS = {"latitude": "--lat", "longitude": "--lon", "house_id": "ДОМ"}


def register(sub: Any) -> None:
    p = sub.add_parser("house", help="дома организации: координаты для карты диспетчера")
    hsub = p.add_subparsers(title="действия", metavar="ДЕЙСТВИЕ")
    loc = hsub.add_parser(
        "location", help="координаты дома: без параметров — показать, --lat и --lon — задать, --clear — очистить")
    loc.add_argument("house", type=positive_int, metavar="ДОМ", help="id дома")
    loc.add_argument("--org", required=True, type=positive_int, metavar="ID", help="организация дома")
    loc.add_argument("--lat", metavar="ШИРОТА", help="широта, от −90 до 90, например 55.7512")
    loc.add_argument("--lon", metavar="ДОЛГОТА", help="долгота, от −180 до 180, например 37.6184")
    loc.add_argument("--clear", action="store_true", help="очистить координаты")
    loc.set_defaults(handler=run_location)
    p.set_defaults(handler=lambda args: p.error("укажите действие: location"))


def _coordinate(raw: str | None, option: str, title: str) -> float | None:
    """A number as typed (a decimal comma too, as in the panel); None when not given."""
    if raw is None:
        return None
    value = raw.strip().replace(",", ".")
    try:
        return float(value)
    except ValueError:
        raise UsageError(f"{option}: {title}: укажите число, например 55.7512") from None


def _describe(house: Any) -> str:
    where = (f"широта {house.latitude}, долгота {house.longitude}" if house.latitude is not None
             and house.longitude is not None else "координаты не заданы")
    return f"{house.id}\t{house.address}\t{where}"


def run_location(args: argparse.Namespace) -> int:
    from models.errors import ValidationFailed
    from models.services.audit import Actor
    from models.services.housing import owned_house, set_house_location

    if args.clear and (args.lat is not None or args.lon is not None):
        raise UsageError("--clear нельзя указывать вместе с --lat и --lon")
    change = args.clear or args.lat is not None or args.lon is not None
    latitude = _coordinate(args.lat, "--lat", "широта")
    longitude = _coordinate(args.lon, "--lon", "долгота")
    with _session(change) as s:
        org = _org(s, args.org)
        try:
            if not change:
                print(_describe(owned_house(s, org=org, house_id=args.house)))
                return 0
            house = set_house_location(s, org=org, house_id=args.house, latitude=latitude, longitude=longitude,
                                       by=Actor.command_line())
        except ValidationFailed as exc:
            raise field_errors(exc, OPTIONS) from None
        print(("Координаты дома очищены: " if args.clear else "Координаты дома сохранены: ") + _describe(house))
    return 0
