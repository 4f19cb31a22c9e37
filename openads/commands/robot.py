"""`openads robot ...`: an organization's rating calls and resident notifications — the settings
page «Робот и уведомления» (`/settings/robot`) on the command line: show, and set only the options
given, through the same service (models/services/robot_settings.py `change_robot_settings`): the
same checks and Russian messages; every change is in the audit log, by «командная строка»."""

from __future__ import annotations

import argparse
from datetime import time
from typing import Any

from openads.commands import UsageError, positive_int
from openads.commands.org import _interval, _org, _session, field_errors

OPTIONS = {
    "rating_calls_enabled": "--rating-calls", "call_window_start": "--call-window", "call_window": "--call-window",
    "max_attempts": "--attempts", "retry_interval_minutes": "--retry-minutes", "rating_prompt": "--prompt",
    "voice": "--voice", "notifications_enabled": "--notifications", "quiet_start": "--quiet", "templates": "--template",
}


def register(sub: Any) -> None:
    from models.rules.robot import NOTIFICATION_EVENTS

    p = sub.add_parser("robot", help="робот и уведомления жителей: звонок за оценкой, тихие часы, шаблоны уведомлений")
    rsub = p.add_subparsers(title="действия", metavar="ДЕЙСТВИЕ")
    show = rsub.add_parser("show", help="настройки организации и шаблоны уведомлений")
    show.add_argument("--org", required=True, type=positive_int, metavar="ID")
    show.set_defaults(handler=run_show)
    st = rsub.add_parser("set", help="изменить настройки (только указанные; каждое — в журнале изменений)")
    st.add_argument("--org", required=True, type=positive_int, metavar="ID")
    calls = st.add_mutually_exclusive_group()
    calls.add_argument("--rating-calls", dest="rating_calls", action="store_true", default=None,
                       help="робот звонит жителю за оценкой после выполнения заявки")
    calls.add_argument("--no-rating-calls", dest="rating_calls", action="store_false", help="не звонить за оценкой")
    st.add_argument("--call-window", metavar="ЧЧ:ММ-ЧЧ:ММ", help="окно звонков жителям (внутри 08:00–22:00)")
    st.add_argument("--attempts", metavar="N", type=int, help="попыток дозвониться (1–10)")
    st.add_argument("--retry-minutes", metavar="N", type=int, help="минут между попытками")
    st.add_argument("--prompt", metavar="ТЕКСТ", help="текст звонка за оценкой ({company}, {number})")
    st.add_argument("--voice", metavar="ГОЛОС", help="голос синтеза речи (пусто — по умолчанию)")
    notices = st.add_mutually_exclusive_group()
    notices.add_argument("--notifications", dest="notifications", action="store_true", default=None,
                         help="уведомлять жителей о заявках")
    notices.add_argument("--no-notifications", dest="notifications", action="store_false",
                         help="не уведомлять жителей")
    st.add_argument("--quiet", metavar="ЧЧ:ММ-ЧЧ:ММ", help="тихие часы: SMS и звонки ждут их окончания")
    st.add_argument("--template", nargs=2, action="append", metavar=("СОБЫТИЕ", "ТЕКСТ"), default=[],
                    help="шаблон уведомления жителю; события: " + ", ".join(NOTIFICATION_EVENTS)
                         + " (можно повторять; подстановки — в `openads robot show`)")
    st.set_defaults(handler=run_set)
    p.set_defaults(handler=lambda args: p.error("укажите действие: show, set"))


def _time(raw: str, option: str) -> time:
    try:
        return time.fromisoformat(raw)
    except ValueError:
        raise UsageError(f"{option}: время в формате ЧЧ:ММ, получено {raw!r}") from None


def _window(raw: str, option: str) -> tuple[time, time]:
    start, end = _interval(raw, option)
    return _time(start, option), _time(end, option)


def _print(draft: Any) -> None:
    from models.rules import robot as rules
    from models.rules.org_settings import format_interval

    yes = {True: "да", False: "нет"}
    print(f"Звонок за оценкой: {yes[draft.rating_calls_enabled]}; окно "
          f"{format_interval(draft.call_window_start, draft.call_window_end)}; попыток {draft.max_attempts}, "
          f"между попытками {draft.retry_interval_minutes} мин; голос {draft.voice or 'по умолчанию'}")
    print(f"Текст звонка: {draft.rating_prompt}")
    print(f"Уведомления жителей: {yes[draft.notifications_enabled]}; тихие часы "
          f"{format_interval(draft.quiet_start, draft.quiet_end)}")
    print("Шаблоны уведомлений (время — местное время организации):")
    for event in rules.NOTIFICATION_EVENTS:
        allowed = ", ".join("{" + p + "}" for p in rules.template_placeholders(event))
        print(f"  {event} — {rules.TEMPLATE_TITLES_RU[event]} (подстановки: {allowed}):")
        print(f"    {draft.templates[event]}")


def run_show(args: argparse.Namespace) -> int:
    from models.services.robot_settings import current_draft

    with _session(False) as s:
        _print(current_draft(s, _org(s, args.org)))
    return 0


def run_set(args: argparse.Namespace) -> int:
    from models.errors import ValidationFailed
    from models.services.audit import Actor
    from models.services.robot_settings import change_robot_settings, current_draft

    changes: dict[str, Any] = {}
    if args.rating_calls is not None:
        changes["rating_calls_enabled"] = args.rating_calls
    if args.call_window is not None:
        changes["call_window_start"], changes["call_window_end"] = _window(args.call_window, "--call-window")
    if args.attempts is not None:
        changes["max_attempts"] = args.attempts
    if args.retry_minutes is not None:
        changes["retry_interval_minutes"] = args.retry_minutes
    if args.prompt is not None:
        changes["rating_prompt"] = args.prompt
    if args.voice is not None:
        changes["voice"] = args.voice
    if args.notifications is not None:
        changes["notifications_enabled"] = args.notifications
    if args.quiet is not None:
        changes["quiet_start"], changes["quiet_end"] = _window(args.quiet, "--quiet")
    if args.template:
        changes["templates"] = dict(args.template)
    if not changes:
        raise UsageError("укажите, что изменить (openads robot set --help)")
    with _session(True) as s:
        org = _org(s, args.org)
        try:
            change_robot_settings(s, org=org, changes=changes, by=Actor.command_line())
        except ValidationFailed as exc:
            names = {**OPTIONS, **{f"template_{e}": f"--template {e}" for e in changes.get("templates", {})}}
            raise field_errors(exc, names) from None
        print(f"Настройки робота и уведомлений сохранены: {org.short_name}")
        _print(current_draft(s, org))
    return 0
