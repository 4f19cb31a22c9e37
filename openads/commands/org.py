"""`openads org add`: a management company (УК), ТСЖ or ЖСК with the default categories."""

from __future__ import annotations

import argparse
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from openads.commands import UsageError, database, settings

KINDS = ("УК", "ТСЖ", "ЖСК")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def register(sub: Any) -> None:
    p = sub.add_parser("org", help="организации (УК, ТСЖ, ЖСК)")
    osub = p.add_subparsers(title="действия", metavar="ДЕЙСТВИЕ")
    add = osub.add_parser("add", help="добавить организацию с категориями заявок по умолчанию")
    add.add_argument("--name", required=True, help="полное название, например «УК Жилкомфорт»")
    add.add_argument("--short-name", required=True, help="краткое название для журнала")
    add.add_argument("--kind", choices=KINDS, default="УК", help="вид организации (по умолчанию УК)")
    add.add_argument("--tz", default="Europe/Moscow", help="часовой пояс IANA (по умолчанию Europe/Moscow)")
    add.add_argument("--inn", help="ИНН (10 или 12 цифр)")
    add.add_argument("--municipality-email", help="e-mail ЕДДС/администрации для сообщений об авариях")
    add.add_argument("--email", help="e-mail организации")
    add.add_argument("--hotline", action="append", default=[], help="номер горячей линии (можно несколько раз)")
    add.add_argument("--centre", help="диспетчерский центр, который обслуживает организацию (создаётся при необходимости)")
    add.add_argument("--no-default-categories", action="store_true", help="не создавать категории заявок по умолчанию")
    add.set_defaults(handler=run_add)
    p.set_defaults(handler=lambda args: p.error("укажите действие: add"))


def _email(raw: str | None, option: str) -> str | None:
    if raw in (None, ""):
        return None
    value = raw.strip()
    if not EMAIL_RE.match(value):
        raise UsageError(f"{option}: некорректный адрес e-mail {raw!r}")
    return value


def validate(args: argparse.Namespace) -> dict[str, Any]:
    from models.rules.phones import InvalidPhone, to_e164

    name, short = args.name.strip(), args.short_name.strip()
    if not name or not short:
        raise UsageError("--name и --short-name не могут быть пустыми")
    if len(name) > 200 or len(short) > 60:
        raise UsageError("слишком длинное название (--name до 200, --short-name до 60 символов)")
    try:
        ZoneInfo(args.tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--tz: неизвестный часовой пояс {args.tz!r} (пример: Europe/Moscow)") from None
    if args.inn and not re.fullmatch(r"\d{10}|\d{12}", args.inn):
        raise UsageError(f"--inn: ИНН состоит из 10 или 12 цифр, получено {args.inn!r}")
    hotlines = []
    for raw in args.hotline:
        try:
            hotlines.append(to_e164(raw))
        except InvalidPhone as exc:
            raise UsageError(f"--hotline: {exc}") from None
    return dict(
        name=name,
        short_name=short,
        kind=args.kind,
        timezone=args.tz,
        inn=args.inn or None,
        municipality_email=_email(args.municipality_email, "--municipality-email"),
        email=_email(args.email, "--email"),
        hotline_numbers=",".join(dict.fromkeys(hotlines)),
    )


def run_add(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from models.organization import DispatchCentre, Organization
    from models.services.catalog import seed_default_categories

    values = validate(args)
    db = database(settings().database_url)
    try:
        with db.write() as s:
            if values["inn"] and s.scalar(select(Organization.id).where(Organization.inn == values["inn"])):
                raise UsageError(f"организация с ИНН {values['inn']} уже есть")
            if args.centre:
                centre = s.scalar(select(DispatchCentre).where(DispatchCentre.name == args.centre.strip()))
                if centre is None:
                    centre = DispatchCentre(name=args.centre.strip())
                    s.add(centre)
                    s.flush()
                values["dispatch_centre_id"] = centre.id
            org = Organization(**values)
            s.add(org)
            s.flush()
            categories = {} if args.no_default_categories else seed_default_categories(s, org)
            org_id = org.id
    finally:
        db.dispose()
    print(f"Организация создана: id={org_id}, «{values['name']}» ({values['kind']}, {values['timezone']}); "
          f"категорий заявок: {len(categories)}")
    return 0
