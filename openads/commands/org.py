"""`openads org ...`: add a management company (УК), ТСЖ or ЖСК with the default categories; list,
show and change the settings of one (the administration page's settings, through the same
service, models/services/organizations.py; every change is in the audit log, by «командная строка»)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from openads.commands import UsageError, database, positive_int, settings

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
    add.add_argument("--municipality-email", action="append", default=[],
                     help="адрес эл. почты ЕДДС/администрации для сообщений об авариях (можно несколько раз)")
    add.add_argument("--email", help="адрес эл. почты организации")
    add.add_argument("--hotline", action="append", default=[], help="номер горячей линии (можно несколько раз)")
    add.add_argument("--centre", help="диспетчерский центр, который обслуживает организацию (создаётся при необходимости)")
    add.add_argument("--no-default-categories", action="store_true", help="не создавать категории заявок по умолчанию")
    add.set_defaults(handler=run_add)

    lst = osub.add_parser("list", help="организации и их главные настройки")
    lst.set_defaults(handler=run_list)
    show = osub.add_parser("show", help="все настройки организации")
    show.add_argument("org", type=positive_int, metavar="ID")
    show.set_defaults(handler=run_show)
    st = osub.add_parser(
        "set", help="изменить настройки организации (только указанные; каждое изменение — в журнале изменений)",
        description="Изменить настройки организации. Указанные списки (--hotline, --municipality-email) заменяют "
                    "прежние целиком. Изменения записываются в журнал изменений настроек.")
    st.add_argument("org", type=positive_int, metavar="ID")
    st.add_argument("--name", help="полное название")
    st.add_argument("--short-name", help="краткое название")
    st.add_argument("--tz", help="часовой пояс IANA, например Europe/Samara")
    st.add_argument("--hotline", action="append", help="номер горячей линии (можно несколько раз; первый — основной)")
    st.add_argument("--no-hotlines", action="store_true", help="убрать все номера горячей линии")
    st.add_argument("--municipality-email", action="append", help="адрес эл. почты ОМСУ/ЕДДС (можно несколько раз)")
    st.add_argument("--no-municipality-emails", action="store_true", help="убрать все адреса ОМСУ/ЕДДС")
    st.add_argument("--call-window", metavar="ЧЧ:ММ-ЧЧ:ММ", help="когда робот звонит жителям, например 09:00-20:00")
    st.add_argument("--retention-days", metavar="N", help="сколько дней хранить записи разговоров (от 90 до 3650)")
    st.add_argument("--position-retention-days", metavar="N",
                    help="сколько дней хранить местоположения исполнителей (от 1 до 90)")
    st.add_argument("--dispatch-hours", metavar="ЧЧ:ММ-ЧЧ:ММ",
                    help="часы работы диспетчерской службы, например 08:00-20:00, или «круглосуточно»")
    st.add_argument("--map-tiles", metavar="URL",
                    help="сервер подложки карты диспетчера, шаблон https://…/{z}/{x}/{y}.png")
    st.add_argument("--no-map-tiles", action="store_true",
                    help="карта без подложки: простая сетка, без обращений к другим серверам")
    st.add_argument("--interruption-limits", metavar="РЕСУРС=М/Е;…",
                    help="допустимые перерывы коммунальных услуг, где они иные, чем в приложении 1 к ПП № 354: "
                         "часы в месяц/единовременно, «-» — без ограничения, например "
                         "\"electricity=-/24; heating=24/8\"; ресурсы: cold_water, hot_water, sewerage, electricity, "
                         "gas, heating; остальные — по ПП № 354; «пп354» — вся таблица по ПП № 354")
    st.set_defaults(handler=run_set)
    p.set_defaults(handler=lambda args: p.error("укажите действие: add, list, show, set"))


def _email(raw: str | None, option: str) -> str | None:
    if raw in (None, ""):
        return None
    value = raw.strip()
    if not EMAIL_RE.match(value):
        raise UsageError(f"{option}: некорректный адрес эл. почты {raw!r}")
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
        municipality_email=",".join(dict.fromkeys(
            e for e in (_email(raw, "--municipality-email") for raw in args.municipality_email) if e)) or None,
        email=_email(args.email, "--email"),
        hotline_numbers=",".join(dict.fromkeys(hotlines)),
    )


def run_add(args: argparse.Namespace) -> int:
    from sqlalchemy import func, select

    from models.errors import ValidationFailed
    from models.organization import DispatchCentre, Organization
    from models.services.audit import Actor
    from models.services.organizations import create_organization
    from models.ticket import Category

    values = validate(args)
    db = database(settings().database_url)
    try:
        with db.write() as s:
            if values["inn"] and s.scalar(select(Organization.id).where(Organization.inn == values["inn"])):
                raise UsageError(f"организация с ИНН {values['inn']} уже есть")
            extra = {"kind": values["kind"], "inn": values["inn"], "email": values["email"]}
            if args.centre:
                centre = s.scalar(select(DispatchCentre).where(DispatchCentre.name == args.centre.strip()))
                if centre is None:
                    centre = DispatchCentre(name=args.centre.strip())
                    s.add(centre)
                    s.flush()
                extra["dispatch_centre_id"] = centre.id
            settings_ = {"name": values["name"], "short_name": values["short_name"], "timezone": values["timezone"],
                         "hotlines": [n for n in values["hotline_numbers"].split(",") if n],
                         "municipality_emails": (values["municipality_email"] or "").split(",")}
            try:
                org = create_organization(s, values=settings_, by=Actor.command_line(),
                                          default_categories=not args.no_default_categories, **extra)
            except ValidationFailed as exc:
                raise field_errors(exc, {**SET_OPTIONS, "hotlines": "--hotline",
                                         "municipality_emails": "--municipality-email"}) from None
            org_id = org.id
            categories = s.scalar(select(func.count()).select_from(Category).where(Category.organization_id == org_id))
    finally:
        db.dispose()
    print(f"Организация создана: id={org_id}, «{values['name']}» ({values['kind']}, {values['timezone']}); "
          f"категорий заявок: {categories}")
    return 0


# --- list, show, set -----------------------------------------------------------------------------------


@contextmanager
def _session(write: bool) -> Iterator[Any]:
    db = database(settings().database_url)
    try:
        with (db.write() if write else db.read()) as s:
            yield s
    finally:
        db.dispose()


def _org(s: Any, org_id: int) -> Any:
    from models.organization import Organization

    org = s.get(Organization, org_id)
    if org is None:
        raise UsageError(f"нет организации с id {org_id}")
    return org


def field_errors(exc: Any, options: dict[str, str]) -> UsageError:
    """A service's ValidationFailed as one line per wrong field, named by its option."""
    fields = exc.details.get("fields") or [{"field": exc.details.get("field") or "", "message": exc.message}]
    return UsageError("\n".join(f"{options.get(f['field'], f['field'])}: {f['message']}" for f in fields))


def _interval(raw: str, option: str) -> tuple[str, str]:
    start, sep, end = raw.replace("–", "-").partition("-")
    if not sep:
        raise UsageError(f"{option}: укажите интервал ЧЧ:ММ-ЧЧ:ММ, получено {raw!r}")
    return start.strip(), end.strip()


def _print_settings(st: Any) -> None:
    from models.rules.interruptions import format_limits
    from models.rules.org_settings import format_interval

    print(f"Организация id={st.id}: «{st.name}» ({st.short_name}, {st.kind})")
    print(f"  часовой пояс: {st.timezone}")
    print(f"  горячая линия: {', '.join(st.hotlines) or 'не задана'}")
    print(f"  ОМСУ/ЕДДС: {', '.join(st.municipality_emails) or 'не заданы'}")
    print(f"  робот звонит жителям: {format_interval(*st.call_window)}")
    print(f"  записи разговоров хранятся, дней: {st.recording_retention_days}")
    print(f"  диспетчерская служба: {format_interval(*(st.dispatch_hours or (None, None)))}")
    print(f"  сервер карты: {st.map_tile_url or 'нет (сетка без подложки)'}")
    print(f"  местоположения исполнителей хранятся, дней: {st.position_retention_days}")
    print(f"  допустимые перерывы: {format_limits(st.interruption_limits)}")


def run_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from models.organization import Organization

    with _session(False) as s:
        orgs = s.scalars(select(Organization).order_by(Organization.id)).all()
        if not orgs:
            print("Организаций нет: добавьте командой openads org add")
        for org in orgs:
            print(f"{org.id}\t{org.short_name}\t{org.timezone}\t{', '.join(org.hotlines) or '—'}\t{org.name}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from models.services.organizations import organization_settings

    with _session(False) as s:
        _print_settings(organization_settings(s, _org(s, args.org)))
    return 0


SET_OPTIONS = {"name": "--name", "short_name": "--short-name", "timezone": "--tz", "hotlines": "--hotline",
               "municipality_emails": "--municipality-email", "call_window": "--call-window",
               "recording_retention_days": "--retention-days", "dispatch_hours": "--dispatch-hours",
               "map_tile_url": "--map-tiles", "position_retention_days": "--position-retention-days",
               "interruption_limits": "--interruption-limits"}


def run_set(args: argparse.Namespace) -> int:
    from models.errors import ValidationFailed
    from models.services.audit import Actor
    from models.services.organizations import update_organization

    changes: dict[str, Any] = {}
    for name, value in (("name", args.name), ("short_name", args.short_name), ("timezone", args.tz),
                        ("recording_retention_days", args.retention_days),
                        ("position_retention_days", args.position_retention_days)):
        if value is not None:
            changes[name] = value
    if args.hotline is not None or args.no_hotlines:
        changes["hotlines"] = args.hotline or []
    if args.municipality_email is not None or args.no_municipality_emails:
        changes["municipality_emails"] = args.municipality_email or []
    if args.call_window is not None:
        changes["call_window"] = _interval(args.call_window, "--call-window")
    if args.dispatch_hours is not None:
        around = args.dispatch_hours.strip().lower() in ("круглосуточно", "24/7", "24x7", "always")
        changes["dispatch_hours"] = None if around else _interval(args.dispatch_hours, "--dispatch-hours")
    if args.map_tiles is not None or args.no_map_tiles:
        changes["map_tile_url"] = None if args.no_map_tiles else args.map_tiles
    if args.interruption_limits is not None:
        act = args.interruption_limits.strip().lower() in ("пп354", "pp354", "default")
        changes["interruption_limits"] = None if act else args.interruption_limits
    if not changes:
        raise UsageError("укажите, что изменить (см. openads org set --help)")
    with _session(True) as s:
        org = _org(s, args.org)
        try:
            result = update_organization(s, org=org, changes=changes, by=Actor.command_line())
        except ValidationFailed as exc:
            raise field_errors(exc, SET_OPTIONS) from None
        print("Настройки сохранены.")
        _print_settings(result)
    return 0
