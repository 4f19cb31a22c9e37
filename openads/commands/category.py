"""`openads category ...`: the ticket categories of an organization (ПП 416 catalogue) — list, add,
set, deactivate, activate — through the same service as the administration page
(models/services/catalog.py); every change is in the audit log, by «командная строка». A new
deadline applies to tickets registered afterwards; registered tickets keep theirs."""

from __future__ import annotations

import argparse
from typing import Any

from openads.commands import UsageError, positive_int
from openads.commands.org import _interval, _org, _session, field_errors

OPTIONS = {"name": "--name", "code": "--code", "resolve_minutes": "--resolve-minutes",
           "localize_minutes": "--localize-minutes", "window": "--window", "ack_minutes": "--ack-minutes"}
NONE_WORDS = ("none", "нет", "-", "default", "по-умолчанию")


def _deadline_args(p: argparse.ArgumentParser, *, edit: bool) -> None:
    p.add_argument("--name", required=not edit, help="название категории")
    p.add_argument("--resolve-minutes", metavar="N",
                   help="срок устранения, минут (" + ("default — " if edit else "без него — ")
                   + "срок организации по умолчанию)")
    p.add_argument("--localize-minutes", metavar="N",
                   help="срок локализации аварии, минут (" + ("none — " if edit else "без него — ") + "без локализации)")
    p.add_argument("--window", metavar="ЧЧ:ММ-ЧЧ:ММ",
                   help="срок идёт только в эти часы, например 08:00-23:00" + (" (none — круглосуточно)" if edit else ""))
    p.add_argument("--ack-minutes", metavar="N",
                   help="аварийная: минут на подтверждение исполнителем, затем SMS, звонок и «не подтверждено» "
                        "(по умолчанию 5)")
    emergency = p.add_mutually_exclusive_group()
    emergency.add_argument("--emergency", action="store_true", default=None, help="аварийная (уведомление ЕДДС)")
    if edit:
        emergency.add_argument("--not-emergency", dest="emergency", action="store_false", help="не аварийная")
    damage = p.add_mutually_exclusive_group()
    damage.add_argument("--from-damage", action="store_true", default=None,
                        help="считать срок от обнаружения повреждения, если оно раньше регистрации")
    if edit:
        damage.add_argument("--from-registration", dest="from_damage", action="store_false",
                            help="считать срок от регистрации")


def register(sub: Any) -> None:
    p = sub.add_parser("category", help="категории заявок организации и их сроки по ПП 416")
    csub = p.add_subparsers(title="действия", metavar="ДЕЙСТВИЕ")
    lst = csub.add_parser("list", help="категории организации (отключённые тоже)")
    lst.add_argument("--org", required=True, type=positive_int, metavar="ID")
    lst.set_defaults(handler=run_list)
    add = csub.add_parser("add", help="добавить категорию")
    add.add_argument("--org", required=True, type=positive_int, metavar="ID")
    add.add_argument("--code", help="код (латиница, цифры и _; без него присваивается сам)")
    _deadline_args(add, edit=False)
    add.set_defaults(handler=run_add)
    st = csub.add_parser("set", help="изменить категорию (только указанное; сроки зарегистрированных заявок не меняются)")
    st.add_argument("category", type=positive_int, metavar="ID")
    _deadline_args(st, edit=True)
    st.set_defaults(handler=run_set)
    for action, text in (("deactivate", "отключить категорию (новые заявки в ней не регистрируются)"),
                         ("activate", "снова включить категорию")):
        a = csub.add_parser(action, help=text)
        a.add_argument("category", type=positive_int, metavar="ID")
        a.set_defaults(handler=run_active, active=action == "activate")
    p.set_defaults(handler=lambda args: p.error("укажите действие: list, add, set, deactivate, activate"))


def _describe(c: Any) -> str:
    from models.rules.org_settings import format_interval

    parts = [f"{c.id}\t{c.code}\t{c.name}", "аварийная" if c.is_emergency else "",
             f"локализация {c.localize_minutes} мин" if c.localize_minutes else "",
             f"устранение {c.resolve_minutes} мин" if c.resolve_minutes else "устранение — срок по умолчанию",
             f"отсчёт {format_interval(c.window_start, c.window_end)}" if c.window_start else "",
             f"подтверждение {c.ack_minutes} мин" if c.is_emergency else "",
             "" if c.active else "ОТКЛЮЧЕНА"]
    return "; ".join(p for p in parts if p)


def _category(s: Any, category_id: int) -> Any:
    from models.ticket import Category

    category = s.get(Category, category_id)
    if category is None:
        raise UsageError(f"нет категории с id {category_id}")
    return category


def _minutes(raw: str | None, none: Any) -> Any:
    if raw is None:
        return none
    return None if raw.strip().lower() in NONE_WORDS else raw


def run_list(args: argparse.Namespace) -> int:
    from models.services.catalog import catalogue

    with _session(False) as s:
        org = _org(s, args.org)
        for c in catalogue(s, org_id=org.id):
            print(_describe(c))
    return 0


def run_add(args: argparse.Namespace) -> int:
    from models.errors import ValidationFailed
    from models.services.audit import Actor
    from models.services.catalog import CategoryDraft, create_category

    draft = CategoryDraft(name=args.name, code=args.code, is_emergency=bool(args.emergency),
                          resolve_minutes=args.resolve_minutes, localize_minutes=args.localize_minutes,
                          window=_interval(args.window, "--window") if args.window else None,
                          count_from_damage=bool(args.from_damage), ack_minutes=args.ack_minutes)
    with _session(True) as s:
        org = _org(s, args.org)
        try:
            category = create_category(s, org=org, draft=draft, by=Actor.command_line())
        except ValidationFailed as exc:
            raise field_errors(exc, OPTIONS) from None
        print("Категория добавлена: " + _describe(category))
    return 0


def run_set(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from models.errors import ValidationFailed
    from models.services.audit import Actor
    from models.services.catalog import draft_of, update_category

    with _session(True) as s:
        category = _category(s, args.category)
        current = draft_of(category)
        window = current.window
        if args.window is not None:
            window = None if args.window.strip().lower() in NONE_WORDS else _interval(args.window, "--window")
        draft = replace(
            current, name=args.name if args.name is not None else current.name,
            resolve_minutes=_minutes(args.resolve_minutes, current.resolve_minutes),
            localize_minutes=_minutes(args.localize_minutes, current.localize_minutes), window=window,
            is_emergency=current.is_emergency if args.emergency is None else args.emergency,
            count_from_damage=current.count_from_damage if args.from_damage is None else args.from_damage,
            ack_minutes=current.ack_minutes if args.ack_minutes is None else args.ack_minutes)
        try:
            update_category(s, org=_org(s, category.organization_id), category_id=category.id, draft=draft,
                            by=Actor.command_line())
        except ValidationFailed as exc:
            raise field_errors(exc, OPTIONS) from None
        print("Категория сохранена (сроки зарегистрированных заявок не меняются): " + _describe(category))
    return 0


def run_active(args: argparse.Namespace) -> int:
    from models.services.audit import Actor
    from models.services.catalog import set_category_active

    with _session(True) as s:
        category = _category(s, args.category)
        set_category_active(s, org=_org(s, category.organization_id), category_id=category.id, active=args.active,
                            by=Actor.command_line())
        print(("Категория включена: " if args.active else "Категория отключена: ") + _describe(category))
    return 0
